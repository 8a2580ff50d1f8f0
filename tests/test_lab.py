"""`make lab`'s JupyterLab lists the chapters as notebooks (the generated .ipynb of each .py)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab  # starts a real JupyterLab server; `make test-unit` runs it

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_lists_chapters_as_notebooks(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    for py in chapters:
        shutil.copy2(py, notebooks / py.name)
    subprocess.run([sys.executable, str(ROOT / "tools" / "sync_notebooks.py"), *map(str, notebooks.glob("*.py"))],
                   check=True, timeout=300)
    port, token = _free_port(), "roadmap-test"
    jupyter = Path(sys.executable).parent / "jupyter"
    server = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--notebook-dir={notebooks}", "--ServerApp.open_browser=False", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/contents?token={token}"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    listing = json.load(response)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("JupyterLab did not start within 120 s")
                time.sleep(1)
        kinds = {item["name"]: item["type"] for item in listing["content"]}
        for py in chapters:
            assert kinds.get(f"{py.stem}.ipynb") == "notebook", f"{py.stem}.ipynb is not listed as a notebook: {kinds}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as response:
            assert response.status == 200 and b"JupyterLab" in response.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
