"""One settings class for every service, read from the environment (pydantic-settings).

The defaults are the local fleet that ``spot up`` starts; in a container every URL comes from the
environment (the Helm chart's ConfigMap and Secret). A malformed value stops the service at boot.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_PORTS: dict[str, int] = {
    "gateway": 8000,
    "ingestion": 8001,
    "order-processor": 8002,
    "matcher": 8003,
    "settlement": 8004,
    "market-data": 8005,
    "trade-archiver": 8006,
}


def database_role(service: str) -> str:
    """The Postgres role a service's connections act as (``DATABASE_ROLE``; migration 0010 grants each only
    what its own statements need): ``order-processor`` acts as ``spot_order_processor``."""
    return "spot_" + service.replace("-", "_")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = Field("postgresql://postgres@127.0.0.1:55432/spot", description="Aurora / Postgres DSN")
    # Aurora's rotated credentials: user and password from this Secrets Manager secret instead of the DSN's,
    # read at start and again when Postgres refuses the password (shared/dbsecret.py)
    database_secret_id: str | None = Field(
        None,
        validation_alias=AliasChoices("database_secret_id", "database_secret_arn"),
        description="Secrets Manager secret (ARN or name) holding the database user and password",
    )
    redis_url: str = Field("redis://127.0.0.1:56379/0", description="ElastiCache / Redis URL")
    redis_cluster: bool = Field(
        False, description="ElastiCache cluster mode: REDIS_URL is the configuration endpoint of a Redis Cluster"
    )
    kafka_bootstrap: str = Field("127.0.0.1:59092", description="MSK / Kafka bootstrap servers")
    kafka_partitions: int = Field(4, ge=1, le=1024)
    # `spot admin init` creates the topics with it: 1 for the local single broker, MSK's replication factor
    # on EKS (3, one per zone; the brokers' min.insync.replicas of 2 refuses acks=all writes below that).
    kafka_replication_factor: int = Field(1, ge=1, le=16, description="replicas of every topic spot admin init creates")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: str | None = Field(None, description="PEM CA bundle the broker's certificate is checked with")
    kafka_ssl_cert_file: str | None = Field(None, description="PEM client certificate (mutual TLS), with the key")
    kafka_ssl_key_file: str | None = Field(None, description="PEM private key of the client certificate")
    # Tansu does not answer a waiting fetch as soon as data arrives, and can hang a consumer at 0. Measured on
    # it: 5 ms keeps an idle fleet's polling at 0.86 of a core, 20 ms at 0.37, for +0.6 ms p50 per hop.
    kafka_fetch_max_wait_ms: int = Field(20, ge=1, description="longest a fetch waits for data at the broker")
    # The order processor's fetch of order-requests is the one Kafka hop between an order's REST ACK and its
    # confirmation on the user stream (the processor confirms it, see services/order_processor), so it has
    # settings of its own: it waits less than the others, and returns whatever is there.
    kafka_request_fetch_max_wait_ms: int = Field(
        5, ge=1, description="longest the order processor's fetch of order requests waits at the broker"
    )
    kafka_request_fetch_min_bytes: int = Field(
        1, ge=1, description="least the order processor's fetch of order requests returns, unless it waited"
    )
    kafka_commit_interval_ms: int = Field(
        100, ge=0, description="how often a consumer commits the offsets it is done with (0: after every batch)"
    )
    kafka_batch_max: int = Field(2000, ge=1, description="most records handled per consumer batch")
    # A consumer's fetch waits (up to fetch_max_wait) for this much: larger batches for every service and
    # fewer fetches for the broker, for up to fetch_max_wait more per hop. For throughput, 262144 with a
    # fetch_max_wait of 100 took the fleet bench from ~760 to ~540 us of CPU per order; 1 keeps hops short.
    kafka_fetch_min_bytes: int = Field(1, ge=1, description="least a fetch returns, unless it waited fetch_max_wait")
    # How long the gateway's producer gathers order requests into one produce batch, added to every ACK.
    # The gateway already sends what one event-loop turn took in as one record. At 20 orders/s a linger of
    # 0 took the ACK from 3.8 to 2.5 ms p50, but at 1,000/s for 30 s it made the user-stream NEW p50 109 ms
    # against 81 with 1: more, smaller batches, and each Tansu fetch costs ~1 us per batch its partition
    # holds. 5 and 10 ms measured no better than 1 at saturation.
    kafka_request_linger_ms: int = Field(1, ge=0, description="how long order requests gather into one produce batch")
    topic_suffix: str = Field("", description="appended to every topic name (tests isolate runs with it)")
    # The local broker keeps every record in memory and ignores retention: with segments on, each data topic
    # is a ring of slot topics and a keeper recycles the oldest every this many seconds (shared.segments).
    # 0: one topic per data topic and one epoch, for brokers that honour retention (MSK, apache/kafka).
    kafka_segment_s: int = Field(0, ge=0, description="seconds per log segment of the local broker (0: off)")
    # Read from the database at start (shared.identity), not set by hand: every record produced carries the
    # fleet's id, and the processor ranks source positions by the log epoch.
    fleet_id: str = Field("", description="this fleet's identity, once checked; records carry it")
    log_epoch: int = Field(0, ge=0, description="the fleet's log epoch, once checked")
    # How long a call to a dependency may go unanswered before it counts as an outage (shared/resilience.py):
    # a server that stops answering without closing the connection (a black hole) would otherwise hold a
    # call, and the service with it, until the kernel gives the connection up, many minutes later.
    redis_timeout_ms: int = Field(5_000, ge=100, description="longest a Redis connect or reply may take")
    postgres_timeout_ms: int = Field(10_000, ge=100, description="longest a Postgres statement or connect may take")
    kafka_request_timeout_ms: int = Field(
        15_000, ge=1_000, description="longest a Kafka request may wait for its answer (above the session timeout)"
    )

    # Every pool a request draws on is bounded; a request waits this long at most for a connection, then is
    # refused with -1008 (shared.overload). A healthy fleet answers an order in tens of ms: a second is
    # queueing already, and a client is better served told to come back than kept waiting for minutes.
    pool_wait_ms: int = Field(1000, ge=1, description="longest a request waits for a pooled connection")
    redis_pool_max: int = Field(32, ge=2, description="Redis connections per process (calls are pipelined)")
    orders_in_flight_max: int = Field(
        200, ge=1, description="new orders and cancels a gateway hands on at once (its connections to ingestion)"
    )

    # Admission by measured backlog (shared.pressure): past this wait of order requests before the processor
    # has taken them, the gateways refuse a growing share of new orders with -1008. 0 turns it off.
    admit_backlog_ms: int = Field(
        200, ge=0, description="order requests' wait past which new orders are refused with -1008 (0: off)"
    )

    ingestion_url: str = "http://127.0.0.1:8001"
    # The gateway runs ingestion's code itself and publishes to order-requests: measured in the soak at 300
    # requests/s on 2 cores, REST ACK p50/p99 10/115 ms and confirmation 33/138 ms against 36/229 and
    # 64/239 through the ingestion service's HTTP hop (which cost ~27% of a core). The ingestion service stays
    # the entry point of the AWS Lambda and of internal callers that sign with the service key; false puts
    # the gateway back behind it.
    ingestion_in_gateway: bool = Field(
        True, description="the gateway runs ingestion's code itself and publishes to Kafka (no HTTP hop)"
    )
    host: str = "127.0.0.1"
    port: int | None = None
    log_level: str = "INFO"

    recv_window_max_ms: int = 60_000
    # Access (issue 20). Keys come from the environment (a Kubernetes Secret, KMS) in a deployed fleet; the
    # local fleet and the tests keep them in files under .spot/, created on first use (shared/keyfile.py).
    envelope_key: SecretStr | None = Field(None, description="base64 AES-256 KEK sealing the API secrets")
    envelope_key_file: str = Field(".spot/envelope.key", description="the local KEK, when no key or KMS is set")
    kms_key_id: str | None = Field(None, description="AWS KMS key wrapping the API secrets' data keys")
    service_key: SecretStr | None = Field(None, description="base64 key the gateway signs calls to ingestion with")
    service_key_file: str = Field(".spot/service.key", description="the local service key, when none is set")
    database_role: str | None = Field(
        None, description="Postgres role this service's connections act as (spot_<service>, migration 0010)"
    )
    # Behind API Gateway -> NLB the peer is a load balancer: the client is the address the first trusted
    # proxy appended to X-Forwarded-For, counted from the right. 0: the peer address (no proxy is trusted).
    trusted_proxy_hops: int = Field(0, ge=0, le=8, description="proxies whose X-Forwarded-For entry is believed")
    key_lookups_per_minute: int = Field(
        60, ge=1, description="unknown API keys an IP may have looked up in Postgres per minute"
    )
    ws_connections_per_5m: int = Field(300, ge=1, description="WebSocket connections an IP may open per 5 minutes")
    request_weight_per_minute: int = 6_000
    orders_per_10s: int = 300
    orders_per_day: int = Field(200_000, ge=1, description="new orders an account may place per UTC day")
    order_result_timeout_ms: int = Field(10_000, description="how long REST waits for an order's outcome")
    max_body_bytes: int = 16_384
    ws_queue_max: int = Field(
        2000, ge=1, description="messages a WebSocket client may fall behind before it is dropped"
    )
    open_orders_max: int = 200  # MAX_NUM_ORDERS: a user's open orders on one symbol
    exchange_open_orders_max: int = 1000  # EXCHANGE_MAX_NUM_ORDERS: a user's open orders on all symbols

    # trade-archiver: Parquet to a local folder, or to S3 when a bucket is set; Kinesis when a stream is set.
    # AWS credentials are never settings: boto3 takes them from its own chain (env, Pod Identity, profile).
    archive_dir: str = Field(".spot/archive", description="local archive root, used when no S3 bucket is set")
    archive_s3_bucket: str | None = Field(None, description="S3 bucket of the archive (Glue table location)")
    archive_s3_prefix: str = Field("", description="key prefix inside the bucket, '' or ending in '/'")
    aws_endpoint_url: str | None = Field(None, description="S3/Kinesis-compatible endpoint (moto, localstack)")
    aws_region: str | None = Field(None, description="AWS region; boto3's own default chain when unset")
    kinesis_stream: str | None = Field(None, description="Kinesis stream every archived trade is put to")
    archive_batch_max: int = Field(10_000, ge=1, description="trades buffered before a flush to Parquet")
    archive_flush_ms: int = Field(5_000, ge=10, description="longest a consumed trade waits for its flush")
    # The archive is minutes behind by design (a flush every ARCHIVE_FLUSH_MS), so its fetches wait long and
    # return much: each fetch costs the broker and the client's protocol code the same, whatever it carries.
    archive_fetch_max_wait_ms: int = Field(
        500, ge=1, le=30_000, description="longest the archiver's fetch waits at the broker for a megabyte"
    )

    # Tracing (shared/tracing.py), under the standard OpenTelemetry variable names. Off unless an exporter
    # has somewhere to go: an OTLP/HTTP endpoint, or the console.
    otel_sdk_disabled: bool = Field(False, description="the standard kill switch: no spans at all")
    otel_traces_exporter: Literal["otlp", "console", "none"] = "otlp"
    otel_exporter_otlp_endpoint: str = Field("", description="collector base URL (OTLP/HTTP); empty: no tracing")
    otel_exporter_otlp_traces_endpoint: str = Field("", description="full traces URL; overrides the base URL")
    otel_traces_sampler_arg: float = Field(
        1.0, ge=0.0, le=1.0, description="share of new traces the gateway samples; downstream follows the parent"
    )

    @model_validator(mode="after")
    def _kafka_security_agrees(self) -> Settings:
        """A combination aiokafka would refuse deep inside a client (or a broker at connect time) stops the
        service at boot instead, saying which setting to change (``shared.kafka_security``)."""
        protocol, mechanism = self.kafka_security_protocol, self.kafka_sasl_mechanism
        sasl = protocol.startswith("SASL_")
        if sasl and mechanism is None:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM (OAUTHBEARER for MSK IAM, "
                "SCRAM-SHA-512 for MSK SCRAM)"
            )
        if mechanism is not None and not sasl:
            raise ValueError(
                f"KAFKA_SASL_MECHANISM={mechanism} needs KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT"
            )
        if mechanism == "OAUTHBEARER" and not self.aws_region:
            raise ValueError("KAFKA_SASL_MECHANISM=OAUTHBEARER (MSK IAM) needs AWS_REGION, the MSK cluster's region")
        if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
            self.kafka_sasl_username and self.kafka_sasl_password and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(f"KAFKA_SASL_MECHANISM={mechanism} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        files = {
            "KAFKA_SSL_CA_FILE": self.kafka_ssl_ca_file,
            "KAFKA_SSL_CERT_FILE": self.kafka_ssl_cert_file,
            "KAFKA_SSL_KEY_FILE": self.kafka_ssl_key_file,
        }
        given = {name: path for name, path in files.items() if path}
        if given and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(f"{', '.join(given)} needs KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL, not {protocol}")
        if bool(self.kafka_ssl_cert_file) != bool(self.kafka_ssl_key_file):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (a certificate and its key)")
        for name, path in given.items():
            if not os.path.isfile(path):
                raise ValueError(f"{name}={path}: no such file")
        return self

    def port_for(self, service: str) -> int:
        return self.port or SERVICE_PORTS[service]

    def topic(self, name: str) -> str:
        return f"{name}{self.topic_suffix}"


class SettingsError(ValueError):
    """A setting the service cannot start with, in one line naming the variable."""


def one_line(exc: ValidationError) -> str:
    """pydantic's report, one line: ``KAFKA_SASL_MECHANISM='FOO': Input should be 'PLAIN', ...``."""
    parts = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"]:
            name = str(error["loc"][0]).upper()
            parts.append(f"{name}={error['input']!r}: {message}")
        else:
            parts.append(message)
    return "; ".join(parts)


def load(**overrides: Any) -> Settings:
    """The settings of a starting process (every entry point: ``spot``, the Lambda; ``overrides`` are values it
    read elsewhere, e.g. from Secrets Manager): ``SettingsError`` in one line instead of pydantic's report."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(one_line(exc)) from None
