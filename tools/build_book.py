"""Build the Jupyter Book site.

    python tools/build_book.py --from-executed DIR  # `make book`, the book test: notebooks already executed
    python tools/build_book.py --stale DIR          # which chapters must run again first
    python tools/build_book.py --execute            # run the chapters one by one (jupyter-cache)

The site is built from a staging copy of the book (``_toc.yml``, ``book/`` and the chapters) so
that the generated ``notebooks/*.ipynb`` a reader's JupyterLab keeps beside the sources never
collide with them. With ``--execute`` the chapters are the jupytext sources and Jupyter Book runs
them through its execution cache (``_build/.jupyter_cache``): a second build with no change runs
nothing. With ``--from-executed`` the chapters are the notebooks that ``make test-notebooks``
executed (outputs included) and nothing is run; the build refuses, naming the chapters, when an
executed notebook is missing or older than what it ran (its ``.py``, the library, ``data/``), so
the site never shows an earlier run's outputs. Warnings are errors in both. `make book` runs the
stale chapters with `make test-notebooks` (two at a time) and then builds from the executed copies,
so a second `make book` with no change runs nothing. The staging copy is updated file by file
(:func:`sync_tree`): unchanged pages keep their time stamps and Sphinx does not rebuild them.

Every chapter page gets a "Run this chapter" note after its title cell (:func:`add_launch_note`):
the static site cannot run code, so it tells a reader the notebook's path and the one command that
opens it on their machine. The note exists only in the staged copy, never in the chapter's source.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"


def toc_files(toc_path: Path) -> list[str]:
    """Every file the table of contents names, in order."""
    toc = yaml.safe_load(toc_path.read_text())
    found: list[str] = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc.get("parts", toc.get("chapters", [])))
    return found


#: What a chapter's run depends on besides its own source: the library and the shipped data.
RUN_INPUTS = ("roadmap_lib", "kernels", "data")


def _newest_input(root: Path) -> tuple[int, Path] | None:
    newest = None
    for folder in RUN_INPUTS:
        for path in (root / folder).rglob("*"):
            rel = path.relative_to(root).parts
            hidden = any(part.startswith(".") or part == "__pycache__" for part in rel)
            if hidden or not path.is_file():
                continue
            mtime = path.stat().st_mtime_ns
            if newest is None or mtime > newest[0]:
                newest = (mtime, path)
    return newest


def executed_problems(chapters: list[str], executed: Path, root: Path = ROOT) -> list[str]:
    """Why executed notebooks cannot stand for these chapters (``notebooks/NN_slug`` as in
    _toc.yml): missing (the chapter failed or was not run), or older than the chapter's ``.py``,
    or older than a file of the library or of ``data/`` (the outputs may have changed since)."""
    newest = _newest_input(root)
    problems = []
    for chapter in chapters:
        notebook = executed / f"{Path(chapter).name}.ipynb"
        source = root / f"{chapter}.py"
        if not notebook.exists():
            problems.append(f"{chapter}: no {notebook} (the chapter failed or was not run)")
            continue
        ran = notebook.stat().st_mtime_ns
        if source.exists() and source.stat().st_mtime_ns > ran:
            problems.append(f"{chapter}: {notebook} is older than {source.relative_to(root)}")
        elif newest is not None and newest[0] > ran:
            problems.append(f"{chapter}: {notebook} is older than {newest[1].relative_to(root)} "
                            f"(the library or data changed after the run)")
    return problems


LAUNCH_NOTE = """```{{admonition}} Run this chapter on your machine
:class: tip
This page was executed when the site was built; it cannot run code. To run the chapter yourself,
clone the book's repository, run `make lab` (Linux and macOS; `TORCH=cpu make lab` on Linux
without an NVIDIA GPU) or `py make.py lab` (Windows), and open `notebooks/{name}.ipynb` in
JupyterLab. To run it as a test instead: `make test-notebooks NB=notebooks/{name}.py` (or
`py make.py test-notebooks NB=notebooks/{name}.py`).
```"""


def add_launch_note(path: Path) -> None:
    """Insert the launch note as the second cell of the chapter at ``path`` (.ipynb or jupytext .py)."""
    name = path.stem
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise SystemExit(f"{path}: not a notebook (no list of cells)")
        note = {"cell_type": "markdown", "metadata": {}, "source": LAUNCH_NOTE.format(name=name)}
        nb["cells"].insert(1, note)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    cells = text.split("\n# %%")
    if len(cells) < 3:
        raise SystemExit(f"{path}: expected a header, a title cell and more cells")
    note = "\n".join(("# " + line).rstrip() for line in LAUNCH_NOTE.format(name=name).splitlines())
    cells.insert(2, f" [markdown]\n{note}\n")
    path.write_text("\n# %%".join(cells), encoding="utf-8")


def stage(executed: Path | None, root: Path = ROOT, build: Path = BUILD) -> Path:
    chapters = [f for f in toc_files(root / "_toc.yml") if f.startswith("notebooks/")]
    if executed:
        problems = executed_problems(chapters, executed, root)
        if problems:
            stale = [f"{c}.py" for c in chapters if any(p.startswith(f"{c}:") for p in problems)]
            rerun = "make test-notebooks"
            if len(stale) < len(chapters):
                rerun += f' NB="{" ".join(stale)}"'
            raise SystemExit("refusing to build the book from missing or stale executed notebooks:"
                             + "".join(f"\n  {p}" for p in problems) + f"\nrun `{rerun}` first")
    stage_dir = build / ("book-static" if executed else "book-src")
    build.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build) as tmp:
        fresh = Path(tmp)
        (fresh / "notebooks").mkdir(parents=True)
        shutil.copy2(root / "_toc.yml", fresh / "_toc.yml")
        shutil.copytree(root / "book", fresh / "book", ignore=shutil.ignore_patterns("_build"))
        missing = []
        for chapter in chapters:
            name = Path(chapter).name
            src = (executed / f"{name}.ipynb") if executed else (root / f"{chapter}.py")
            if not src.exists():
                missing.append(str(src))
                continue
            shutil.copy2(src, fresh / "notebooks" / src.name)
            add_launch_note(fresh / "notebooks" / src.name)
        if missing:
            raise SystemExit(f"chapters named in _toc.yml are missing: {', '.join(missing)}")
        config = yaml.safe_load((root / "book" / "_config.yml").read_text())
        config["execute"]["execute_notebooks"] = "off" if executed else "cache"
        config["execute"]["cache"] = str(build / ".jupyter_cache")
        (fresh / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        sync_tree(fresh, stage_dir, keep={"_build"})
    return stage_dir


def sync_tree(src: Path, dst: Path, keep: set[str] = frozenset()) -> list[Path]:
    """Make ``dst`` hold exactly the files of ``src``, touching only what differs: a file whose
    bytes are unchanged keeps its modification time, so Sphinx (which rebuilds pages by time)
    rebuilds only the pages that changed. Top-level names in ``keep`` (Sphinx's own ``_build``)
    are left alone. Returns the files written."""
    written = []
    wanted = {p.relative_to(src) for p in src.rglob("*") if p.is_file()}
    if dst.exists():
        for path in sorted(dst.rglob("*"), reverse=True):
            rel = path.relative_to(dst)
            if rel.parts[0] in keep:
                continue
            if path.is_file() and rel not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    for rel in sorted(wanted):
        target = dst / rel
        new = (src / rel).read_bytes()
        if target.is_file() and target.read_bytes() == new:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(new)
        written.append(target)
    return written


def stale_chapters(executed: Path, root: Path = ROOT) -> list[str]:
    """The chapter sources (``notebooks/NN_slug.py``) whose executed copy is missing or stale."""
    chapters = [f for f in toc_files(root / "_toc.yml") if f.startswith("notebooks/")]
    problems = executed_problems(chapters, executed, root)
    return [f"{c}.py" for c in chapters if any(p.startswith(f"{c}:") for p in problems)]


def build(stage_dir: Path) -> Path:
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(stage_dir), "--toc", str(stage_dir / "_toc.yml"),
           "--config", str(stage_dir / "_config.yml"), "-W", "--keep-going"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    html = stage_dir / "_build" / "html"
    print(f"The site is in {html}; open {html / 'index.html'}")
    return html


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--execute", action="store_true", help="run the chapters (cached)")
    mode.add_argument("--from-executed", type=Path, metavar="DIR", help="use executed notebooks")
    mode.add_argument("--stale", type=Path, metavar="DIR",
                      help="print the chapters whose executed copy in DIR is missing or stale, one per line")
    args = parser.parse_args()
    if args.stale:
        print("\n".join(stale_chapters(args.stale.resolve())))
        return 0
    try:
        build(stage(args.from_executed.resolve() if args.from_executed else None))
    except subprocess.CalledProcessError as err:
        print(f"jupyter-book failed with exit status {err.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
