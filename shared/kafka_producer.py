"""The producer over librdkafka (``confluent-kafka``): what ``shared.kafka.Outbox`` sends through.

Why not aiokafka's: its protocol work (record batches, requests, acks) is Python on the service's event loop,
about 0.45 ms of CPU a record at the fleet's one-record batches; librdkafka does the same in C on threads of
its own, for about half (``make bench ARGS=produce`` measures both on the local broker).

How it meets asyncio: ``send`` hands a record to librdkafka's queue (no I/O, never blocks) and returns a
future; while any record waits for its report, a task polls librdkafka every ``REPORT_EVERY_S`` without
blocking, which settles the futures on the loop itself. An idle producer polls nothing (librdkafka's own
threads keep its connections), and a thread serving the reports instead would contend with the loop for
the GIL on every ack. Settings kept from the aiokafka producer: ``acks=all`` without idempotence
(Tansu refuses it), the Java client's murmur2 partitioner (``shared.kafka.partition_of``), one request in flight
per connection so a retried batch never lands behind a later one, and a delivery deadline of
``kafka_request_timeout_ms``: a broker that is gone fails the send then, with a ``KafkaError`` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from aiokafka.errors import KafkaError
from confluent_kafka import KafkaException, Message
from confluent_kafka import Producer as RdProducer

from . import kafka_security
from .config import Settings

log = logging.getLogger(__name__)

START_S = 5.0  # how long a start waits for a broker's answer before ``shared.kafka`` retries it
REPORT_EVERY_S = 0.001  # how often delivery reports are served while some are due: at most this on an ack
MAX_BATCH_BYTES = 1 << 20
MAX_REQUEST_BYTES = 8 << 20


class DeliveryFailed(KafkaError):
    """The broker did not take a record: librdkafka's error, named (a ``KafkaError``, as aiokafka's were)."""


def config(settings: Settings, linger_ms: int) -> dict[str, Any]:
    """librdkafka's settings for a producer of this fleet."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "partitioner": "murmur2_random",  # the Java client's (and aiokafka's) for keyed records
        "linger.ms": linger_ms,
        "batch.size": MAX_BATCH_BYTES,
        "message.max.bytes": MAX_REQUEST_BYTES,
        "max.in.flight.requests.per.connection": 1,
        "request.timeout.ms": settings.kafka_request_timeout_ms,
        "message.timeout.ms": settings.kafka_request_timeout_ms,
        "socket.keepalive.enable": True,
        **kafka_security.librdkafka(settings),
    }


def _failure(error: Any) -> DeliveryFailed:
    return DeliveryFailed(f"{error.name()}: {error.str()}")


class Producer:
    """librdkafka's producer with awaitable acks: what ``Outbox`` needs of aiokafka's producer (its ``send``)."""

    def __init__(self, settings: Settings, linger_ms: int = 1) -> None:
        self.config = config(settings, linger_ms)
        self._client = RdProducer(self.config, logger=logging.getLogger("rdkafka"))
        self._waiting = 0  # records handed to librdkafka whose report is not in yet
        self._reports: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Returns once a broker answered a metadata request within ``START_S`` (librdkafka connects lazily;
        a service waits for its broker at start, ``shared.kafka``)."""
        await self.metadata(START_S)

    async def stop(self) -> None:
        """Send what is queued, within librdkafka's delivery deadline: its reports settle their futures."""
        if self._reports is not None:  # it runs until the last report is in, failures included
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reports), self.config["message.timeout.ms"] / 1000)
        if self._waiting:
            log.warning("kafka producer stopped with %d records not acknowledged", self._waiting)

    async def metadata(self, timeout_s: float) -> None:
        """Raises ``KafkaError`` unless a broker answers a metadata request within ``timeout_s``."""
        try:
            await asyncio.to_thread(self._client.list_topics, None, timeout_s)
        except KafkaException as exc:
            raise _failure(exc.args[0]) from None

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Message]:
        """Queue a record; the future is its ack (the delivered ``Message``) or a ``DeliveryFailed``."""
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        def delivered(error: Any, message: Message) -> None:  # inside ``poll``, on the event loop
            self._waiting -= 1
            if fut.done():  # its sender was cancelled
                return
            if error is None:
                fut.set_result(message)
            else:
                fut.set_exception(_failure(error))

        rd_headers = cast("list[tuple[str, str | bytes | None]] | None", headers)  # a list is invariant
        try:
            if partition is None:
                self._client.produce(topic, value, key, headers=rd_headers, on_delivery=delivered)
            else:
                self._client.produce(topic, value, key, partition, headers=rd_headers, on_delivery=delivered)
        except KafkaException as exc:  # refused before queueing (too large, unknown partition)
            raise _failure(exc.args[0]) from None
        except BufferError as exc:  # librdkafka's queue is full: the broker is not keeping up
            raise DeliveryFailed(f"producer queue full: {exc}") from None
        self._waiting += 1
        if self._reports is None or self._reports.done():
            self._reports = asyncio.ensure_future(self._serve_reports())
        return fut

    async def _serve_reports(self) -> None:
        """Serve librdkafka's delivery reports while any is due: ``poll(0)`` never blocks, and runs each
        report's callback here, on the loop, so no thread contends for the GIL on the ack path."""
        poll = self._client.poll
        while self._waiting:
            await asyncio.sleep(REPORT_EVERY_S)
            poll(0)
