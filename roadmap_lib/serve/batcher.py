"""Dynamic batching for a server: a bounded queue of requests and one task that decodes them together.

Requests arrive one HTTP call at a time, each on its own coroutine. A GPU (or a CPU's vector units)
is used well only when many sequences go through the model together, so the server does not run
the model per request: each request becomes a :class:`Job` on a bounded :class:`asyncio.Queue`, and
one *batcher* task owns the model.

    HTTP handler --submit--> [ queue (max_queue) ] --> batcher task --> model step (worker thread)
         ^                                                   |
         +------------- job.events (one token at a time) <---+

The batcher runs *continuous batching* (chapter 15, :mod:`roadmap_lib.inference.batching`): before
every decoding step it admits waiting jobs into free slots (up to ``max_batch``), prefills their
prompts, then runs one ragged decode step for every running job, and retires the jobs that reached
``max_tokens``. When nothing is running it waits for the first job and then up to ``max_wait_ms``
for more, so that a burst of requests starts as one batch (the *dynamic batching* window).

Two numbers bound the memory a server can be made to use:

- ``max_queue``: a full queue refuses the next job at once (:class:`QueueFull`, HTTP 503) instead
  of growing without bound while every waiting client times out anyway;
- ``max_batch``: the number of sequences decoded together, so the KV cache is sized once.

The model runs in one worker thread, so the event loop keeps accepting (and refusing) requests
while a step runs. :meth:`Batcher.stop` is the graceful shutdown: refuse new jobs, finish every
accepted one, then return.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from ..generation import filter_logits
from ..inference.batching import decode_step, prefill
from ..inference.paged import PagedKVCache


class QueueFull(RuntimeError):
    """The request queue holds ``max_queue`` jobs already: refuse, do not wait (HTTP 503)."""


class ShuttingDown(RuntimeError):
    """The batcher is stopping: it finishes what it accepted and takes nothing new (HTTP 503)."""


@dataclass
class Job:
    """One completion request: prompt ids, how many tokens, how to pick them.

    ``temperature == 0`` is greedy decoding; otherwise tokens are drawn from the softmax of the
    temperature-scaled, top-p-filtered logits with a generator seeded by ``seed`` (the same calls as
    :func:`roadmap_lib.generation.sample`, so a seeded request is repeatable).
    Generated tokens arrive one by one on ``events`` (an int each, then ``None``; an exception if the
    step failed).
    """

    prompt: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    tokens: list[int] = field(default_factory=list)
    submitted_s: float = field(default_factory=time.perf_counter)
    first_token_s: float | None = None
    finished_s: float | None = None

    def __post_init__(self) -> None:
        if not self.prompt:
            raise ValueError("prompt: expected at least one token, got an empty prompt")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens: expected an int >= 1, got {self.max_tokens!r}")
        if not (isinstance(self.temperature, (int, float)) and self.temperature >= 0):
            raise ValueError(f"temperature: expected a number >= 0, got {self.temperature!r}")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise ValueError(f"top_p: expected a number in (0, 1], got {self.top_p!r}")
        self.generator = torch.Generator().manual_seed(0 if self.seed is None else self.seed)

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from next-token logits ``(vocab,)``."""
        if self.temperature == 0:
            return int(logits.argmax())
        probs = filter_logits(logits[None].float(), temperature=self.temperature,
                              top_p=self.top_p).softmax(-1)
        return int(torch.multinomial(probs, 1, generator=self.generator)[0, 0])


class Batcher:
    """Owns one model; serves :class:`Job` s submitted from any coroutine of its event loop.

    ``max_batch``: sequences decoded together (1 = no batching, one request at a time).
    ``max_wait_ms``: when idle, how long to wait after the first job for others to join it.
    ``max_queue``: jobs that may wait; the next one is refused with :class:`QueueFull`.
    """

    def __init__(self, model, *, max_batch: int = 8, max_wait_ms: float = 5.0,
                 max_queue: int = 64, block_size: int = 16) -> None:
        for name, v in (("max_batch", max_batch), ("max_queue", max_queue),
                        ("block_size", block_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if not (isinstance(max_wait_ms, (int, float)) and max_wait_ms >= 0):
            raise ValueError(f"max_wait_ms: expected a number >= 0, got {max_wait_ms!r}")
        self.model = model.eval()
        self.context_length = model.config.context_length
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_ms / 1000, max_queue
        blocks_per_seq = math.ceil((self.context_length + 1) / block_size)
        self.cache = PagedKVCache.for_model(model, num_blocks=max_batch * blocks_per_seq,
                                            block_size=block_size)
        self.queue: asyncio.Queue[Job] | None = None
        self.running: dict[int, Job] = {}
        self.closing = False
        self.stats = {"accepted": 0, "refused_full": 0, "refused_closing": 0, "completed": 0,
                      "failed": 0, "tokens": 0, "steps": 0, "batched_sequences": 0}
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._next_id = 0

    # --- the public side: start, submit, stop ---------------------------------------------

    async def start(self) -> None:
        """Start the batcher task on the running event loop."""
        if self._task is not None:
            raise RuntimeError("start: the batcher is already running")
        self.queue = asyncio.Queue(self.max_queue)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="batcher-model")
        self._task = asyncio.create_task(self._loop(), name="batcher")

    def check_fits(self, n_prompt: int, max_tokens: int) -> None:
        """Raise ``ValueError`` naming the field when a request cannot fit the context window
        (the last generated token is never fed back, so ``n_prompt + max_tokens <= context + 1``)."""
        if n_prompt > self.context_length:
            raise ValueError(f"prompt: {n_prompt} tokens, more than the model's context length "
                             f"{self.context_length}")
        if n_prompt + max_tokens > self.context_length + 1:
            raise ValueError(f"max_tokens: the prompt ({n_prompt} tokens) + max_tokens "
                             f"({max_tokens}) exceeds the model's context length "
                             f"{self.context_length} (at most {self.context_length + 1 - n_prompt})")

    def submit(self, job: Job) -> Job:
        """Put ``job`` on the queue without waiting; raise :class:`QueueFull` or
        :class:`ShuttingDown` if it cannot be accepted, ``ValueError`` if it cannot fit."""
        if self.queue is None:
            raise RuntimeError("submit: the batcher is not started (await batcher.start())")
        if self.closing:
            self.stats["refused_closing"] += 1
            raise ShuttingDown("the server is shutting down and accepts no new requests")
        self.check_fits(len(job.prompt), job.max_tokens)
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats["refused_full"] += 1
            raise QueueFull(f"the request queue is full ({self.max_queue} waiting); "
                            "retry later") from None
        self.stats["accepted"] += 1
        return job

    async def stop(self) -> None:
        """Graceful shutdown: accept nothing new, finish every accepted job, then return."""
        self.closing = True
        if self._task is not None:
            await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def waiting(self) -> int:
        return 0 if self.queue is None else self.queue.qsize()

    # --- the batcher task -----------------------------------------------------------------

    async def _next_job(self, timeout: float) -> Job | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _admit(self) -> list[Job]:
        """Jobs to start this step: fill free slots from the queue; when idle, wait for a first
        job, then up to ``max_wait_s`` for more."""
        free = self.max_batch - len(self.running)
        new: list[Job] = []
        if not self.running:
            first = await self._next_job(0.05)  # wake up now and then to notice `closing`
            if first is None:
                return []
            new.append(first)
            deadline = time.perf_counter() + self.max_wait_s
            while len(new) < free and (left := deadline - time.perf_counter()) > 0:
                job = await self._next_job(left)
                if job is None:
                    break
                new.append(job)
        while len(new) < free and not self.queue.empty():
            new.append(self.queue.get_nowait())
        return new

    def _step(self, new: list[tuple[int, Job]], running: list[tuple[int, Job]]):
        """One model step, in the worker thread: prefill the new jobs, decode one token for the
        running ones. Returns ``[(seq id, job, token)]``."""
        out = []
        with torch.no_grad():
            for sid, job in new:
                out.append((sid, job, job.choose(prefill(self.model, self.cache, sid, job.prompt))))
            if running:
                seqs = [sid for sid, _ in running]
                last = torch.tensor([job.tokens[-1] for _, job in running])
                logits = decode_step(self.model, self.cache, seqs, last)
                out += [(sid, job, job.choose(row)) for (sid, job), row in zip(running, logits)]
        for sid, job, _ in out:
            if len(job.tokens) + 1 == job.max_tokens:
                self.cache.free(sid)
        return out

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.closing and not self.running and self.queue.empty():
                return
            new = await self._admit()
            if not new and not self.running:
                continue
            started = []
            for job in new:
                started.append((self._next_id, job))
                self._next_id += 1
            running = list(self.running.items())
            try:
                out = await loop.run_in_executor(self._executor, self._step, started, running)
            except Exception as err:  # a failed step fails its jobs, never the server
                for sid, job in started + running:
                    self.running.pop(sid, None)
                    if sid in self.cache.lengths:
                        self.cache.free(sid)
                    job.events.put_nowait(err)
                    self.stats["failed"] += 1
                continue
            self.stats["steps"] += 1
            self.stats["batched_sequences"] += len(out)
            now = time.perf_counter()
            for sid, job, token in out:
                job.tokens.append(token)
                job.first_token_s = job.first_token_s or now
                job.events.put_nowait(token)
                self.stats["tokens"] += 1
                if len(job.tokens) == job.max_tokens:
                    job.finished_s = now
                    job.events.put_nowait(None)
                    self.running.pop(sid, None)
                    self.stats["completed"] += 1
                else:
                    self.running[sid] = job


__all__ = ["Batcher", "Job", "QueueFull", "ShuttingDown"]
