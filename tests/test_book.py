"""The book builds (warnings are errors) from the notebooks the test run executed, and a chapter page
works in a real browser: math is typeset, figures are shown, navigation leads somewhere.

Needs the executed notebooks that `make test-notebooks` leaves in _build/executed, and Chromium
with ChromeDriver for the browser part (Debian/Ubuntu: `apt-get install chromium chromium-driver`;
macOS: `brew install --cask chromium` and `brew install chromedriver`). Those tests are marked
`book`; the unit tests at the end (unmarked, fast) check that the staging step refuses missing or
stale executed notebooks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / "_build" / "executed"
HTML = ROOT / "_build" / "book-static" / "_build" / "html"


def _find(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def site():
    if not any(EXECUTED.glob("*.ipynb")):
        pytest.fail("no executed notebooks in _build/executed: run `make test-notebooks` first")
    subprocess.run([sys.executable, "tools/build_book.py", "--from-executed", str(EXECUTED)],
                   cwd=ROOT, check=True, timeout=1800)
    assert (HTML / "index.html").exists()
    return HTML


@pytest.mark.book
def test_every_chapter_page_exists_with_its_outputs(site):
    from tools.build_book import toc_files

    for f in toc_files(ROOT / "_toc.yml"):
        page = site / f"{f}.html"
        assert page.exists(), f"{page} was not built"
        if f.startswith("notebooks/"):
            html = page.read_text(encoding="utf-8")
            assert "cell_output" in html, f"{page.name} shows no cell outputs"
            assert "<img" in html, f"{page.name} shows no figure"
            assert "Exercise" in html and "Solution" in html, f"{page.name}: exercises/solutions missing"
            assert "Run this chapter on your machine" in html, f"{page.name}: no launch note"
            assert f"notebooks/{Path(f).name}.ipynb" in html, f"{page.name}: the launch note names no notebook"


@pytest.fixture(scope="module")
def browser():
    chrome = _find("chromium", "chromium-browser", "google-chrome", "chrome")
    driver_path = _find("chromedriver")
    if not (chrome and driver_path):
        pytest.skip("Chromium and ChromeDriver are needed for the browser check: on Debian/Ubuntu "
                    "`apt-get install chromium chromium-driver`, on macOS `brew install --cask chromium "
                    "&& brew install chromedriver` (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield drv
    drv.quit()


def _wait(predicate, timeout=30.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.book
def test_chapter_page_in_chromium(site, browser):
    from selenium.webdriver.common.by import By

    page = site / "notebooks" / "01_why_transformers.html"
    browser.get(page.as_uri())
    assert "Why transformers" in browser.title
    # MathJax (served from the site itself, no CDN) turns $...$ into mjx-container elements.
    n_math = _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "mjx-container")), what="typeset math")
    assert n_math >= 5
    images = browser.find_elements(By.CSS_SELECTOR, ".cell_output img")
    assert images, "no figure in the chapter's outputs"
    loaded = browser.execute_script(
        "return Array.from(document.querySelectorAll('.cell_output img'))"
        ".filter(i => i.complete && i.naturalWidth > 100).length")
    assert loaded >= 3, f"only {loaded} figures were displayed"
    browser.save_screenshot(str(ROOT / "_build" / "screenshot-01.png"))
    # Navigation: the sidebar links back to the book's front page, and it opens.
    links = [a for a in browser.find_elements(By.CSS_SELECTOR, "nav a") if (a.get_attribute("href") or "").endswith("intro.html")]
    assert links, "no navigation link to the front page"
    browser.execute_script("arguments[0].click();", links[0])
    _wait(lambda: browser.current_url.endswith("intro.html"), what="navigation to the front page")
    assert "Transformer Roadmap" in browser.title


# --------------------------------------------- staging refuses missing or stale executed notebooks

_T0 = 1_700_000_000 * 10**9  # a fixed time (ns): sources written then, notebooks executed later


def _touch(path: Path, text: str, at_s: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(_T0 + at_s * 10**9,) * 2)
    return path


@pytest.fixture
def tiny_book(tmp_path):
    """A repository with two chapters, a library and data (written at t=0) and both chapters'
    executed notebooks (t=10 s)."""
    root = tmp_path / "repo"
    _touch(root / "_toc.yml", "format: jb-book\nroot: book/intro\nparts:\n  - caption: One\n"
           "    chapters:\n      - file: notebooks/01_a\n      - file: notebooks/02_b\n", 0)
    _touch(root / "book" / "_config.yml", "title: t\nexecute:\n  execute_notebooks: force\n", 0)
    _touch(root / "book" / "intro.md", "# Intro\n", 0)
    _touch(root / "roadmap_lib" / "__init__.py", "", 0)
    _touch(root / "roadmap_lib" / "__pycache__" / "x.pyc", "", 99)  # not an input
    _touch(root / "kernels" / "flash.py", "", 0)
    _touch(root / "data" / "corpus.txt", "text\n", 0)
    for name in ("01_a", "02_b"):
        _touch(root / "notebooks" / f"{name}.py", "# %%\n", 0)
        _touch(root / "_build" / "executed" / f"{name}.ipynb",
               '{"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# A"}], "metadata": {}, '
               '"nbformat": 4, "nbformat_minor": 5}', 10)
    return root


def _stage(root: Path):
    from tools.build_book import stage

    return stage(root / "_build" / "executed", root=root, build=root / "_build")


def test_staging_uses_fresh_executed_notebooks(tiny_book):
    import yaml

    staged = _stage(tiny_book)
    assert sorted(p.name for p in (staged / "notebooks").iterdir()) == ["01_a.ipynb", "02_b.ipynb"]
    staged_nb = json.loads((staged / "notebooks" / "01_a.ipynb").read_text())
    assert "Run this chapter on your machine" in staged_nb["cells"][1]["source"]  # the launch note
    assert json.loads((tiny_book / "_build" / "executed" / "01_a.ipynb").read_text())["cells"][0]["source"] == "# A"
    config = yaml.safe_load((staged / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"


@pytest.mark.parametrize(("change", "stale", "reason"), [
    (lambda root: (root / "_build" / "executed" / "02_b.ipynb").unlink(), ["02_b"],
     "failed or was not run"),
    (lambda root: _touch(root / "notebooks" / "01_a.py", "# %%\n1\n", 20), ["01_a"],
     "01_a.ipynb is older than notebooks/01_a.py"),
    (lambda root: _touch(root / "roadmap_lib" / "attention.py", "", 20), ["01_a", "02_b"],
     "is older than roadmap_lib/attention.py (the library or data changed after the run)"),
    (lambda root: _touch(root / "kernels" / "flash.py", "x = 1\n", 20), ["01_a", "02_b"],
     "is older than kernels/flash.py"),
    (lambda root: _touch(root / "data" / "corpus.txt", "new\n", 20), ["01_a", "02_b"],
     "is older than data/corpus.txt"),
])
def test_staging_refuses_missing_or_stale_executed_notebooks(tiny_book, change, stale, reason):
    change(tiny_book)
    with pytest.raises(SystemExit) as err:
        _stage(tiny_book)
    message = str(err.value)
    assert reason in message, message
    for name in ("01_a", "02_b"):
        assert (f"notebooks/{name}:" in message) == (name in stale), message
    assert "make test-notebooks" in message
    assert not (tiny_book / "_build" / "book-static").exists(), "staged from stale notebooks"


def test_restaging_rewrites_only_what_changed(tiny_book):
    """`make book` twice with no change: the staged files keep their times, so Sphinx rebuilds nothing."""
    staged = _stage(tiny_book)
    sphinx_output = _touch(staged / "_build" / "html" / "index.html", "<html/>", 5)
    _touch(tiny_book / "book" / "extra.md", "# Extra\n", 0)
    _stage(tiny_book)
    for path in staged.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(_T0,) * 2)
    _stage(tiny_book)  # nothing changed
    assert all(p.stat().st_mtime_ns == _T0 for p in staged.rglob("*") if p.is_file())
    # one chapter re-executed with new outputs, one page removed from book/
    _touch(tiny_book / "_build" / "executed" / "01_a.ipynb",
           '{"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# A, again"}], "metadata": {}, '
           '"nbformat": 4, "nbformat_minor": 5}', 30)
    (tiny_book / "book" / "extra.md").unlink()
    _stage(tiny_book)
    changed = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file() and p.stat().st_mtime_ns != _T0)
    assert changed == ["notebooks/01_a.ipynb"]
    assert not (staged / "book" / "extra.md").exists()
    assert sphinx_output.exists(), "Sphinx's own output is kept"


def test_stale_chapters_names_the_sources_to_run(tiny_book):
    from tools.build_book import stale_chapters

    executed = tiny_book / "_build" / "executed"
    assert stale_chapters(executed, root=tiny_book) == []
    _touch(tiny_book / "notebooks" / "02_b.py", "# %%\n2\n", 20)
    assert stale_chapters(executed, root=tiny_book) == ["notebooks/02_b.py"]
    _touch(tiny_book / "data" / "corpus.txt", "new\n", 30)
    assert stale_chapters(executed, root=tiny_book) == ["notebooks/01_a.py", "notebooks/02_b.py"]
