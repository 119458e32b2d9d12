"""The ids users choose (schedule ids, session ids, request ids): one charset for every kind and
every tenant, and the storage keys built from them.

Ids may use letters, digits, '.', '_', ':' and '-' (1 to 200 characters). They cannot contain
'/', and neither can tenant names, so "<tenant>/<id>" is one tenant's id and no other's, for the
anonymous tenant ('' without API keys: "/<id>") as for any other; and internal request ids,
which do contain '/' (a schedule's firing uses "schedule/<id>/<time>"), cannot be taken by a
caller.
"""

from __future__ import annotations

import re

from timestep.errors import InvalidArgumentError

MAX_ID_LENGTH = 200
ID_CHARSET = "letters, digits, '.', '_', ':' and '-'"
_ID = re.compile(r"[A-Za-z0-9._:-]+")


def _checked(value: str, field: str, *, required: str = "") -> str:
    """`value` if it is a valid id; '' when it is empty and optional (no `required` hint)."""
    if not value:
        if required:
            raise InvalidArgumentError(f"{field} is required: {required}.", field=field)
        return value
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentError(f"{field} is longer than {MAX_ID_LENGTH} characters.", field=field)
    if not _ID.fullmatch(value):
        raise InvalidArgumentError(
            f"{field} {value[:40]!r} is not a valid id: use only {ID_CHARSET}, "
            f"at most {MAX_ID_LENGTH} characters.",
            field=field,
        )
    return value


def schedule_id(value: str, *, required: bool = True) -> str:
    """A schedule id named by a call; CreateSchedule may leave it empty (one is generated)."""
    return _checked(
        value, "schedule_id", required="pass an id from CreateSchedule or ListSchedules" if required else ""
    )


def session_id(value: str, *, required: bool = False) -> str:
    """A session id ('' for none, unless `required`)."""
    return _checked(value, "session_id", required="pass the session_id your runs named" if required else "")


def request_id(value: str) -> str:
    """An idempotency key ('' for none)."""
    return _checked(value, "request_id")


def scoped(tenant: str, user_id: str) -> str:
    """The key of `tenant`'s `user_id` where keys of all tenants share one namespace (session
    items, DBOS schedule names)."""
    return f"{tenant}/{user_id}"


def tenant_prefix(tenant: str) -> str:
    """What every key `scoped` builds for `tenant` starts with, and no other tenant's does."""
    return scoped(tenant, "")
