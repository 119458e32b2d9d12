"""What a log line is about: the run and the request being served, in context variables.

Kept free of dependencies so that any layer can set them.
"""

from __future__ import annotations

from contextvars import ContextVar

run_id_var: ContextVar[str] = ContextVar("timestep_run_id", default="")
request_id_var: ContextVar[str] = ContextVar("timestep_request_id", default="")
