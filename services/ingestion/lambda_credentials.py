"""The ingestion Lambda's DATABASE_URL and REDIS_URL, built at a cold start from Secrets Manager.

On EKS External Secrets assembles both into the fleet's Secret; a Lambda has no such controller and its
environment is visible to anyone who may read the function, so Terraform hands over only the secrets' ARNs
and the endpoints (infra/terraform/modules/lambda_ingestion), and the handler reads the two secrets once
per execution environment. ``urls`` is pure and builds the same URLs as the chart's ExternalSecret
template; ``load`` is the I/O. Without ``DATABASE_SECRET_ARN`` (a local run) it adds nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote


def urls(env: Mapping[str, str], database_secret: str, redis_auth_token: str) -> dict[str, Any]:
    """Settings overrides from the RDS-managed secret (JSON username/password) and the AUTH token."""
    credentials = json.loads(database_secret)
    user, password = quote(credentials["username"], safe=""), quote(credentials["password"], safe="")
    database = f"{env['DATABASE_HOST']}:{env.get('DATABASE_PORT', '5432')}/{env['DATABASE_NAME']}"
    redis = f"{env['REDIS_HOST']}:{env.get('REDIS_PORT', '6379')}"
    return {
        "database_url": f"postgresql://{user}:{password}@{database}?sslmode=require",
        "redis_url": f"rediss://:{quote(redis_auth_token, safe='')}@{redis}/0",
    }


def load(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Read both secrets (the function's role may read only these two) and build the URLs."""
    if not env.get("DATABASE_SECRET_ARN"):
        return {}
    import boto3  # only in the Lambda: the EKS services never call Secrets Manager

    secrets = boto3.client("secretsmanager")
    database = secrets.get_secret_value(SecretId=env["DATABASE_SECRET_ARN"])["SecretString"]
    token = secrets.get_secret_value(SecretId=env["REDIS_AUTH_SECRET_ARN"])["SecretString"]
    return urls(env, database, token)
