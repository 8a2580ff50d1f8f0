"""Chapter 11's tree-of-thoughts driver: step sampling and compute counting, search and sampling on
the shipped scratchpad model (seeded), and exercise 11.6's check."""

import pytest
import torch

from roadmap_lib import data_path, reasoning
from roadmap_lib.chapters.ch11_prompting_distillation import cot, plots, tot
from roadmap_lib.chapters.ch11_prompting_distillation import exercises as ex
from roadmap_lib.exercises import ExerciseError


@pytest.fixture(scope="module")
def model():
    return cot.load_model(data_path("."))


def test_steps_stop_at_a_comma_or_the_end_and_count_their_tokens(model):
    prompt = reasoning.tagged_prompt([1, 0, 1])
    out = tot._steps(model, [prompt] * 6, 1.0, torch.Generator().manual_seed(0), 7)
    for text, logp, n in out:
        assert n == len(text) and 1 <= n <= 7 and logp <= 0
        assert text.endswith((",", ".")) or n == 7


def test_search_is_seeded_counts_every_sampled_token_and_finds_a_verified_chain(model):
    bits = [1, 0, 1, 1]
    a = tot.search(model, bits, 2, 2, temperature=1.0, generator=torch.Generator().manual_seed(3))
    b = tot.search(model, bits, 2, 2, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert a == b
    assert reasoning.chain_is_consistent(a["chain"], 2) and a["answer"] == reasoning.answer(bits, 2)
    # every depth expands at most 2 states x 2 proposals of at most 7 tokens
    assert len(a["chain"]) <= a["tokens"] <= a["expansions"] * 2 * 7


def test_sampled_chains_and_greedy_count_their_characters(model):
    chains = tot.sample_chains(model, [1, 1, 0], 3, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert len(chains) == 3 and all(len(c) == n for c, n in chains)
    text, n = tot.greedy_chain(model, [1, 1, 0])
    assert text == reasoning.tagged_completion([1, 1, 0], True, 2) and n == len(text)


def test_plot_compute_draws():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = plots.plot_compute({"search": ([10, 20], [[0.5, 0.7], [0.6, 0.8]])}, greedy=(5, 0.4))
    assert len(ax.lines) == 2
    ax = plots.plot_shots([0, 1], {"true": [[0.2, 0.9], [0.3, None]]}, ideal=[0.2, 1.0], chance=0.2)
    assert len(ax.lines) == 3
    plt.close("all")


def test_frontier_check_accepts_a_right_answer_and_names_each_mistake():
    def right(children, values, beam_width):
        ranked = sorted((i for i, v in enumerate(values) if v is not None), key=lambda i: -values[i])
        return [children[i] for i in ranked[:beam_width]]

    ex.check_next_frontier(right)
    for description, wrong in ex.FRONTIER_MISTAKES.items():
        with pytest.raises(ExerciseError, match="likely mistake") as err:
            ex.check_next_frontier(wrong)
        assert description[:30] in str(err.value)
