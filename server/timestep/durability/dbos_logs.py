"""DBOS's log lines as an operator should read them: a cancelled run is not an error.

When a run is cancelled while its segment executes (through any replica), the segment stops and
returns; DBOS then finds the workflow CANCELLED instead of recording its result, awaits the
recorded outcome, gets `DBOSAwaitedWorkflowCancelledError`, and logs that at ERROR with a
traceback ("Exception encountered in asynchronous workflow"). Such a record is lowered to INFO,
without the traceback; any other error stays as it is.
"""

from __future__ import annotations

import logging

from dbos import error as dbos_errors

DBOS_LOGGER = "dbos"


class CancelledWorkflowsAreNotErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and isinstance(
            error, dbos_errors.DBOSAwaitedWorkflowCancelledError
        ):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.msg, record.args = "%s", (str(error),)
            record.exc_info = record.exc_text = None
        return True


_FILTER = CancelledWorkflowsAreNotErrors()


def quiet_cancelled_workflows() -> None:
    """Install the filter on DBOS's logger (once: adding the same filter again does nothing)."""
    logging.getLogger(DBOS_LOGGER).addFilter(_FILTER)
