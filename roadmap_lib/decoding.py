"""Generation with a logits-processor pipeline, stopping criteria, and contrastive search.

:func:`generate` is the general form of ``greedy`` and ``sample`` (``roadmap_lib.generation``): at
each step the model's next-token logits go through a :class:`~roadmap_lib.logits_processors.LogitsPipeline`
(penalties, truncation, a grammar constraint, ...), then the token is the argmax (``do_sample=False``)
or a draw from the softmax. Stopping criteria are callables ``stop(ids) -> (batch,) bool``:
:class:`StopOnStrings` (a row ends once its generated text contains a stop string) and
:class:`MaxTime` (every row ends after a wall-clock budget).

:func:`contrastive_search` {cite}`su2022contrastive` picks, among the ``top_k`` most likely tokens,
the one that maximises ``(1 - alpha) * p(v) - alpha * max_j cos(h_v, h_j)``: likely, but with a
hidden state unlike any earlier one, which breaks the loops greedy decoding falls into.
transformers 5 moved contrastive search out of the library into a Hub repository
(``transformers-community/contrastive-search``, code downloaded at run time), so
``tests/test_decoding.py`` checks ours against the definition, computed by brute force.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from roadmap_lib.generation import _check_ids, decode_loop
from roadmap_lib.logits_processors import LogitsPipeline

Stop = Callable[[torch.Tensor], torch.Tensor]


class StopOnStrings:
    """Finished once the text generated after ``prompt_length`` tokens contains one of ``strings``.

    ``decode(list_of_ids) -> str`` turns token ids into text (a vocabulary's ``decode``). Checks only
    the last ``window`` tokens' text, enough to hold the longest stop string.
    """

    def __init__(self, strings: Sequence[str], decode: Callable, prompt_length: int):
        if isinstance(strings, str) or not strings or not all(isinstance(s, str) and s for s in strings):
            raise ValueError(f"strings: expected a non-empty list of non-empty strings, got {strings!r}")
        if prompt_length < 0:
            raise ValueError(f"prompt_length: expected an int >= 0, got {prompt_length!r}")
        self.strings, self.decode, self.prompt_length = list(strings), decode, prompt_length

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        window = max(len(s) for s in self.strings)  # a token is at least one character
        start = max(self.prompt_length, ids.shape[1] - window)
        texts = [self.decode(row[start:]) for row in ids]
        return torch.tensor([any(s in t for s in self.strings) for t in texts])


class MaxTime:
    """Finished for every row once ``seconds`` have passed since the first check."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter):
        if not seconds > 0:
            raise ValueError(f"max_time: expected seconds > 0, got {seconds!r}")
        self.seconds, self.clock, self.start = seconds, clock, None

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        now = self.clock()
        if self.start is None:
            self.start = now
        return torch.full((ids.shape[0],), now - self.start >= self.seconds)


def _any_stop(stopping: Sequence[Stop]) -> Stop | None:
    if not stopping:
        return None

    def stop(ids):
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        for criterion in stopping:
            done |= criterion(ids)
        return done

    return stop


def generate(model, ids: torch.Tensor, max_new_tokens: int, *,
             processors: LogitsPipeline | Sequence | None = None, do_sample: bool = False,
             generator: torch.Generator | None = None, eos_token_id: int | None = None,
             pad_token_id: int | None = None, stopping: Sequence[Stop] = (),
             context_length: int | None = None, use_cache: bool = False) -> torch.Tensor:
    """Decode ``max_new_tokens`` tokens after ``ids`` ``(batch, seq)``; returns ``(batch, seq + new)``.

    Each step: logits ``(batch, vocab)`` -> every processor in order -> argmax, or (``do_sample``) a
    draw from the softmax with ``generator`` (``None``: torch's global generator, as transformers
    uses). Finished rows (eos or a stopping criterion) are padded with ``pad_token_id``.
    """
    pipeline = LogitsPipeline(processors or [])

    def choose(seen, logits):
        scores = pipeline(seen, logits)
        if not do_sample:
            return scores.argmax(-1)
        return torch.multinomial(scores.softmax(-1), 1, generator=generator)[:, 0]

    return decode_loop(model, ids, max_new_tokens, choose, eos_token_id, pad_token_id,
                       context_length, use_cache, _any_stop(stopping))


# --- contrastive search -------------------------------------------------------------------------

HiddenModel = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def with_hidden_states(model: torch.nn.Module, layer: torch.nn.Module | None = None) -> HiddenModel:
    """``ids -> (logits, hidden)`` for one of our models: ``hidden`` ``(batch, seq, d_model)`` is the
    output of ``layer`` (default: the final norm ``model.ln_f``, what feeds the output head)."""
    layer = layer if layer is not None else getattr(model, "ln_f", None)
    if layer is None:
        raise TypeError(f"layer: {type(model).__name__} has no ln_f; pass the layer whose output to use")

    def run(ids):
        seen = []
        handle = layer.register_forward_hook(lambda mod, inp, out: seen.append(out))
        try:
            logits = model(ids)
        finally:
            handle.remove()
        return logits, seen[-1]

    return run


@torch.no_grad()
def contrastive_search(model: HiddenModel, ids: torch.Tensor, max_new_tokens: int, *,
                       top_k: int = 4, alpha: float = 0.6,
                       context_length: int | None = None) -> torch.Tensor:
    """Contrastive search {cite}`su2022contrastive` with ``model(ids) -> (logits, hidden)``.

    For each row and step, take the ``top_k`` most likely next tokens ``v``; append each, read its
    hidden state ``h_v`` at the new position, and score it by
    ``(1 - alpha) * p(v | x) - alpha * max_j cos(h_v, h_j)`` over the hidden states ``h_j`` of the
    tokens so far. ``alpha = 0`` is greedy. One forward pass of the ``top_k`` candidate sequences per
    step, without a KV cache (clear, not fast).
    Returns ``(batch, seq + max_new_tokens)``.
    """
    _check_ids(ids)
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k: expected an int >= 1, got {top_k!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a float in [0, 1], got {alpha!r}")
    keep = None if context_length is None else context_length - 1  # room for one candidate
    window = ids if keep is None else ids[:, -keep:]
    logits, hidden = model(window)
    for _ in range(max_new_tokens):
        probs = logits[:, -1].float().softmax(-1)
        k = min(top_k, probs.shape[-1])
        cand_p, cand = probs.topk(k, dim=-1)  # (batch, k)
        batch = window.shape[0]
        extended = torch.cat([window.repeat_interleave(k, 0), cand.reshape(-1, 1)], dim=1)
        ext_logits, ext_hidden = model(extended)
        h_new = ext_hidden[:, -1].float().reshape(batch, k, -1)  # (batch, k, d)
        cos = F.cosine_similarity(h_new[:, :, None, :], hidden.float()[:, None, :, :], dim=-1)  # (batch, k, seq)
        choice = ((1 - alpha) * cand_p - alpha * cos.amax(-1)).argmax(-1)
        ids = torch.cat([ids, cand.gather(1, choice[:, None])], dim=1)
        if keep is None or ids.shape[1] <= keep:  # the chosen row's pass is the next step's pass
            rows = torch.arange(batch) * k + choice
            window, logits, hidden = extended[rows], ext_logits[rows], ext_hidden[rows]
        else:  # the window slides: positions change, so run it again
            window = ids[:, -keep:]
            logits, hidden = model(window)
    return ids


__all__ = ["MaxTime", "StopOnStrings", "contrastive_search", "generate", "with_hidden_states"]
