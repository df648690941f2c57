"""Kafka over TLS, as MSK's listeners are: every client of ``shared.kafka`` verifies the broker against the CA
of ``KAFKA_SSL_CA_FILE`` and produces and consumes through it.

The broker is the local Tansu behind a TLS listener made with a CA this test creates (trustme). Tansu itself
lists ``--cert``/``--key`` but serves no TLS: in the wheel's build (0.6.0) the two options exclude each other,
and upstream its TLS acceptor is built and never used (``nisshi-broker/src/broker.rs``). So the TLS end is
the test's proxy (``tests.faults.CuttableProxy`` with a server context), and Tansu advertises the proxy, so
every connection a client opens after the bootstrap one goes through TLS too.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from shared import kafka
from shared.config import Settings
from shared.messages import Topic
from spot import infra
from spot.children import die_with_parent
from tests.faults import CuttableProxy, free_port


class TlsBroker:
    def __init__(self, bootstrap: str, ca_file: Path) -> None:
        self.bootstrap = bootstrap
        self.ca_file = ca_file


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    folder = tmp_path_factory.mktemp("kafka-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    broker_port, tls_port = free_port(), free_port()
    with open(folder / "tansu.log", "ab") as log:
        tansu = subprocess.Popen(
            [infra.tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{tls_port}", "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent(signal.SIGKILL),
        )  # fmt: skip
    proxy = CuttableProxy(broker_port, port=tls_port, tls=server).start()
    try:
        infra._wait_port(broker_port, "tansu", tansu)
        yield TlsBroker(f"127.0.0.1:{tls_port}", ca_file)
    finally:
        proxy.stop()
        tansu.kill()
        tansu.wait(5)


def _settings(broker: TlsBroker, **more: object) -> Settings:
    return Settings(
        kafka_bootstrap=broker.bootstrap,
        kafka_security_protocol="SSL",
        kafka_partitions=1,
        topic_suffix=f".tls{secrets.token_hex(3)}",
        **more,  # type: ignore[arg-type]
    )


@pytest.mark.timeout(120)
async def test_produce_and_consume_over_tls(tls_broker: TlsBroker) -> None:
    settings = _settings(tls_broker, kafka_ssl_ca_file=str(tls_broker.ca_file))
    created = await asyncio.wait_for(kafka.create_topics(settings), 30)
    assert settings.topic(Topic.ORDER_REQUESTS) in created
    async with kafka.producer(settings) as outbox:
        partition, offset = await asyncio.wait_for(
            outbox.send_now(Topic.ORDER_REQUESTS, b"over tls", key="BTCUSDT"), 30
        )
        async with kafka.consumer(settings, [Topic.ORDER_REQUESTS], "tls-test", bytes, outbox) as inbox:
            stop = asyncio.Event()
            seen: list[bytes] = []

            async def read() -> None:
                async for batch in inbox.batches(stop):
                    seen.extend(r.value for r in batch.records)
                    if seen:
                        return

            await asyncio.wait_for(read(), 30)
    assert (partition, offset) == (0, 0)
    assert seen == [b"over tls"]


@pytest.mark.timeout(60)
async def test_a_broker_whose_certificate_the_ca_did_not_sign_is_refused(tls_broker: TlsBroker) -> None:
    """Without the test's CA the system's CAs are used, which did not sign it: no connection, no bytes sent."""
    settings = _settings(tls_broker)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, **kafka.security(settings))
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), 30)
    await producer.stop()
