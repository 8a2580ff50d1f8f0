"""A fence around a notebook being graded: writes outside its folder and network attempts are
refused and logged, even when the notebook catches the error.

`tools/grade.py` starts each submission's kernel with ``ROADMAP_SANDBOX=<folder>`` and
``ROADMAP_SANDBOX_LOG=<file>`` (and ``tools/offline_site`` on ``PYTHONPATH``, which calls
:func:`install` at start-up). From then on, through a Python audit hook (which the notebook cannot
remove):

* opening a file for writing outside ``<folder>`` (or ``os.devnull``) raises ``PermissionError``;
* connecting a socket to any address that is not loopback raises ``PermissionError`` (the offline
  guard blocks it too; the hook also catches code that bypasses the patched socket functions).

Each refusal is also written, one line each, to the log file, which was opened before the hook was
installed and is written with ``os.write`` (no audit event), so a notebook that swallows the
exception is still reported. This is a fence against accidents and obvious misbehaviour in a class,
not a security boundary against a determined attacker: C extensions can still write anywhere.
"""

from __future__ import annotations

import os
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _is_write(mode, flags) -> bool:
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def install(folder: str, log_path: str) -> None:
    """Fence this process into ``folder``; refusals are appended to ``log_path``."""
    root = os.path.realpath(folder)
    allowed = (root + os.sep, os.path.realpath(os.devnull))
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    busy = []

    def report(kind: str, what: str) -> None:
        os.write(log_fd, f"{kind}\t{what}\n".encode("utf-8", "replace"))

    def hook(event: str, args: tuple) -> None:
        if busy:
            return
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            if isinstance(path, int) or path is None or not _is_write(mode, flags):
                return
            busy.append(1)
            try:
                real = os.path.realpath(os.fsdecode(path))
            finally:
                busy.pop()
            if real == allowed[1] or real.startswith(allowed[0]):
                return
            report("write", real)
            raise PermissionError(f"this notebook may only write inside its own folder; refused: {real}")
        if event == "socket.connect":
            address = args[1] if len(args) > 1 else None
            host = address[0] if isinstance(address, tuple) and address else address
            if isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost")):
                return
            if isinstance(address, (str, bytes)):  # a Unix socket path: local, but not ours
                report("network", repr(address))
                raise PermissionError(f"this notebook may not open sockets; refused: {address!r}")
            report("network", repr(address))
            raise PermissionError(f"this notebook may not use the network; refused: {address!r}")

    sys.addaudithook(hook)
    # The offline guard refuses connections before they reach the socket layer (so before the
    # audit event): have it report its refusals here too.
    from tools import offline_guard

    offline_guard.listeners.append(lambda message: report("network", message))
