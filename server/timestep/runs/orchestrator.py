"""RunOrchestrator: create, resume, decide, cancel, import and follow runs.

The API layer calls only this class. It validates against the current state, decides each
transition and has the store apply it (one statement each, `timestep.runs.apply`), publishes
the committed events, and hands queued segments to the SegmentLauncher (in-process tasks
or durable workflows).

Methods the API calls take the caller's `Scope`: a run of another tenant is NOT_FOUND.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime

from timestep.domain import (
    Interruption,
    InterruptionStatus,
    MultitaskStrategy,
    NewRun,
    Page,
    Run,
    RunError,
    RunErrorCode,
    RunFilter,
    RunStatus,
    Snapshot,
)
from timestep.errors import FailedPreconditionError, InvalidArgumentError, ResourceExhaustedError
from timestep.event_types import RunEvent
from timestep.run_feed import FeedCursor, FeedEntry
from timestep.runs.apply import RunTransitions, admission
from timestep.runs.events import EventBus, Subscription
from timestep.runs.launcher import SegmentLauncher
from timestep.runs.streaming import follow_changed, follow_run
from timestep.runs.watch import watch_runs
from timestep.runtime import sdk_internals
from timestep.runtime.registry import AgentRegistry
from timestep.runtime.runner import apply_decisions
from timestep.runtime.state_sdk import export_state, load_state
from timestep.runtime.tool_arguments import check_arguments
from timestep.runtime.translate import interruption_for
from timestep.scope import Scope
from timestep.settings import DEFAULT_APPROVALS, ApprovalSettings
from timestep.state.codec import convert, recorded_decisions
from timestep.state.document import PYTHON, StateDocument
from timestep.state.edits import edited_arguments, with_arguments
from timestep.store.rows import new_id
from timestep.store.runs import RunStore
from timestep.webhooks.service import Webhooks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedRun:
    run: Run
    # The signing secret of the run's own webhook, when this call created both ('' otherwise).
    webhook_secret: str = ""


@dataclass(frozen=True)
class RunStateExport:
    state_json: str
    schema_version: str
    agent: str
    # The format of `state_json` ("python" or "typescript").
    state_format: str
    session_id: str


class RunOrchestrator:
    def __init__(
        self,
        store: RunStore,
        bus: EventBus,
        registry: AgentRegistry,
        launcher: SegmentLauncher,
        *,
        approvals: ApprovalSettings = DEFAULT_APPROVALS,
        webhooks: Webhooks | None = None,
        default_strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE,
    ) -> None:
        self._store = store
        self._bus = bus
        self._registry = registry
        self._launcher = launcher
        self._default_timeout = approvals.timeout
        self._expiry_message = approvals.expiry_message
        # Runs' own webhooks (CreateRun's webhook_url); None: this service has none.
        self._webhooks = webhooks
        self._transitions = RunTransitions(store)
        # What a new run of a busy session does when its request names no strategy.
        self._default_strategy = default_strategy

    # ----- lifecycle ---------------------------------------------------------------------

    async def relaunch_queued(self) -> None:
        """Launch every QUEUED run's segment again: one may have been queued by a process that
        died before launching it (launching is idempotent per run and segment)."""
        for run_id, segment, queue_name in await self._store.queued_segments():
            await self._launcher.launch(run_id, segment, queue_name)

    # ----- reads -------------------------------------------------------------------------

    async def get_run(self, scope: Scope, run_id: str) -> Run:
        run = await self._store.get_run(scope, run_id)
        if run.status is RunStatus.QUEUED and run.queue_name:
            position = await self._launcher.queue_position(run.id, run.segment_count, run.queue_name)
            return replace(run, queue_position=position)
        return run

    async def list_runs(
        self, scope: Scope, run_filter: RunFilter, page_size: int, page_token: str
    ) -> Page[Run]:
        return await self._store.list_runs(scope, run_filter, page_size, page_token)

    async def list_interruptions(
        self, scope: Scope, run_id: str, page_size: int, page_token: str
    ) -> Page[Interruption]:
        return await self._store.list_interruptions(scope, run_id, page_size, page_token)

    def follow(self, scope: Scope, run_id: str, after_sequence: int) -> AsyncIterator[RunEvent]:
        return follow_run(self._store, self._bus, scope, run_id, after_sequence)

    def watch(self, scope: Scope, cursor: FeedCursor | None) -> AsyncIterator[FeedEntry | FeedCursor]:
        return watch_runs(self._store.feed, self._bus, scope, cursor)

    # ----- transitions -------------------------------------------------------------------

    async def create_run(self, new_run: NewRun, *, wait: bool) -> Run:
        """Create a run of `new_run.tenant` (the caller's: it is that tenant's alone)."""
        return (await self.create(new_run, wait=wait)).run

    async def create(self, new_run: NewRun, *, wait: bool) -> CreatedRun:
        """Create a run, with its own webhook if it asks for one (whose secret is returned only
        by the call that created the run)."""
        agent = self._registry.get(new_run.agent)  # NOT_FOUND before anything is written
        if new_run.webhook_url:
            self._run_webhooks().validate_url(new_run.webhook_url, "webhook_url")
        new_run = self._with_default_timeout(new_run)
        queue_name = self._launcher.queue_for(new_run.model or _model_name(agent.model))
        run_id = new_id("run")
        strategy = new_run.multitask_strategy or self._default_strategy
        # Subscribed before the run exists, a waiting caller needs no read of its events (and
        # takes no token deltas: it returns the run once it stops).
        with self._bus.subscribe(run_id, live=False) as subscription:
            run, events, created = await self._store.create_run(
                new_run, queue_name, run_id=run_id, admit=admission(strategy, new_run.session_id)
            )
            self._bus.publish(events)
            if not created:  # the run this request_id already made, wherever it is now
                return CreatedRun(await self._wait_if(run, wait))
            secret = ""
            if new_run.webhook_url:  # before the segment starts: no event of the run is missed
                _, secret = await self._run_webhooks().create_for_run(run, new_run.webhook_url)
            # Runs of the session it interrupted stop where they execute.
            for event in events:
                if event.run_id != run.id and event.stopped_status is RunStatus.CANCELLED:
                    await self._launcher.stop(event.run_id, event.segment)
            await self._launch_turn(run)
            return CreatedRun(await self._wait_if(run, wait, subscription), secret)

    def _run_webhooks(self) -> Webhooks:
        if self._webhooks is None:
            raise FailedPreconditionError(
                "webhook_url needs webhooks, which durable workflows deliver; this service runs with "
                "--no-durability.",
                reason="WEBHOOKS_NEED_DURABILITY",
            )
        return self._webhooks

    async def resume_run(
        self, scope: Scope, run_id: str, *, wait: bool, deadline: datetime | None = None
    ) -> Run:
        """Queue the run's next segment; with `deadline` (a waiting caller's), the segment stops
        when it passes."""
        run = await self._store.get_run(scope, run_id)
        model = run.model or _model_name(self._registry.get(run.agent).model)
        # Before the transition: see create_run.
        with self._bus.subscribe(run_id, live=False) as subscription:
            run, events = await self._transitions.queue_resume(
                scope, run_id, self._launcher.queue_for(model), deadline=deadline, run=run
            )
            self._bus.publish(events)
            await self._launch_turn(run)
            return await self._wait_if(run, wait, subscription)

    async def decide(
        self,
        scope: Scope,
        run_id: str,
        interruption_id: str,
        decision: InterruptionStatus,
        *,
        always: bool,
        message: str = "",
        arguments_json: str = "",
        decided_by: str = "",
    ) -> Interruption:
        """Record a decision; an approval with `arguments_json` runs the tool with them (checked
        against the tool's parameter schema) instead of the arguments the model proposed."""
        if arguments_json:
            await self._check_edit(scope, run_id, interruption_id, always, arguments_json)
        interruption, events = await self._transitions.decide_interruption(
            scope,
            run_id,
            interruption_id,
            decision,
            always=always,
            message=message,
            arguments_json=arguments_json,
            decided_by=decided_by,
        )
        self._bus.publish(events)
        return interruption

    async def decide_and_resume(
        self,
        scope: Scope,
        run_id: str,
        interruption_id: str,
        decision: InterruptionStatus,
        *,
        always: bool,
        message: str = "",
        arguments_json: str = "",
        decided_by: str = "",
        resume: bool = False,
        wait: bool = False,
        deadline: datetime | None = None,
    ) -> tuple[Interruption, Run]:
        """Decide, and with `resume` resume the run when that was its last undecided
        interruption (with `wait`, as ResumeRun). Idempotent: repeated once the run has resumed
        (by this call, a concurrent one or ResumeRun), it returns the run as it is (followed,
        with `wait`)."""
        interruption = await self.decide(
            scope,
            run_id,
            interruption_id,
            decision,
            always=always,
            message=message,
            arguments_json=arguments_json,
            decided_by=decided_by,
        )
        run = await self._store.get_run(scope, run_id)
        if not resume:
            return interruption, run
        if run.status is RunStatus.INTERRUPTED and not run.pending_interruptions:
            try:
                return interruption, await self.resume_run(scope, run_id, wait=wait, deadline=deadline)
            except FailedPreconditionError as refused:
                if refused.reason != "RUN_NOT_RESUMABLE":
                    raise
                run = await self._store.get_run(scope, run_id)  # another call resumed it first
        moved_on = run.segment_count > interruption.segment
        return interruption, await self._wait_if(run, wait and moved_on)

    async def _check_edit(
        self, scope: Scope, run_id: str, interruption_id: str, always: bool, arguments_json: str
    ) -> None:
        if always:
            raise InvalidArgumentError(
                "arguments_json edits one tool call; it cannot be combined with always (later calls "
                "of the tool run with their own arguments).",
                field="arguments_json",
            )
        run = await self._store.get_run(scope, run_id)
        found = [i for i in run.interruptions if i.id == interruption_id]
        if found:  # otherwise the store says NOT_FOUND
            check_arguments(self._registry, found[0].agent, found[0].tool_name, arguments_json)

    async def expire_due(self, now: datetime) -> None:
        """Reject every pending interruption whose approval has timed out, then resume the runs
        that resume on expiry once none is left pending. Every replica calls this; each expiry
        and each resume happens once (a transition that applies only while the interruption is
        pending, or the run INTERRUPTED)."""
        for run_id, interruption_id in await self._store.expiring(now):
            expired = await self._transitions.expire(run_id, interruption_id, now, self._expiry_message)
            if expired is not None:
                self._bus.publish(expired[1])
                log.info("run %s: the approval of %s expired", run_id, interruption_id)
        for run_id in await self._store.resumable_on_expiry():
            run = await self._store.get_run(Scope.ALL, run_id)
            queue_name = self._launcher.queue_for(
                run.model or _model_name(self._registry.get(run.agent).model)
            )
            try:
                resumed = await self._transitions.resume_on_expiry(run_id, queue_name)
            except ResourceExhaustedError:
                continue  # its tenant is at --max-active-runs: the next round tries again
            if resumed is not None:
                run, events = resumed
                self._bus.publish(events)
                await self._launcher.launch(run.id, run.segment_count, run.queue_name)

    async def cancel_run(self, scope: Scope, run_id: str, reason: str) -> Run:
        run, events = await self._transitions.cancel_run(
            scope, run_id, RunError(RunErrorCode.CANCELLED, reason or "Cancelled by CancelRun.")
        )
        self._bus.publish(events)
        await self._launcher.stop(run_id, run.segment_count)
        await self._launch_turn(run)
        return run

    async def get_run_state(self, scope: Scope, run_id: str, state_format: str = PYTHON) -> RunStateExport:
        """The paused run's RunState JSON, in `state_format` (PYTHON or TYPESCRIPT), with the
        decisions recorded so far applied. Raises `UnsupportedStateError` when the stored state
        cannot be converted to that format."""
        run = await self._store.get_run(scope, run_id)
        snapshot = await self._store.latest_snapshot(run_id)
        if run.status is not RunStatus.INTERRUPTED or snapshot is None:
            raise FailedPreconditionError(
                f"Run {run_id} is {run.status.name}; only an INTERRUPTED run has a RunState to export.",
                reason="RUN_NOT_INTERRUPTED",
            )
        decided = [i for i in run.interruptions if i.segment == run.segment_count]
        document = with_arguments(StateDocument.parse(snapshot.state_json), edited_arguments(decided))
        if any(i.status is not InterruptionStatus.PENDING for i in decided):
            state = await load_state(self._registry.get(run.agent), document)
            apply_decisions(state, decided, allow_pending=True)
            document = export_state(state)
        exported = convert(document, state_format)
        return RunStateExport(
            exported.text, exported.schema_version, run.agent, exported.writer, run.session_id
        )

    async def import_run_state(
        self, new_run: NewRun, state_json: str, *, max_message_bytes: int
    ) -> tuple[Run, Snapshot]:
        """A new INTERRUPTED run from Python or TypeScript RunState JSON, and the snapshot stored
        for it (the JSON as given, with its writer and schema version). A rejection message in
        the state has RejectInterruption's cap, `max_message_bytes`: every GetRun carries it.

        The JSON is parsed once; the codec's `StateCodecError`s (not a RunState, not convertible)
        are the caller's to report."""
        agent = self._registry.get(new_run.agent)
        new_run = self._with_default_timeout(new_run)
        document = StateDocument.parse(state_json)
        python = convert(document, PYTHON)
        try:
            state = await load_state(agent, python)
        except Exception as error:
            raise InvalidArgumentError(
                f"The Agents SDK could not load this RunState for agent {agent.name!r} ({error}). Pass the "
                "unmodified RunState.to_string() of a run that started with this agent.",
                field="state_json",
                reason="STATE_NOT_LOADABLE",
            ) from error
        pending = state.get_interruptions()
        if not pending:
            raise InvalidArgumentError(
                "This RunState has no tool calls awaiting approval, so there is nothing to decide; "
                "import the state of a run that paused on an interruption.",
                field="state_json",
                reason="STATE_NOT_INTERRUPTED",
            )
        decisions = recorded_decisions(python)
        interruptions = []
        for item in pending:
            interruption = interruption_for(item)
            decision = decisions.get(interruption.call_id)
            if decision is not None:
                _check_message_size(interruption.call_id, decision.message, max_message_bytes)
                interruption = replace(
                    interruption, status=decision.status, always=decision.always, message=decision.message
                )
            interruptions.append(interruption)
        current_agent = sdk_internals.current_agent(state) or agent
        snapshot = document.snapshot()
        run, events = await self._store.import_run(new_run, snapshot, current_agent.name, interruptions)
        self._bus.publish(events)
        return run, snapshot

    async def launch_next(self, tenant: str, session_id: str) -> None:
        """Launch the segment of the run whose turn it is now in the session, if any (after a
        run of it ended, or was deleted)."""
        turn = await self._store.next_turn(tenant, session_id)
        if turn is not None:
            await self._launcher.launch(turn.run_id, turn.segment, turn.queue_name)

    # ----- helpers -----------------------------------------------------------------------

    def _with_default_timeout(self, new_run: NewRun) -> NewRun:
        """`new_run` with its approval timeout, else its agent's default, else the service's."""
        if new_run.approval.timeout is not None:
            return new_run
        timeout = self._registry.approval_timeout(new_run.agent) or self._default_timeout
        return replace(new_run, approval=replace(new_run.approval, timeout=timeout))

    async def _launch_turn(self, run: Run) -> None:
        """Launch `run`'s segment, or in a session the segment of the run whose turn it is (which
        a run waiting for its turn re-checks once its own write is committed: a run that ended
        meanwhile may have looked for the next turn before this one could be seen)."""
        if run.session_id:
            await self.launch_next(run.tenant, run.session_id)
        elif run.status is RunStatus.QUEUED:
            await self._launcher.launch(run.id, run.segment_count, run.queue_name)

    async def _wait_if(self, run: Run, wait: bool, subscription: Subscription | None = None) -> Run:
        """With `wait`, the run once it stops; `subscription`, when the caller subscribed before
        the transition that left the run as `run`, is followed without reading the events."""
        if not wait or run.status.is_stopped:
            return run
        scope = Scope.tenant(run.tenant)  # the caller's, who just created or resumed the run
        followed = (
            follow_changed(self._store, subscription, run)
            if subscription is not None
            else follow_run(self._store, self._bus, scope, run.id, run.last_sequence)
        )
        async for _ in followed:
            pass
        return await self._store.get_run(scope, run.id)


def _model_name(model: object) -> str:
    """An agent's model as a name ('' when it is a Model object or the SDK default)."""
    return model if isinstance(model, str) else ""


def _check_message_size(call_id: str, message: str, max_bytes: int) -> None:
    size = len(message.encode())
    if size > max_bytes:
        raise InvalidArgumentError(
            f"The rejection message of call {call_id!r} in this RunState is {size} bytes; at most "
            f"{max_bytes} are allowed (as for RejectInterruption.message). Shorten it.",
            field="state_json",
            reason="FIELD_TOO_LONG",
        )
