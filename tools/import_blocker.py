"""Make chosen packages impossible to import, as on a machine where they are not installed.

``ROADMAP_BLOCK_IMPORTS=triton`` (a comma-separated list) in the environment, with
``tools/offline_site`` on ``PYTHONPATH``, makes every Python started with that environment (a test
subprocess, a notebook kernel) behave as if the packages were absent: ``import triton`` raises
``ModuleNotFoundError`` and ``importlib.util.find_spec("triton")`` returns None, so libraries that
probe for the package (torch, transformers) see it missing too, and nothing half-imported remains.

tests/test_no_triton.py uses it to run chapter 13 and the kernel tests the way a reader on macOS or
Windows would.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder


class _HiddenFinder(MetaPathFinder):
    """Wraps another finder so that it never finds the blocked names (find_spec returns None)."""

    def __init__(self, inner, names: set[str]):
        self.inner, self.names = inner, names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            return None
        return self.inner.find_spec(fullname, path, target)

    def invalidate_caches(self):
        if hasattr(self.inner, "invalidate_caches"):
            self.inner.invalidate_caches()

    def __getattr__(self, name):
        return getattr(self.inner, name)


def install(names: str | list[str]) -> None:
    """Hide ``names`` (a list, or a comma-separated string) from every later import."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    blocked = {n for n in names if n}
    if not blocked:
        return
    for name in list(sys.modules):
        if name.split(".")[0] in blocked:
            del sys.modules[name]
    sys.meta_path[:] = [_HiddenFinder(f, blocked) for f in sys.meta_path]
