"""The instructor guide (book/instructor_guide.md) covers every chapter of the book, names only the
exercises, labels and commands that exist, and links only pages the book builds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import make
from tools.build_book import toc_files
from tools.grade import chapter_exercises

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "book" / "instructor_guide.md"

# An exercise title as the chapters print it: "**Exercise 04.1 (causal attention from scratch).**".
# A chapter still being written may number its exercises "Exercise 1"; see notebook_exercises.
TITLE = re.compile(r"\*\*Exercise (?:(\d\d)\.)?(\d+) \((.+?)\)\.\*\*")
# An exercise named in the guide, with its title in brackets where the guide gives one.
MENTION = re.compile(r"\bExercise (\d\d)\.(\d+)\b(?: \(((?:[^()]|\([^()]*\))+)\))?", re.IGNORECASE)
LABEL = re.compile(r"`(ex-(\d\d)-[\w-]+)`")


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def toc_chapters() -> list[str]:
    """The chapter numbers that _toc.yml lists, in order."""
    return [Path(f).name[:2] for f in toc_files(ROOT / "_toc.yml") if f.startswith("notebooks/")]


def chapter_source(number: str) -> Path:
    sources = sorted((ROOT / "notebooks").glob(f"{number}_*.py"))
    assert len(sources) == 1, f"expected one notebooks/{number}_*.py, found {[p.name for p in sources]}"
    return sources[0]


def chapter_title(number: str) -> str:
    """The title after "NN. " in the chapter's first heading."""
    match = re.search(rf"^# # {number}\. (.+)$", chapter_source(number).read_text(encoding="utf-8"), re.M)
    assert match, f"{chapter_source(number).name} has no title '# # {number}. ...'"
    return match.group(1).strip()


def notebook_exercises(number: str) -> dict[int, str]:
    """Exercise number -> title, as the chapter prints them. A chapter not yet in _toc.yml (still
    being written) may print "Exercise 1"; once listed, tests/test_notebook_files.py requires
    "Exercise NN.1", and so does this function."""
    listed = number in toc_chapters()
    found = {}
    for chapter, k, title in TITLE.findall(chapter_source(number).read_text(encoding="utf-8")):
        if chapter == number or (not chapter and not listed):
            found[int(k)] = title
    return found


def sections() -> dict[str, str]:
    """Chapter number -> the guide's text from its '## NN. ...' heading to the next '## ' heading."""
    parts = re.split(r"^(?=## )", guide(), flags=re.M)
    out = {}
    for part in parts:
        match = re.match(r"## (\d\d)\. ", part)
        if match:
            assert match.group(1) not in out, f"the guide has two sections for chapter {match.group(1)}"
            out[match.group(1)] = part
    return out


def covered() -> list[str]:
    """Chapters whose exercises the guide must list: those in the book and those it describes."""
    return sorted(set(toc_chapters()) | set(sections()))


def test_the_guide_exists_and_has_a_title():
    assert guide().startswith("# Instructor guide\n")


@pytest.mark.parametrize("number", toc_chapters())
def test_every_chapter_of_the_book_has_a_section(number):
    heads = [line for line in guide().splitlines() if line.startswith(f"## {number}. ")]
    # The part of the title before a colon is enough: a subtitle may still change.
    short = chapter_title(number).split(":")[0].strip().lower()
    assert any(short in h.lower() for h in heads), (
        f"book/instructor_guide.md has no section '## {number}. {chapter_title(number)}' for a chapter "
        f"that _toc.yml lists")


def test_sections_follow_the_chapters():
    for number, text in sections().items():
        chapter_source(number)  # a section for a chapter that does not exist fails here
        for part in ("**Learning objectives.**", "**Prerequisites.**", "**Time.**", "**Exercises.**",
                     "**Predict, then measure.**", "**Feedback.**", "Run time"):
            assert part in text, f"the guide's section for chapter {number} lacks {part!r}"
    numbers = list(sections())
    assert numbers == sorted(numbers), f"chapter sections out of order: {numbers}"


def test_every_exercise_mentioned_exists():
    problems = []
    for number, k, title in MENTION.findall(guide()):
        if not list((ROOT / "notebooks").glob(f"{number}_*.py")):
            problems.append(f"Exercise {number}.{k}: there is no chapter {number}")
            continue
        exercises = notebook_exercises(number)
        if int(k) not in exercises:
            problems.append(f"Exercise {number}.{k}: chapter {number} has exercises "
                            f"{sorted(exercises)} ({chapter_source(number).name})")
        elif title and title.strip() != exercises[int(k)]:
            problems.append(f"Exercise {number}.{k}: the guide calls it {title!r}, the chapter "
                            f"{exercises[int(k)]!r}")
    assert not problems, "book/instructor_guide.md names exercises that do not exist:\n" + "\n".join(problems)


@pytest.mark.parametrize("number", covered())
def test_every_exercise_of_a_chapter_is_in_the_guide(number):
    exercises = notebook_exercises(number)
    assert exercises, f"{chapter_source(number).name} has no exercise titled '**Exercise {number}.1 (...).**'"
    text = sections().get(number, "")
    mentioned = {int(k) for n, k, _ in MENTION.findall(text) if n == number}
    missing = [f"Exercise {number}.{k} ({exercises[k]})" for k in sorted(exercises) if k not in mentioned]
    assert not missing, f"the guide's section for chapter {number} does not mention: {', '.join(missing)}"


@pytest.mark.parametrize("number", covered())
def test_labels_are_the_graders_and_match_the_numbers(number):
    """The grader's CSV names its columns by label: the guide gives each exercise's label, and the
    label on the line of "Exercise NN.k" is the k-th label of the chapter."""
    labels = chapter_exercises(number)
    text = sections().get(number, "")
    named = [label for label, n in LABEL.findall(text) if n == number]
    assert set(labels) <= set(named), f"chapter {number}: the guide does not name {sorted(set(labels) - set(named))}"
    for line in text.splitlines():
        mention, label = MENTION.search(line), LABEL.search(line)
        if mention and label and line.lstrip().startswith("- **Exercise"):
            k = int(mention.group(2))
            assert k <= len(labels) and labels[k - 1] == label.group(1), (
                f"chapter {number}: the guide gives Exercise {number}.{k} the label {label.group(1)}, "
                f"the grader reads {labels[k - 1] if k <= len(labels) else 'no such exercise'}")
    for label, n in LABEL.findall(guide()):
        assert label in chapter_exercises(n), f"the guide names {label}, which chapter {n} does not have"


def code_spans(text: str) -> list[str]:
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return fenced + re.findall(r"`([^`\n]+)`", rest)


def test_commands_shown_are_stages_of_make_py():
    shown = []
    for span in code_spans(guide()):
        shown += re.findall(r"(?:^|[\s;(])make ([\w-]+)", span, flags=re.M)
        shown += re.findall(r"\bpy(?:thon3?)? make\.py ([\w-]+)", span)
    assert {"student", "grade"} <= set(shown), f"the guide should show make student and make grade; found {shown}"
    unknown = sorted(set(shown) - set(make.STAGES))
    assert not unknown, f"the guide shows commands that make.py does not have: {unknown} (stages: {list(make.STAGES)})"
    assert "py make.py grade" in guide()


def test_doc_links_point_to_pages_the_book_builds():
    """A {doc} link to a page that _toc.yml does not list fails the book's build (only_build_toc_files,
    warnings are errors), so a chapter not yet in the book is named by its file, not linked."""
    listed = set(toc_files(ROOT / "_toc.yml"))
    for target in re.findall(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", guide()):
        resolved = (Path("book") / target).as_posix()
        parts = []
        for part in resolved.split("/"):
            if part == "..":
                parts.pop()
            else:
                parts.append(part)
        assert "/".join(parts) in listed, f"the guide links {target}, which _toc.yml does not list"
