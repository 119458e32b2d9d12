"""Run orchestration: the only place that decides run status transitions."""
