"""Retention: finished runs unchanged for longer than the policy's age are deleted on a sweep,
through the same path as DeleteRun (`RunDeleter.expire`), oldest first and at most a batch per
sweep. Durability schedules the sweeps (once per tick across replicas); this says what one does."""

from __future__ import annotations

import logging
from datetime import timedelta

from timestep.domain import Deletion
from timestep.runs.deletion import RunDeleter
from timestep.settings import RetentionPolicy

log = logging.getLogger(__name__)


class RetentionSweeper:
    def __init__(self, deleter: RunDeleter) -> None:
        self._deleter = deleter

    async def sweep(self, policy: RetentionPolicy) -> Deletion:
        """Delete up to `policy.batch` expired runs; what was deleted (also logged)."""
        deleted = await self._deleter.expire(timedelta(seconds=policy.older_than_s), policy.batch)
        if deleted.runs:
            log.info(
                "retention deleted %d run(s) and %d session item(s) finished more than %ss ago%s",
                deleted.runs,
                deleted.session_items,
                policy.older_than_s,
                " (a full batch: more next sweep)" if deleted.runs >= policy.batch else "",
            )
        return deleted
