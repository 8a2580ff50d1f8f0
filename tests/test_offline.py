"""The offline guard: tests and notebook kernels cannot reach the network, loopback still works."""

import os
import socket
import subprocess
import sys

import pytest

from tools import offline_guard


def test_connect_to_a_public_address_is_blocked():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(offline_guard.NetworkBlocked):
        s.connect(("192.0.2.1", 80))  # TEST-NET-1, offline-guard-self-test
    offline_guard.attempts.pop()  # this attempt was on purpose


def test_dns_lookup_is_blocked():
    with pytest.raises(offline_guard.NetworkBlocked, match="DNS lookup"):
        socket.getaddrinfo("offline-guard-self-test.invalid", 443)
    offline_guard.attempts.pop()


def test_the_guard_is_not_an_oserror():
    # Libraries that catch OSError to fall back quietly must not swallow it.
    assert not issubclass(offline_guard.NetworkBlocked, OSError)


def test_loopback_still_works():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            conn, _ = server.accept()
            conn.close()


def test_kernels_get_the_guard_through_sitecustomize(root):
    # `make test-notebooks` puts tools/offline_site on PYTHONPATH: any Python it starts is guarded.
    env = dict(os.environ, PYTHONPATH=str(root / "tools" / "offline_site"), ROADMAP_OFFLINE="1")
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
        "except RuntimeError as err:\n"
        "    print('blocked:', type(err).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "blocked: NetworkBlocked", out.stderr


@pytest.mark.skipif(os.environ.get("ROADMAP_OFFLINE_NESTED") != "1", reason="run only by the test below")
def test_an_attempt_that_a_library_swallows():
    try:
        socket.getaddrinfo("offline-guard-nested-check.invalid", 443)
    except offline_guard.NetworkBlocked:
        pass  # swallowed, as mlflow's telemetry thread does


@pytest.mark.slow
def test_a_swallowed_attempt_in_an_xdist_worker_still_fails_the_run(root):
    """Workers report their attempts to the controller: the run exits non-zero and names the host."""
    env = dict(os.environ, ROADMAP_OFFLINE_NESTED="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                          "tests/test_offline.py", "-k", "swallows"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "offline-guard-nested-check.invalid" in out.stderr + out.stdout
