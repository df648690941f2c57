"""What the last ``spot admin audit`` found, as metrics: ``spot_audit_ok`` and when it ran.

The audit runs as a job (the chart's CronJob, or an operator), which Prometheus cannot scrape: it records each run
in ``audit_runs`` (``spot/audit.py``) and settlement, the service that moves the money, exposes the newest run,
read every ``REFRESH_S``. Every replica exposes the same values (alert on ``min``). Before any run,
``spot_audit_ok`` is 1 and the timestamp 0, which the chart's ``AuditNotRun`` alert catches.
"""

from __future__ import annotations

import logging
import time

import asyncpg
from prometheus_client import Gauge

log = logging.getLogger(__name__)

REFRESH_S = 5.0  # one indexed row; the CronJob runs every few minutes, Prometheus scrapes every 30 s
AUDIT_OK = Gauge("spot_audit_ok", "1 unless the last `spot admin audit` found balances, ledger or books apart")
AUDIT_FINISHED = Gauge(
    "spot_audit_last_run_timestamp_seconds", "When the last `spot admin audit` finished (0: none recorded)"
)
NEWEST = "SELECT ok, finished_at FROM audit_runs ORDER BY run_id DESC LIMIT 1"


class Audits:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db
        self._refreshed = 0.0
        AUDIT_OK.set(1)

    def due(self) -> bool:
        return time.monotonic() - self._refreshed >= REFRESH_S

    async def refresh(self) -> None:
        """Read the newest run; a failed read keeps the last values (an outage is settlement's own concern)."""
        self._refreshed = time.monotonic()
        try:
            row = await self.db.fetchrow(NEWEST)
        except Exception as exc:  # an outage, a missing grant: the metric keeps its value, settling goes on
            log.warning("audit status not read (%s: %s)", type(exc).__name__, exc)
            return
        if row is not None:
            AUDIT_OK.set(1 if row["ok"] else 0)
            AUDIT_FINISHED.set(row["finished_at"] / 1000)
