"""Who holds a TCP port: the process listening on it, named for an error message.

Read from ``/proc/net/tcp{,6}`` (the listening socket's inode) and ``/proc/<pid>/fd`` (the process whose
descriptor is that socket), so ``spot up`` can refuse a port with one line that says what to stop. A
process of another user whose descriptors cannot be read is reported as such.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

LISTEN = "0A"  # the TCP state column of /proc/net/tcp for LISTEN
PROC = Path("/proc")


def is_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on ``port`` (any address, IPv4 or IPv6)."""
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(inode)
    return found


def pids_holding(inodes: set[str]) -> list[int]:
    """The processes with a descriptor on one of these socket inodes."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(entry / "fd")
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                if os.readlink(entry / "fd" / fd) in wanted:
                    pids.append(int(entry.name))
                    break
            except OSError:
                continue
    return sorted(pids)


def describe(pid: int) -> str:
    """``pid 123 (redis-server 127.0.0.1:6379)``: the pid and its command line, shortened."""
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        command = " ".join(a.decode(errors="replace") for a in argv if a)
    except OSError:
        command = "?"
    return f"pid {pid} ({command[:120]})"


def holder(port: int) -> str | None:
    """Who listens on ``port``, or None when nobody does."""
    inodes = listening_inodes(port)
    if not inodes:
        return "an unknown process" if is_open(port) else None
    pids = pids_holding(inodes)
    if not pids:
        return "a process this user cannot see"
    return ", ".join(describe(pid) for pid in pids)
