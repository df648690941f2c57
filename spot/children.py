"""Child processes that die with the process that started them, however it ends.

``spot up`` (and the tests' server fixture) start Tansu, redis-server, Postgres and every service. A
``spot up`` killed with SIGKILL runs no cleanup, so each child asks the kernel, between fork and exec, to
be sent a signal when its parent goes (Linux ``prctl(PR_SET_PDEATHSIG)``). A child whose parent died before
the request took effect (the race between fork and prctl) sees another parent and exits at once.

Known limit: the signal follows the parent *thread*, so a child must be started from a thread that lives as
long as the process (the main thread, as everywhere here).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)  # loaded before any fork


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when its parent dies.

    ``sig`` is the child's chance to stop cleanly (SIGINT for Postgres' fast shutdown, SIGTERM for
    redis-server's last append); SIGKILL where there is nothing to save.
    """
    parent = os.getpid()

    def request() -> None:  # runs in the child, after fork, before exec: no allocation-heavy work
        if _LIBC.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the parent died before prctl: nobody will send the signal
            os._exit(125)

    return request
