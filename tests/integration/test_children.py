"""Children die with the process that started them, and only then: not with the thread that started them.

``PR_SET_PDEATHSIG`` follows the parent thread; a child started from a worker thread (a test restarting a
service through ``asyncio.to_thread``) must outlive that thread. The main-thread case, a killed ``spot up``
taking its children with it, is ``tests/e2e/test_spot_up.py``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from spot.children import die_with_parent

SCRIPT = """
import subprocess, sys, time
from spot.children import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_child_started_by_the_main_thread_dies_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(child):
            assert time.monotonic() < deadline, "the child outlived its killed parent"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_child_started_from_a_worker_thread_outlives_the_thread() -> None:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        started.append(subprocess.Popen(["sleep", "30"], preexec_fn=die_with_parent()))

    worker = threading.Thread(target=start)
    worker.start()
    worker.join()
    try:
        time.sleep(0.3)
        assert started[0].poll() is None, "the child died with the thread that started it"
    finally:
        started[0].kill()
        started[0].wait()
