"""The Redis key families more than one service touches: their layout, and which service owns (writes) each.

A family has one owner, the service that writes it; the others only read it, except where a line below names
the one exception and why. Keys of one symbol share the hash tag ``{SYMBOL}`` (a user's, ``{u:USER}``), so a
symbol's atomic write stays in one Redis Cluster slot. Keys only one service touches (rate limits, listen
keys, the fleet identity, log segments) stay with that service or its ``shared`` module.
"""

from __future__ import annotations


# --- hot book: an accepted order until the matcher takes it over ------------------------------------------
# Owner: order-processor (services/order_processor/hotbook.py), HSET per batch once the hold is committed.
# Exceptions: the matcher deletes the entries it took over, in the same script that commits its book (so an
# order is never in both or neither); the reconciler (shared/reconcile.py) deletes stale entries and re-adds
# the accepted orders the matcher never received.
def hot_key(symbol: str) -> str:
    """Hash: order id -> the ``AcceptedOrder`` as the processor published it."""
    return f"hot:{{{symbol}}}:accepted"


# --- book: the matcher's committed book and outbox --------------------------------------------------------
# Owner: matcher (services/matcher/bookstore.py), one script per symbol and batch. Readers: the reconciler
# (shared/reconcile.py, through shared/booksnapshot.py). Records: shared/booksnapshot.py.
def orders_key(symbol: str) -> str:
    """Hash: order id -> ``RestingOrder`` (msgpack), every order resting in the book."""
    return f"book:{{{symbol}}}:orders"


def state_key(symbol: str) -> str:
    """String: ``BookState`` (msgpack): seq, next trade id, last source position applied."""
    return f"book:{{{symbol}}}:state"


def outbox_key(symbol: str) -> str:
    """Hash: first seq of a batch -> its outputs, until the broker acknowledged them."""
    return f"book:{{{symbol}}}:unacked"


def legacy_outbox_key(symbol: str) -> str:
    """String: the single-batch outbox of earlier versions; re-published, then deleted, by the matcher."""
    return f"book:{{{symbol}}}:outbox"


# --- settled: how far settlement has applied a symbol's matched events -------------------------------------
# Owner: settlement (``tell`` in services/settlement/batch.py), after each committed batch. Read by the matcher,
# in the script that commits its book: it keeps a batch's outputs in the outbox until settlement has applied
# them, so a broker that loses its log loses no fill (services/matcher/bookstore.py).
def settled_key(symbol: str) -> str:
    """String: the seq of the last matched event of the symbol settlement committed (its cursor)."""
    return f"book:{{{symbol}}}:settled"


# --- market data: what REST reads of a symbol's market ----------------------------------------------------
# Owner: market-data (services/market_data/streams.py), each write atomic with its stream publication.
# Readers: the gateway's public REST routes (services/gateway/routes/market.py). Parts:
# ``bids``/``asks`` (hash: price ticks -> lots), ``depth_seq`` (the snapshot's lastUpdateId), ``trades``
# (list, newest first, Binance trade rows), ``klines`` (sorted set of 1m rows by open time, the 24h ticker's;
# the klines route reads Postgres), ``kline_cur`` (the live candle of every kline stream), ``trade_seq`` (the
# last trade-execution seq applied).
# ``slow_bids``, ``slow_asks``, ``slow_seq``: the ``@depth`` (1,000 ms) diff being gathered and its last ``u``;
# ``log_epoch``: the broker log the depth was last caught up on (services/market_data/resync.py).
MARKET_PARTS = frozenset(
    {
        "bids",
        "asks",
        "depth_seq",
        "trades",
        "klines",
        "kline_cur",
        "trade_seq",
        "slow_bids",
        "slow_asks",
        "slow_seq",
        "log_epoch",
    }
)


def market_key(symbol: str, part: str) -> str:
    """One of ``MARKET_PARTS`` of ``symbol``'s market data."""
    return f"md:{{{symbol}}}:{part}"


# --- client order ids: claimed at the door --------------------------------------------------------------
# Owner: ingestion's ``Ingestor`` (shared/ingestor.py), wherever it runs: the ingestion service, its Lambda
# handler, or the gateway with ingestion in-process, whose rate limiter sets the claim in the same Redis call
# that spends the caller's limits (services/gateway/ratelimit.py). SET NX with ``CLIENT_ID_TTL_S``
# (shared/ingestor.py); deleted again when the request could not be published.
def client_id_key(user_id: int, client_order_id: str) -> str:
    """Where a user's client order id is claimed. Hash-tagged by user: the gateway claims it in the same
    Redis call as the user's rate limits (``gateway.ratelimit.signed_budget``)."""
    return f"coid:{{u:{user_id}}}:{client_order_id}"


# --- pending order requests: acknowledged, not yet decided -----------------------------------------------
# Owner: ingestion's ``Ingestor`` (shared/ingestor.py), wherever it runs, which adds each new order before it
# answers ACK. Exception: the order processor removes the entries of the requests it decided, in the pipeline
# that writes the hot book (an inbox's reader clears what it read), and re-sends those a lost log took
# (shared/pending.py).
def pending_key(symbol: str) -> str:
    """Hash: order id -> (log epoch, the ``NewOrderRequest`` as published), until the processor decides it."""
    return f"req:{{{symbol}}}:pending"
