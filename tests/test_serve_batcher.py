"""The batcher: jobs decoded together equal each job decoded alone; bounded queue; graceful stop."""

from __future__ import annotations

import asyncio

import pytest
import torch

from roadmap_lib.generation import greedy, sample
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.serve.batcher import Batcher, Job, QueueFull, ShuttingDown


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=30, context_length=32, d_model=32, n_layers=2, n_heads=2)).eval()
    with torch.no_grad():  # sharper distributions, so that outputs differ between prompts
        for p in m.parameters():
            p.mul_(5)
    return m


async def collect(job: Job) -> list[int]:
    out = []
    while (event := await job.events.get()) is not None:
        if isinstance(event, Exception):
            raise event
        out.append(event)
    return out


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_batched_jobs_equal_each_job_alone(model):
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10], [11, 12], [13, 14, 15, 16, 17]]
    specs = [dict(max_tokens=3 + 2 * i) for i in range(5)] + [dict(max_tokens=7, temperature=0.9,
                                                                   top_p=0.8, seed=4)]
    prompts.append([3, 3])

    async def go():
        b = Batcher(model, max_batch=3, max_wait_ms=10, block_size=4)
        await b.start()
        jobs = [b.submit(Job(p, **s)) for p, s in zip(prompts, specs)]
        outs = await asyncio.gather(*[collect(j) for j in jobs])
        await b.stop()
        return b, jobs, outs

    b, jobs, outs = run(go())
    for p, s, out in zip(prompts, specs, outs):
        ids = torch.tensor([p])
        if s.get("temperature"):
            g = torch.Generator().manual_seed(s["seed"])
            ref = sample(model, ids, s["max_tokens"], temperature=s["temperature"], top_p=s["top_p"],
                         generator=g, use_cache=True)
        else:
            ref = greedy(model, ids, s["max_tokens"], use_cache=True)
        assert out == ref[0, len(p):].tolist()
    assert all(j.first_token_s <= j.finished_s for j in jobs)
    assert b.stats["completed"] == 6 and b.stats["tokens"] == sum(s["max_tokens"] for s in specs)
    # 6 jobs, 3 slots: batched steps hold more than one sequence on average
    assert b.stats["batched_sequences"] / b.stats["steps"] > 2
    assert b.cache.allocator.num_used == 0  # every finished sequence gave its blocks back


def test_the_wait_window_groups_a_burst_into_one_first_step(model):
    async def go(wait_ms):
        b = Batcher(model, max_batch=4, max_wait_ms=wait_ms)
        await b.start()
        first = b.submit(Job([1, 2], 2))
        await asyncio.sleep(0.02)  # the second job arrives 20 ms later
        second = b.submit(Job([3, 4], 2))
        await asyncio.gather(collect(first), collect(second))
        await b.stop()
        return b.stats["steps"]

    assert run(go(wait_ms=500)) == 2  # waited for the second job: both prefilled in step 1
    assert run(go(wait_ms=0)) > 2  # started at once: the second job joined later


def test_a_full_queue_refuses_at_once(model):
    async def go():
        b = Batcher(model, max_batch=1, max_queue=2)
        await b.start()
        jobs = [b.submit(Job([1], 5)), b.submit(Job([2], 5))]
        with pytest.raises(QueueFull, match="queue is full"):
            b.submit(Job([3], 5))
        assert b.stats["refused_full"] == 1
        await asyncio.gather(*[collect(j) for j in jobs])
        await b.stop()

    run(go())


def test_stop_finishes_accepted_jobs_and_refuses_new_ones(model):
    async def go():
        b = Batcher(model, max_batch=2)
        await b.start()
        jobs = [b.submit(Job([i + 1], 10)) for i in range(5)]
        stopping = asyncio.create_task(b.stop())
        await asyncio.sleep(0)
        with pytest.raises(ShuttingDown):
            b.submit(Job([1], 2))
        outs = await asyncio.gather(*[collect(j) for j in jobs])
        await stopping
        return outs

    assert [len(o) for o in run(go())] == [10] * 5


def test_a_failing_step_fails_its_jobs_not_the_batcher(model, monkeypatch):
    async def go():
        b = Batcher(model, max_batch=2)
        await b.start()
        real = b._step
        monkeypatch.setattr(b, "_step", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
        bad = b.submit(Job([1], 3))
        with pytest.raises(RuntimeError, match="boom"):
            await collect(bad)
        monkeypatch.setattr(b, "_step", real)
        good = await collect(b.submit(Job([1], 3)))
        await b.stop()
        return b, good

    b, good = run(go())
    assert good == greedy(model, torch.tensor([[1]]), 3)[0, 1:].tolist()
    assert b.stats["failed"] == 1 and b.cache.allocator.num_used == 0


def test_errors_name_the_argument(model):
    for kw, name in [({"max_batch": 0}, "max_batch"), ({"max_queue": 1.5}, "max_queue"),
                     ({"max_wait_ms": -1}, "max_wait_ms"), ({"block_size": True}, "block_size")]:
        with pytest.raises(ValueError, match=name):
            Batcher(model, **kw)
    for kw, name in [({"prompt": []}, "prompt"), ({"max_tokens": 0}, "max_tokens"),
                     ({"temperature": -0.1}, "temperature"), ({"top_p": 0.0}, "top_p")]:
        with pytest.raises(ValueError, match=name):
            Job(**{"prompt": [1], "max_tokens": 2, **kw})
    b = Batcher(model)
    with pytest.raises(RuntimeError, match="not started"):
        b.submit(Job([1], 2))
    with pytest.raises(ValueError, match=r"prompt: 33 tokens"):
        b.check_fits(33, 1)
    with pytest.raises(ValueError, match=r"max_tokens: .* \(at most 3\)"):
        b.check_fits(30, 4)
    b.check_fits(30, 3)  # 30 + 3 = context + 1: the last token is never fed back
