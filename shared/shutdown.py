"""The process's stop request, which every wait for a dependency honours.

A service asked to stop (SIGTERM from Kubernetes, podman or ``spot up``) while it waits for Postgres, Redis
or the broker at start-up has nothing to finish: it should exit at once, not after the container runtime's
grace period and a SIGKILL. The signal handlers (``shared.lifecycle``) call ``request``. Two kinds of wait
honour it, and both end in ``Stopping``:

- ``pause``, the sleep between two tries (the retry loops of ``shared.postgres``, ``shared.redis``,
  ``shared.kafka`` and ``shared.identity``), raises it once the stop is requested;
- ``attempt``, around a try itself (a connect, a first request), abandons it: a server that blackholes the
  connection (SYN dropped, or accepted and never answered) would otherwise hold the try for its whole timeout
  (5-15 s: ``redis_timeout_ms``, ``postgres_timeout_ms``, ``kafka_request_timeout_ms``) after the stop.

``Stopping`` ends serving quietly: the consumer services' ``run_until_signal`` and the web services' server
treat it as a clean stop (exit code 0).

A service already serving stops through its own ``stop`` event instead (it finishes the batch in hand);
``pause`` and ``attempt`` are only for waits where nothing has been started, so abandoning one loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

_requested: asyncio.Event | None = None
_loop: asyncio.AbstractEventLoop | None = None
_attempts: set[_Attempt] = set()  # the tries in progress, abandoned by ``request``


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
    """Ask the process to stop (from the event loop's thread, as ``loop.add_signal_handler`` calls it); every
    try in progress (``attempt``) is abandoned."""
    _event().set()
    loop = asyncio.get_running_loop()
    for pending in list(_attempts):
        pending.abandon(loop)


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


class _Attempt:
    """``async with attempt():`` a try to reach a dependency, cancelled when the stop is requested.

    Works as ``asyncio.timeout`` does: ``request`` cancels the task that runs the block, and the block's exit
    turns that cancellation (whatever the library made of it) into ``Stopping``. A cancellation that came from
    elsewhere as well stays a cancellation. Nested attempts in one task each cancel it once; the innermost
    passes the cancellation on and the outermost raises ``Stopping``.
    """

    __slots__ = ("_abandoned", "_task")

    def __init__(self) -> None:
        self._task: asyncio.Task[object] | None = None
        self._abandoned = False

    async def __aenter__(self) -> None:
        if _event().is_set():
            raise Stopping
        self._task = asyncio.current_task()
        if self._task is not None:
            _attempts.add(self)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _attempts.discard(self)
        if not self._abandoned or self._task is None:
            return
        if self._task.uncancel() > 0:
            return  # cancelled by someone else too: the cancellation goes on
        raise Stopping from None

    def abandon(self, loop: asyncio.AbstractEventLoop) -> None:
        task = self._task
        if self._abandoned or task is None or task.done() or task.get_loop() is not loop:
            return
        self._abandoned = True
        task.cancel()


def attempt() -> _Attempt:
    """A try to reach a dependency that a stop request abandons (``Stopping``): ``async with attempt(): ...``."""
    return _Attempt()
