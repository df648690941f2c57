"""``spot``: run the local fleet, run one service, administer users and balances.

spot up [--fresh] [--reseed-positions]  infrastructure + init + every service; Ctrl-C drains and stops it all
  [--durable-broker]   the broker keeps its log on disk (<state>/broker), so a restart continues on it
  [--kafka-port 59092] [--redis-port 56379] [--port-offset 0] [--state-dir .spot]
spot run <service>            one service in the foreground (what a container runs)
spot admin init               migrations, topics, markets
spot admin create-user --deposit BTC=10 --deposit USDT=100000 --json
spot admin deposit --user 2 --deposit USDT=500 [--ref TX]   credited once per external reference
spot admin withdraw request --user 2 --asset USDT --amount 100 [--address A] [--network N] [--id CLIENT_ID]
spot admin withdraw complete ID [--tx-id TX] | fail ID [--info TEXT] | list [--user 2] [--pending]
spot admin audit [--wait 10] [--no-record]   balances = ledger, conservation, holds, books; exit 1 on a difference
spot admin balances [--user 2] [--json]
spot admin key create --user 2 [--permissions TRADE,USER_DATA,USER_STREAM] [--ip-allow 203.0.113.0/24]
                      [--ed25519-public-key pub.pem]   an Ed25519 key: only the client's public key is kept
spot admin key list [--user 2] | revoke KEY | rotate KEY | permissions KEY --set USER_DATA
spot admin key ip-allow KEY --set 203.0.113.7,10.0.0.0/8 | --any
spot admin user disable|enable USER   all of a user's keys refused and streams ended, fleet-wide, within a second;
                                      disable also cancels its open orders in sequence (--keep-orders: not)
spot admin user set-tier USER TIER|none   the user's next orders pay the tier's fees (none: the markets')
spot admin fees set-tier TIER --maker BPS --taker BPS | list   fee tiers: rates for the users put in them
spot admin cancel-all --user U [--symbol S] [--wait 5]   cancel a user's open orders in sequence (the kill switch)
spot admin market add SYMBOL --base B --quote Q --tick-size 0.01 --step-size 0.001 [filters, fees]   live
spot admin market update SYMBOL [--min-qty ..] [--maker-fee-bps ..] [--bid-up 1.05 --ask-down 0.95 ..]
                  [--breaker-pct 0.1 --breaker-window-s 60] ...   filters, fees, price bands, the breaker, live
spot admin market halt SYMBOL [--status HALT|BREAK|END_OF_DAY] [--cancel-resting] | resume SYMBOL
spot admin market delist SYMBOL   END_OF_DAY and the book canceled | list
spot admin reconcile [--report-only]   warm book against hot book; exit 1 on a conflict
spot admin reseed-positions   continue on a new (reset) broker log: its positions rank after the old log's
spot admin settlement halted [--json]  symbols whose settlement stopped at a record, with the record and reason
spot admin settlement resolve SYMBOL --retry|--skip|--accept-gap   apply that record again, move past it, or past a gap
spot admin dlq list                      per dead-letter topic: count, first and last offsets
spot admin dlq show TOPIC [--offset N]   dead letters with their reason and source
spot admin dlq replay TOPIC --offset N   produce one back to its source topic (its cause fixed)
spot trades query "SQL" [--dir PATH] [--json]   the trade archive (Parquet), with DuckDB
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared import apikeys, config, funds, identity, segments
from shared.config import Settings

from . import admin, cancels, fees, infra, keys, markets, reconcile
from .fleet import MODULES, SERVICES, Fleet

ENV_FILE = Path(".spot") / "env"  # written by `spot up`: where its servers are, for commands in another terminal
SERVER_KEYS = ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL", "ENVELOPE_KEY_FILE", "SERVICE_KEY_FILE")
# Written by a `spot up` that stopped with every topic consumed: "<fleet> <epoch>". The next start on a broker that
# kept nothing (memory storage) may then continue on the new log by itself, since nothing on the old one is lost.
DRAINED = "drained"
HANGUP_LOG = "up-after-hangup.log"  # where `spot up` writes once its terminal has closed (SIGHUP): it still drains
SHARED_KEYS = (*SERVER_KEYS, "KAFKA_SEGMENT_S")  # what commands in another terminal take from `spot up`


def detach_output(path: Path) -> None:
    """Point this process's stdout and stderr (the services' prefixed logs among them) at ``path``: a write to
    a closed terminal fails, and the drain after a hang-up must not stop half-way for it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)


def _settings() -> Settings:
    """Settings from the environment; what it leaves unset comes from a running `spot up`, if any."""
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            key, _, value = line.partition("=")
            if key in SHARED_KEYS:
                os.environ.setdefault(key, value)
    return config.load()


def write_env(path: Path, env: dict[str, str]) -> None:
    """``<state>/env``: the servers this ``spot up`` started, whole or not at all (written, then renamed)."""
    part = path.with_suffix(".part")
    part.write_text("".join(f"{key}={env[key]}\n" for key in SHARED_KEYS))
    part.replace(path)


def cmd_up(args: argparse.Namespace) -> int:
    state = Path(args.state_dir).resolve()
    fleet = Fleet({}, port_offset=args.port_offset)
    try:  # every port checked before anything starts, so a refusal leaves nothing behind
        for name in SERVICES:
            infra.refuse_taken(fleet.port(name), name)
        if args.fresh and state.exists():  # from nothing: once no server of ours still uses the folder
            infra.refuse_running_postgres((state / "pg").resolve())
            shutil.rmtree(state)
            print(f"removed {state}: starting from nothing", flush=True)
        print(f"starting infrastructure (state in {state}) ...", flush=True)
        storage: infra.BrokerStorage = "disk" if args.durable_broker else "memory"
        local = infra.start(
            state, kafka_port=args.kafka_port, redis_port=args.redis_port, broker_storage=storage,
            store_port=args.broker_store_port,
        )  # fmt: skip
    except infra.Refused as exc:
        print(f"spot up: {exc}", file=sys.stderr, flush=True)
        return 1
    env = {
        **local.env,
        "KAFKA_PARTITIONS": str(args.partitions),
        "KAFKA_SEGMENT_S": str(args.segment_s),
        # the local keys (shared/keyfile.py) live with the rest of the fleet's state; `make clean` removes them
        "ENVELOPE_KEY_FILE": os.environ.get("ENVELOPE_KEY_FILE", str(state / "envelope.key")),
        "SERVICE_KEY_FILE": os.environ.get("SERVICE_KEY_FILE", str(state / "service.key")),
    }
    os.environ.update(env)
    fleet.env = env
    env_file = state / "env"
    try:
        write_env(env_file, env)  # before anything reports ready: `spot admin` in another terminal finds them
        created = asyncio.run(admin.init(Settings()))
        print(f"migrations applied; topics created: {', '.join(created) or 'none (already there)'}", flush=True)
        drained = state / DRAINED
        if "tansu" in local.pids and drained.exists():  # a broker that forgot its log: nothing was left on it
            continued = asyncio.run(admin.continue_after_drain(Settings(), drained.read_text()))
            if continued:
                print(f"the last stop drained every topic: continuing on a new log, epoch {continued['epoch']}")
        elif "tansu" in local.pids and storage == "memory" and not args.reseed_positions:
            continued = asyncio.run(admin.continue_after_crash(Settings()))
            if continued:  # killed, not drained: what the lost log held that matters is kept in Redis and Postgres
                print(
                    f"the last stop did not drain (kill -9, a crash) and the broker's log is gone: continuing on a "
                    f"new log, epoch {continued['epoch']}; orders acknowledged but not yet decided are sent again, "
                    "and fills not yet settled are published again from the matcher's outbox",
                    flush=True,
                )
        drained.unlink(missing_ok=True)  # good for one start only
        if args.reseed_positions:
            print(f"continuing on a new log: {json.dumps(asyncio.run(admin.reseed_positions(Settings())))}")
        try:
            found = asyncio.run(identity.verify(Settings()))
        except identity.ForeignState as exc:
            way = "" if args.reseed_positions else "; here, `spot up --reseed-positions` continues on the new log"
            print(f"spot up: refusing to start: {exc}{way}", file=sys.stderr, flush=True)
            return 1  # the servers are stopped on the way out
        print(f"fleet {found.fleet_id}, log epoch {found.epoch}", flush=True)
        stale = state / infra.BROKER_DIR
        if storage == "memory" and "tansu" in local.pids and stale.exists():  # this fleet left that log for good
            shutil.rmtree(stale)
            print(f"removed {stale}: the durable broker's log, which this fleet no longer continues", flush=True)
        fleet.start_all()
        fleet.wait_ready(timeout=90)
        gateway = fleet.port("gateway")
        print("\nspot exchange is up:\n", flush=True)
        print(f"  {'REST':<16} http://127.0.0.1:{gateway}/api/v3/   (OpenAPI at /docs)")
        print(f"  {'WebSocket':<16} ws://127.0.0.1:{gateway}/ws   /stream?streams=   /ws-api/v3")
        for name in SERVICES:
            print(f"  {name:<16} pid {fleet.procs[name].pid:<8} health http://127.0.0.1:{fleet.port(name)}/readyz")
        for key in SERVER_KEYS:
            print(f"  {key:<16} {env[key]}")
        if "tansu" in local.pids:
            kept = "in memory (--durable-broker: on disk)"
            if storage == "disk":
                kept = f"on disk in {state / infra.BROKER_DIR}"
            print(f"  {'broker log':<16} {kept}")
        print(f"  {'servers':<16} {env_file}")
        print("\n  create a user:  spot admin create-user --deposit BTC=10 --deposit USDT=100000 --json")
        print("  Ctrl-C stops everything.\n", flush=True)
        stop = False

        def on_signal(signum: int, _: object) -> None:
            nonlocal stop
            stop = True
            if signum == signal.SIGHUP:  # the terminal is gone: what the drain says goes to a file instead
                detach_output(state / HANGUP_LOG)

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)
        while not stop:
            for name, p in fleet.procs.items():
                if p.poll() is not None:
                    print(f"{name} exited with code {p.returncode}; restarting", flush=True)
                    fleet.start(name)
            time.sleep(0.5)
    finally:
        print("stopping ...", flush=True)
        problems = fleet.drain() if fleet.procs else ["nothing was started"]  # the entry first, then each stage
        if not problems:
            try:
                found = asyncio.run(identity.verify(Settings()))
                (state / DRAINED).write_text(f"{found.fleet_id} {found.epoch}\n")
                then = "on the same log" if args.durable_broker else "on a new log"
                print(f"every topic drained: the next `spot up` continues {then}", flush=True)
            except Exception as exc:  # no marker, no automatic continuation: the safe side
                problems.append(f"{type(exc).__name__}: {exc}")
        if problems:
            print(f"not drained ({'; '.join(problems)}): the next `spot up` will ask", flush=True)
        env_file.unlink(missing_ok=True)
        fleet.stop()
        local.stop()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"{MODULES[args.service]}.__main__")
    module.main()
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.admin == "init":
        created = asyncio.run(admin.init(settings))
        print(json.dumps({"topicsCreated": created}))
    elif args.admin == "create-user":
        user = asyncio.run(admin.create_user(settings, args.name, [admin.parse_deposit(d) for d in args.deposit]))
        if args.json:
            print(json.dumps(user.as_json()))
        else:
            print(f"user {user.user_id}\n  apiKey {user.api_key}\n  secret {user.secret}")
    elif args.admin == "deposit":
        try:
            deposits = [admin.parse_deposit(d) for d in args.deposit]
            done = asyncio.run(admin.credit(settings, args.user, deposits, args.ref))
        except (ValueError, funds.FundsError) as refused:
            print(f"spot admin deposit: {refused}", file=sys.stderr)
            return 2
        print(json.dumps({"userId": args.user, "deposits": done}))
    elif args.admin == "withdraw":
        return cmd_withdraw(settings, args)
    elif args.admin == "audit":
        return cmd_audit(settings, args)
    elif args.admin == "reseed-positions":
        print(json.dumps(asyncio.run(admin.reseed_positions(settings))))
    elif args.admin == "reconcile":
        reports = asyncio.run(reconcile.run(settings, repair=not args.report_only))
        print(json.dumps(reports, indent=2))
        return 1 if any(r["conflicts"] for r in reports) else 0
    elif args.admin == "settlement":
        return _settlement(settings, args)
    elif args.admin == "dlq":
        return cmd_dlq(settings, args)
    elif args.admin == "key":
        return cmd_key(settings, args)
    elif args.admin == "fees":
        return cmd_fees(settings, args)
    elif args.admin == "user" and args.user_cmd == "set-tier":
        try:
            tier = None if args.tier in (None, "none") else args.tier
            print(json.dumps(asyncio.run(fees.set_user_tier(settings, args.user, tier))))
        except fees.FeeTierError as refused:
            print(f"spot admin user set-tier: {refused}", file=sys.stderr)
            return 2
    elif args.admin == "user":
        enable = args.user_cmd == "enable"
        asyncio.run(keys.set_user_status(settings, args.user, enable))  # keys first: no new order gets in
        said: dict[str, object] = {"userId": args.user, "status": "ACTIVE" if enable else "DISABLED"}
        if not enable and not args.keep_orders:
            said["canceled"] = asyncio.run(cancels.cancel_all(settings, args.user, None, args.wait)).as_json()
        print(json.dumps(said))
    elif args.admin == "cancel-all":
        return cmd_cancel_all(settings, args)
    elif args.admin == "market":
        return cmd_market(settings, args)
    elif args.admin == "balances":
        rows = asyncio.run(admin.balances(settings, args.user))
        if args.json:
            print(json.dumps(rows))
        else:
            for r in rows:
                print(f"{r['userId']:>6} {r['asset']:<6} free {r['free']:>22} locked {r['locked']:>22}")
    return 0


def cmd_fees(settings: Settings, args: argparse.Namespace) -> int:
    """``spot admin fees set-tier NAME --maker BPS --taker BPS`` / ``spot admin fees list``."""
    try:
        if args.fees == "set-tier":
            print(json.dumps(asyncio.run(fees.set_tier(settings, args.tier, args.maker, args.taker))))
        else:
            print(json.dumps(asyncio.run(fees.tiers(settings))))
    except fees.FeeTierError as refused:
        print(f"spot admin fees: {refused}", file=sys.stderr)
        return 2
    return 0


def cmd_cancel_all(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 1 when an order open at the start is still open after ``--wait`` seconds."""
    try:
        done = asyncio.run(cancels.cancel_all(settings, args.user, args.symbol, args.wait))
    except (LookupError, ValueError) as refused:
        print(f"spot admin cancel-all: {refused}", file=sys.stderr)
        return 2
    print(json.dumps(done.as_json()))
    return 1 if done.still_open else 0


MARKET_FIELDS = ("base", "quote", "tick_size", "step_size", "min_price", "max_price", "min_qty", "max_qty",
                 "min_notional", "max_notional", "maker_fee_bps", "taker_fee_bps", "bid_up", "bid_down", "ask_up",
                 "ask_down", "breaker_pct", "breaker_window_s")  # fmt: skip


def cmd_market(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 2 on a change refused (bad value, unknown market), 1 when a canceled order is still open."""
    try:
        if args.market == "list":
            print(json.dumps(asyncio.run(markets.listed(settings)), indent=2))
            return 0
        symbol = args.symbol.strip().upper()
        if args.market in ("add", "update"):
            fields = markets.parse_fields({f: getattr(args, f) for f in MARKET_FIELDS})
            if args.market == "add":
                said = asyncio.run(markets.add(settings, symbol, fields))
            else:
                said = asyncio.run(markets.update(settings, symbol, fields))
        else:
            status = {"halt": args.status if args.market == "halt" else "", "resume": "TRADING", "delist": "END_OF_DAY"}
            fields = markets.parse_fields({"status": status[args.market]})
            cancel = args.market == "delist" or (args.market == "halt" and args.cancel_resting)
            said = asyncio.run(markets.update(settings, symbol, fields, cancel, args.wait))
    except (LookupError, ValueError) as refused:
        print(f"spot admin market {args.market}: {refused}", file=sys.stderr)
        return 2
    print(json.dumps(said))
    canceled = said.get("canceled")
    return 1 if isinstance(canceled, dict) and canceled.get("stillOpen") else 0


def cmd_withdraw(settings: Settings, args: argparse.Namespace) -> int:
    """``spot admin withdraw request|complete|fail|list``: withdrawals hold funds until completed or failed."""
    try:
        if args.withdraw == "request":
            asset, atoms = admin.parse_asset(args.asset), admin.parse_atoms(args.amount)
            done = asyncio.run(
                admin.withdraw_request(settings, args.user, asset, atoms, args.address, args.network, args.id)
            )
        elif args.withdraw == "list":
            print(json.dumps(asyncio.run(admin.withdrawals(settings, args.user, args.pending))))
            return 0
        else:
            status = funds.WithdrawalStatus.COMPLETED if args.withdraw == "complete" else funds.WithdrawalStatus.FAILED
            done = asyncio.run(admin.withdraw_end(settings, args.withdraw_id, status, args.tx_id, args.info))
    except (ValueError, funds.FundsError) as refused:
        print(f"spot admin withdraw {args.withdraw}: {refused}", file=sys.stderr)
        return 2
    print(json.dumps(done))
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    """``spot admin audit``: the report as JSON on stdout; exit 1 and the first difference on stderr if any."""
    from . import audit  # the matching core with it: only this command needs it

    wait_s = audit.DEFAULT_WAIT_S if args.wait is None else args.wait
    found = asyncio.run(audit.run(settings, wait_s=wait_s, record=not args.no_record))
    print(json.dumps(found.as_json(), indent=2))
    if not found.ok:
        print(f"spot admin audit: {found.differences[0]}", file=sys.stderr)
        return 1
    return 0


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 600:  # NaN included
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 600, got {text}")
    return value


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def cmd_key(settings: Settings, args: argparse.Namespace) -> int:
    """``spot admin key create|list|revoke|rotate|permissions|ip-allow``."""
    try:
        if args.key == "create":
            pem = Path(args.ed25519_public_key).read_text() if args.ed25519_public_key else None
            perms, allow = _names(args.permissions) or [], _names(args.ip_allow)
            new = asyncio.run(keys.create(settings, args.user, perms, allow, pem))
            print(json.dumps(new.as_json()))
        elif args.key == "list":
            print(json.dumps(asyncio.run(keys.listed(settings, args.user))))
        elif args.key == "revoke":
            asyncio.run(keys.revoke(settings, args.api_key))
            print(json.dumps({"apiKey": args.api_key, "revoked": True}))
        elif args.key == "rotate":
            print(json.dumps(asyncio.run(keys.rotate(settings, args.api_key)).as_json()))
        elif args.key == "permissions":
            asyncio.run(keys.restrict(settings, args.api_key, _names(args.set) or []))
            print(json.dumps({"apiKey": args.api_key, "permissions": _names(args.set)}))
        elif args.key == "ip-allow":
            allow = None if args.any else _names(args.set)
            asyncio.run(keys.allow_ips(settings, args.api_key, allow))
            print(json.dumps({"apiKey": args.api_key, "ipAllow": allow}))
    except (keys.NoSuchKey, ValueError) as refused:
        print(f"spot admin key {args.key}: {refused}", file=sys.stderr)
        return 2
    return 0


def _settlement(settings: Settings, args: argparse.Namespace) -> int:
    if args.settlement == "halted":
        halts = asyncio.run(admin.settlement_halted(settings))
        if args.json:
            print(json.dumps(halts))
        elif not halts:
            print("no symbol is halted")
        for h in [] if args.json else halts:
            r: dict[str, Any] = h["record"]  # type: ignore[assignment]
            print(f"{h['symbol']} halted at seq {h['seq']}, {r['topic']}[{r['partition']}]@{r['offset']} #{r['index']}")
            print(f"  reason  {h['reason']}\n  record  {r['value']}")
        return 0
    try:
        how = "skip" if args.skip else admin.ACCEPT_GAP if args.accept_gap else "retry"
        resolved = asyncio.run(admin.settlement_resolve(settings, args.symbol, how))
    except (admin.NotHalted, admin.NotAGap) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(resolved))
    return 0


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    """Dead letters: records that did not decode or could not be applied (``shared.deadletter``)."""
    try:
        if args.dlq == "list":
            print(json.dumps(asyncio.run(admin.dlq_list(settings)), indent=2))
        elif args.dlq == "show":
            print(json.dumps(asyncio.run(admin.dlq_show(settings, args.topic, args.offset)), indent=2))
        else:
            print(json.dumps(asyncio.run(admin.dlq_replay(settings, args.topic, args.offset)), indent=2))
    except (ValueError, LookupError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


def cmd_trades(args: argparse.Namespace) -> int:
    """The committed trade archive, queried with the SQL one would give Athena (table ``trades``)."""
    from services.trade_archiver import query
    from services.trade_archiver.layout import namespace

    settings = _settings()
    if args.dir is None and settings.archive_s3_bucket:
        print(
            f"the archive is in s3://{settings.archive_s3_bucket}/: query it with Athena (deploy/athena/trades.sql), "
            "or pass --dir with a local copy",
            file=sys.stderr,
        )
        return 2
    root = Path(args.dir) if args.dir is not None else Path(settings.archive_dir) / namespace(settings.topic_suffix)
    if not root.is_dir():
        print(f"no archive at {root} yet: the table is empty", file=sys.stderr)
    import duckdb

    try:
        columns, rows = query.run(args.sql, root)
    except duckdb.Error as exc:
        print(f"query failed: {exc}", file=sys.stderr)
        return 1
    print(query.as_json(columns, rows) if args.json else query.table(columns, rows))
    return 0


def cmd_deploy_values(args: argparse.Namespace) -> int:
    from . import deploy_values

    text = sys.stdin.read() if args.outputs == "-" else Path(args.outputs).read_text()
    try:
        print(deploy_values.render(text), end="")
    except deploy_values.NotTerraformOutput as exc:
        print(f"spot deploy values: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_deploy_lambda_package(args: argparse.Namespace) -> int:
    from . import lambda_package

    root = Path(__file__).resolve().parents[1]
    members = lambda_package.build(root, Path(args.out))
    print(f"{args.out}: {len(members)} files from {', '.join(lambda_package.PACKAGES)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole local fleet")
    up.add_argument("--state-dir", default=".spot")
    up.add_argument("--kafka-port", type=int, default=int(os.environ.get("SPOT_KAFKA_PORT", infra.DEFAULT_KAFKA_PORT)))
    up.add_argument("--redis-port", type=int, default=int(os.environ.get("SPOT_REDIS_PORT", infra.DEFAULT_REDIS_PORT)))
    up.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("SPOT_PORT_OFFSET", "0")),
        help="added to every service's port (gateway 8000)",
    )
    up.add_argument("--fresh", action="store_true", help="remove the state folder first: start from nothing")
    up.add_argument(
        "--durable-broker",
        action="store_true",
        default=infra.storage_from_env() == "disk",
        help=f"the local broker keeps topics, offsets and groups on disk (<state>/{infra.BROKER_DIR}), so a stop, "
        f"even a kill, continues where it stopped (default: {infra.STORAGE_ENV}=disk; else in memory)",
    )
    up.add_argument(
        "--broker-store-port",
        type=int,
        default=int(os.environ.get("SPOT_BROKER_STORE_PORT", infra.DEFAULT_STORE_PORT)),
        help="port of the durable broker's object store, on 127.0.0.1",
    )
    up.add_argument(
        "--reseed-positions",
        action="store_true",
        help="continue on a new broker log (after a stop that did not drain it): positions restart in a higher epoch",
    )
    up.add_argument("--partitions", type=int, default=int(os.environ.get("KAFKA_PARTITIONS", "4")))
    up.add_argument(
        "--segment-s",
        type=int,
        default=int(os.environ.get("KAFKA_SEGMENT_S", str(segments.LOCAL_SEGMENT_S))),
        help=f"seconds per log segment of the local broker, so its partitions stay short "
        f"(default {segments.LOCAL_SEGMENT_S}; 0: one ever-growing log, for a broker that honours retention)",
    )
    up.set_defaults(func=cmd_up)
    run = sub.add_parser("run", help="run one service")
    run.add_argument("service", choices=sorted(MODULES))
    run.set_defaults(func=cmd_run)
    adm = sub.add_parser("admin", help="operator commands")
    asub = adm.add_subparsers(dest="admin", required=True)
    asub.add_parser("init", help="migrations, topics, markets")
    cu = asub.add_parser("create-user", help="a user with an API key, and deposits")
    cu.add_argument("--name", default="trader")
    cu.add_argument("--deposit", action="append", default=[], metavar="ASSET=AMOUNT")
    cu.add_argument("--json", action="store_true")
    dep = asub.add_parser("deposit", help="credit a user")
    dep.add_argument("--user", type=int, required=True)
    dep.add_argument("--deposit", action="append", required=True, metavar="ASSET=AMOUNT")
    dep.add_argument("--ref", help="the deposit's external reference (a transaction id): credited once per reference")
    wd = asub.add_parser("withdraw", help="withdrawals: request (holds the funds), complete, fail, list")
    wsub = wd.add_subparsers(dest="withdraw", required=True)
    wr = wsub.add_parser("request", help="hold a user's free funds for a withdrawal")
    wr.add_argument("--user", type=int, required=True)
    wr.add_argument("--asset", required=True)
    wr.add_argument("--amount", required=True)
    wr.add_argument("--address", default="operator", help="where the funds go")
    wr.add_argument("--network", help="default: the asset's name")
    wr.add_argument("--id", help="the withdrawal's client id (withdrawOrderId): a repeat gets the same withdrawal")
    wc = wsub.add_parser("complete", help="the held funds left the exchange: debit them")
    wc.add_argument("withdraw_id")
    wc.add_argument("--tx-id", default="", help="the transaction that paid it out")
    wc.set_defaults(info="")
    wf = wsub.add_parser("fail", help="the withdrawal did not happen: release the held funds")
    wf.add_argument("withdraw_id")
    wf.add_argument("--info", default="", help="why, as the user's history shows it")
    wf.set_defaults(tx_id="")
    wl = wsub.add_parser("list", help="withdrawals, oldest first")
    wl.add_argument("--user", type=int)
    wl.add_argument("--pending", action="store_true", help="only those not completed or failed")
    aud = asub.add_parser("audit", help="prove balances, ledger and books agree; exit 1 naming the first difference")
    aud.add_argument("--wait", type=_seconds, help="seconds a book may take to be read in step while orders flow (10)")
    aud.add_argument("--no-record", action="store_true", help="do not record the run (spot_audit_ok ignores it)")
    key = asub.add_parser("key", help="API keys: create, list, revoke, rotate, restrict")
    ksub = key.add_subparsers(dest="key", required=True)
    perms, every = ",".join(apikeys.DEFAULT_PERMISSIONS), ",".join(apikeys.PERMISSIONS)
    kc = ksub.add_parser("create", help="a new key for a user; its secret is shown once")
    kc.add_argument("--user", type=int, required=True)
    kc.add_argument("--permissions", default=perms, help=f"comma-separated, some of {every} (default {perms})")
    kc.add_argument("--ip-allow", help="comma-separated addresses or networks the key may be used from")
    kc.add_argument("--ed25519-public-key", metavar="PEM_FILE", help="an Ed25519 key: the client's public key")
    kl = ksub.add_parser("list", help="keys (never their secrets)")
    kl.add_argument("--user", type=int)
    for name, text in (("revoke", "delete a key; its open streams end"), ("rotate", "a new key in place of one")):
        ksub.add_parser(name, help=text).add_argument("api_key")
    kp = ksub.add_parser("permissions", help="set a key's permissions")
    kp.add_argument("api_key")
    kp.add_argument("--set", required=True, help=f"comma-separated, some of {every}")
    ki = ksub.add_parser("ip-allow", help="set the networks a key may be used from")
    ki.add_argument("api_key")
    allow = ki.add_mutually_exclusive_group(required=True)
    allow.add_argument("--set", help="comma-separated addresses or networks")
    allow.add_argument("--any", action="store_true", help="no restriction")
    usr = asub.add_parser("user", help="disable or enable a user (all their keys and streams), or set their fee tier")
    usr.add_argument("user_cmd", choices=("disable", "enable", "set-tier"))
    usr.add_argument("user", type=int)
    usr.add_argument("tier", nargs="?", help="set-tier: the tier's name (none: the markets' own rates)")
    usr.add_argument("--keep-orders", action="store_true", help="disable without canceling the open orders")
    usr.add_argument("--wait", type=_seconds, default=5.0, help="seconds to wait for the cancels to settle")
    fee = asub.add_parser("fees", help="fee tiers: maker and taker rates for the users put in them")
    fsub = fee.add_subparsers(dest="fees", required=True)
    ft = fsub.add_parser("set-tier", help="create or change a tier (its users' next orders take its rates)")
    ft.add_argument("tier")
    ft.add_argument("--maker", type=int, required=True, help="maker fee, basis points")
    ft.add_argument("--taker", type=int, required=True, help="taker fee, basis points")
    fsub.add_parser("list", help="the tiers, their rates and how many users each holds")
    mkt = asub.add_parser("market", help="add or change a market while the fleet runs (no restart)")
    msub = mkt.add_subparsers(dest="market", required=True)
    for name, what in (("add", "a new market, TRADING at once"), ("update", "filters and fees of a market")):
        mp = msub.add_parser(name, help=what)
        mp.add_argument("symbol")
        for field in MARKET_FIELDS:
            mp.add_argument(f"--{field.replace('_', '-')}", dest=field)
    halt = msub.add_parser("halt", help="refuse new orders (-2010 Market is closed.); cancels still go")
    halt.add_argument("symbol")
    halt.add_argument("--status", choices=markets.CLOSED, default="HALT")
    halt.add_argument("--cancel-resting", action="store_true", help="cancel the whole book in sequence")
    halt.add_argument("--wait", type=_seconds, default=5.0)
    resume = msub.add_parser("resume", help="TRADING again")
    resume.add_argument("symbol")
    resume.add_argument("--wait", type=_seconds, default=5.0)
    delist = msub.add_parser("delist", help="END_OF_DAY, and the whole book canceled in sequence")
    delist.add_argument("symbol")
    delist.add_argument("--wait", type=_seconds, default=5.0)
    msub.add_parser("list", help="every market's row")
    can = asub.add_parser("cancel-all", help="cancel a user's open orders in sequence (the kill switch)")
    can.add_argument("--user", type=int, required=True)
    can.add_argument("--symbol", help="only this market's")
    can.add_argument("--wait", type=_seconds, default=5.0, help="seconds to wait for the cancels to settle")
    bal = asub.add_parser("balances", help="show balances")
    bal.add_argument("--user", type=int)
    bal.add_argument("--json", action="store_true")
    rec = asub.add_parser("reconcile", help="compare the warm book (Postgres) with the hot book (Redis); repair")
    rec.add_argument("--report-only", action="store_true", help="report differences without repairing")
    asub.add_parser("reseed-positions", help="continue on a new broker log: source positions restart in a higher epoch")
    st = asub.add_parser("settlement", help="settlement halts: show them, resolve one")
    ssub = st.add_subparsers(dest="settlement", required=True)
    halted = ssub.add_parser("halted", help="symbols whose settlement stopped at a record, with the record and reason")
    halted.add_argument("--json", action="store_true")
    resolve = ssub.add_parser("resolve", help="resolve a symbol's halt")
    resolve.add_argument("symbol")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument("--retry", action="store_true", help="apply the record again (after fixing the data)")
    how.add_argument("--skip", action="store_true", help="move past the record without applying it")
    how.add_argument("--accept-gap", action="store_true",
                     help="a halt at a sequence gap: give up the missing events and apply the record")  # fmt: skip
    dlq = asub.add_parser("dlq", help="dead letters: list, show, replay")
    dsub = dlq.add_subparsers(dest="dlq", required=True)
    dsub.add_parser("list", help="per dead-letter topic: count, first and last offsets")
    show = dsub.add_parser("show", help="dead letters with their reason and source")
    show.add_argument("topic", help="e.g. validated-orders.dlq")
    show.add_argument("--offset", type=int, help="only the record at this offset")
    replay = dsub.add_parser("replay", help="produce a dead letter back to its source topic")
    replay.add_argument("topic", help="e.g. order-requests.dlq")
    replay.add_argument("--offset", type=int, required=True)
    adm.set_defaults(func=cmd_admin)
    trades = sub.add_parser("trades", help="the trade archive")
    tsub = trades.add_subparsers(dest="trades", required=True)
    tq = tsub.add_parser("query", help="SQL over the archived trades (view `trades`), locally with DuckDB")
    tq.add_argument("sql", help='e.g. "SELECT symbol, count(*) FROM trades GROUP BY symbol"')
    tq.add_argument("--dir", help="archive root (default: ARCHIVE_DIR)")
    tq.add_argument("--json", action="store_true", help="rows as JSON objects")
    tq.set_defaults(func=cmd_trades)
    deploy = sub.add_parser("deploy", help="deployment helpers")
    dsub_ = deploy.add_subparsers(dest="deploy", required=True)
    dv = dsub_.add_parser("values", help="the Helm values file of an environment, from `terraform output -json`")
    dv.add_argument("outputs", help="the JSON of `terraform output -json` (a file, or - for stdin)")
    dv.set_defaults(func=cmd_deploy_values)
    lp = dsub_.add_parser("lambda-package", help="the ingestion Lambda's zip (Terraform's lambda_package_path)")
    lp.add_argument("out", nargs="?", default="build/order-ingestion.zip", help="where to write the zip")
    lp.set_defaults(func=cmd_deploy_lambda_package)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except config.SettingsError as exc:  # a wrong setting: one line, no traceback, before anything started
        print(f"spot: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"spot: {config.one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
