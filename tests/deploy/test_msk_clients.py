"""MSK as the EKS values, the init hook and the Lambda configure it: SASL_SSL with AWS IAM (OAUTHBEARER).

Every Kafka client ``shared.kafka`` makes (producer, consumer, admin) is constructed with those settings and
gets a token provider, whose token is AWS's signer's, here signed with moto's credentials; a wrong setting
stops a process at start with one line. What cannot run here is MSK itself: the token is checked for its
shape (a presigned ``kafka-cluster:Connect`` URL for the region, base64url), not presented to a broker.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from moto import mock_aws

from shared import config, kafka
from shared.kafka_security import MskIamToken

from . import chart
from .contract import PROFILES, ROOT

LAMBDA_TF = ROOT / "infra" / "terraform" / "modules" / "lambda_ingestion" / "main.tf"
REGION = "eu-west-1"
# what the Lambda's Terraform takes from variables (envs/prod: the elasticache module's cluster_mode, on), and
# what the Lambda runtime sets itself
LAMBDA_INPUTS = {
    "KAFKA_BOOTSTRAP": "b-1.spot.example.kafka.eu-west-1.amazonaws.com:9098",
    "AWS_REGION": REGION,
    "REDIS_CLUSTER": "true",
}


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Temporary credentials from moto's STS, in the environment, as Pod Identity or a Lambda role gives them."""
    with mock_aws():
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        creds = boto3.client("sts", region_name=REGION).get_session_token()["Credentials"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
        yield creds


def _decoded(token: str) -> Any:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token), "base64url without padding"
    return urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())


async def test_the_msk_iam_token_is_a_presigned_connect_url(aws_credentials: Any) -> None:
    signed: list[str] = []

    def sign(region: str) -> tuple[str, int]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        signed.append(region)
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return str(token), int(expiry_ms)

    provider = MskIamToken(REGION, sign)
    token = await provider.token()
    url = _decoded(token)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert (url.scheme, url.hostname) == ("https", f"kafka.{REGION}.amazonaws.com")
    assert query["Action"] == "kafka-cluster:Connect"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    key, _date, region, service, terminal = query["X-Amz-Credential"].split("/")
    assert (key, region, service, terminal) == (aws_credentials["AccessKeyId"], REGION, "kafka-cluster", "aws4_request")
    assert query["X-Amz-Security-Token"] == aws_credentials["SessionToken"]
    assert int(query["X-Amz-Expires"]) > 60 and re.fullmatch(r"[0-9a-f]{64}", query["X-Amz-Signature"])
    assert query["User-Agent"].startswith("aws-msk-iam-sasl-signer-python/")
    # connections opened later reuse the token until shortly before it expires
    assert await provider.token() == token and signed == [REGION]


def _inner(client: Any) -> Any:
    """The ``AIOKafkaClient`` that keeps a client's connection settings (a producer names it ``client``)."""
    return getattr(client, "_client", None) or client.client


async def _close(client: Any) -> None:
    await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())


def _eks_envs() -> dict[str, dict[str, str]]:
    """The non-secret environment of the services (ConfigMap), of the init hook, and of the Lambda."""
    docs = chart.render(PROFILES["eks"])  # values-eks.yaml with what Terraform hands over
    config_map = next(d for d in docs if d["kind"] == "ConfigMap" and "KAFKA_BOOTSTRAP" in d.get("data", {}))
    job = next(d for d in docs if d["kind"] == "Job")
    job_env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}
    block = re.search(r"environment\s*{\s*variables\s*=\s*{(.*?)}", LAMBDA_TF.read_text(), re.S)
    assert block, f"no environment block in {LAMBDA_TF}"
    lambda_env = dict(re.findall(r'^\s*(\w+)\s*=\s*"([^"]*)"', block.group(1), re.M))
    lambda_env.update(LAMBDA_INPUTS)
    return {"services": config_map["data"], "init job": job_env, "lambda": lambda_env}


@pytest.mark.parametrize("who", ["services", "init job", "lambda"])
async def test_every_kafka_client_is_made_with_the_eks_settings(
    who: str, aws_credentials: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _eks_envs()[who]
    assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "OAUTHBEARER")
    assert env.get("REDIS_CLUSTER") == "true", "ElastiCache runs in cluster mode"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = config.load()
    producer = kafka.producer_client(settings).config  # librdkafka's settings
    assert (producer["security.protocol"], producer["sasl.mechanism"], producer["ssl.ca.location"]) == (
        "SASL_SSL", "OAUTHBEARER", "probe"
    )  # fmt: skip
    signer = producer["oauth_cb"].__self__
    assert isinstance(signer, MskIamToken) and signer.region == REGION
    token, expires_s = producer["oauth_cb"]("")
    assert _decoded(token).hostname == f"kafka.{REGION}.amazonaws.com" and expires_s > time.time() + 60
    made = [kafka.consumer_client(settings, "matcher"), kafka.admin_client(settings)]
    try:
        for client in made:
            inner = _inner(client)
            assert inner._security_protocol == "SASL_SSL" and inner._sasl_mechanism == "OAUTHBEARER"
            provider = inner._sasl_oauth_token_provider
            assert isinstance(provider, MskIamToken) and provider.region == REGION
            assert _decoded(await provider.token()).hostname == f"kafka.{REGION}.amazonaws.com"
    finally:
        for client in made:
            await _close(client)


async def test_scram_is_the_alternative(monkeypatch: pytest.MonkeyPatch) -> None:
    scram = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "spot",
        "KAFKA_SASL_PASSWORD": "from-secrets-manager",
    }
    for name, value in scram.items():
        monkeypatch.setenv(name, value)
    settings = config.load()
    producer = kafka.producer_client(settings).config
    assert (producer["sasl.mechanism"], producer["sasl.username"]) == ("SCRAM-SHA-512", "spot")
    assert producer["sasl.password"] == "from-secrets-manager"
    consumer = kafka.consumer_client(settings, "matcher")
    try:
        inner = _inner(consumer)
        assert (inner._sasl_mechanism, inner._sasl_plain_username) == ("SCRAM-SHA-512", "spot")
        assert inner._sasl_plain_password == "from-secrets-manager"
    finally:
        await _close(consumer)


WRONG = [
    ({"KAFKA_SASL_MECHANISM": "FOO"}, "KAFKA_SASL_MECHANISM='FOO': Input should be"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SASL_MECHANISM": "OAUTHBEARER"}, "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SECURITY_PROTOCOL="),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
        "KAFKA_SASL_MECHANISM=OAUTHBEARER (MSK IAM) needs AWS_REGION",
    ),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "u"},
        "KAFKA_SASL_MECHANISM=SCRAM-SHA-512 needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
    ),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CA_FILE=/nonexistent"),
    ({"KAFKA_SSL_CA_FILE": "/etc/hostname"}, "KAFKA_SSL_CA_FILE needs KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"),
]


@pytest.mark.parametrize(("env", "says"), WRONG)
def test_a_wrong_kafka_setting_is_one_line(env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(config.SettingsError) as refused:
        config.load()
    assert says in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("command", [["run", "matcher"], ["run", "gateway"], ["admin", "init"]])
def test_a_process_with_a_wrong_kafka_setting_stops_at_start_in_one_line(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "AWS_"))}
    env["KAFKA_SASL_MECHANISM"] = "FOO"
    spot = Path(sys.executable).with_name("spot")
    done = subprocess.run([str(spot), *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [
        "spot: KAFKA_SASL_MECHANISM='FOO': Input should be 'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512' or 'OAUTHBEARER'"
    ]


def test_the_lambda_with_a_wrong_kafka_setting_fails_its_init_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from services.ingestion import lambda_handler

    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "FOO")
    monkeypatch.setattr(lambda_handler, "_state", {})
    with pytest.raises(config.SettingsError, match=r"^KAFKA_SASL_MECHANISM='FOO': [^\n]*$"):
        asyncio.new_event_loop().run_until_complete(lambda_handler._ready())
