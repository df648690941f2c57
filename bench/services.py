"""Benchmarks 2, 3 and 5: the matcher and the order processor as real processes on pre-produced topics.

Method, the same for every consuming service:

1. a fresh environment (database, Redis database, topic suffix) and ``spot admin init``;
2. the whole input pre-produced to the fresh input topic in large batches (Tansu's fetch cost grows with the
   number of batches a partition holds);
3. the service started as ``python -m services.<name>``; the consumer group's committed offsets are sampled
   every 50 ms (OffsetFetch);
4. the figure is counted from the first commit after the group is stable (every replica has logged its
   final assignment) to the commit of the last input record, so process start, group join and book load
   are left out; the service commits only after its outputs are acknowledged, so "all committed" means
   "all outputs published". The output topic's high watermark is reported (records, envelopes included);
5. the service processes' CPU seconds from the stable group to the end (``service_cpu_s``): on a shared
   machine, the cost the wall-clock rate hides.

The matcher's input is pre-produced as the order processor sends it, envelopes per symbol per fetch batch
(``as_processor_sends``); its committed offsets then count records, and each is mapped to the orders the
records below it carry (``kafkatools.Carried``), so the figure is orders/s.

The reference is a raw aiokafka consume -> decode -> encode -> produce -> commit loop with the same client
settings, no database and no Redis (``kafkatools.raw_pipe``), one message per record: what aiokafka does per
record. The matcher also reports that pipe over its own envelopes.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from shared.config import SERVICE_PORTS
from shared.domain import Market, Side
from shared.lifecycle import now_ms
from shared.messages import (
    CancelRequest,
    MatcherCommands,
    NewOrderRequest,
    Topic,
    decode_command,
    decode_request,
    encode,
    envelopes,
    unpack_commands,
)

from . import flow
from . import kafkatools as kt
from .common import (
    PORT_OFFSET,
    STATE,
    Row,
    Servers,
    Service,
    fmt_rate,
    py_spy,
    ratio,
    rss_mb,
    settings_for,
    start_service,
    stop_services,
    top_frames,
    wait_ready,
)

MATCHER_TARGET, PROCESSOR_TARGET = 50_000, 10_000
decode_command_record = msgspec.json.Decoder(MatcherCommands).decode  # an envelope, whole, for the raw pipe
ASSIGNED = re.compile(r"assigned partitions \[([\d, ]*)\]")
EXTRA_SYMBOLS = ("XRPUSDT", "BNBUSDT")  # with BTCUSDT and ETHUSDT: partitions 2, 1, 0, 3 of 4


def extra_market(symbol: str) -> Market:
    return Market(symbol, symbol.removesuffix("USDT"), "USDT", tick_size=Decimal("0.01"),
                  step_size=Decimal("0.00001"), min_price=Decimal("0.01"), max_price=Decimal("1000000"),
                  min_qty=Decimal("0.00001"), max_qty=Decimal("9000"), min_notional=Decimal("5"))


async def _add_markets(database_url: str, symbols: tuple[str, ...]) -> None:
    import asyncpg

    from shared.postgres import upsert_market

    conn = await asyncpg.connect(database_url)
    try:
        for s in symbols:
            await upsert_market(conn, extra_market(s))
    finally:
        await conn.close()


def _assignments(log: Path) -> list[int] | None:
    """The last partition list this replica logged, or None before its first assignment."""
    try:
        found = ASSIGNED.findall(log.read_text(errors="replace"))
    except OSError:
        return None
    if not found:
        return None
    return [int(x) for x in found[-1].split(",") if x.strip()]


def _stable(services: list[Service], partitions: int) -> bool:
    seen: list[int] = []
    for s in services:
        got = _assignments(s.log)
        if got is None:
            return False
        seen += got
    return sorted(seen) == list(range(partitions))


def _cpu_seconds(services: list[Service]) -> float:
    """User + system CPU seconds of the service processes so far: on a shared machine, the cost that
    wall-clock rates hide."""
    import psutil

    total = 0.0
    for s in services:
        try:
            t = psutil.Process(s.proc.pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _metrics(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("spot_") and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    out[name] = float(value)
    except OSError:
        pass
    return out


async def _measure(env: dict[str, str], service: str, replicas: int, in_topic: str, out_topic: str, total: int,
                   stable_logs: bool, profile: bool, limit_s: float, carried: kt.Carried | None = None,
                   ) -> dict[str, Any]:
    """Sample the group's committed offsets until ``total`` messages are in; with ``carried`` (an input of
    envelopes) offsets count records, and are turned into the messages those records carry."""
    st = settings_for(env)
    group = f"{service}{st.topic_suffix}"
    procs = [start_service(service, env, SERVICE_PORTS[service] + PORT_OFFSET + 10 * i, tag=f"-{i}")
             for i in range(replicas)]
    spy = None
    spy_out = STATE / f"profile-{service}-{int(time.time())}.txt"
    try:
        wait_ready(procs, timeout=60)
        rss_start = {f"{s.name}-{i}": rss_mb(s.proc.pid) for i, s in enumerate(procs)}
        samples: list[tuple[float, int]] = []
        t_stable: float | None = None
        cpu_start, cpu_from = 0.0, -1
        records = 0
        finished = False
        deadline = time.perf_counter() + limit_s
        async with kt.Offsets(st.kafka_bootstrap) as offsets:
            while time.perf_counter() < deadline:
                if t_stable is None and (not stable_logs or _stable(procs, st.kafka_partitions)):
                    t_stable = time.perf_counter()
                    cpu_start = _cpu_seconds(procs)
                    if profile:
                        spy = py_spy(procs[0].proc.pid, 600, spy_out)
                try:
                    committed = await offsets.committed(group, in_topic)
                except Exception:
                    committed = {}
                records = sum(committed.values())
                done = records if carried is None else carried.messages(committed)
                samples.append((time.perf_counter(), done))
                if t_stable is not None and cpu_from < 0:
                    cpu_from = done
                if done >= total:
                    finished = True
                    break
                for s in procs:
                    if s.proc.poll() is not None:
                        raise RuntimeError(f"{s.name} exited with {s.proc.returncode}; see {s.log}")
                await asyncio.sleep(0.05)
            cpu_end = _cpu_seconds(procs)
            produced = sum((await offsets.end(out_topic)).values())
        rate, counted, secs = kt.sustained(samples, total, t_from=t_stable)
        rss_end = {f"{s.name}-{i}": rss_mb(s.proc.pid) for i, s in enumerate(procs)}
        metrics = _metrics(procs[0].port)
    finally:
        stop_services(procs)
        if spy is not None:
            try:
                spy.wait(30)
            except Exception:
                spy.kill()
    result: dict[str, Any] = {
        "rate": rate, "counted": counted, "seconds": round(secs, 3), "finished": finished,
        "committed": samples[-1][1] if samples else 0, "outputs": produced, "rss_mb_start": rss_start,
        "rss_mb_end": rss_end, "metrics": metrics, "replicas": replicas, "group": group,
        "committed_records": records,
        # CPU of the service processes from the group being stable to the end, and the messages it covers
        "service_cpu_s": round(cpu_end - cpu_start, 2), "service_cpu_messages": (samples[-1][1] if samples else 0)
        - max(cpu_from, 0),
    }
    if spy is not None:
        result["profile_file"] = str(spy_out)
        result["profile"] = top_frames(spy_out)
    return result


# --- benchmark 2: the matcher --------------------------------------------------------------------------

def as_processor_sends(commands: list[Any], batch_max: int) -> list[tuple[str, bytes, int]]:
    """The commands as the order processor publishes them: per fetch batch of ``batch_max`` requests, one
    envelope per symbol (more past ``ENVELOPE_MAX_BYTES``), in order; (key, value, commands carried).

    A processor working through a backlog fetches full batches (``KAFKA_BATCH_MAX``), so this is what the
    matcher reads when it is the bottleneck; a lightly loaded fleet sends smaller envelopes."""
    out: list[tuple[str, bytes, int]] = []
    for start in range(0, len(commands), batch_max):
        parts: dict[str, list[bytes]] = {}
        for c in commands[start:start + batch_max]:
            parts.setdefault(c.symbol, []).append(encode(c))
        for symbol, encoded in parts.items():
            for value in envelopes(Topic.VALIDATED_ORDERS, symbol, encoded, {}):
                out.append((symbol, value, len(unpack_commands(value))))
    return out


def run_matcher(servers: Servers, messages: int, seed: int = 11, profile: bool = False, replicas: int = 1,
                symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"), partitions: int = 4,
                reference: bool = True) -> dict[str, Any]:
    env = servers.fresh_env(partitions, LOG_LEVEL="INFO")
    st = settings_for(env)
    extra = tuple(s for s in symbols if s not in ("BTCUSDT", "ETHUSDT"))
    if extra:
        asyncio.run(_add_markets(st.database_url, extra))
    ops, _ = flow.generate(messages, seed=seed, symbols=symbols)
    commands = flow.to_commands(ops)
    sends = as_processor_sends(commands, st.kafka_batch_max)
    in_topic, out_topic = st.topic(Topic.VALIDATED_ORDERS), st.topic(Topic.MATCHED_EVENTS)
    produce_rate, placed = asyncio.run(kt.produce_placed(st.kafka_bootstrap, in_topic, [(k, v) for k, v, _ in sends]))
    carried = kt.Carried(placed, [n for _, _, n in sends])
    timeout = 60 + messages / 500
    res = asyncio.run(_measure(env, "matcher", replicas, in_topic, out_topic, messages, True, profile, timeout,
                               carried))
    res.update(messages=messages, symbols=list(symbols), partitions=partitions, mix=flow.mix(ops),
               produce_rate=round(produce_rate), input_records=len(sends), batch_max=st.kafka_batch_max,
               records_rate=res["rate"] * len(sends) / messages)
    if reference:
        # the reference stays per record: the same commands one record each (what the processor sent before
        # envelopes), through aiokafka alone
        single_topic, pipe_topic = st.topic("bench-single"), st.topic("bench-pipe")
        asyncio.run(kt.create_topic(st.kafka_bootstrap, single_topic, partitions))
        asyncio.run(kt.produce_all(st.kafka_bootstrap, single_topic, [(c.symbol, encode(c)) for c in commands]))
        asyncio.run(kt.create_topic(st.kafka_bootstrap, pipe_topic, partitions))
        ref_rate, ref_counted, ref_secs = asyncio.run(kt.raw_pipe(
            st.kafka_bootstrap, single_topic, pipe_topic, f"bench-pipe{st.topic_suffix}", messages, decode_command,
            encode, st.kafka_batch_max, timeout))
        res["reference"] = {"rate": ref_rate, "counted": ref_counted, "seconds": round(ref_secs, 3)}
        # and the same pipe over the envelopes the matcher read (each decoded and re-encoded whole), in orders
        env_topic = st.topic("bench-pipe-envelopes")
        asyncio.run(kt.create_topic(st.kafka_bootstrap, env_topic, partitions))
        env_rate, env_counted, env_secs = asyncio.run(kt.raw_pipe(
            st.kafka_bootstrap, in_topic, env_topic, f"bench-pipe-env{st.topic_suffix}", messages,
            decode_command_record, encode, st.kafka_batch_max, timeout, carried))
        res["reference_envelopes"] = {"rate": env_rate, "counted": env_counted, "seconds": round(env_secs, 3)}
    return res


def matcher_rows(res: dict[str, Any]) -> list[Row]:
    rate = res["rate"]
    ref = res.get("reference", {}).get("rate", 0.0)
    env_ref = res.get("reference_envelopes", {}).get("rate")
    per = res["messages"] / max(res["input_records"], 1)
    workload = (f"{res['messages']:,} orders pre-produced to validated-orders as the processor sends them: "
                f"{res['input_records']:,} envelope records (~{per:,.0f} orders each: batches of "
                f"{res['batch_max']:,} split by symbol) ({res['mix']}), {len(res['symbols'])} symbols, "
                f"{res['partitions']} partitions, 1 replica; {fmt_rate(res['records_rate'])} records; "
                f"service CPU {res['service_cpu_s']} s for {res['service_cpu_messages']:,} orders; "
                f"outputs {res['outputs']:,} matched-events records"
                + ("" if env_ref is None else f"; raw pipe over the same envelopes {fmt_rate(env_ref)} orders")
                + ("" if res["finished"] else " (DID NOT FINISH)"))
    return [Row("matcher service", workload, f"{fmt_rate(rate)} (orders)", f">= {MATCHER_TARGET:,}/s",
                f"raw aiokafka pipe, 1 order per record, {fmt_rate(ref)}", ratio(rate, ref), rate, "orders/s",
                rate >= MATCHER_TARGET, res)]


# --- benchmark 3: the order processor ------------------------------------------------------------------

async def _create_users(settings: Any, count: int) -> list[int]:
    from spot import admin

    deposits = [("BTC", 1_000 * 10**8), ("ETH", 10_000 * 10**8), ("USDT", 100_000_000 * 10**8)]
    ids: list[int] = []
    for start in range(0, count, 20):
        made = await asyncio.gather(*(admin.create_user(settings, f"bench{i}", deposits)
                                      for i in range(start, min(count, start + 20))))
        ids += [u.user_id for u in made]
    return ids


def _processor_requests(ops: list[flow.Op], markets: dict[str, Market]) -> list[NewOrderRequest | CancelRequest]:
    """The flow as requests; MARKET BUYs are sized by quoteOrderQty, so they hold only what they may spend
    (a MARKET BUY by quantity holds the whole available balance and no matcher runs here to release it)."""
    reqs = flow.to_requests(ops, markets, now_ms())
    out: list[NewOrderRequest | CancelRequest] = []
    for op, r in zip(ops, reqs, strict=True):
        if op.kind == flow.MARKET and op.side is Side.BUY and isinstance(r, NewOrderRequest):
            m = markets[op.symbol]
            quote = m.lots_to_qty(op.lots) * m.ticks_to_price(flow.MID_TICKS.get(op.symbol, flow.DEFAULT_MID))
            r = msgspec.structs.replace(r, quantity=None, quote_order_qty=format(quote.quantize(Decimal("0.01")), "f"))
        out.append(r)
    return out


def run_processor(servers: Servers, messages: int, seed: int = 13, profile: bool = False) -> dict[str, Any]:
    from shared.postgres import DEFAULT_MARKETS

    env = servers.fresh_env(4)
    st = settings_for(env)
    n_users = min(200, max(20, messages // 100))
    t = time.perf_counter()
    users = asyncio.run(_create_users(st, n_users))
    users_s = time.perf_counter() - t
    symbols = ("BTCUSDT", "ETHUSDT")
    ops, _ = flow.generate(messages, seed=seed, symbols=symbols, users=users)
    reqs = _processor_requests(ops, {m.symbol: m for m in DEFAULT_MARKETS})
    in_topic, out_topic = st.topic(Topic.ORDER_REQUESTS), st.topic(Topic.VALIDATED_ORDERS)
    produce_rate = asyncio.run(kt.produce_all(st.kafka_bootstrap, in_topic, [(r.symbol, encode(r)) for r in reqs]))
    timeout = 60 + messages / 200
    res = asyncio.run(_measure(env, "order-processor", 1, in_topic, out_topic, messages, False, profile, timeout))
    res.update(messages=messages, users=n_users, users_created_s=round(users_s, 1), mix=flow.mix(ops),
               produce_rate=round(produce_rate))
    pipe_topic = st.topic("bench-pipe")
    asyncio.run(kt.create_topic(st.kafka_bootstrap, pipe_topic, 4))
    ref_rate, ref_counted, ref_secs = asyncio.run(kt.raw_pipe(
        st.kafka_bootstrap, in_topic, pipe_topic, f"bench-pipe{st.topic_suffix}", messages, decode_request, encode,
        st.kafka_batch_max, timeout))
    res["reference"] = {"rate": ref_rate, "counted": ref_counted, "seconds": round(ref_secs, 3)}
    return res


def processor_rows(res: dict[str, Any]) -> list[Row]:
    rate, ref = res["rate"], res["reference"]["rate"]
    decided = {k.split("{", 1)[1].rstrip("}"): int(v) for k, v in res["metrics"].items()
               if k.startswith("spot_orders_decided_total{")}
    res["decisions"] = decided
    workload = (f"{res['messages']:,} order-requests pre-produced ({res['mix']}), {res['users']} users, 2 symbols; "
                f"service CPU {res['service_cpu_s']} s for {res['service_cpu_messages']:,} orders; outputs "
                f"{res['outputs']:,} validated-orders records (envelopes: one per symbol per batch, carrying "
                f"{sum(decided.values()):,} accept/reject decisions and the cancels)"
                + ("" if res["finished"] else " (DID NOT FINISH)"))
    return [Row("order-processor service", workload, f"{fmt_rate(rate)} (orders)", f">= {PROCESSOR_TARGET:,}/s",
                f"raw aiokafka pipe {fmt_rate(ref)}", ratio(rate, ref), rate, "orders/s",
                rate >= PROCESSOR_TARGET, res)]


# --- benchmark 5: matcher scale-out --------------------------------------------------------------------

def run_scaleout(servers: Servers, messages: int, replicas: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    symbols = ("BTCUSDT", "ETHUSDT", *EXTRA_SYMBOLS)
    return [run_matcher(servers, messages, seed=17, replicas=r, symbols=symbols, partitions=4, reference=False)
            for r in replicas]


def scaleout_rows(results: list[dict[str, Any]]) -> list[Row]:
    base = results[0]["rate"] if results else 0.0
    rows = []
    for res in results:
        workload = (f"{res['messages']:,} orders in {res['input_records']:,} validated-orders envelopes, 4 symbols on "
                    f"4 partitions, {res['replicas']} replica(s)"
                    + ("" if res["finished"] else " (DID NOT FINISH)"))
        rows.append(Row(f"matcher x{res['replicas']}", workload, f"{fmt_rate(res['rate'])} (orders)",
                        f">= {MATCHER_TARGET:,}/s", f"1 replica {fmt_rate(base)}", ratio(res["rate"], base),
                        res["rate"], "orders/s", res["rate"] >= MATCHER_TARGET, res))
    return rows


__all__ = ["STATE", "matcher_rows", "processor_rows", "run_matcher", "run_processor", "run_scaleout",
           "scaleout_rows"]
