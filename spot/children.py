"""Child processes that die with the process that started them, however it ends.

``spot up`` (and the tests' server fixture) start Tansu, redis-server, Postgres and every service. A
``spot up`` killed with SIGKILL runs no cleanup, so each child asks the kernel, between fork and exec, to
be sent a signal when its parent goes (Linux ``prctl(PR_SET_PDEATHSIG)``). A child whose parent died before
the request took effect (the race between fork and prctl) sees another parent and exits at once.

The kernel sends the signal when the parent *thread* ends, not the process: a child started from another
thread (a test restarting a service through ``asyncio.to_thread``) would be killed when that worker thread
exits. So only the main thread asks for it; a child started elsewhere is not covered (known limit).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)  # loaded before any fork


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when its parent dies. None (no
    request) outside the main thread, whose end would kill the child while its process lives on.

    ``sig`` is the child's chance to stop cleanly (SIGINT for Postgres' fast shutdown, SIGTERM for
    redis-server's last append); SIGKILL where there is nothing to save.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def request() -> None:  # runs in the child, after fork, before exec: no allocation-heavy work
        if _LIBC.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the parent died before prctl: nobody will send the signal
            os._exit(125)

    return request
