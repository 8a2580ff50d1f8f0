"""Tensor and pipeline parallelism on 2 CPU processes with the gloo backend."""

import pytest
import torch

from roadmap_lib.parallel import (
    bubble_fraction,
    gpipe_bubble,
    launch,
    pipeline_model,
    run_all_worker,
    split_stages,
)


def _fails(rank, world):
    if rank == 1:
        raise RuntimeError("boom on purpose")
    return rank


def _sleeps(rank, world):
    import time
    time.sleep(60)


@pytest.fixture(scope="module")
def results():
    return launch(run_all_worker, 2, kwargs={"micro_batch_counts": (1, 4), "repeats": 1}, timeout=120)


def test_tensor_parallel_mlp_and_attention_equal_one_process(results):
    for rank in (0, 1):
        tp = results[rank]["tp"]
        for block in ("mlp", "attention"):
            assert tp[block]["out"] < 1e-6, (rank, block, tp[block])
            assert tp[block]["input_grad"] < 1e-6
            assert tp[block]["param_grad"] < 1e-6
        assert 2 * tp["mlp_params"] - tp["full_mlp_params"] == 64  # only the down bias is replicated


def test_data_parallel_gradients_equal_the_full_batch(results):
    for rank in (0, 1):
        dp = results[rank]["dp"]
        assert dp["grad_err"] < 1e-6
        n_params = sum(p.numel() for p in pipeline_model().parameters())
        assert dp["allreduce_bytes"] == 4 * n_params  # every gradient, float32, once


def test_pipeline_same_loss_and_gradients(results):
    for row0, row1 in zip(results[0]["pp"], results[1]["pp"]):
        assert row1["loss"] == pytest.approx(row1["ref_loss"], abs=1e-6)
        assert row0["grad_err"] < 1e-5 and row1["grad_err"] < 1e-5
        # every stage ran a forward and a backward for each micro-batch
        m = row0["micro_batches"]
        assert [t[0] for t in row0["timeline"]] == ["F"] * m + ["B"] * m


def test_bubble_fraction_of_a_perfect_schedule():
    # 2 stages, 2 micro-batches, unit times: stage 0 F0 F1 . . B0 B1 ; stage 1 . F0 F1 B0 B1 .
    s0 = [("F", 0, 0, 1), ("F", 1, 1, 2), ("B", 0, 4, 5), ("B", 1, 5, 6)]
    s1 = [("F", 0, 1, 2), ("F", 1, 2, 3), ("B", 0, 3, 4), ("B", 1, 4, 5)]
    assert bubble_fraction([s0, s1]) == pytest.approx(1 - 8 / 12)
    assert gpipe_bubble(2, 2) == pytest.approx(1 / 3)


def test_split_stages_covers_the_model():
    model = pipeline_model(d_model=8, n_layers=4)
    stages = split_stages(model, 2)
    assert [len(s) for s in stages] == [2, 3]
    x = torch.randn(3, 8)
    torch.testing.assert_close(stages[1](stages[0](x)), model(x))


def test_launch_times_out_and_cleans_up():
    with pytest.raises(TimeoutError, match="did not finish"):
        launch(_sleeps, 2, timeout=8)


def test_errors():
    with pytest.raises(ValueError, match="world_size"):
        launch(_fails, 0)
    with pytest.raises(ValueError, match="timeout"):
        launch(_fails, 2, timeout=0)


def test_launch_reports_a_failing_rank_and_leaves_no_worker():
    import multiprocessing

    with pytest.raises(RuntimeError, match="boom on purpose"):
        launch(_fails, 2, timeout=60)
    assert multiprocessing.active_children() == []
