"""Chapter 11's shipped artifacts: the distilled student (``gpt-char-distilled``, which chapter 26
serves) with the size/quality table it comes from (``11_distillation.json``); and the chain-of-thought
results (``11-cot``: ``11_cot.json`` and the seed-0 scratchpad model); few-shot prompting
(``11-fewshot``: ``11_fewshot.json`` and the seed-0 model); and tree search against sampling with
the scratchpad model as proposer (``11-tot``: ``11_tot.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib import data_path
from roadmap_lib.chapters.ch11_prompting_distillation import cot, distill, fewshot, tot
from roadmap_lib.zoo import Artifact, check, load_char_gpt


def _build(root: Path) -> None:
    record, model = distill.run()
    distill.save(record, model, root)


def _verify(root: Path):
    """Re-measures the shipped student's and the teacher's validation loss (a retrain of the nine
    students is half an hour on one thread; the unit tests check that a short one is seeded)."""
    model, vocab, info = load_char_gpt(distill.NAME, root / "zoo")
    record = json.loads((root / distill.RESULTS).read_text(encoding="utf-8"))
    data = distill.corpus(vocab)
    teacher, _ = distill.teacher()
    shipped = next(r for r in record["runs"] if r["method"] == "soft" and r["seed"] == info["seed"])
    got = distill.val_loss(model, data)
    return [check("student eval loss (nats/char)", got, info["eval"]["loss"], 2e-3),
            check("student eval loss = the table's row for its seed", got, shipped["val_loss"], 2e-3),
            check("teacher eval loss (nats/char)", distill.val_loss(teacher, data),
                  record["teacher"]["val_loss"], 2e-3)]


def _build_cot(root: Path) -> None:
    record, model = cot.run()
    cot.save(record, model, root)


def _verify_cot(root: Path):
    """Re-measures the shipped scratchpad model's greedy accuracy on the fixed test set, per
    length (decoding is deterministic: the numbers must match exactly)."""
    record = json.loads((root / cot.RESULTS).read_text(encoding="utf-8"))
    row = next(r for r in record["runs"] if r["cot"] and r["seed"] == record["kept_model_seed"])
    got = cot.accuracy_by_length(cot.load_model(root), cot.test_set())
    return [check(f"scratchpad accuracy, {n} bits", got[n], row["accuracy"][str(n)], 1e-9) for n in got]


def _build_fewshot(root: Path) -> None:
    record, model = fewshot.run(progress=True)
    fewshot.save(record, model, root)


def _verify_fewshot(root: Path):
    """Re-measures the shipped model's accuracy by number of shots, true and random labels, on the
    fixed test episodes (one forward pass per setting; argmax ties across machines could move an
    episode, hence the tolerance of one episode in 400)."""
    record = json.loads((root / fewshot.RESULTS).read_text(encoding="utf-8"))
    row = next(r for r in record["runs"] if r["seed"] == record["kept_model_seed"])
    model, tests = fewshot.load_model(root), fewshot.test_set()
    tol = 1.5 / len(tests)
    out = [check(f"accuracy, {k} true shots", fewshot.accuracy(model, tests, int(k))["all"], row["true"][k]["all"], tol)
           for k in row["true"]]
    out.append(check("accuracy, 4 random-label shots", fewshot.accuracy(model, tests, 4, "random")["all"],
                     row["random"]["4"]["all"], tol))
    return out


def _build_tot(root: Path) -> None:
    tot.save(tot.run(cot.load_model(data_path("."))), root)  # the proposer: 11-cot's shipped model


def _verify_tot(root: Path):
    """Re-runs greedy decoding (deterministic) and the record's small seeded piece (a search and a
    sampling on the first problems: the same samples on the same machine; a float difference
    elsewhere could change a sample, hence one problem's tolerance)."""
    record = json.loads((root / tot.RESULTS).read_text(encoding="utf-8"))
    model = cot.load_model(root)
    live = tot.live_check(model)
    tol = 1.0 / tot.LIVE_PROBLEMS
    return [check("greedy accuracy", tot.greedy_accuracy(model), record["greedy"]["accuracy"], 1e-9),
            check("search 1x2 accuracy (seed 0)", live["search_1x2"]["accuracy"],
                  record["live"]["search_1x2"]["accuracy"], tol),
            check("sampling 2 chains + verifier accuracy (seed 0)", live["sample_2"]["verifier"],
                  record["live"]["sample_2"]["verifier"], tol)]


ARTIFACTS = [
    Artifact(distill.NAME, "11", "character-level GPT student (2 layers, 64 dims) distilled from "
             "gpt-char-jargon with soft targets, and the size/quality table (scratch, soft, "
             "sequence-level distillation, 3 seeds)",
             (f"zoo/{distill.NAME}.safetensors", f"zoo/{distill.NAME}.json", distill.RESULTS),
             _build, _verify, needs=("gpt-char-jargon",)),
    Artifact("11-cot", "11", "chain of thought on the parity of 2-6 bits: a 2-layer 64-dim GPT trained "
             "to answer directly or with a scratchpad (3 seeds each), self-consistency, best-of-n "
             "with a verifier and a calculator tool loop; the seed-0 scratchpad model",
             (cot.RESULTS, cot.CHECKPOINT), _build_cot, _verify_cot),
    Artifact("11-fewshot", "11", "few-shot prompting: a 2-layer 64-dim GPT trained on episodes of four "
             "families of word mappings defined only by their examples (3 seeds), accuracy by number of shots with "
             "true and random labels; the seed-0 model",
             (fewshot.RESULTS, fewshot.CHECKPOINT), _build_fewshot, _verify_fewshot),
    Artifact("11-tot", "11", "tree of thoughts (breadth-first beam search over partial scratchpads, "
             "verifier-pruned) against greedy decoding and sampled chains at matched generated tokens, "
             "with gpt-char-cot as the proposer (3 sampling seeds)",
             (tot.RESULTS,), _build_tot, _verify_tot, needs=("11-cot",)),
]
