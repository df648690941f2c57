"""The fleet's image, built from services/Dockerfile with podman, runs every service as a Deployment would:
read-only root, uid 10001, no capabilities, against the test servers on the host network; one signed order
becomes a trade and reaches both owners' user streams, and each container stops with code 0.

The build (``scripts/build-image.sh``) is the one ``make image`` runs: a few minutes on a fresh machine (a
Debian base from debootstrap where no registry answers), seconds when podman's layers are still there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from spot import admin
from spot.fleet import SERVICES, Launcher
from tests.client import Client
from tests.e2e.conftest import _run
from tests.faults import proxy_to, through

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PODMAN = ["bash", str(ROOT / "scripts" / "podman.sh")]
IMAGE = os.environ.get("SPOT_TEST_IMAGE", "localhost/spot-exchange:test")
BUILD_TIMEOUT_S = 900  # a first build: debootstrap, then pip and the compiled core; measured ~4-5 min here


def podman(*args: str) -> str:
    return subprocess.run([*PODMAN, *args], check=True, capture_output=True, text=True, cwd=ROOT).stdout


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built once per run (podman's layer cache makes a rebuild of unchanged sources quick)."""
    install = subprocess.run(["bash", "scripts/install-podman.sh"], capture_output=True, text=True, cwd=ROOT)
    if install.returncode != 0:
        pytest.skip(f"podman cannot be installed on this machine: {(install.stderr or install.stdout)[-500:]}")
    build = subprocess.run(
        ["bash", "scripts/build-image.sh", IMAGE], capture_output=True, text=True, cwd=ROOT, timeout=BUILD_TIMEOUT_S
    )
    assert build.returncode == 0, f"scripts/build-image.sh failed:\n{build.stderr[-4000:]}"
    return IMAGE


def in_containers(image: str, run: str) -> Launcher:
    """Each service in a container of ``image``, hardened as the chart and compose run it. Settings reach it
    as ``--env NAME`` (the value from podman's environment, so no secret is on a command line)."""

    def launch(name: str, env: Mapping[str, str]) -> list[str]:
        return [
            *PODMAN,
            "run",
            "--rm",
            f"--name=spot-{run}-{name.replace('#', '-')}",
            f"--label=spot-test={run}",
            "--network=host",  # the test servers listen on 127.0.0.1
            "--read-only",
            "--tmpfs=/tmp",
            "--user=10001:10001",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "--health-interval=disable",  # no systemd here for podman's timers; the test runs the check itself
            *(f"--env={key}" for key in sorted(env)),
            image,
            name.partition("#")[0],
        ]

    return launch


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_image_runs_every_service_hardened_and_one_order_trades_and_reaches_the_user_streams(
    image: str, fresh_env: dict[str, str]
) -> None:
    built = json.loads(podman("image", "inspect", image))[0]
    assert built["Config"]["User"] == "10001:10001"
    assert (built.get("Healthcheck") or {}).get("Test", [""])[0] == "CMD", "no HEALTHCHECK: build with --format docker"

    run = secrets.token_hex(4)
    postgres = proxy_to(fresh_env["DATABASE_URL"])  # the test Postgres listens on a Unix socket only: TCP to it
    # the containers' root is read-only, so the keys come in the environment, as the chart's Secret gives them
    keys = {name: base64.b64encode(os.urandom(32)).decode() for name in ("SERVICE_KEY", "ENVELOPE_KEY")}
    env = dict(fresh_env, DATABASE_URL=through(fresh_env["DATABASE_URL"], postgres), **keys)
    fleet_cm = contextlib.contextmanager(_run)(env, in_containers(image, run))
    try:
        with fleet_cm as running:
            names = podman("ps", "--filter", f"label=spot-test={run}", "--format", "{{.Names}}").split()
            assert sorted(names) == sorted(f"spot-{run}-{s}" for s in SERVICES)
            for container in names:
                shown = json.loads(podman("inspect", container))[0]
                assert shown["HostConfig"]["ReadonlyRootfs"] is True and shown["Config"]["User"] == "10001:10001"
            podman("healthcheck", "run", f"spot-{run}-gateway")  # the image's HEALTHCHECK, run as podman would

            asyncio.run(_one_trade(running.base, running.settings))
        codes = {name: p.returncode for name, p in running.fleet.procs.items()}
        assert codes == dict.fromkeys(codes, 0), f"exit codes after SIGTERM: {codes}"
    finally:
        left = podman("ps", "-aq", "--filter", f"label=spot-test={run}").split()
        if left:
            podman("rm", "-f", *left)
        postgres.stop()


async def _one_trade(base: str, settings: object) -> None:
    maker_u = await admin.create_user(settings, "image-maker", [("BTC", 10**8)])  # type: ignore[arg-type]
    taker_u = await admin.create_user(settings, "image-taker", [("USDT", 10_000 * 10**8)])  # type: ignore[arg-type]
    maker, taker = Client(base, maker_u.api_key, maker_u.secret), Client(base, taker_u.api_key, taker_u.secret)
    maker_stream, taker_stream = await maker.user_stream(), await taker.user_stream()
    try:
        ask = await maker.order(
            symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01", price="50000"
        )
        await maker_stream.wait_for(lambda e: e.get("e") == "executionReport" and e["i"] == ask["orderId"])
        bid = await taker.order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="50000"
        )
        assert bid["status"] == "FILLED", bid
        for stream, order_id in ((maker_stream, ask["orderId"]), (taker_stream, bid["orderId"])):
            report = await stream.wait_for(
                lambda e, o=order_id: e.get("e") == "executionReport" and e["i"] == o and e["X"] == "FILLED"
            )
            assert (report["L"], report["l"]) == ("50000.00000000", "0.01000000")
    finally:
        for closing in (maker_stream, taker_stream, maker, taker):
            await closing.close()
