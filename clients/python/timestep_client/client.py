"""TimestepClient: an async client for RunService, SessionService, AgentService, UsageService and
WebhookService
(and the raw ScheduleService stub, `client.schedules`).

async with TimestepClient("localhost:50051") as client:
    run = await client.create_run("assistant", "Email Bob that I'm late", wait=True)
    for interruption in run.interruptions:
        await client.approve(run.id, interruption.id)
    run = await client.resume(run.id, wait=True)
    print(run.final_output)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from timestep_client.v1 import (
    agents_pb2,
    agents_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    schedules_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)

# Status codes after which re-subscribing to a stream is worth trying.
RECONNECTABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


@dataclass(frozen=True)
class TlsOptions:
    """TLS for the channel, as PEM bytes: the CA that signed the server's certificate (None: the
    system's roots) and, for a server that requires client certificates (mTLS), this client's
    certificate chain and private key."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None

    @classmethod
    def from_files(
        cls, ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
    ) -> TlsOptions:
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return cls(read(ca_file), read(cert_file), read(key_file))

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_certificates, self.private_key, self.certificate_chain)


class _BearerKey:
    """Adds `authorization: Bearer <key>` to a call's metadata."""

    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    def _with_key(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add(*self._header)
        return details._replace(metadata=metadata)


class _UnaryUnaryKey(_BearerKey, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._with_key(client_call_details), request)


class _UnaryStreamKey(_BearerKey, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._with_key(client_call_details), request)


class _StreamStreamKey(_BearerKey, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any, calls: Any) -> Any:
        return await continuation(self._with_key(client_call_details), calls)


def bearer_key_interceptors(api_key: str) -> list[grpc.aio.ClientInterceptor]:
    """Channel interceptors that send `api_key` as `authorization: Bearer <key>` on every call,
    health checks and reflection included (grpc.aio files each interceptor under one call kind,
    hence one per kind)."""
    return [_UnaryUnaryKey(api_key), _UnaryStreamKey(api_key), _StreamStreamKey(api_key)]


class TimestepClient:
    def __init__(
        self,
        # The service's default port (timestep.settings.DEFAULT_PORT); this package does not
        # import the service.
        target: str = "localhost:50051",
        *,
        channel: grpc.aio.Channel | None = None,
        tls: TlsOptions | None = None,
        api_key: str | None = None,
    ) -> None:
        """A client of the service at `target`, over TLS when `tls` is given (else plaintext), or
        over an existing `channel`; with `api_key`, every call carries it as a bearer token."""
        interceptors = bearer_key_interceptors(api_key) if api_key else None
        if channel is None and tls is not None:
            channel = grpc.aio.secure_channel(target, tls.credentials(), interceptors=interceptors)
        self.channel = channel or grpc.aio.insecure_channel(target, interceptors=interceptors)
        # The raw stubs, for anything this wrapper does not cover.
        self.runs = runs_pb2_grpc.RunServiceStub(self.channel)
        self.agents = agents_pb2_grpc.AgentServiceStub(self.channel)
        self.usage = usage_pb2_grpc.UsageServiceStub(self.channel)
        self.schedules = schedules_pb2_grpc.ScheduleServiceStub(self.channel)
        self.sessions = sessions_pb2_grpc.SessionServiceStub(self.channel)
        self.webhooks = webhooks_pb2_grpc.WebhookServiceStub(self.channel)

    async def __aenter__(self) -> TimestepClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    # ----- runs --------------------------------------------------------------------------

    async def create_run(
        self,
        agent: str,
        input: str = "",
        *,
        input_items: Sequence[Mapping[str, Any]] | None = None,
        session_id: str = "",
        model: str = "",
        request_id: str = "",
        wait: bool = False,
        metadata: Mapping[str, str] | None = None,
        keep: bool = False,
        multitask_strategy: runs_pb2.MultitaskStrategy = runs_pb2.MULTITASK_STRATEGY_UNSPECIFIED,
        timeout: float | None = None,
        approval_timeout: timedelta | None = None,
        auto_resume_on_expiry: bool = False,
        approval_expiry_message: str = "",
        webhook_url: str = "",
    ) -> runs_pb2.Run:
        """Start a run with plain-text `input` or Responses-API `input_items`. With
        `approval_timeout`, each of its interruptions is rejected by itself once it has waited
        that long (the model is told `approval_expiry_message`), and with `auto_resume_on_expiry`
        the run then resumes. With `webhook_url`, the run's events are POSTed there, signed: get
        its secret with `rotate_webhook_secret(run.webhook_id)`. `keep`: never
        deleted by the service's retention; `multitask_strategy`: what to do if the session has an
        active run (the service's default when unspecified)."""
        request = runs_pb2.CreateRunRequest(
            agent=agent,
            input=input,
            input_items_json=json.dumps(list(input_items)) if input_items is not None else "",
            session_id=session_id,
            model=model,
            request_id=request_id,
            wait=wait,
            metadata=dict(metadata or {}),
            keep=keep,
            multitask_strategy=multitask_strategy,
            auto_resume_on_expiry=auto_resume_on_expiry,
            approval_expiry_message=approval_expiry_message,
            webhook_url=webhook_url,
        )
        if approval_timeout is not None:
            request.approval_timeout.FromTimedelta(approval_timeout)
        response: runs_pb2.CreateRunResponse = await self.runs.CreateRun(request, timeout=timeout)
        return response.run

    async def get_run(self, run_id: str) -> runs_pb2.Run:
        response: runs_pb2.GetRunResponse = await self.runs.GetRun(runs_pb2.GetRunRequest(run_id=run_id))
        return response.run

    async def list_runs(
        self,
        *,
        agent: str = "",
        status: runs_pb2.RunStatus = runs_pb2.RUN_STATUS_UNSPECIFIED,
        session_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> runs_pb2.ListRunsResponse:
        request = runs_pb2.ListRunsRequest(
            agent=agent, status=status, session_id=session_id, page_size=page_size, page_token=page_token
        )
        response: runs_pb2.ListRunsResponse = await self.runs.ListRuns(request)
        return response

    async def stream_events(
        self,
        run_id: str,
        after_sequence: int = 0,
        *,
        max_reconnects: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        """Yield the run's events until it stops, re-subscribing after a dropped connection.

        Each reconnect continues after the last stored event received, so no event is missed
        or repeated (live token deltas sent while disconnected are not replayed). The wait
        before a reconnect starts at `backoff` seconds and doubles up to `max_backoff`.
        """
        last = after_sequence

        def subscribe() -> AsyncIterator[runs_pb2.StreamRunEventsResponse]:
            request = runs_pb2.StreamRunEventsRequest(run_id=run_id, after_sequence=last)
            return self.runs.StreamRunEvents(request)  # type: ignore[no-any-return]

        async for response in _reconnecting(subscribe, max_reconnects, backoff, max_backoff):
            event: runs_pb2.RunEvent = response.event
            if event.sequence:
                last = event.sequence
            yield event

    async def watch_runs(
        self, cursor: str = "", *, max_reconnects: int = 5, backoff: float = 0.2, max_backoff: float = 5.0
    ) -> AsyncIterator[runs_pb2.WatchRunsResponse]:
        """Yield the tenant's run changes (status changes, new and decided interruptions) as
        they are committed, re-subscribing after a dropped connection from the last cursor
        received, so none is missed or repeated. Without `cursor` the first message is a
        bookmark (only its `cursor` is set). Never ends by itself."""
        last = cursor

        def subscribe() -> AsyncIterator[runs_pb2.WatchRunsResponse]:
            return self.runs.WatchRuns(runs_pb2.WatchRunsRequest(cursor=last))  # type: ignore[no-any-return]

        async for change in _reconnecting(subscribe, max_reconnects, backoff, max_backoff):
            last = change.cursor
            yield change

    async def list_interruptions(
        self, run_id: str = "", *, page_size: int = 0, page_token: str = ""
    ) -> runs_pb2.ListInterruptionsResponse:
        """One run's interruptions, or (without `run_id`) every pending one across runs."""
        request = runs_pb2.ListInterruptionsRequest(run_id=run_id, page_size=page_size, page_token=page_token)
        response: runs_pb2.ListInterruptionsResponse = await self.runs.ListInterruptions(request)
        return response

    async def approve(
        self,
        run_id: str,
        interruption_id: str,
        *,
        always: bool = False,
        arguments: Mapping[str, Any] | None = None,
        decided_by: str = "",
    ) -> runs_pb2.Interruption:
        """Approve a pending tool call; with `arguments`, the tool runs with them instead of the
        arguments the model proposed (they must match the tool's parameters)."""
        return (
            await self.approve_and_resume(
                run_id,
                interruption_id,
                always=always,
                arguments=arguments,
                decided_by=decided_by,
                resume=False,
            )
        ).interruption

    async def approve_and_resume(
        self,
        run_id: str,
        interruption_id: str,
        *,
        always: bool = False,
        arguments: Mapping[str, Any] | None = None,
        decided_by: str = "",
        resume: bool = True,
        wait: bool = False,
        timeout: float | None = None,
    ) -> runs_pb2.ApproveInterruptionResponse:
        """Approve, and resume the run in the same call if that was its last undecided
        interruption (with `wait`, return once it stops again): the response has the
        interruption and the run."""
        request = runs_pb2.ApproveInterruptionRequest(
            run_id=run_id,
            interruption_id=interruption_id,
            always=always,
            arguments_json=json.dumps(dict(arguments)) if arguments is not None else "",
            decided_by=decided_by,
            resume=resume,
            wait=wait,
        )
        response: runs_pb2.ApproveInterruptionResponse = await self.runs.ApproveInterruption(
            request, timeout=timeout
        )
        return response

    async def reject(
        self,
        run_id: str,
        interruption_id: str,
        message: str = "",
        *,
        always: bool = False,
        decided_by: str = "",
    ) -> runs_pb2.Interruption:
        return (
            await self.reject_and_resume(
                run_id, interruption_id, message, always=always, decided_by=decided_by, resume=False
            )
        ).interruption

    async def reject_and_resume(
        self,
        run_id: str,
        interruption_id: str,
        message: str = "",
        *,
        always: bool = False,
        decided_by: str = "",
        resume: bool = True,
        wait: bool = False,
        timeout: float | None = None,
    ) -> runs_pb2.RejectInterruptionResponse:
        """Reject (the model is told `message`), and resume the run in the same call if that was
        its last undecided interruption (with `wait`, return once it stops again)."""
        request = runs_pb2.RejectInterruptionRequest(
            run_id=run_id,
            interruption_id=interruption_id,
            message=message,
            always=always,
            decided_by=decided_by,
            resume=resume,
            wait=wait,
        )
        response: runs_pb2.RejectInterruptionResponse = await self.runs.RejectInterruption(
            request, timeout=timeout
        )
        return response

    async def resume(self, run_id: str, *, wait: bool = False, timeout: float | None = None) -> runs_pb2.Run:
        request = runs_pb2.ResumeRunRequest(run_id=run_id, wait=wait)
        response: runs_pb2.ResumeRunResponse = await self.runs.ResumeRun(request, timeout=timeout)
        return response.run

    async def cancel(self, run_id: str, reason: str = "") -> runs_pb2.Run:
        response: runs_pb2.CancelRunResponse = await self.runs.CancelRun(
            runs_pb2.CancelRunRequest(run_id=run_id, reason=reason)
        )
        return response.run

    async def get_state(
        self, run_id: str, format: runs_pb2.StateFormat = runs_pb2.STATE_FORMAT_PYTHON
    ) -> runs_pb2.GetRunStateResponse:
        """The paused run's RunState JSON (`state_json`) in `format` (STATE_FORMAT_PYTHON or
        STATE_FORMAT_TYPESCRIPT), with its `schema_version`, `agent` and `session_id`."""
        response: runs_pb2.GetRunStateResponse = await self.runs.GetRunState(
            runs_pb2.GetRunStateRequest(run_id=run_id, format=format)
        )
        return response

    async def import_state(
        self,
        agent: str,
        state_json: str,
        *,
        session_id: str = "",
        metadata: Mapping[str, str] | None = None,
        approval_timeout: timedelta | None = None,
        auto_resume_on_expiry: bool = False,
        approval_expiry_message: str = "",
    ) -> runs_pb2.Run:
        """A new INTERRUPTED run from Python or TypeScript RunState JSON (the format is detected);
        its pending interruptions expire as `create_run`'s do."""
        request = runs_pb2.ImportRunStateRequest(
            agent=agent,
            state_json=state_json,
            session_id=session_id,
            metadata=dict(metadata or {}),
            auto_resume_on_expiry=auto_resume_on_expiry,
            approval_expiry_message=approval_expiry_message,
        )
        if approval_timeout is not None:
            request.approval_timeout.FromTimedelta(approval_timeout)
        response: runs_pb2.ImportRunStateResponse = await self.runs.ImportRunState(request)
        return response.run

    async def delete_run(
        self, run_id: str, *, force: bool = False, allow_missing: bool = False
    ) -> runs_pb2.DeleteRunResponse:
        """Delete the run and everything stored for it (`force`: cancel it first if it is QUEUED
        or RUNNING; `allow_missing`: a run that does not exist is not an error)."""
        request = runs_pb2.DeleteRunRequest(run_id=run_id, force=force, allow_missing=allow_missing)
        response: runs_pb2.DeleteRunResponse = await self.runs.DeleteRun(request)
        return response

    async def keep_run(self, run_id: str, keep: bool = True) -> runs_pb2.Run:
        """Exempt the run from the service's retention (`keep`), or no longer."""
        response: runs_pb2.KeepRunResponse = await self.runs.KeepRun(
            runs_pb2.KeepRunRequest(run_id=run_id, keep=keep)
        )
        return response.run

    # ----- sessions ----------------------------------------------------------------------

    async def list_sessions(
        self, *, agent: str = "", page_size: int = 0, page_token: str = ""
    ) -> sessions_pb2.ListSessionsResponse:
        """The sessions, newest activity first (with a run of `agent`, if given)."""
        request = sessions_pb2.ListSessionsRequest(agent=agent, page_size=page_size, page_token=page_token)
        response: sessions_pb2.ListSessionsResponse = await self.sessions.ListSessions(request)
        return response

    async def get_session(self, session_id: str) -> sessions_pb2.Session:
        response: sessions_pb2.GetSessionResponse = await self.sessions.GetSession(
            sessions_pb2.GetSessionRequest(session_id=session_id)
        )
        return response.session

    async def list_session_items(
        self, session_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> sessions_pb2.ListSessionItemsResponse:
        """A page of the session's history, oldest first (`item_json`, the `run_id` that added it)."""
        request = sessions_pb2.ListSessionItemsRequest(
            session_id=session_id, page_size=page_size, page_token=page_token
        )
        response: sessions_pb2.ListSessionItemsResponse = await self.sessions.ListSessionItems(request)
        return response

    async def session_items(self, session_id: str) -> AsyncIterator[sessions_pb2.SessionItem]:
        """Every item of the session's history, oldest first, a page at a time."""
        token = ""
        while True:
            page = await self.list_session_items(session_id, page_token=token)
            for item in page.items:
                yield item
            token = page.next_page_token
            if not token:
                return

    async def delete_session(
        self, session_id: str, *, delete_runs: bool = False, force: bool = False, allow_missing: bool = False
    ) -> sessions_pb2.DeleteSessionResponse:
        """Delete the session's history, and its runs with `delete_runs` (`force`: cancel its
        QUEUED or RUNNING runs first)."""
        request = sessions_pb2.DeleteSessionRequest(
            session_id=session_id, delete_runs=delete_runs, force=force, allow_missing=allow_missing
        )
        response: sessions_pb2.DeleteSessionResponse = await self.sessions.DeleteSession(request)
        return response

    # ----- agents ------------------------------------------------------------------------

    async def list_agents(self) -> list[agents_pb2.Agent]:
        response: agents_pb2.ListAgentsResponse = await self.agents.ListAgents(agents_pb2.ListAgentsRequest())
        return list(response.agents)

    async def get_agent(self, name: str) -> agents_pb2.Agent:
        response: agents_pb2.GetAgentResponse = await self.agents.GetAgent(
            agents_pb2.GetAgentRequest(name=name)
        )
        return response.agent

    # ----- usage -------------------------------------------------------------------------

    async def get_usage(
        self,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        agent: str = "",
        model: str = "",
    ) -> usage_pb2.GetUsageResponse:
        """Model usage and estimated cost of the calls made in [start_time, end_time), in total and
        by agent and model (times must be timezone-aware)."""
        request = usage_pb2.GetUsageRequest(agent=agent, model=model)
        for field, value in (("start_time", start_time), ("end_time", end_time)):
            if value is not None:
                stamp = Timestamp()
                stamp.FromDatetime(value)
                getattr(request, field).CopyFrom(stamp)
        response: usage_pb2.GetUsageResponse = await self.usage.GetUsage(request)
        return response

    # ----- webhooks ----------------------------------------------------------------------

    async def create_webhook(
        self, url: str, event_types: Sequence[str] = (), *, description: str = ""
    ) -> webhooks_pb2.CreateWebhookResponse:
        """Subscribe `url` to `event_types` (none: all run events); the response's `secret` (for
        verifying signatures) is shown only now."""
        request = webhooks_pb2.CreateWebhookRequest(
            url=url, event_types=list(event_types), description=description
        )
        response: webhooks_pb2.CreateWebhookResponse = await self.webhooks.CreateWebhook(request)
        return response

    async def get_webhook(self, webhook_id: str) -> webhooks_pb2.Webhook:
        response: webhooks_pb2.GetWebhookResponse = await self.webhooks.GetWebhook(
            webhooks_pb2.GetWebhookRequest(webhook_id=webhook_id)
        )
        return response.webhook

    async def list_webhooks(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> webhooks_pb2.ListWebhooksResponse:
        response: webhooks_pb2.ListWebhooksResponse = await self.webhooks.ListWebhooks(
            webhooks_pb2.ListWebhooksRequest(page_size=page_size, page_token=page_token)
        )
        return response

    async def delete_webhook(self, webhook_id: str) -> None:
        await self.webhooks.DeleteWebhook(webhooks_pb2.DeleteWebhookRequest(webhook_id=webhook_id))

    async def rotate_webhook_secret(
        self, webhook_id: str, *, previous_secret_ttl: timedelta | None = None
    ) -> webhooks_pb2.RotateWebhookSecretResponse:
        """A new signing secret for the webhook (in the response, shown only now). Deliveries are
        signed with the replaced secret too for `previous_secret_ttl` (None: the service's 24 h;
        `timedelta(0)`: revoke it at once); `response.webhook.previous_secret_expire_time` says
        until when."""
        request = webhooks_pb2.RotateWebhookSecretRequest(webhook_id=webhook_id)
        if previous_secret_ttl is not None:
            request.previous_secret_ttl.FromTimedelta(previous_secret_ttl)
        response: webhooks_pb2.RotateWebhookSecretResponse = await self.webhooks.RotateWebhookSecret(request)
        return response

    async def send_test_event(self, webhook_id: str) -> webhooks_pb2.WebhookDelivery:
        response: webhooks_pb2.SendTestEventResponse = await self.webhooks.SendTestEvent(
            webhooks_pb2.SendTestEventRequest(webhook_id=webhook_id)
        )
        return response.delivery

    async def list_webhook_deliveries(
        self, webhook_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> webhooks_pb2.ListWebhookDeliveriesResponse:
        """The webhook's deliveries, newest first, each with its attempts."""
        response: webhooks_pb2.ListWebhookDeliveriesResponse = await self.webhooks.ListWebhookDeliveries(
            webhooks_pb2.ListWebhookDeliveriesRequest(
                webhook_id=webhook_id, page_size=page_size, page_token=page_token
            )
        )
        return response


Message = TypeVar("Message")


async def _reconnecting(
    subscribe: Callable[[], AsyncIterator[Message]], max_reconnects: int, backoff: float, max_backoff: float
) -> AsyncIterator[Message]:
    """The messages of `subscribe()`'s stream, subscribing again (it continues after what was
    received) when the stream fails with a code worth retrying; the wait between attempts
    starts at `backoff` seconds and doubles up to `max_backoff`. A message resets the count."""
    failures = 0
    while True:
        call = subscribe()
        try:
            async for message in call:
                failures = 0
                yield message
            return
        except grpc.aio.AioRpcError as error:
            failures += 1
            if error.code() not in RECONNECTABLE or failures > max_reconnects:
                raise
            await asyncio.sleep(min(backoff * 2 ** (failures - 1), max_backoff))  # back off
        finally:
            call.cancel()  # type: ignore[attr-defined]
