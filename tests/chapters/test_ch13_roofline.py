"""roadmap_lib.chapters.ch13_flashattention_kernels.roofline and benchmarks/bench_roofline.py (chapter 13)."""

import importlib.util
import json
from pathlib import Path

import pytest

from roadmap_lib.chapters.ch13_flashattention_kernels import plots
from roadmap_lib.chapters.ch13_flashattention_kernels.roofline import (
    H100_SXM,
    ROOFLINE_RESULTS,
    Machine,
    attention_intensity,
    load_cpu,
    plot_roofline,
)

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_roofline.py"


def test_roofline_by_hand():
    m = Machine("toy", peak_flop_per_s=100.0, bytes_per_s=10.0, bytes_per_element=2, source="by hand")
    assert m.ridge == 10.0
    assert m.attainable(2.0) == 20.0 and m.attainable(10.0) == 100.0 and m.attainable(50.0) == 100.0
    with pytest.raises(ValueError, match="intensity: expected a positive"):
        m.attainable(0.0)
    with pytest.raises(ValueError, match="bytes_per_s: expected a positive"):
        Machine("bad", 1.0, 0.0, 2, "")
    assert H100_SXM.ridge == pytest.approx(989.5 / 3.35)


def test_attention_intensity_from_the_io_model():
    # naive: 4 N² d FLOPs over about 4 N² elements: d / (bytes per element) FLOPs per byte for large N
    assert attention_intensity("naive", 16384, 64, bytes_per_element=2) == pytest.approx(32, rel=0.01)
    assert attention_intensity("naive", 16384, 64, bytes_per_element=4) == pytest.approx(16, rel=0.01)
    # tiled: K and V read once per query block of 128 rows: about block_m FLOPs per byte in 16 bits
    assert attention_intensity("tiled", 16384, 64) == pytest.approx(128, rel=0.01)
    assert attention_intensity("tiled", 16384, 64, block_m=64) == pytest.approx(64, rel=0.02)
    with pytest.raises(ValueError, match="schedule: expected 'naive' or 'tiled'"):
        attention_intensity("flash", 128, 64)


def test_benchmark_writes_what_the_chapter_reads(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_roofline", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "roofline.json"
    result = bench.main(["--size", "128", "--copy-mib", "8", "--repeats", "2", "--out", str(out)])
    cpu = load_cpu(out)
    assert cpu.peak_flop_per_s == result["matmul"]["flop_per_s"] > 0 and cpu.bytes_per_element == 4
    assert cpu.ridge == pytest.approx(result["ridge_flop_per_byte"])
    assert json.loads(out.read_text())["copy"]["bytes_moved"] == 2 * 8 * 2**20
    with pytest.raises(FileNotFoundError, match="bench_roofline.py"):
        load_cpu(tmp_path / "missing.json")


def test_shipped_results_and_the_plot():
    assert ROOFLINE_RESULTS.parent == plots.RESULTS_DIR and plots.RESULTS_DIR.is_dir()
    cpu = load_cpu()
    points = {cpu.name: {"naive": 16.0, "tiled": 64.0}, H100_SXM.name: {"naive": 32.0}}
    ax = plot_roofline([H100_SXM, cpu], points)
    assert len(ax.lines) == 2 * 2 + 3  # a roof and a ridge line per machine, one marker per point
