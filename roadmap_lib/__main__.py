"""The project's one command for shipped artifacts (checkpoints, results, tokenizers, task files).

    python -m roadmap_lib list                 # every artifact: chapter, files, recorded build time
    python -m roadmap_lib build NAME|all       # rebuild from its seed (missing dependencies first)
    python -m roadmap_lib build NAME --with-needs  # ... and rebuild what it needs, even if shipped
    python -m roadmap_lib verify NAME|all      # re-measure each recorded metric from data/
    python -m roadmap_lib serve NAME [--port N] # serve a zoo GPT over HTTP (chapter 26; --help)

Exit status: 0 when everything asked for was built or verified, 1 when a verification found a
mismatch (or a build failed), 2 for a usage error such as an unknown name.
"""

from __future__ import annotations

import argparse
import sys
import time

from roadmap_lib import zoo
from roadmap_lib.chapters import artifacts


def _names(registry: dict, name: str) -> list[str]:
    if name == "all":
        return list(registry)
    if name not in registry:
        raise SystemExit(f"error: unknown artifact {name!r}; expected 'all' or one of: "
                         f"{', '.join(registry)} (see `python -m roadmap_lib list`)")
    return [name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roadmap_lib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list every registered artifact")
    for command in ("build", "verify"):
        p = sub.add_parser(command, help=f"{command} one artifact, or all")
        p.add_argument("name", help="an artifact name from `list`, or 'all'")
        if command == "build":
            p.add_argument("--with-needs", action="store_true",
                           help="also rebuild the artifacts NAME needs when they are already shipped "
                                "(by default a shipped dependency is used as it is)")
    p = sub.add_parser("serve", add_help=False,
                       help="serve a zoo model: OpenAI-style /v1/completions on 127.0.0.1")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:  # its own options (and --help) are the server's
        from roadmap_lib.serve import main as serve_main

        return serve_main(argv[1:])
    args = parser.parse_args(argv)
    registry = artifacts()

    if args.command == "list":
        for a in registry.values():
            needs = f"  (needs {', '.join(a.needs)})" if a.needs else ""
            seconds = zoo.recorded_seconds(a)
            took = f"built in {seconds:,.0f} s" if seconds is not None else "build time not recorded"
            print(f"{a.name:<24} chapter {a.chapter:<5} {took:<22} {a.description}{needs}")
            for f in a.files:
                print(f"{'':<24} data/{f}")
        return 0

    try:
        names = _names(registry, args.name)
    except SystemExit as err:
        print(err, file=sys.stderr)
        return 2
    if args.command == "build":
        for a in zoo.build_order(registry, names):
            if a.name not in names and not args.with_needs and zoo.is_shipped(a):
                print(f"using the shipped {a.name} (rebuild it too with --with-needs)", flush=True)
                continue
            start = time.perf_counter()
            seconds = zoo.recorded_seconds(a)
            last = f", last build took {seconds:,.0f} s" if seconds is not None else ""
            print(f"building {a.name} (data/{a.files[0]}{last}) ...", flush=True)
            for path in zoo.build(a):
                print(f"  wrote {path} ({path.stat().st_size:,} bytes)")
            print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
        return 0
    failed = 0
    for name in names:
        checks = zoo.verify(registry[name])
        bad = [c for c in checks if not c.ok]
        failed += bool(bad)
        print(f"{name}: {'ok' if not bad else 'FAILED'}")
        for c in checks:
            print(f"  {c}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
