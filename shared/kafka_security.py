"""How every Kafka client connects: TLS, and SASL with AWS IAM (MSK's OAUTHBEARER) or SCRAM.

Settings (``shared.config``, checked there at boot so a wrong combination stops the service in one line):

* ``KAFKA_SECURITY_PROTOCOL``: PLAINTEXT (the local broker), SSL, SASL_SSL (MSK), SASL_PLAINTEXT.
* TLS: the broker's certificate is checked against ``KAFKA_SSL_CA_FILE`` (PEM), else the system's CAs
  (which sign MSK's); ``KAFKA_SSL_CERT_FILE`` and ``KAFKA_SSL_KEY_FILE`` add a client certificate (MSK mTLS).
* ``KAFKA_SASL_MECHANISM=OAUTHBEARER``: MSK IAM. Each connection presents a token from AWS's own signer
  (``aws-msk-iam-sasl-signer-python``): a SigV4-presigned ``kafka-cluster:Connect`` URL for ``AWS_REGION``,
  signed with boto3's credential chain (Pod Identity on EKS, the execution role in Lambda). A token is
  kept until a minute before it expires, so reconnects do not each sign anew.
* ``SCRAM-SHA-512`` (MSK SCRAM, its secret in Secrets Manager) or ``PLAIN``: ``KAFKA_SASL_USERNAME`` and
  ``KAFKA_SASL_PASSWORD``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context

from .config import Settings

TOKEN_MARGIN_S = 60  # a token is renewed this long before it expires


class MskIamToken(AbstractTokenProvider):
    """MSK IAM's OAUTHBEARER token for aiokafka, from AWS's maintained signer.

    ``sign``: the signer's ``generate_auth_token`` (region -> (token, expiry in ms)); a test may give its own.
    """

    def __init__(self, region: str, sign: Any = None) -> None:
        if sign is None:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

            sign = MSKAuthTokenProvider.generate_auth_token
        self.region = region
        self._sign = sign
        self._token = ""
        self._expires_s = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:  # connections opened together share one signing
            if time.time() >= self._expires_s - TOKEN_MARGIN_S:
                token, expiry_ms = await asyncio.to_thread(self._sign, self.region)  # boto3 is blocking
                self._token, self._expires_s = token, expiry_ms / 1000
            return self._token

    def oauth_cb(self, _config: str) -> tuple[str, float]:
        """librdkafka's token refresh (``oauth_cb``, on its own thread): a fresh token and when it expires (s).
        librdkafka refreshes it itself at 80% of its life, so every call signs."""
        token, expiry_ms = self._sign(self.region)
        return str(token), expiry_ms / 1000


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verify the broker against ``KAFKA_SSL_CA_FILE`` or the system's CAs; present a client certificate if
    one is set."""
    return create_ssl_context(
        cafile=settings.kafka_ssl_ca_file,
        certfile=settings.kafka_ssl_cert_file,
        keyfile=settings.kafka_ssl_key_file,
    )


def _sasl(settings: Settings) -> tuple[str, MskIamToken | tuple[str, str]] | None:
    """The SASL mechanism and what it presents: MSK IAM's token, or a user name and password."""
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "OAUTHBEARER":
        assert settings.aws_region is not None  # Settings refuses OAUTHBEARER without it
        return mechanism, MskIamToken(settings.aws_region)
    if mechanism is None:
        return None
    assert settings.kafka_sasl_username is not None and settings.kafka_sasl_password is not None  # Settings checks
    return mechanism, (settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value())


def librdkafka(settings: Settings) -> dict[str, Any]:
    """The same settings for a librdkafka client (``shared.kafka_producer``)."""
    protocol = settings.kafka_security_protocol
    opts: dict[str, Any] = {"security.protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        opts["ssl.ca.location"] = settings.kafka_ssl_ca_file or "probe"  # probe: the system's CAs
        if settings.kafka_ssl_cert_file:
            opts["ssl.certificate.location"] = settings.kafka_ssl_cert_file
        if settings.kafka_ssl_key_file:
            opts["ssl.key.location"] = settings.kafka_ssl_key_file
    sasl = _sasl(settings)
    if sasl is not None:
        opts["sasl.mechanism"], presented = sasl
        if isinstance(presented, MskIamToken):
            opts["oauth_cb"] = presented.oauth_cb
        else:
            opts["sasl.username"], opts["sasl.password"] = presented
    return opts


def options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of every aiokafka client (consumer, admin) for these settings."""
    protocol = settings.kafka_security_protocol
    opts: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = ssl_context(settings)
    sasl = _sasl(settings)
    if sasl is not None:
        opts["sasl_mechanism"], presented = sasl
        if isinstance(presented, MskIamToken):
            opts["sasl_oauth_token_provider"] = presented
        else:
            opts["sasl_plain_username"], opts["sasl_plain_password"] = presented
    return opts
