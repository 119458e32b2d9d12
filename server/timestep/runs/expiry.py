"""Approvals that time out: every replica looks, every `check_interval_s`, for pending
interruptions whose expire time has passed and has the orchestrator expire them. The state is
in the database (each interruption's expire time), so a restart or a dead replica loses no
expiry, and each fires once: it is decided under the run's row lock, only while still pending."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from timestep.outages import is_transient
from timestep.periodic import Periodic
from timestep.runs.orchestrator import RunOrchestrator

log = logging.getLogger(__name__)


class ApprovalExpiry:
    def __init__(self, orchestrator: RunOrchestrator, check_interval_s: float) -> None:
        self._orchestrator = orchestrator
        self._rounds = Periodic("timestep approval expiry", check_interval_s, self._round, at_once=True)
        self._database_away = False

    def start(self) -> None:
        self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def _round(self) -> None:
        try:
            await self._orchestrator.expire_due(datetime.now(UTC))
            self._database_away = False
        except Exception as error:
            if not is_transient(error):
                log.exception("approval expiry failed; trying again next round")
            elif not self._database_away:  # once per outage
                log.warning("approval expiry: the database is unreachable (%s); retrying", error)
            self._database_away = is_transient(error)
