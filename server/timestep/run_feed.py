"""The run feed's positions and entries: what WatchRuns streams (the store reads them,
`timestep.store.feed`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from timestep.errors import InvalidArgumentError
from timestep.event_types import RunEvent

_CURSOR = re.compile(r"^(\d{1,20}):([A-Za-z0-9_]{0,100}):(\d{1,19})$")


@dataclass(frozen=True)
class FeedCursor:
    """A position in the feed: after the entry of (transaction, run, sequence)."""

    txid: int
    run_id: str = ""
    sequence: int = 0

    def encode(self) -> str:
        return f"{self.txid}:{self.run_id}:{self.sequence}"

    @classmethod
    def decode(cls, text: str) -> FeedCursor:
        match = _CURSOR.match(text)
        if match is None:
            raise InvalidArgumentError(
                "cursor is not a WatchRuns cursor; pass the `cursor` of a message the stream sent, "
                "or leave it empty to start now.",
                field="cursor",
            )
        return cls(int(match[1]), match[2], int(match[3]))


@dataclass(frozen=True)
class FeedEntry:
    """One entry of the feed: a stored event of a run that started with `agent`."""

    cursor: FeedCursor
    agent: str
    event: RunEvent
