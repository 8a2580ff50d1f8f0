"""Draw the book's chapter map: the 26 chapters by part, which are written, and what each builds on.

    python tools/chapter_map.py            # writes book/_static/chapter_map.png
    python tools/chapter_map.py --check    # does book/chapter_map.md agree with this file and _toc.yml?

A chapter counts as written when `_toc.yml` lists it, so after adding a chapter to the table of
contents, rerun this script and update its row in `book/chapter_map.md` (`--check` names the rows
that disagree). The prerequisites of a written chapter are the ones its "What you need" cell names;
those of a chapter not written yet are the plan, and may change when it is written.

The figure draws an arrow from a chapter to one that builds on it only when no longer path already
joins them (a transitive reduction), so that it shows the order of reading without a thicket of
arrows; the page's tables list every prerequisite.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `tools` importable
    sys.path.insert(0, str(ROOT))

from tools.build_book import toc_files

FIGURE = ROOT / "book" / "_static" / "chapter_map.png"
PAGE = ROOT / "book" / "chapter_map.md"

#: The thirteen parts, in order (the roadmap outline's grouping).
PARTS = [
    "Introduction and historical context",
    "Fundamentals of the Transformer architecture",
    "Core transformer variants",
    "Scaling laws and emergent capabilities",
    "Training paradigms and methodologies",
    "Parameter-efficient and performance optimisations",
    "Resource-efficient fine-tuning",
    "Inference and output generation",
    "Alignment and responsible AI",
    "Datasets, benchmarks and evaluation",
    "Common NLP applications",
    "Multimodal extensions and future directions",
    "Practical implementation and deployment",
]
ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII"]

#: number -> (slug, short title, part index, prerequisites)
CHAPTERS: dict[str, tuple[str, str, int, tuple[str, ...]]] = {
    "01": ("why_transformers", "Why transformers", 0, ()),
    "02": ("tokenization_embeddings", "Tokenization & embeddings", 1, ("01",)),
    "03": ("positional_encodings", "Positional encodings", 1, ("02",)),
    "04": ("core_components", "Core components", 1, ("01", "03")),
    "05": ("encoder_decoder", "Encoder-decoder", 2, ("02", "03", "04")),
    "06": ("encoder_only", "Encoder-only", 2, ("02", "04")),
    "07": ("decoder_only", "Decoder-only", 2, ("02", "03", "04")),
    "08": ("text_to_text", "Text-to-text", 2, ("03", "05", "06")),
    "09": ("scaling_laws_emergence", "Scaling laws & emergence", 3, ("04", "07")),
    "10": ("pretraining_finetuning", "Pre-training & fine-tuning", 4, ("04", "06", "07", "08", "09", "15")),
    "11": ("prompting_distillation", "Prompting & distillation", 4, ("04", "06", "07")),
    "12": ("efficient_architectures", "Efficient architectures", 5, ("04", "07")),
    "13": ("flashattention_kernels", "FlashAttention kernels", 5, ("04",)),
    "14": ("quantization", "Quantization", 5, ("04", "07")),
    "15": ("inference_optimization", "Inference optimization", 5, ("04", "07")),
    "16": ("peft_lora_qlora", "PEFT: LoRA & QLoRA", 6, ("05", "07", "14")),
    "17": ("llmops", "LLMOps", 6, ("05", "07", "15", "16")),
    "18": ("decoding_generation", "Decoding & generation", 7, ("04", "07")),
    "19": ("alignment", "Alignment", 8, ("04", "07", "18")),
    "20": ("responsible_ai", "Responsible AI", 8, ("06", "07", "16", "18", "19")),
    "21": ("evaluation", "Evaluation", 9, ("05", "07", "14", "15")),
    "22": ("applications", "Applications", 10, ("05", "06", "07", "10", "21")),
    "23": ("long_context_rag", "Long context & RAG", 10, ("03", "04", "07", "13")),
    "24": ("multimodal", "Multimodal", 11, ("02", "04", "06")),
    "25": ("multilingual_economics_frontiers", "Multilingual,\neconomics, frontiers", 11, ("02", "07", "09", "11", "15", "18")),
    "26": ("deployment", "Deployment", 12, ("07", "14", "15", "18")),
}


def written(root: Path = ROOT) -> set[str]:
    """The chapter numbers that `_toc.yml` lists."""
    return {Path(f).name[:2] for f in toc_files(root / "_toc.yml") if f.startswith("notebooks/")}


def reduced_edges() -> list[tuple[str, str]]:
    """(prerequisite, chapter) pairs with no longer path between them."""
    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for pre in CHAPTERS[node][3]:
                if (pre, node) != skip and pre not in seen:
                    seen.add(pre)
                    todo.append(pre)
        return seen

    return [(pre, ch) for ch, (*_, pres) in CHAPTERS.items() for pre in pres
            if pre not in reachable(ch, skip=(pre, ch))]


#: The figure's rows, top to bottom: every chapter sits below all its prerequisites, at most four
#: to a row so that the figure stays readable at the width of a page, and arrows skip as few rows as
#: that allows (this placement came out of a small search over the rows; keep it when a status changes).
ROWS = [
    ("01",), ("02",), ("03",), ("04",),
    ("05", "06", "07", "13"),
    ("09", "12", "14", "15"),
    ("08", "11", "18", "23"),
    ("24", "21", "19", "16"),
    ("10", "25", "26"),
    ("17", "20", "22"),
]


def layers() -> dict[str, int]:
    """Each chapter's row in the figure (ROWS), checked: below all of its prerequisites."""
    row = {number: r for r, numbers in enumerate(ROWS) for number in numbers}
    if sorted(row) != sorted(CHAPTERS):
        raise ValueError(f"ROWS must place each chapter once; it places {sorted(row)}")
    for number, (*_, pres) in CHAPTERS.items():
        above = [p for p in pres if row[p] >= row[number]]
        if above:
            raise ValueError(f"ROWS puts chapter {number} in row {row[number]}, not below {above}")
    return row


def layout(width: float, node_w: float, dummy_w: float = 0.22, gap: float = 0.14, sweeps: int = 8
           ) -> tuple[dict[str, tuple[float, float]], list[tuple[str, str, list[tuple[float, float]]]]]:
    """A small layered (Sugiyama-style) layout of the reduced graph, in the rows of ROWS.

    An arrow that skips rows passes through one invisible "dummy" point per skipped row, so that
    it is routed between the boxes instead of across them. Each row is ordered by the mean x of
    its items' neighbours (a few sweeps down and up), then each item is placed as near that mean
    as it can be without overlapping the one before it. Returns each chapter's centre (x, row) and
    each arrow as (prerequisite, chapter, the points it passes through).
    """
    row = layers()
    items: list[list[str]] = [list(numbers) for numbers in ROWS]
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    chains = []
    for pre, ch in reduced_edges():
        dummies = [f"{pre}>{ch}@{r}" for r in range(row[pre] + 1, row[ch])]
        for dummy in dummies:
            items[int(dummy.split("@")[1])].append(dummy)
        chain = [pre, *dummies, ch]
        for a, b in itertools.pairwise(chain):
            succ.setdefault(a, []).append(b)
            pred.setdefault(b, []).append(a)
        chains.append((pre, ch, chain))

    def size(item: str) -> float:
        return dummy_w if ">" in item else node_w

    x: dict[str, float] = {}
    for row_items in items:  # start from the order given, packed and centred
        pos = (width - sum(size(i) + gap for i in row_items) + gap) / 2
        for item in row_items:
            x[item] = pos + size(item) / 2
            pos += size(item) + gap

    def place(row_items: list[str], neighbours: dict[str, list[str]]) -> None:
        want = {i: sum(x[n] for n in neighbours[i]) / len(neighbours[i]) if neighbours.get(i) else x[i]
                for i in row_items}
        row_items.sort(key=lambda i: (want[i], i))
        # As near the wanted places as the row allows: push right past the left edge and each
        # neighbour, then back left from the right edge.
        pos = 0.0
        for item in row_items:
            x[item] = max(want[item], pos + size(item) / 2)
            pos = x[item] + size(item) / 2 + gap
        pos = width
        for item in reversed(row_items):
            x[item] = min(x[item], pos - size(item) / 2)
            pos = x[item] - size(item) / 2 - gap

    for _ in range(sweeps):
        for r in range(1, len(items)):
            place(items[r], pred)
        for r in range(len(items) - 2, -1, -1):
            place(items[r], succ)
    for r in range(1, len(items)):
        place(items[r], pred)

    def y(item: str) -> float:
        return float(int(item.split("@")[1]) if ">" in item else row[item])

    centres = {n: (x[n], y(n)) for n in CHAPTERS}
    return centres, [(pre, ch, [(x[i], y(i)) for i in chain]) for pre, ch, chain in chains]


def _label(title: str, limit: int = 17) -> str:
    """The title on at most two lines, broken at a space."""
    if "\n" in title or len(title) <= limit:
        return title
    cut = title.rfind(" ", 0, limit + 1)
    return title[:cut] + "\n" + title[cut + 1:]


def draw(path: Path = FIGURE, done: set[str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyBboxPatch, PathPatch
    from matplotlib.path import Path as MplPath

    done = written() if done is None else done
    width, node_w, node_h = 12.0, 1.6, 0.62
    centres, arrows = layout(width=width, node_w=node_w)
    fig, ax = plt.subplots(figsize=(width, 0.9 * len(ROWS)))
    ax.set_xlim(-0.08, width + 0.08)
    ax.set_ylim(len(ROWS) - 0.5, -0.5)
    ax.axis("off")
    ink, grey, blue = "#243b53", "#8a96a3", "#2f6690"

    for number, (x, y) in centres.items():
        is_done = number in done
        ax.add_patch(FancyBboxPatch(
            (x - node_w / 2, y - node_h / 2), node_w, node_h, boxstyle="round,pad=0,rounding_size=0.07",
            facecolor=blue if is_done else "white", edgecolor=blue if is_done else grey,
            linestyle="-" if is_done else (0, (4, 2)), linewidth=1.3, zorder=3))
        _, title, part, _ = CHAPTERS[number]
        colour = "white" if is_done else "#3e4c59"
        ax.text(x, y - node_h / 2 + 0.06, f"{number}", ha="center", va="top", zorder=4, fontsize=11,
                fontweight="bold", color=colour)
        ax.text(x + node_w / 2 - 0.06, y - node_h / 2 + 0.07, f"{ROMAN[part]}", ha="right", va="top",
                zorder=4, fontsize=8, color="#bcccdc" if is_done else grey)
        ax.text(x, y + 0.11, _label(title), ha="center", va="center", zorder=4, fontsize=9.5,
                color=colour, linespacing=1.05)

    for _, chapter, points in arrows:
        planned = chapter not in done
        colour = grey if planned else ink
        # From the bottom of one box to the top of the next: an S-curve across each gap between
        # rows, and a straight drop through each row it skips (between that row's boxes).
        pts = [(points[0][0], points[0][1] + node_h / 2)]
        for px, py in points[1:-1]:
            pts += [(px, py - node_h / 2), (px, py + node_h / 2)]
        pts.append((points[-1][0], points[-1][1] - node_h / 2))
        verts, codes = [pts[0]], [MplPath.MOVETO]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            if x0 == x1:
                verts.append((x1, y1))
                codes.append(MplPath.LINETO)
                continue
            half = (y1 - y0) / 2
            verts += [(x0, y0 + half), (x1, y1 - half), (x1, y1)]
            codes += [MplPath.CURVE4] * 3
        ax.add_patch(PathPatch(MplPath(verts, codes), facecolor="none", edgecolor=colour, zorder=2,
                               linewidth=1.0 if planned else 1.4, linestyle=(0, (3, 2)) if planned else "-"))
        tip = pts[-1]
        ax.annotate("", xy=tip, xytext=(tip[0], tip[1] - 0.1), zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": colour, "mutation_scale": 12, "linewidth": 0.1})

    handles = [
        FancyBboxPatch((0, 0), 1, 1, facecolor=blue, edgecolor=blue, label="written"),
        FancyBboxPatch((0, 0), 1, 1, facecolor="white", edgecolor=grey, linestyle=(0, (4, 2)),
                       label="not written yet"),
        Line2D([], [], color=ink, linewidth=1.4, label="prerequisite the chapter states"),
        Line2D([], [], color=grey, linestyle=(0, (3, 2)), label="prerequisite planned"),
    ]
    ax.legend(handles=handles, loc="upper right", frameon=False, fontsize=9.5, handlelength=2.0,
              title="top right of a box: its part", title_fontsize=9.5)
    fig.tight_layout(pad=0.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
    return path


def check(root: Path = ROOT) -> list[str]:
    """Rows of book/chapter_map.md whose status or prerequisites disagree with _toc.yml and CHAPTERS."""
    done = written(root)
    rows = {}
    for line in (root / PAGE.relative_to(ROOT)).read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*(\d\d)\s*\|(.*)", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    problems = []
    for number, (slug, _, _, pres) in CHAPTERS.items():
        if number not in rows:
            problems.append(f"{number}: no row in the page")
            continue
        chapter, status, needs = rows[number][:3]
        want = "written" if number in done else "not written yet"
        if status != want:
            problems.append(f"{number}: the page says {status!r}, _toc.yml says {want!r}")
        if f"{number}_{slug}" not in chapter:
            problems.append(f"{number}: the page does not name {number}_{slug}")
        if ("{doc}" in chapter) != (number in done):
            problems.append(f"{number}: link a chapter's title to its page when, and only when, it is written")
        if sorted(re.findall(r"\b\d\d\b", needs)) != sorted(pres):
            problems.append(f"{number}: the page lists prerequisites {needs!r}, this file {', '.join(pres)}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare book/chapter_map.md with _toc.yml")
    args = parser.parse_args()
    if args.check:
        problems = check()
        print("\n".join(problems) or "book/chapter_map.md agrees with _toc.yml")
        return 1 if problems else 0
    print(f"wrote {draw().relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
