"""Postgres credentials from AWS Secrets Manager, so a rotated Aurora password never stops the fleet.

With ``DATABASE_SECRET_ID`` (a secret's ARN or name; ``DATABASE_SECRET_ARN`` is accepted too) the user and
password of every Postgres connection come from that secret instead of ``DATABASE_URL``, which keeps the host,
port, database and options. The secret is the JSON Secrets Manager's rotation functions for RDS write
(``{"username": ..., "password": ..., ...}``; other keys ignored) or a plain string, the password alone.

It is read once at start, not on every connection, and read again when Postgres refuses the password
(``InvalidPasswordError``): a rotation changed it. Every connection goes through ``connect`` (the pools of
``shared.postgres``, ``shared.identity``'s and ``spot admin``'s own connections; migrations take ``url``).
Credentials live in process memory only: never logged (``SecretUnavailable`` names the secret, not its
value), never written. boto3 takes its AWS credentials from its own chain; ``AWS_ENDPOINT_URL`` points it at
an emulator (moto) as it does for the archive. The region is ``AWS_REGION``, else the one the secret's ARN
names (a pod with an IAM role but no region setting still finds its secret).

A read is bounded like a Postgres connect (``postgres_timeout_ms``, two tries), and runs on a daemon thread:
a Secrets Manager endpoint that does not answer (a VPC without a route or endpoint to it) would otherwise
keep the process from exiting after a stop request abandoned the read, since Python waits for its executor's
threads at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from .config import Settings


class SecretUnavailable(ConnectionError):
    """The database secret could not be read: Postgres is as good as unreachable (waited for, retried)."""


_cache: dict[str, dict[str, str]] = {}  # secret id -> {"user", "password"}; one read per process and rotation
_locks: dict[tuple[str, int], asyncio.Lock] = {}  # per event loop: a lock waits on the loop it was made in


def _parse(secret: str) -> dict[str, str]:
    try:
        doc = json.loads(secret)
    except ValueError:
        return {"password": secret}
    if not isinstance(doc, dict) or not isinstance(doc.get("password"), str):
        return {"password": secret} if isinstance(doc, str) else {}
    found = {"password": doc["password"]}
    if isinstance(doc.get("username"), str):
        found["user"] = doc["username"]
    return found


def region_of(secret_id: str) -> str | None:
    """The region an ARN names (``arn:aws:secretsmanager:<region>:<account>:secret:<name>``); None for a name."""
    parts = secret_id.split(":")
    if len(parts) < 7 or parts[0] != "arn":
        return None
    return parts[3] or None


READ_TRIES = 2  # botocore's tries per read; the retry loop around the connect (shared.postgres) tries again


def _read(settings: Settings) -> dict[str, str]:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    secret_id = settings.database_secret_id
    assert secret_id is not None
    timeout_s = settings.postgres_timeout_ms / 1000
    try:
        client = boto3.session.Session().client(
            "secretsmanager",
            endpoint_url=settings.aws_endpoint_url,
            region_name=settings.aws_region or region_of(secret_id),
            config=Config(
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"total_max_attempts": READ_TRIES, "mode": "standard"},
            ),
        )
        value = client.get_secret_value(SecretId=secret_id)
    except (BotoCoreError, ClientError) as exc:
        raise SecretUnavailable(f"database secret {secret_id}: {type(exc).__name__}: {exc}") from None
    found = _parse(value.get("SecretString") or "")
    if "password" not in found:
        raise SecretUnavailable(f"database secret {secret_id} holds no password (want JSON with 'password')")
    return found


async def credentials(settings: Settings, refused: dict[str, str] | None = None) -> dict[str, str]:
    """``user``/``password`` to connect with ({} without a secret). ``refused``: the ones Postgres just turned
    down, so the secret is read again, unless another connection already has since."""
    secret_id = settings.database_secret_id
    if not secret_id:
        return {}
    lock = _locks.setdefault((secret_id, id(asyncio.get_running_loop())), asyncio.Lock())
    async with lock:
        known = _cache.get(secret_id)
        if known is None or (refused is not None and known == refused):
            known = _cache[secret_id] = await _on_daemon_thread(_read, settings)
        return known


T = TypeVar("T")


async def _on_daemon_thread(call: Callable[[Settings], T], settings: Settings) -> T:
    """``call(settings)`` on a thread of its own that never holds the process at exit (``asyncio.to_thread``'s
    executor threads are joined then); cancelling the await abandons the call, whose result is dropped."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return  # the await was cancelled (a stop request): nobody wants it
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = call(settings), None
        except BaseException as exc:  # handed to the awaiting task, as to_thread would
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the process is ending
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="database-secret", daemon=True).start()
    return await done


Connect = Callable[..., Awaitable[asyncpg.Connection]]


def connector(settings: Settings) -> Connect:
    """``asyncpg.connect`` with the secret's credentials, for ``asyncpg.Pool(connect=...)``: a refused password
    reads the secret again and tries once more."""

    async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        creds = await credentials(settings)
        try:
            return await asyncpg.connect(*args, **{**kwargs, **creds})
        except asyncpg.InvalidPasswordError:
            if not settings.database_secret_id:
                raise
            creds = await credentials(settings, refused=creds)
            return await asyncpg.connect(*args, **{**kwargs, **creds})

    return connect


async def connect(settings: Settings, **kwargs: Any) -> asyncpg.Connection:
    """One connection to ``DATABASE_URL`` with the current credentials."""
    return await connector(settings)(settings.database_url, **kwargs)


async def url(settings: Settings) -> str:
    """``DATABASE_URL`` with the secret's user and password in it, for tools that take a URL (Alembic)."""
    creds = await credentials(settings)
    if not creds:
        return settings.database_url
    parts = urllib.parse.urlsplit(settings.database_url)
    user = creds.get("user", urllib.parse.unquote(parts.username or ""))
    host = parts.netloc.rpartition("@")[2]
    auth = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(creds['password'], safe='')}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{auth}@{host}"))
