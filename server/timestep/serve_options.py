"""The options of `timestep serve`, grouped, and the settings they make."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

from timestep.commands.output import USAGE
from timestep.settings import (
    DEFAULT_EXPIRY_MESSAGE,
    ApprovalSettings,
    ConfigurationError,
    Limits,
    ProviderLimits,
    ScheduleLimits,
    WebhookSettings,
    parse_duration,
)

if TYPE_CHECKING:
    pass


def add_auth_options(serve: argparse.ArgumentParser) -> None:
    auth = serve.add_argument_group(
        "authentication",
        "Clients send a key as 'authorization: Bearer <key>'; each key belongs to a tenant, which\n"
        "sees only its own runs, interruptions, states, schedules and usage. Keys are configured\n"
        "hashed, as 'tenant:sha256:<hex>' entries (see `timestep api-keys create`). Without keys\n"
        "every caller is one anonymous tenant, and only loopback addresses may be listened on.",
    )
    auth.add_argument(
        "--api-keys-file",
        metavar="FILE",
        default=os.environ.get("TIMESTEP_API_KEYS_FILE", ""),
        help="a file of key entries, one per line (default: TIMESTEP_API_KEYS_FILE; entries in "
        "TIMESTEP_API_KEYS, comma-separated, are added)",
    )
    auth.add_argument(
        "--authenticate-health",
        action="store_true",
        help="require a key for health checking and reflection too (default: they stay open)",
    )
    auth.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="listen on a non-loopback --host without API keys (only behind something that "
        "authenticates callers)",
    )


def add_api_key_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("api-keys", help="create API keys for `serve`")
    actions = keys.add_subparsers(dest="api_keys_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="print a new random key and the hashed entry to configure for it",
        description="Print a new random API key (give it to the client) and its 'tenant:sha256:<hex>' "
        "entry (add it to --api-keys-file or TIMESTEP_API_KEYS). The service never stores the key.",
    )
    create.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    create.add_argument("--json", action="store_true", help='print {"tenant", "api_key", "entry"}')


def create_api_key(tenant: str, as_json: bool) -> int:
    from timestep.api.auth import TENANT_NAME, hash_key, new_key

    if not TENANT_NAME.match(tenant):
        print("timestep: a tenant name is 1-64 letters, digits, '.', '_' or '-'", file=sys.stderr)
        return USAGE
    key = new_key()
    entry = f"{tenant}:{hash_key(key)}"
    if as_json:
        print(json.dumps({"tenant": tenant, "api_key": key, "entry": entry}))
    else:
        print(f"api key (give to the client; shown once): {key}")
        print(f"entry (add to --api-keys-file or TIMESTEP_API_KEYS):  {entry}")
    return 0


def add_tls_options(serve: argparse.ArgumentParser) -> None:
    tls = serve.add_argument_group("TLS (default: plaintext)")
    tls.add_argument(
        "--tls-cert",
        metavar="FILE",
        default=os.environ.get("TIMESTEP_TLS_CERT"),
        help="serve TLS with this PEM certificate chain (default: TIMESTEP_TLS_CERT)",
    )
    tls.add_argument(
        "--tls-key",
        metavar="FILE",
        default=os.environ.get("TIMESTEP_TLS_KEY"),
        help="the PEM private key of --tls-cert (default: TIMESTEP_TLS_KEY)",
    )
    tls.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        default=os.environ.get("TIMESTEP_TLS_CLIENT_CA"),
        help="require client certificates signed by this PEM CA, i.e. mTLS (default: TIMESTEP_TLS_CLIENT_CA)",
    )


def add_limit_options(serve: argparse.ArgumentParser) -> None:
    limits = serve.add_argument_group(
        "limits",
        "Too large a message or metadata is RESOURCE_EXHAUSTED; too many input items, too long a\n"
        "field or too large a state is INVALID_ARGUMENT. Nothing is written either way.",
    )
    for flag, name, what in (
        ("--max-message-size", "max_message_bytes", "largest request message, in bytes"),
        ("--max-metadata-size", "max_metadata_bytes", "largest request metadata (headers), in bytes"),
        (
            "--max-concurrent-streams",
            "max_concurrent_streams",
            "RPCs open at once per connection; clients queue further calls",
        ),
        ("--max-input-items", "max_input_items", "items in CreateRun.input_items_json"),
        ("--max-input-size", "max_input_bytes", "bytes of CreateRun.input or CreateRun.input_items_json"),
        (
            "--max-text-size",
            "max_text_bytes",
            "bytes of CancelRun.reason and RejectInterruption.message",
        ),
        ("--max-state-size", "max_state_bytes", "bytes of ImportRunState.state_json"),
        (
            "--max-active-runs",
            "max_active_runs",
            "runs QUEUED or RUNNING at once per tenant; more CreateRun/ResumeRun calls get "
            "RESOURCE_EXHAUSTED with a RetryInfo (0: no limit)",
        ),
    ):
        limits.add_argument(
            flag,
            type=int,
            dest=name,
            metavar="N",
            default=getattr(Limits(), name),
            help=f"{what} (default: %(default)s)",
        )


def add_schedule_options(serve: argparse.ArgumentParser) -> None:
    schedules = serve.add_argument_group(
        "schedules",
        "Runs that schedules fire count against --max-active-runs: a firing without room is\n"
        "skipped and counted in the schedule's missed_fires.",
    )
    defaults = ScheduleLimits()
    schedules.add_argument(
        "--max-schedules",
        type=int,
        metavar="N",
        default=defaults.max_schedules,
        help="schedules per tenant; more CreateSchedule calls get FAILED_PRECONDITION "
        "(0: no limit; default: %(default)s)",
    )
    schedules.add_argument(
        "--min-schedule-interval",
        type=float,
        metavar="SECONDS",
        default=defaults.min_interval_s,
        help="shortest time between two firings of a schedule; a cron firing more often is "
        "INVALID_ARGUMENT at CreateSchedule (default: %(default)s)",
    )


def duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_webhook_options(serve: argparse.ArgumentParser) -> None:
    webhooks = serve.add_argument_group(
        "webhooks",
        "Events are POSTed to webhooks signed per Standard Webhooks; failed deliveries are retried\n"
        "with exponential backoff and jitter, durably, until the retry window has passed.",
    )
    webhooks.add_argument(
        "--webhook-allow-private",
        action="store_true",
        help="allow webhook destinations on loopback, private and link-local addresses (refused by "
        "default; cloud metadata addresses are always refused)",
    )
    defaults = WebhookSettings()
    for flag, name, what in (
        ("--webhook-connect-timeout", "connect_timeout_s", "seconds to connect to a receiver"),
        ("--webhook-read-timeout", "read_timeout_s", "seconds to wait for each read of a receiver's answer"),
        (
            "--webhook-retry-initial",
            "retry_initial_s",
            "seconds before the first retry (each next waits twice as long)",
        ),
        ("--webhook-retry-max", "retry_max_s", "the longest wait between two retries, in seconds"),
        (
            "--webhook-retry-window",
            "retry_window_s",
            "seconds of retrying after which a delivery is given up",
        ),
    ):
        webhooks.add_argument(
            flag,
            type=float,
            dest=f"webhook_{name}",
            metavar="SECONDS",
            default=getattr(defaults, name),
            help=f"{what} (default: %(default)s)",
        )


def add_approval_options(serve: argparse.ArgumentParser) -> None:
    approvals = serve.add_argument_group("approvals")
    approvals.add_argument(
        "--approval-timeout",
        type=float,
        metavar="SECONDS",
        default=0.0,
        help="default time an interruption may wait for a decision before it is rejected by itself "
        "(CreateRun's approval_timeout and an agent's RegisteredAgent.approval_timeout override it; "
        "0: wait forever; default: %(default)s)",
    )
    approvals.add_argument(
        "--approval-expiry-message",
        metavar="TEXT",
        default=DEFAULT_EXPIRY_MESSAGE,
        help="what the model is told about a tool call whose approval expired (CreateRun's "
        "approval_expiry_message overrides it)",
    )


def approval_settings(args: argparse.Namespace) -> ApprovalSettings:
    if args.approval_timeout < 0:
        raise ConfigurationError("--approval-timeout must not be negative (0: wait forever)")
    return ApprovalSettings(
        timeout=timedelta(seconds=args.approval_timeout) if args.approval_timeout else None,
        expiry_message=args.approval_expiry_message,
    )


def webhook_settings(args: argparse.Namespace) -> WebhookSettings:
    try:
        return WebhookSettings(
            allow_private=args.webhook_allow_private,
            **{
                name: getattr(args, f"webhook_{name}")
                for name in (
                    "connect_timeout_s",
                    "read_timeout_s",
                    "retry_initial_s",
                    "retry_max_s",
                    "retry_window_s",
                )
            },
        )
    except ValueError as error:
        raise ConfigurationError(f"webhook options: {error}") from error


def parse_provider_limit(text: str) -> tuple[str, ProviderLimits]:
    provider, _, settings = text.partition(":")
    values: dict[str, str] = dict(part.split("=", 1) for part in settings.split(",") if "=" in part)
    unknown = set(values) - {"concurrency", "requests", "period"}
    if not provider or not settings or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected PROVIDER:concurrency=N,requests=M,period=S (any of the three)"
        )
    try:
        return provider, ProviderLimits(
            concurrency=int(values["concurrency"]) if "concurrency" in values else None,
            requests=int(values["requests"]) if "requests" in values else None,
            period_s=float(values.get("period", 1.0)),
        )
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error
