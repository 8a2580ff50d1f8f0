"""The library keeps the layout DESIGN.md ("The library") gives it, checked on the source with `ast`
(nothing is imported):

* **core** (every module of ``roadmap_lib`` but ``roadmap_lib.chapters...`` and the command-line
  entry point ``roadmap_lib.__main__``) never imports chapter code nor the entry point;
* **chapter code** (``roadmap_lib.chapters.chNN_<topic>``, a module or a package) imports core and
  its own chapter's modules (same NN) only;
* the index ``roadmap_lib.chapters`` (the package itself) may import every chapter, and only
  ``roadmap_lib.__main__`` imports it; nobody imports ``roadmap_lib.__main__``;
* no import cycle among the library's modules;
* names under ``roadmap_lib/chapters/`` are ``chNN_<topic>``, every folder of the library is a
  package (has ``__init__.py``), and every import of ``roadmap_lib.X`` names a module that exists;
* every module has its test: core ``m`` -> ``tests/test_m.py``, chapter code ->
  ``tests/chapters/test_chNN_*.py``.

Every import counts, wherever it is: module level, inside a function (a lazy import), under
``if TYPE_CHECKING:``, and ``importlib.import_module("roadmap_lib...")`` with a literal name. There
is no allow-list. The checkers are pure functions over ``{path: source}`` (paths as installed:
``kernels/flash.py`` is ``roadmap_lib/kernels/flash.py``), so the tests at the end feed them small
synthetic packages to prove that each rule can fail.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "roadmap_lib"
CHAPTERS = f"{PACKAGE}.chapters"
MAIN = f"{PACKAGE}.__main__"
CHAPTER_NAME = re.compile(r"ch(?P<nn>\d\d)_[a-z0-9_]+")
#: Subpackages tested as a whole: any tests/test_tokenizers*.py covers every module of
#: roadmap_lib/tokenizers/ (one family of tokenizers sharing a base class and its tests).
WHOLE_PACKAGE_TESTS = ("tokenizers",)
#: A string literal that is exactly a chapter module's name (``"roadmap_lib.chapters.ch05_x"`` or
#: ``"roadmap_lib.chapters.ch05_x:build"``): a dynamic import a registry would resolve later.
CHAPTER_REF = re.compile(rf"{re.escape(CHAPTERS)}(\.[A-Za-z_]\w*)*(:[\w.]+)?")

RULE_CORE = "core never imports chapter code (DESIGN.md: core is reusable, chapters build on it)"
RULE_CHAPTER = "chapter code imports core and its own chapter's modules only"
RULE_INDEX = "only roadmap_lib.__main__ imports the chapter index roadmap_lib.chapters itself"
RULE_MAIN = "nobody imports roadmap_lib.__main__ (the command-line entry point)"
RULE_EXISTS = "imports of roadmap_lib name modules that exist"
RULE_RELATIVE = "a relative import stays inside roadmap_lib"


# --------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Module:
    name: str  # roadmap_lib.models.gpt
    path: str  # roadmap_lib/models/gpt.py (as installed)
    is_package: bool
    source: str


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # the absolute module the statement loads (a submodule when a name is one)
    line: int
    statement: str  # the source text, for messages
    executed: bool = True  # False for a bare string naming a module: a layering rule, no edge

    def where(self, modules: Mapping[str, Module]) -> str:
        return f"{modules[self.importer].path}:{self.line} ({self.importer}): `{self.statement}`"


def read_tree(root: Path) -> dict[str, str]:
    """``{installed path: source}`` of every ``.py`` of the library, following pyproject.toml's
    ``package-dir`` (``kernels/`` installs as ``roadmap_lib/kernels/``)."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    package_dir = config.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    roots = {PACKAGE: PACKAGE}
    roots.update({k: v for k, v in package_dir.items() if _in_package(k)})
    files: dict[str, str] = {}
    for package, folder in sorted(roots.items()):
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base)
            if any(part == "__pycache__" or part.startswith(".") for part in rel.parts):
                continue
            installed = "/".join([*package.split("."), *rel.parts])
            if installed in files:  # e.g. both roadmap_lib/kernels/x.py and kernels/x.py
                raise AssertionError(f"{installed} comes from two folders: check package-dir")
            files[installed] = path.read_text(encoding="utf-8")
    return files


def modules_of(files: Mapping[str, str]) -> dict[str, Module]:
    modules = {}
    for path, source in files.items():
        parts = path[: -len(".py")].split("/")
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = Module(name, path, is_package, source)
    return modules


def _resolve_relative(module: Module, level: int, name: str | None) -> str | None:
    base = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    if level - 1 >= len(base):
        return None
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([name] if name else [])])


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def imports_of(module: Module, known: Iterable[str]) -> tuple[list[Import], list[str]]:
    """The ``roadmap_lib`` imports of one module, and the errors found resolving them."""
    known = set(known)
    tree = ast.parse(module.source, filename=module.path)
    lines = module.source.splitlines()
    found: list[Import] = []
    errors: list[str] = []

    def text(node) -> str:
        segment = ast.get_source_segment(module.source, node)
        return " ".join((segment or lines[node.lineno - 1]).split())

    def add(target: str, node, executed: bool = True) -> None:
        if _in_package(target):
            found.append(Import(module.name, target, node.lineno, text(node), executed))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, node.level, node.module)
                if base is None:
                    errors.append(f"{module.path}:{node.lineno} ({module.name}): `{text(node)}` "
                                  f"goes above {PACKAGE} - {RULE_RELATIVE}")
                    continue
            else:
                base = node.module or ""
            if not _in_package(base):
                continue
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            for target in sorted({name if name in known else base for name in submodules}):
                add(target, node)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0] if node.args else None
            if (called in ("import_module", "__import__") and isinstance(first, ast.Constant)
                    and isinstance(first.value, str)):
                add(first.value, node)
        elif isinstance(node, ast.Constant) and CHAPTER_REF.fullmatch(str(node.value)):
            add(node.value.split(":")[0], node, executed=False)
    # A string literal that is the argument of import_module is reported once, as the call.
    calls = {(i.target, i.line) for i in found if i.executed}
    found = [i for i in found if i.executed or (i.target, i.line) not in calls]
    return found, errors


def all_imports(modules: Mapping[str, Module]) -> tuple[list[Import], list[str]]:
    found, errors = [], []
    for module in modules.values():
        imports, errs = imports_of(module, modules)
        found += imports
        errors += errs
    return found, errors


# --------------------------------------------------------------------------------------- rules


def kind(name: str) -> str:
    if name == MAIN:
        return "main"
    if name == CHAPTERS:
        return "index"
    if name.startswith(CHAPTERS + "."):
        return "chapter"
    return "core"


def chapter_of(name: str) -> str:
    """``"06"`` for ``roadmap_lib.chapters.ch06_encoder_only.finetune`` (the whole name's first
    component under chapters/ when it is not ``chNN_...``, so that it is its own chapter)."""
    first = name[len(CHAPTERS) + 1:].split(".")[0]
    match = CHAPTER_NAME.fullmatch(first)
    return match["nn"] if match else first


def layer_violations(files: Mapping[str, str]) -> list[str]:
    """Every import that breaks a layering rule, and every import that cannot be resolved."""
    modules = modules_of(files)
    imports, errors = all_imports(modules)
    out = list(errors)
    for imp in imports:
        src, dst = kind(imp.importer), kind(imp.target)
        how = "imports" if imp.executed else "names (a dynamic import)"
        rule = None
        if imp.target == imp.importer:
            continue
        if dst == "main":
            rule = RULE_MAIN
        elif dst == "index" and src != "main":
            rule = RULE_INDEX
        elif dst == "chapter" and src == "core":
            rule = RULE_CORE
        elif (dst == "chapter" and src == "chapter"
              and chapter_of(imp.target) != chapter_of(imp.importer)):
            rule = (f"{RULE_CHAPTER}: chapter {chapter_of(imp.importer)} may not use chapter "
                    f"{chapter_of(imp.target)} (promote the piece to core, with its tests)")
        if rule:
            out.append(f"{imp.where(modules)} {how} {imp.target} - {rule}")
        if imp.executed and imp.target not in modules:
            out.append(f"{imp.where(modules)} imports {imp.target}, which does not exist - "
                       f"{RULE_EXISTS}")
    return out


def naming_violations(files: Mapping[str, str]) -> list[str]:
    """Names under roadmap_lib/chapters/ are chNN_<topic>; every folder holding modules has an
    ``__init__.py`` (an implicit namespace package is easy to leave out of the wheel)."""
    out = set()
    prefix = PACKAGE + "/chapters/"
    holds: dict[str, list[str]] = {}
    for path in sorted(files):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if f"{folder}/__init__.py" not in files:
                holds.setdefault(folder, []).append(path[len(folder) + 1:])
        if path.startswith(prefix) and path != prefix + "__init__.py":
            entry = path[len(prefix):].split("/")[0]
            stem = entry.removesuffix(".py")
            if not CHAPTER_NAME.fullmatch(stem):
                out.add(f"{prefix}{entry} - names under {prefix} are chNN_<topic> (two digits, "
                        f"then lower-case letters, digits and _); shared code belongs in core")
    for folder, inside in holds.items():
        shown = ", ".join(inside[:3]) + (f" and {len(inside) - 3} more" if len(inside) > 3 else "")
        out.add(f"{folder}/ has no __init__.py but holds {shown} - every folder of the library is "
                f"a package (setuptools would leave a folder without one out of the wheel)")
    return sorted(out)


def find_cycles(files: Mapping[str, str]) -> list[str]:
    """One cycle (as the path of imports that closes it) per strongly connected component."""
    modules = modules_of(files)
    imports, _ = all_imports(modules)
    edges: dict[str, dict[str, Import]] = {name: {} for name in modules}
    for imp in imports:
        if imp.executed and imp.target in modules and imp.target != imp.importer:
            edges[imp.importer].setdefault(imp.target, imp)

    # Tarjan's strongly connected components, iteratively (no recursion limit to worry about).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    out = []
    for component in components:
        members, start = set(component), component[0]
        # Shortest way around from the component's first module back to itself (BFS).
        previous: dict[str, str] = {}
        frontier, seen, closing = [start], {start}, None
        while frontier and closing is None:
            nxt = []
            for node in frontier:
                for child in sorted(edges[node]):
                    if child == start:
                        closing = node
                        break
                    if child in members and child not in seen:
                        seen.add(child)
                        previous[child] = node
                        nxt.append(child)
                if closing is not None:
                    break
            frontier = nxt
        path = [start]
        node = closing
        while node != start:
            path.insert(1, node)
            node = previous[node]
        path.append(start)
        steps = "\n".join(f"    {a} -> {b}   ({edges[a][b].where(modules)})"
                          for a, b in itertools.pairwise(path))
        out.append(f"import cycle among {', '.join(component)}:\n{steps}")
    return out


def missing_tests(files: Iterable[str], tests: Iterable[str]) -> list[str]:
    """Library modules without their test module. ``tests`` are paths relative to ``tests/``."""
    tests = sorted(t for t in tests if Path(t).name.startswith("test_") and t.endswith(".py"))
    out = []
    seen_chapters = set()
    for path in sorted(files):
        parts = path[: -len(".py")].split("/")[1:]  # without roadmap_lib
        if parts[0] == "chapters" and len(parts) > 1:
            if parts[1] == "__init__":
                continue  # the index: tested through the registry it assembles (tests/test_zoo.py)
            entry = parts[1]
            match = CHAPTER_NAME.fullmatch(entry)
            if entry in seen_chapters or not match:
                continue  # a badly named entry is reported by naming_violations
            seen_chapters.add(entry)
            want = f"chapters/test_ch{match['nn']}_*.py"
            if not any(re.fullmatch(rf"chapters/test_ch{match['nn']}_\w+\.py", t) for t in tests):
                out.append(f"{PACKAGE}/chapters/{entry} has no tests/{want}")
            continue
        stem, package = parts[-1], parts[:-1]
        if stem.startswith("_"):
            continue  # __init__, __main__ and private helpers are tested through their package
        flat = "_".join([*package, stem])
        accepted = [rf"test_{flat}(_\w+)?\.py"]
        wanted = [f"tests/test_{flat}[_*].py"]
        if package:
            accepted.append(rf"{'/'.join(package)}/test_{stem}(_\w+)?\.py")
            wanted.append(f"tests/{'/'.join(package)}/test_{stem}[_*].py")
            if package[0] in WHOLE_PACKAGE_TESTS:
                accepted.append(rf"test_{package[0]}\w*\.py")
                wanted.append(f"tests/test_{package[0]}*.py")
        if not any(re.fullmatch(pattern, t) for pattern in accepted for t in tests):
            out.append(f"{path} has no {' or '.join(wanted)}")
    return out


# -------------------------------------------------------------------------- the real library


@pytest.fixture(scope="module")
def library() -> dict[str, str]:
    files = read_tree(ROOT)
    for package in (PACKAGE, f"{PACKAGE}/kernels"):
        assert f"{package}/__init__.py" in files, sorted(files)
    return files


def _report(title: str, problems: list[str]) -> str:
    return f"{title} ({len(problems)}):\n" + "\n".join(f"  {p}" for p in problems)


def test_imports_follow_the_layers(library):
    problems = layer_violations(library)
    assert not problems, _report("imports that break DESIGN.md's layering", problems)


def test_no_import_cycles(library):
    cycles = find_cycles(library)
    assert not cycles, _report("import cycles", cycles)


def test_chapter_names_and_packages(library):
    problems = naming_violations(library)
    assert not problems, _report("layout problems", problems)


def test_every_module_has_its_test(library):
    tests = [p.relative_to(ROOT / "tests").as_posix() for p in (ROOT / "tests").rglob("test_*.py")]
    problems = missing_tests(library, tests)
    assert not problems, _report("modules without tests (tests mirror the library)", problems)


def test_code_outside_the_library_imports_modules_that_exist(library):
    """Notebooks, tests, tools and benchmarks import only modules of roadmap_lib that exist (a
    move inside the library must update every importer)."""
    modules = modules_of(library)
    problems = []
    for folder in ("notebooks", "tests", "tools", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(ROOT).as_posix()
            outsider = Module(f"_outside.{rel}", rel, False, path.read_text(encoding="utf-8"))
            try:
                imports, _ = imports_of(outsider, modules)
            except SyntaxError as err:
                problems.append(f"{rel}:{err.lineno}: not valid Python ({err.msg})")
                continue
            for imp in imports:
                if imp.executed and imp.target not in modules:
                    problems.append(f"{rel}:{imp.line}: `{imp.statement}` imports {imp.target}, "
                                    f"which does not exist")
    assert not problems, _report("imports of missing roadmap_lib modules", problems)


# ------------------------------------------------------------- the checkers, on synthetic trees


CLEAN = {
    "roadmap_lib/__init__.py": "",
    "roadmap_lib/__main__.py": (
        "from roadmap_lib.chapters import ch05_translation\nimport roadmap_lib.chapters\n"),
    "roadmap_lib/fileio.py": "import os\n",
    "roadmap_lib/attention.py": "from . import DATA_DIR\nfrom .fileio import atomic_path\n",
    "roadmap_lib/models/__init__.py": "",
    "roadmap_lib/models/gpt.py": "from ..attention import attention\nfrom .. import fileio\n",
    "roadmap_lib/chapters/__init__.py": "from . import ch05_translation, ch06_encoder_only\n",
    "roadmap_lib/chapters/ch05_translation.py": "from roadmap_lib.models import gpt\n",
    "roadmap_lib/chapters/ch06_plots.py": "import roadmap_lib.attention\n",
    "roadmap_lib/chapters/ch06_encoder_only/__init__.py": "from .pretrain import run\n",
    "roadmap_lib/chapters/ch06_encoder_only/pretrain.py": "from ...models.gpt import GPT\n",
    "roadmap_lib/chapters/ch06_encoder_only/finetune.py": (
        "from . import pretrain\nfrom .. import ch06_plots\n"
        "def go():\n    from roadmap_lib.chapters.ch06_encoder_only.pretrain import run\n"),
}
CLEAN_TESTS = ["test_fileio.py", "test_attention.py", "models/test_gpt.py",
               "chapters/test_ch05_translation.py", "chapters/test_ch06_bert.py"]


def test_a_clean_tree_passes():
    assert layer_violations(CLEAN) == []
    assert find_cycles(CLEAN) == []
    assert naming_violations(CLEAN) == []
    assert missing_tests(CLEAN, CLEAN_TESTS) == []


def test_relative_imports_resolve_like_python():
    modules = modules_of(CLEAN)
    targets = {m: sorted(i.target for i in imports_of(modules[m], modules)[0]) for m in modules}
    assert targets["roadmap_lib.attention"] == ["roadmap_lib", "roadmap_lib.fileio"]
    assert targets["roadmap_lib.models.gpt"] == ["roadmap_lib.attention", "roadmap_lib.fileio"]
    assert targets["roadmap_lib.chapters"] == ["roadmap_lib.chapters.ch05_translation",
                                              "roadmap_lib.chapters.ch06_encoder_only"]
    assert targets["roadmap_lib.chapters.ch06_encoder_only"] == [
        "roadmap_lib.chapters.ch06_encoder_only.pretrain"]
    assert targets["roadmap_lib.chapters.ch06_encoder_only.finetune"] == [
        "roadmap_lib.chapters.ch06_encoder_only.pretrain",
        "roadmap_lib.chapters.ch06_encoder_only.pretrain", "roadmap_lib.chapters.ch06_plots"]
    assert targets["roadmap_lib.chapters.ch06_encoder_only.pretrain"] == ["roadmap_lib.models.gpt"]


@pytest.mark.parametrize("source", [
    "from roadmap_lib.chapters.ch05_translation import run\n",
    "import roadmap_lib.chapters.ch05_translation\n",
    "from .chapters.ch05_translation import run\n",
    "from .chapters import ch05_translation\n",
    "def lazy():\n    from .chapters.ch05_translation import run\n    return run\n",
    "import importlib\nM = importlib.import_module('roadmap_lib.chapters.ch05_translation')\n",
    "REGISTRY = {'bert': 'roadmap_lib.chapters.ch05_translation:build'}\n",
])
def test_core_importing_chapter_code_is_reported(source):
    problems = layer_violations({**CLEAN, f"{PACKAGE}/zoo.py": source})
    assert len(problems) == 1, problems
    assert problems[0].startswith("roadmap_lib/zoo.py:")
    assert "roadmap_lib.chapters.ch05_translation" in problems[0] and RULE_CORE in problems[0]


def test_a_chapter_importing_another_chapter_is_reported():
    tree = {**CLEAN, f"{PACKAGE}/chapters/ch06_encoder_only/finetune.py":
            "def f():\n    from ..ch05_translation import run\n"}
    problems = layer_violations(tree)
    assert len(problems) == 1, problems
    assert "ch06_encoder_only/finetune.py:2" in problems[0]
    assert "`from ..ch05_translation import run`" in problems[0]
    assert RULE_CHAPTER in problems[0] and "chapter 06 may not use chapter 05" in problems[0]


@pytest.mark.parametrize(("path", "source", "rule"), [
    ("attention.py", "from roadmap_lib import chapters\n", RULE_INDEX),
    ("chapters/ch05_translation.py", "from .. import chapters\n", RULE_INDEX),
    ("chapters/ch05_translation.py", "import roadmap_lib.chapters\n", RULE_INDEX),
    ("chapters/ch05_translation.py", "from . import REGISTRY\n", RULE_INDEX),
    ("attention.py", "from roadmap_lib.__main__ import main\n", RULE_MAIN),
    ("chapters/__init__.py", "from .. import __main__\n", RULE_MAIN),
    ("attention.py", "from roadmap_lib.bert_plots import plot\n", RULE_EXISTS),
    ("attention.py", "from .... import x\n", RULE_RELATIVE),
])
def test_other_broken_rules_are_reported(path, source, rule):
    problems = layer_violations({**CLEAN, f"{PACKAGE}/{path}": source})
    assert len(problems) == 1, problems
    assert rule in problems[0] and f"{PACKAGE}/{path}:1" in problems[0], problems


def test_a_cycle_through_a_lazy_import_is_reported_with_its_path():
    lazy = "def later():\n    from roadmap_lib.attention import attention\n"
    tree = {**CLEAN, f"{PACKAGE}/fileio.py": lazy}
    cycles = find_cycles(tree)
    assert len(cycles) == 1, cycles
    assert "roadmap_lib.attention -> roadmap_lib.fileio" in cycles[0]
    assert "roadmap_lib.fileio -> roadmap_lib.attention   (roadmap_lib/fileio.py:2" in cycles[0]


def test_a_longer_cycle_and_the_package_init_are_nodes_of_the_graph():
    tree = {**CLEAN,
            # roadmap_lib -> models.gpt -> attention -> roadmap_lib (`from . import DATA_DIR`)
            f"{PACKAGE}/__init__.py": "from .models.gpt import GPT\n",
            # a module importing itself is no cycle
            f"{PACKAGE}/chapters/ch05_translation.py": "from . import ch05_translation\n"}
    cycles = find_cycles(tree)
    assert len(cycles) == 1, cycles
    lines = cycles[0].splitlines()[1:]
    assert [line.split("(")[0].strip() for line in lines] == [
        "roadmap_lib -> roadmap_lib.models.gpt",
        "roadmap_lib.models.gpt -> roadmap_lib.attention",
        "roadmap_lib.attention -> roadmap_lib",
    ]


def test_bad_chapter_names_and_missing_init_are_reported():
    tree = {**CLEAN, f"{PACKAGE}/chapters/common.py": "", f"{PACKAGE}/chapters/ch5_x.py": "",
            f"{PACKAGE}/chapters/ch07_Decoder/__init__.py": "", f"{PACKAGE}/viz/plots.py": ""}
    problems = naming_violations(tree)
    assert len(problems) == 4, problems
    assert "roadmap_lib/viz/ has no __init__.py but holds plots.py - " in "\n".join(problems)
    assert {p.split(" ")[0] for p in problems} == {
        "roadmap_lib/viz/", "roadmap_lib/chapters/common.py", "roadmap_lib/chapters/ch5_x.py",
        "roadmap_lib/chapters/ch07_Decoder"}


def test_missing_tests_are_all_reported_at_once():
    tree = {**CLEAN, f"{PACKAGE}/tokenizers/bpe.py": "", f"{PACKAGE}/kernels/fused_softmax.py": "",
            f"{PACKAGE}/kernels/_env.py": ""}
    tests = ["test_fileio_atomic.py", "test_tokenizers.py", "test_kernels_softmax.py",
             "chapters/test_ch05_translation.py"]
    problems = missing_tests(tree, tests)
    assert problems == [
        "roadmap_lib/attention.py has no tests/test_attention[_*].py",
        "roadmap_lib/chapters/ch06_encoder_only has no tests/chapters/test_ch06_*.py",
        "roadmap_lib/chapters/ch06_plots has no tests/chapters/test_ch06_*.py",
        ("roadmap_lib/kernels/fused_softmax.py has no tests/test_kernels_fused_softmax[_*].py "
         "or tests/kernels/test_fused_softmax[_*].py"),
        ("roadmap_lib/models/gpt.py has no tests/test_models_gpt[_*].py "
         "or tests/models/test_gpt[_*].py"),
    ]


def test_read_tree_installs_kernels_under_the_library(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"roadmap_lib.kernels" = "kernels"\n', encoding="utf-8")
    for rel in ("roadmap_lib/__init__.py", "roadmap_lib/chapters/__init__.py",
                "kernels/__init__.py", "kernels/flash.py", "roadmap_lib/__pycache__/x.py",
                "tests/test_x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("# " + rel, encoding="utf-8")
    assert read_tree(tmp_path) == {
        "roadmap_lib/__init__.py": "# roadmap_lib/__init__.py",
        "roadmap_lib/chapters/__init__.py": "# roadmap_lib/chapters/__init__.py",
        "roadmap_lib/kernels/__init__.py": "# kernels/__init__.py",
        "roadmap_lib/kernels/flash.py": "# kernels/flash.py",
    }
