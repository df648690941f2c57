"""One settings class for every service, read from the environment (pydantic-settings).

The defaults are the local fleet that ``spot up`` starts; in a container every URL comes from the
environment (the Helm chart's ConfigMap and Secret). A malformed value stops the service at boot.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = Field("postgresql://postgres@127.0.0.1:55432/spot", description="Aurora / Postgres DSN")
    redis_url: str = Field("redis://127.0.0.1:56379/0", description="ElastiCache / Redis URL")
    kafka_bootstrap: str = Field("127.0.0.1:59092", description="MSK / Kafka bootstrap servers")
    kafka_partitions: int = Field(4, ge=1, le=1024)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_fetch_max_wait_ms: int = Field(5, ge=1, description="Tansu can hang a consumer at 0")
    kafka_batch_max: int = Field(2000, ge=1, description="most records handled per consumer batch")
    topic_suffix: str = Field("", description="appended to every topic name (tests isolate runs with it)")

    ingestion_url: str = "http://127.0.0.1:8001"
    host: str = "127.0.0.1"
    port: int | None = None
    log_level: str = "INFO"

    recv_window_max_ms: int = 60_000
    request_weight_per_minute: int = 6_000
    orders_per_10s: int = 300
    order_result_timeout_ms: int = Field(10_000, description="how long REST waits for an order's outcome")
    max_body_bytes: int = 16_384
    open_orders_max: int = 200

    def port_for(self, service: str) -> int:
        return self.port or SERVICE_PORTS[service]

    def topic(self, name: str) -> str:
        return f"{name}{self.topic_suffix}"
