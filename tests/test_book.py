"""The book builds (warnings are errors) from the notebooks the test run executed, and a chapter page
works in a real browser: math is typeset, figures are shown, navigation leads somewhere.

Needs the executed notebooks that `make test-notebooks` leaves in _build/executed, and Chromium
with ChromeDriver for the browser part (Debian/Ubuntu: `apt-get install chromium chromium-driver`;
macOS: `brew install --cask chromium` and `brew install chromedriver`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / "_build" / "executed"
HTML = ROOT / "_build" / "book-static" / "_build" / "html"
pytestmark = pytest.mark.book


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
