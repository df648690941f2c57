"""Tables of the warm book and the accounts (Aurora / Postgres); Alembic migrations live beside them.

Money columns are BIGINT in the scales of ``shared.domain``: prices in ticks, quantities in lots,
notionals in notional units, balances and ledger amounts in atoms (1e-8 of an asset). CHECK constraints
make a negative balance impossible rather than merely unlikely.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

metadata = MetaData()

FEE_USER_ID = 1  # the exchange's fee account, created by the first migration

markets = Table(
    "markets",
    metadata,
    Column("symbol", Text, primary_key=True),
    Column("base", Text, nullable=False),
    Column("quote", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="TRADING"),
    Column("tick_size", Numeric, nullable=False),
    Column("step_size", Numeric, nullable=False),
    Column("min_price", Numeric, nullable=False),
    Column("max_price", Numeric, nullable=False),
    Column("min_qty", Numeric, nullable=False),
    Column("max_qty", Numeric, nullable=False),
    Column("min_notional", Numeric, nullable=False),
    Column("max_notional", Numeric, nullable=False, server_default="9000000000"),
    Column("maker_fee_bps", Integer, nullable=False, server_default="10"),
    Column("taker_fee_bps", Integer, nullable=False, server_default="10"),
    Column("bid_up", Numeric, nullable=False, server_default="5"),  # PERCENT_PRICE_BY_SIDE (0014)
    Column("bid_down", Numeric, nullable=False, server_default="0.2"),
    Column("ask_up", Numeric, nullable=False, server_default="5"),
    Column("ask_down", Numeric, nullable=False, server_default="0.2"),
    Column("breaker_pct", Numeric, nullable=False, server_default="0"),  # the circuit breaker (0: off)
    Column("breaker_window_s", Integer, nullable=False, server_default="60"),
)

users = Table(
    "users",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="ACTIVE"),
    Column("created_at", BigInteger, nullable=False),
    Column("fee_tier", Text, ForeignKey("fee_tiers.tier")),  # NULL: the markets' fees (0017)
)

fee_tiers = Table(  # ``spot admin fees set-tier``: maker and taker rates for the users in a tier (0017)
    "fee_tiers",
    metadata,
    Column("tier", Text, primary_key=True),
    Column("maker_fee_bps", Integer, nullable=False),
    Column("taker_fee_bps", Integer, nullable=False),
    CheckConstraint("maker_fee_bps BETWEEN 0 AND 1000"),
    CheckConstraint("taker_fee_bps BETWEEN 0 AND 1000"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("api_key", Text, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.user_id"), nullable=False),
    Column("secret_sealed", LargeBinary, nullable=True),  # HMAC: shared/envelope.py, never in plaintext
    Column("permissions", ARRAY(Text), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("ip_allow", ARRAY(Text), nullable=True),  # networks the key may be used from; NULL: any
    Column("key_type", Text, nullable=False, server_default="HMAC"),  # or ED25519
    Column("public_key", LargeBinary, nullable=True),  # ED25519: the client's public key, raw 32 bytes
    CheckConstraint(
        "(key_type = 'HMAC' AND secret_sealed IS NOT NULL) OR (key_type = 'ED25519' AND public_key IS NOT NULL)",
        name="api_key_material",
    ),
)

balances = Table(
    "balances",
    metadata,
    Column("user_id", BigInteger, ForeignKey("users.user_id"), nullable=False),
    Column("asset", Text, nullable=False),
    Column("available", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("user_id", "asset"),
    CheckConstraint("available >= 0", name="available_not_negative"),
    CheckConstraint("held >= 0", name="held_not_negative"),
)

# Double entry: every row moves ``amount`` from one (user, bucket) to another; NULL user = outside world.
ledger = Table(
    "ledger",
    metadata,
    Column("entry_id", BigInteger, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("ref", Text, nullable=False),
    Column("asset", Text, nullable=False),
    Column("debit_user", BigInteger),
    Column("debit_bucket", Text),
    Column("credit_user", BigInteger),
    Column("credit_bucket", Text),
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    Index("ledger_ref", "ref"),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("client_order_id", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("tif", Text),
    Column("price_ticks", BigInteger, nullable=False, server_default="0"),
    Column("qty_lots", BigInteger, nullable=False, server_default="0"),
    Column("quote_nu", BigInteger, nullable=False, server_default="0"),
    Column("status", Text, nullable=False),
    Column("executed_lots", BigInteger, nullable=False, server_default="0"),
    Column("cum_nu", BigInteger, nullable=False, server_default="0"),
    Column("prevented_lots", BigInteger, nullable=False, server_default="0"),  # DECREMENT/TRANSFER (0017)
    Column("iceberg_lots", BigInteger, nullable=False, server_default="0"),  # icebergQty in lots (0017)
    Column("maker_fee_bps", Integer, nullable=False, server_default="-1"),  # its owner's tier's (0017); -1: the
    Column("taker_fee_bps", Integer, nullable=False, server_default="-1"),  # market's
    Column("hold_asset", Text, nullable=False),
    Column("hold_atoms", BigInteger, nullable=False, server_default="0"),
    Column("hold_left", BigInteger, nullable=False, server_default="0"),
    Column("stp", Text, nullable=False),
    Column("reject_code", Integer, nullable=False, server_default="0"),
    Column("reject_reason", Text, nullable=False, server_default=""),
    Column("created_ts", BigInteger, nullable=False),
    Column("updated_ts", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    # where the request sat in incoming-orders: lets the reconciler re-send an accepted order the matcher
    # never received with the position the matcher deduplicates by
    Column("src_partition", BigInteger, nullable=False, server_default="-1"),
    Column("src_offset", BigInteger, nullable=False, server_default="-1"),
    # a conditional order's stop price (ticks) and trailing delta (BIPS), 0 for none; when it started working:
    # 0 from its creation (every other order), -1 until triggered, then the trigger's time (0016)
    Column("stop_ticks", BigInteger, nullable=False, server_default="0"),
    Column("trailing_delta", BigInteger, nullable=False, server_default="0"),
    Column("working_ts", BigInteger, nullable=False, server_default="0"),
    # an order list's leg: its list (-1: none), and whether it shares one hold with its OCO pair (0018)
    Column("order_list_id", BigInteger, nullable=False, server_default="-1"),
    Column("hold_shared", Boolean, nullable=False, server_default="false"),
    CheckConstraint("hold_left >= 0", name="hold_left_not_negative"),
    Index("orders_client_id", "user_id", "client_order_id", unique=True),
    Index("orders_open", "user_id", "symbol", postgresql_where=text("status IN ('NEW', 'PARTIALLY_FILLED')")),
    Index("orders_user_symbol", "user_id", "symbol", "order_id"),
    Index("orders_list", "order_list_id", postgresql_where=text("order_list_id >= 0")),
)

# Order lists (OCO, OTO, OTOCO; 0018): written by the processor with their legs, their status by settlement.
order_lists = Table(
    "order_lists",
    metadata,
    Column("order_list_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("contingency_type", Text, nullable=False),
    Column("list_client_order_id", Text, nullable=False),
    Column("list_status_type", Text, nullable=False),
    Column("list_order_status", Text, nullable=False),
    Column("transaction_time", BigInteger, nullable=False),
    Column("updated_ts", BigInteger, nullable=False),
    Index("order_lists_user", "user_id", "order_list_id"),
    Index("order_lists_open", "user_id", postgresql_where=text("list_order_status = 'EXECUTING'")),
    Index("order_lists_client_id", "user_id", "list_client_order_id"),
)

# How many open orders (NEW, PARTIALLY_FILLED) each user has, for the MAX_NUM_ORDERS filter: counting them in
# ``orders`` per batch scans the ``orders_open`` index, whose dead entries pile up between vacuums. The
# processor adds its accepted orders and settlement subtracts the ones that end, each in its own batch
# transaction, locked after the balances in (user, symbol) order (the lock order both already follow).
open_order_counts = Table(
    "open_order_counts",
    metadata,
    Column("user_id", BigInteger, ForeignKey("users.user_id"), primary_key=True),
    Column("symbol", Text, primary_key=True, server_default=""),  # per symbol, as MAX_NUM_ORDERS counts (0017)
    Column("n", Integer, nullable=False, server_default="0"),
    CheckConstraint("n >= 0", name="open_orders_not_negative"),
)

trades = Table(
    "trades",
    metadata,
    Column("symbol", Text, nullable=False),
    Column("trade_id", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("price_ticks", BigInteger, nullable=False),
    Column("qty_lots", BigInteger, nullable=False),
    Column("buyer_order_id", BigInteger, nullable=False),
    Column("seller_order_id", BigInteger, nullable=False),
    Column("buyer_user_id", BigInteger, nullable=False),
    Column("seller_user_id", BigInteger, nullable=False),
    Column("buyer_is_maker", Boolean, nullable=False),
    Column("buyer_fee", BigInteger, nullable=False),
    Column("seller_fee", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("symbol", "trade_id"),
    Index("trades_buyer", "buyer_user_id", "symbol", "trade_id"),
    Index("trades_seller", "seller_user_id", "symbol", "trade_id"),
)

# Candles of the trades at the widths of ``shared.candles.LEVELS``, written by the trigger ``trades_to_klines``
# in the transaction that inserts the trades (migration 0012); every kline interval and time zone rolls them up.
klines = Table(
    "klines",
    metadata,
    Column("symbol", Text, nullable=False),
    Column("width_ms", Integer, nullable=False),
    Column("open_time", BigInteger, nullable=False),
    Column("open_ticks", BigInteger, nullable=False),
    Column("high_ticks", BigInteger, nullable=False),
    Column("low_ticks", BigInteger, nullable=False),
    Column("close_ticks", BigInteger, nullable=False),
    Column("volume_lots", Numeric, nullable=False),
    Column("quote_nu", Numeric, nullable=False),
    Column("trades", BigInteger, nullable=False),
    Column("taker_buy_lots", Numeric, nullable=False),
    Column("taker_buy_nu", Numeric, nullable=False),
    Column("first_trade_id", BigInteger, nullable=False),
    Column("last_trade_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("symbol", "width_ms", "open_time"),
)

# Matches self-trade prevention prevented (migration 0015), one per ``preventedMatchId`` of a symbol, written by
# settlement with the event; both orders are the user's. ``maker_prevented_lots``: what the maker had left.
prevented_matches = Table(
    "prevented_matches",
    metadata,
    Column("symbol", Text, nullable=False),
    Column("prevented_match_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("taker_order_id", BigInteger, nullable=False),
    Column("maker_order_id", BigInteger, nullable=False),
    Column("mode", Text, nullable=False),
    Column("price_ticks", BigInteger, nullable=False),
    Column("maker_prevented_lots", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("symbol", "prevented_match_id"),
    Index("prevented_matches_taker", "user_id", "symbol", "taker_order_id"),
    Index("prevented_matches_maker", "user_id", "symbol", "maker_order_id"),
)

# The last matched-event sequence settlement applied per symbol: redeliveries at or below it are skipped.
settlement_cursor = Table(
    "settlement_cursor",
    metadata,
    Column("symbol", Text, primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

# The fleet's identity (``shared.identity``): one row, written when the fleet is created. ``epoch`` is the highest
# log epoch ever used: it goes up with every log segment (``shared.segments``) and when the fleet continues on a
# new broker log (``spot admin reseed-positions``), which also sets ``base_epoch``, the epoch that log began at.
fleet = Table(
    "fleet",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column("fleet_id", Text, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("base_epoch", Integer, nullable=False, server_default=text("0")),
    CheckConstraint("singleton", name="fleet_one_row"),
    CheckConstraint("epoch >= 0", name="fleet_epoch_not_negative"),
    CheckConstraint("base_epoch >= 0 AND base_epoch <= epoch", name="fleet_base_not_past_epoch"),
)

# A matched event settlement could not apply (an order without a row, a hold that does not cover a trade, a value
# Postgres refuses): its symbol stops settling there, the later events of that symbol wait behind it, the other
# symbols go on. The row keeps where the record sits in its topic and the record itself, so the halt survives a
# restart; an operator resolves it (``spot admin settlement resolve``): ``retry`` applies the record again (after
# fixing the data), ``skip`` moves past that one record. At most one open halt per symbol.
settlement_halts = Table(
    "settlement_halts",
    metadata,
    Column("halt_id", BigInteger, primary_key=True, autoincrement=True),
    Column("symbol", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("topic", Text, nullable=False),
    Column("src_partition", Integer, nullable=False),
    Column("src_offset", BigInteger, nullable=False),
    Column("src_index", Integer, nullable=False),  # the event's place in its record (an envelope)
    Column("src_epoch", Integer, nullable=False, server_default=text("0")),  # the log segment it is in
    Column("kind", Text, nullable=False),  # the error's class: the metric's ``reason`` label
    Column("reason", Text, nullable=False),
    Column("record", Text, nullable=False),  # the event, as JSON
    Column("halted_at", BigInteger, nullable=False),
    Column("resolution", Text),  # NULL while open; 'skip' or 'retry'
    Column("resolved_at", BigInteger),
    CheckConstraint("resolution IN ('skip', 'retry')", name="halt_resolution_known"),
    Index("settlement_halts_open", "symbol", unique=True, postgresql_where=text("resolution IS NULL")),
)

# Money from outside, one row per external reference (migration 0011): a deposit repeated with the same reference
# finds its row and is credited once (``shared.funds.deposit``).
deposits = Table(
    "deposits",
    metadata,
    Column("ref", Text, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.user_id"), nullable=False),
    Column("asset", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="deposit_positive"),
)

# Money to outside: a request holds the amount (available -> held, ``withdrawal_hold``), completing it debits the
# hold to the outside world, failing it releases it; each exactly once, while the row is PENDING (``shared.funds``).
withdrawals = Table(
    "withdrawals",
    metadata,
    Column("withdraw_id", Text, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.user_id"), nullable=False),
    Column("asset", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("address", Text, nullable=False),
    Column("network", Text, nullable=False),
    Column("withdraw_order_id", Text),  # the client's id (Binance's withdrawOrderId), unique per user
    Column("status", Text, nullable=False),
    Column("tx_id", Text, nullable=False, server_default=""),
    Column("info", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger),
    CheckConstraint("amount > 0", name="withdrawal_positive"),
    CheckConstraint("status IN ('PENDING', 'COMPLETED', 'FAILED')", name="withdrawal_status_known"),
    Index(
        "withdrawals_client_id",
        "user_id",
        "withdraw_order_id",
        unique=True,
        postgresql_where=text("withdraw_order_id IS NOT NULL"),
    ),
    Index("withdrawals_user", "user_id", "created_at"),
    Index("withdrawals_pending", "user_id", "asset", postgresql_where=text("status = 'PENDING'")),
)

# What each ``spot admin audit`` found (``spot/audit.py``); settlement exposes the newest as ``spot_audit_ok``.
audit_runs = Table(
    "audit_runs",
    metadata,
    Column("run_id", BigInteger, primary_key=True, autoincrement=True),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("difference", Text, nullable=False, server_default=""),
    Column("report", Text, nullable=False),
)
