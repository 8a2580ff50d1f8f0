"""DistributedDataParallel on 2 gloo CPU processes equals one process on the global batch."""

import pytest

from roadmap_lib.parallel import ddp_worker, launch


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_on_the_global_batch():
    """Spawns 2 processes (10-40 s on a busy 2-core machine, most of it their start-up)."""
    r0, r1 = launch(ddp_worker, 2, kwargs={"steps": 4}, timeout=180)
    # float64: the same parameters up to rounding; float32: the all-reduce sums in another order,
    # and Adam's division by sqrt(v) magnifies those 1e-7 differences a little
    assert r0["float64"]["param_err"] < 1e-10
    assert r0["float32"]["param_err"] < 2e-5
    for dtype in ("float32", "float64"):
        # the global loss is the mean of the two ranks' losses (equal halves of the batch)
        for a, b, full in zip(r0[dtype]["losses"], r1[dtype]["losses"], r0[dtype]["single_losses"]):
            assert abs((a + b) / 2 - full) < 1e-5
            assert abs(a - b) > 1e-4  # the ranks really saw different data
        assert r0[dtype]["single_losses"][-1] < r0[dtype]["single_losses"][0]  # and it trained


@pytest.mark.parametrize("kwargs, match", [
    ({"global_batch": 5}, "global_batch: expected a multiple of world=2"),
    ({"dtypes": ("bfloat16",)}, "dtypes: expected names among"),
])
def test_ddp_worker_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ddp_worker(0, 2, **kwargs)
