"""The soak's attribution of slow confirmations to the servers' upkeep, on log lines as Postgres 18 and Redis 7
write them (copied from a bench run)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.upkeep_windows import (
    Window,
    aof_rewrite_windows,
    attribute,
    autovacuum_windows,
    by_second_of_minute,
    piles,
)

POSTGRES_LOG = """\
2026-12-07 23:41:02.811 UTC [14965] LOG:  automatic analyze of table "spot_bench_e85173d8.public.orders"
\tavg read rate: 0.000 MB/s, avg write rate: 0.000 MB/s
\tbuffer usage: 1093 hits, 0 reads, 0 dirtied
\tWAL usage: 81 records, 0 full page images, 14060 bytes, 0 buffers full
\tsystem usage: CPU: user: 0.41 s, system: 0.00 s, elapsed: 0.45 s
2026-12-07 23:41:02.830 UTC [14962] LOG:  checkpoint starting: time
2026-12-07 23:41:03.819 UTC [14965] LOG:  automatic vacuum of table "spot_bench_e85173d8.public.ledger": index scans: 1
\tpages: 0 removed, 23 remain, 23 scanned (100.00% of total), 0 eagerly scanned
\ttuples: 0 removed, 511 remain, 0 are dead but not yet removable
\tindex "ledger_pkey": pages: 4 in total, 0 newly deleted, 0 currently deleted, 0 reusable
\tavg read rate: 0.000 MB/s, avg write rate: 0.000 MB/s
\tbuffer usage: 135 hits, 0 reads, 0 dirtied
\tsystem usage: CPU: user: 0.07 s, system: 0.00 s, elapsed: 0.80 s
2026-12-07 23:41:04.000 UTC [14965] LOG:  automatic aggressive vacuum of table "spot.public.trades": index scans: 0
\tsystem usage: CPU: user: 0.01 s, system: 0.00 s, elapsed: 0.02 s
"""

REDIS_LOG = """\
12625:M 07 Dec 2026 23:27:38.258 * Starting automatic rewriting of AOF on 6714735200% growth
12625:M 07 Dec 2026 23:27:38.260 * Creating AOF incr file appendonly.aof.2.incr.aof on background rewrite
12625:M 07 Dec 2026 23:27:38.261 * Background append only file rewriting started by pid 12938
12938:C 07 Dec 2026 23:27:38.350 * Successfully created the temporary AOF base file temp-rewriteaof-bg-12938.aof
12938:C 07 Dec 2026 23:27:38.351 * Fork CoW for AOF rewrite: current 2 MB, peak 2 MB, average 1 MB
12625:M 07 Dec 2026 23:27:38.362 * Background AOF rewrite terminated with success
12625:M 07 Dec 2026 23:27:38.368 * Background AOF rewrite finished successfully
12625:M 07 Dec 2026 23:28:40.000 * Background append only file rewriting started by pid 13001
12625:M 07 Dec 2026 23:28:40.500 * Background AOF rewrite finished successfully
"""


def _utc(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


def _local(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def test_autovacuum_runs_end_at_their_line_and_start_their_elapsed_time_before() -> None:
    runs = autovacuum_windows(POSTGRES_LOG)
    assert [w.kind for w in runs] == ["autoanalyze orders", "autovacuum ledger", "autovacuum trades"]
    assert runs[0].end == pytest.approx(_utc("2026-12-07 23:41:02.811"))
    assert runs[0].end - runs[0].start == pytest.approx(0.45)
    assert runs[1].end - runs[1].start == pytest.approx(0.80)  # its elapsed, not the checkpoint line's
    assert runs[2].end - runs[2].start == pytest.approx(0.02)


def test_a_rewrite_runs_from_its_fork_to_the_new_file_in_place() -> None:
    rewrites = aof_rewrite_windows(REDIS_LOG)
    assert [w.kind for w in rewrites] == ["aof rewrite", "aof rewrite"]
    assert rewrites[0].start == pytest.approx(_local("2026-12-07 23:27:38.261"))
    assert rewrites[0].end - rewrites[0].start == pytest.approx(0.101, abs=1e-3)  # to the first line that ends it
    assert rewrites[1].end - rewrites[1].start == pytest.approx(0.5)


def test_a_rewrite_the_log_does_not_end_is_left_out() -> None:
    assert aof_rewrite_windows(REDIS_LOG.splitlines(keepends=True)[2]) == []


def test_shares_of_time_and_of_slow_confirmations_per_kind() -> None:
    windows = [Window(10.0, 11.0, "autoanalyze orders"), Window(70.0, 71.0, "autoanalyze orders"),
               Window(30.0, 30.5, "aof rewrite")]
    sent = [10.5, 11.5, 12.5, 70.2, 30.2, 50.0, 90.0, 95.0, 96.0, 97.0]
    shares = attribute(sent, windows, (0.0, 100.0), after_s=1.0)
    assert shares == {
        "aof rewrite": {"runs": 1, "time_pct": 1.5, "slow_pct": 10.0},
        "autoanalyze orders": {"runs": 2, "time_pct": 4.0, "slow_pct": 30.0},  # 12.5 is after the drain second
    }


def test_windows_are_clipped_to_the_run_and_overlaps_count_once() -> None:
    windows = [Window(-5.0, 2.0, "autovacuum ledger"), Window(1.0, 3.0, "autovacuum ledger"),
               Window(200.0, 210.0, "autovacuum ledger")]
    shares = attribute([1.5, 50.0], windows, (0.0, 100.0), after_s=0.0)
    assert shares == {"autovacuum ledger": {"runs": 2, "time_pct": 3.0, "slow_pct": 50.0}}


def test_no_slow_confirmations_is_no_share() -> None:
    assert attribute([], [Window(1.0, 2.0, "aof rewrite")], (0.0, 10.0)) == {
        "aof rewrite": {"runs": 1, "time_pct": 20.0, "slow_pct": 0.0}
    }


def test_slow_confirmations_by_second_of_the_minute() -> None:
    counts = by_second_of_minute([60.2, 120.9, 163.0, 43.5, 103.1])
    assert len(counts) == 60
    assert counts[0] == 2 and counts[43] == 3 and sum(counts) == 5
    assert piles(counts, top=2) == "median 0/s; 43s 3, 0s 2"


def test_the_soak_reads_both_logs_and_skips_one_it_does_not_have(tmp_path: Path) -> None:
    from bench.soak import _upkeep_shares, slow_in_upkeep

    (tmp_path / "redis.log").write_text(REDIS_LOG)
    (tmp_path / "pg.log").write_text(POSTGRES_LOG)
    analyzed = _utc("2026-12-07 23:41:02.811")
    sent = [analyzed - 0.2, analyzed + 30.0]
    shares, counts = slow_in_upkeep(sent, [tmp_path / "redis.log", tmp_path / "pg.log", tmp_path / "absent.log"],
                                    [analyzed - 100.0, analyzed + 100.0])
    assert shares["autoanalyze orders"]["slow_pct"] == 50.0
    assert "aof rewrite" not in shares  # both rewrites ended before the run
    assert sum(counts) == 2
    assert _upkeep_shares(shares, top=1).startswith("autoanalyze orders 1 runs, ")
    assert _upkeep_shares({}) == "none logged"
