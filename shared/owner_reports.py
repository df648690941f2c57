"""Who tells an order's owner what: the one rule the order processor, market-data and settlement keep. Pure.

An owner's user stream hears of one order from two services, and of its balances from two:

=================  ============================================  =============================================
teller             what                                          when
=================  ============================================  =============================================
order-processor    ``executionReport`` NEW of each accepted      once the batch's holds are committed, before
                   order the matcher cannot refuse               the matcher hears of the orders (``NEW`` is
                   (``confirmed_on_acceptance``), as             never told again on a redelivery: by then the
                   ``acceptance_update`` renders it; the         order may have filled)
                   ``outboundAccountPosition`` of the
                   balances its holds changed
market-data        every other update of the matcher's output    as the matched events arrive
                   (``told_by_market_data``, as
                   ``market_data_reports`` renders them): a
                   LIMIT_MAKER's NEW or REJECTED, fills,
                   cancels, expiries, the processor's refusals
                   (the matcher echoes them)
settlement         the ``outboundAccountPosition`` of the        after each settled batch commits
                   balances a batch of trades and releases
                   changed; REST's outcome (``outcome.py``)
=================  ============================================  =============================================

So every update the matcher emits reaches its owner exactly once: the NEW the processor sent is the matcher's
NEW field for field (``acceptance_update``), and market-data leaves out exactly that one
(``tests/unit/shared/test_owner_reports.py`` pins both to the book). The JSON shapes are ``shared/binance.py``'s.

The processor tells the NEW because waiting for the matcher's output would put two more Kafka hops between the
REST ACK and the confirmation, and the matcher cannot refuse such an order, only fill or expire it. It does not
tell it again for a redelivered request: a client that saw the fill would take a late NEW for the order
reopening. So a crash between the processor's commit and its Redis step loses that NEW (as pub/sub loses what
is published while a client is away); the REST ACK and the matcher's reports remain.
"""

from __future__ import annotations

import orjson

from .binance import execution_report, list_status_event
from .domain import ExecType, Market, OrderStatus, OrderType
from .messages import AcceptedOrder, MatchedEvent, OrderUpdate, leg_lists, list_statuses

_NEW = ExecType.NEW


def confirmed_on_acceptance(order_type: OrderType) -> bool:
    """Whether an accepted order's NEW report goes out when its hold commits, from the order processor.

    Every accepted order but a LIMIT_MAKER is NEW the moment its funds are held: the matcher can fill or
    expire it, never refuse it. A LIMIT_MAKER that would take is refused by the matcher instead (REJECTED,
    with no NEW before it, as Binance reports it), so its NEW comes from the matcher's output; so does a
    conditional order's, which the matcher refuses when the last price already meets its stop (and whose NEW
    carries its stop, not working).
    """
    return order_type is not OrderType.LIMIT_MAKER and not order_type.is_stop


def acceptance_update(a: AcceptedOrder) -> OrderUpdate:
    """The NEW update the matcher will emit for ``a``, field for field (``book.py``'s ``new``)."""
    return OrderUpdate(
        a.order_id,
        a.user_id,
        a.client_order_id,
        a.side,
        a.type,
        None if a.type is OrderType.MARKET else a.tif,
        a.price_ticks,
        a.qty_lots,
        OrderStatus.NEW,
        ExecType.NEW,
        a.ts,
        a.quote_nu,
        stp=a.stp,
        iceberg_lots=a.iceberg_lots,
    )


def told_by_market_data(u: OrderUpdate, list_id: int = -1) -> bool:
    """Whether market-data sends the owner this update of the matcher's output: all but the NEW the order
    processor already sent. An order list's legs are all told by market-data: the processor tells none of their
    NEWs (the matcher may refuse a list whole)."""
    return not (u.exec_type is _NEW and confirmed_on_acceptance(u.type) and list_id < 0)


def market_data_reports(market: Market, event: MatchedEvent) -> list[tuple[int, bytes]]:
    """The ``executionReport`` of each update of ``event`` that market-data tells (``told_by_market_data``), as
    (owner's user id, JSON), in the matcher's order. Raises for an update no JSON can show (a number past 64
    bits), before the caller changed anything for the event."""
    legs = leg_lists(event)
    reports = [
        (u.user_id, orjson.dumps(execution_report(market, u, event.ts, legs.get(u.order_id, -1))))
        for u in event.updates
        if told_by_market_data(u, legs.get(u.order_id, -1))
    ]
    for st in list_statuses(event):  # an order list's status, after its legs' reports of the step (``listStatus``)
        reports.append((st.user_id, orjson.dumps(list_status_event(market.symbol, st, event.ts))))
    return reports
