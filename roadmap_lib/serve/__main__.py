"""``python -m roadmap_lib.serve NAME``: the same as ``python -m roadmap_lib serve NAME``."""

from .server import main

if __name__ == "__main__":
    raise SystemExit(main())
