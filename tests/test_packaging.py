"""The wheel holds the whole library: every package folder of roadmap_lib/ (the chapters included),
kernels/ as roadmap_lib/kernels/, and nothing else at its top level (no `kernels` package, which
would shadow the Hugging Face distribution of that name).

The wheel is built offline from a copy of the packaging files and the sources (so the build's
`build/` and `*.egg-info` never land in the working tree), with the environment's setuptools
(`--no-build-isolation`: nothing is downloaded).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.packaging]

#: Source folders, and where the wheel puts them (pyproject.toml's package-dir).
SOURCES = {"roadmap_lib": "roadmap_lib", "kernels": "roadmap_lib/kernels"}
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*.egg-info", "build")


def _source_files() -> dict[str, Path]:
    """``{path in the wheel: source file}`` for every module of the library."""
    files = {}
    for folder, installed in SOURCES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder)
            if "__pycache__" not in rel.parts:
                files[f"{installed}/{rel.as_posix()}"] = path
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> list[str]:
    src = tmp_path_factory.mktemp("src")
    for path in ROOT.iterdir():  # pyproject.toml, setup.py, README.md, ...: the top-level files
        if path.is_file():
            shutil.copy2(path, src / path.name)
    for folder in SOURCES:
        shutil.copytree(ROOT / folder, src / folder, ignore=IGNORE)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--wheel-dir", str(out), str(src)],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (
        f"building the wheel failed (is setuptools installed? it is in the test extra):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    wheels = list(out.glob("roadmap_lib-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, found {[w.name for w in out.iterdir()]}"
    with zipfile.ZipFile(wheels[0]) as zf:
        return zf.namelist()


def test_every_module_of_the_library_is_in_the_wheel(wheel):
    missing = sorted(set(_source_files()) - set(wheel))
    assert not missing, f"{len(missing)} modules are missing from the wheel: {missing}"


def test_every_package_folder_is_in_the_wheel(wheel):
    inits = [Path(p) for p in _source_files() if p.endswith("/__init__.py")]
    packages = sorted(p.parent.as_posix() for p in inits)
    assert "roadmap_lib/chapters" in packages, "the source has no roadmap_lib/chapters/__init__.py"
    for package in packages:
        assert f"{package}/__init__.py" in wheel, f"{package}/ is not in the wheel"
    assert "roadmap_lib/chapters/__init__.py" in wheel
    assert "roadmap_lib/kernels/flash.py" in wheel


def test_nothing_but_roadmap_lib_at_the_top_of_the_wheel(wheel):
    top = {name.split("/")[0] for name in wheel}
    kernels = [name for name in wheel if name.startswith("kernels/")]
    assert not kernels, f"the wheel installs a top-level `kernels` package: {kernels}"
    extra = sorted(t for t in top if t != "roadmap_lib" and not t.endswith(".dist-info"))
    assert not extra, f"the wheel installs more than roadmap_lib at its top level: {extra}"
