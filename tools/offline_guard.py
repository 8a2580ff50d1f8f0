"""The offline guard: any attempt to reach a host other than this machine raises NetworkBlocked.

The book promises that no chapter and no test downloads anything. The guard makes a broken promise
loud instead of silently slow: `install()` patches the socket layer of the current process so that
connecting to (or resolving) a non-loopback address raises :class:`NetworkBlocked`, a
``RuntimeError`` so that libraries which catch ``OSError`` to fall back quietly cannot swallow it.
Loopback stays open: Jupyter kernels, ChromeDriver and local servers use it.

The tests install it from ``tests/conftest.py``; notebook kernels get it through
``tools/offline_site/sitecustomize.py`` (the Makefile puts that folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import ipaddress
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}
attempts: list[str] = []
#: Called with the message of every blocked attempt (tools/sandbox.py logs them for the grader).
listeners: list = []


class NetworkBlocked(RuntimeError):
    """Raised when code tries to open a network connection during the book's tests."""


def _is_local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return addr.is_loopback or addr.is_unspecified


def _blocked(what: str, target) -> NetworkBlocked:
    message = (
        f"network access blocked: {what} {target!r}. The book runs offline: data comes from data/, "
        "transformers models are built from configs with random weights."
    )
    attempts.append(message)
    for listener in listeners:
        listener(message)
    return NetworkBlocked(message)


def install() -> None:
    """Patch this process's socket layer (idempotent)."""
    if getattr(socket, "_roadmap_offline", False):
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise _blocked("connect to", address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise _blocked("connect to", address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host):
            raise _blocked("DNS lookup of", host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    socket._roadmap_offline = True
