"""What KEDA's Kafka scaler accepts, read from ../shared/crds/keda-kafka-scaler-params.md (taken from the
scaler's source at a pinned commit), and the problems a `kafka` trigger has against it.

The CRD cannot say this: trigger metadata is a map of strings, so `sasl: aws_msk_iam` passes the schema
and fails only in the operator, where the ScaledObject never becomes active.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .contract import CRD_DIR

PARAMS = CRD_DIR / "keda-kafka-scaler-params.md"


@dataclass(frozen=True)
class Accepted:
    enums: dict[str, frozenset[str]]  # key -> accepted values
    metadata_keys: frozenset[str]  # every key the scaler reads from trigger metadata
    booleans: frozenset[str]


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


@cache
def accepted(path: Path = PARAMS) -> Accepted:
    text = path.read_text()
    enums = {}
    for line in _section(text, "Enumerated values").splitlines():
        match = re.match(r"- `(\w+)`(?: \([^)]*\))?: (.+)", line)
        if match:
            head = match.group(2).split(". ")[0]
            enums[match.group(1)] = frozenset(re.findall(r"`([^`]+)`", head))
    keys_text = _section(text, "Trigger metadata keys the scaler reads")
    keys = set(re.findall(r"`([a-zA-Z]+)`", keys_text))
    bullets = re.split(r"\n- ", keys_text)  # a bullet may wrap onto the next line
    booleans = set(re.findall(r"`([a-zA-Z]+)`", next(b for b in bullets if b.startswith("Booleans"))))
    return Accepted(
        enums={k: v for k, v in enums.items() if v},
        metadata_keys=frozenset(keys - {"apache-kafka"}),
        booleans=frozenset(booleans),
    )


def _integer(value: str) -> int | None:
    return int(value) if re.fullmatch(r"-?\d+", value.strip()) else None


def trigger_problems(metadata: dict[str, Any], auth_params: frozenset[str] = frozenset()) -> list[str]:
    """Problems of one kafka trigger's metadata; `auth_params` are the keys its TriggerAuthentication sets
    (a key set there, such as SCRAM's `sasl` from a Secret, is read from it when metadata lacks it)."""
    rules = accepted()
    problems = []
    for key, value in metadata.items():
        if not isinstance(value, str):
            problems.append(f"{key}: {value!r} is not a string (trigger metadata is map[string]string)")
            continue
        if key not in rules.metadata_keys:
            problems.append(f"{key}: not a key the Kafka scaler reads")
        if key in rules.enums and value.strip() not in rules.enums[key]:
            problems.append(f"{key}: {value!r} not in {sorted(rules.enums[key])}")
        if key in rules.booleans and value.strip().lower() not in {"true", "false"}:
            problems.append(f"{key}: {value!r} is not a boolean")
    for key in ("bootstrapServers", "consumerGroup"):
        if key not in metadata and f"{key}FromEnv" not in metadata:
            problems.append(f"{key}: required")
    lag = _integer(str(metadata.get("lagThreshold", "10")))
    if lag is None or lag <= 0:
        problems.append(f"lagThreshold: {metadata.get('lagThreshold')!r} must be an integer > 0")
    activation = _integer(str(metadata.get("activationLagThreshold", "0")))
    if activation is None or activation < 0:
        problems.append(f"activationLagThreshold: {metadata.get('activationLagThreshold')!r} must be an integer >= 0")
    sasl = str(metadata.get("sasl", "")).strip()
    provider = str(metadata.get("saslTokenProvider", "")).strip()
    if provider == "aws_msk_iam":
        if sasl != "oauthbearer":
            problems.append("saslTokenProvider aws_msk_iam is only read with sasl: oauthbearer")
        if str(metadata.get("tls", "")).strip() != "enable" and "tls" not in auth_params:
            problems.append("aws_msk_iam needs tls: enable")
        if not str(metadata.get("awsRegion", "")).strip():
            problems.append("aws_msk_iam needs awsRegion")
    if sasl in {"plaintext", "scram_sha256", "scram_sha512"} and not {"username", "password"} <= auth_params:
        problems.append(f"sasl {sasl} needs username and password in the TriggerAuthentication")
    if sasl == "oauthbearer" and provider in {"", "bearer"}:
        if not {"username", "password", "oauthTokenEndpointUri"} <= auth_params:
            problems.append("sasl oauthbearer (bearer) needs username, password, oauthTokenEndpointUri")
    if metadata.get("allowIdleConsumers") == "true" and metadata.get("limitToPartitionsWithLag") == "true":
        problems.append("allowIdleConsumers and limitToPartitionsWithLag cannot both be true")
    return problems


def auth_params(trigger_authentication: dict[str, Any] | None) -> frozenset[str]:
    if not trigger_authentication:
        return frozenset()
    spec = trigger_authentication.get("spec", {})
    return frozenset(ref["parameter"] for ref in spec.get("secretTargetRef", []) + spec.get("env", []))
