"""The process's stop request, which every wait for a dependency honours.

A service asked to stop (SIGTERM from Kubernetes, podman or ``spot up``) while it waits for Postgres, Redis
or the broker at start-up has nothing to finish: it should exit at once, not after the container runtime's
grace period and a SIGKILL. The signal handlers (``shared.lifecycle``) call ``request``; the retry loops of
``shared.postgres``, ``shared.redis``, ``shared.kafka`` and ``shared.identity`` wait with ``pause``, which
raises ``Stopping`` once the stop is requested. ``Stopping`` ends serving quietly: the consumer services'
``run_until_signal`` and the web services' server treat it as a clean stop (exit code 0).

A service already serving stops through its own ``stop`` event instead (it finishes the batch in hand);
``pause`` is only for waits where nothing has been started.
"""

from __future__ import annotations

import asyncio
import contextlib

_requested: asyncio.Event | None = None
_loop: asyncio.AbstractEventLoop | None = None


class Stopping(Exception):
    """The process was asked to stop while it waited for a dependency."""


def _event() -> asyncio.Event:
    """The event of the running loop (a new loop, as each test's ``asyncio.run`` makes, gets a new one)."""
    global _requested, _loop
    loop = asyncio.get_running_loop()
    if _requested is None or _loop is not loop:
        _requested, _loop = asyncio.Event(), loop
    return _requested


def request() -> None:
    """Ask the process to stop (from the event loop's thread, as ``loop.add_signal_handler`` calls it)."""
    _event().set()


def request_threadsafe(loop: asyncio.AbstractEventLoop) -> None:
    """``request`` from a plain signal handler or another thread: scheduled on ``loop``."""
    with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing waits any more
        loop.call_soon_threadsafe(request)


def requested() -> bool:
    return _requested is not None and _requested.is_set()


async def pause(seconds: float) -> None:
    """Sleep ``seconds`` between two tries to reach a dependency; raise ``Stopping`` as soon as a stop is
    requested (also when it was before the call)."""
    event = _event()
    if event.is_set():
        raise Stopping
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    if event.is_set():
        raise Stopping
