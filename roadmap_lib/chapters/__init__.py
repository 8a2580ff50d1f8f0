"""Chapter code: one package per chapter, ``chNN_<slug>``, named like its notebook.

A chapter package holds that chapter's recipes, experiments, artifact builders and figures. It
imports the core of ``roadmap_lib`` and its own chapter's modules only; the core never imports it
(CONTRIBUTING.md, "Where code goes"; ``tests/test_layout.py`` checks both). A piece that a second
chapter needs is promoted to the core, with its tests.

:func:`artifacts` is the index of everything the project ships in ``data/``: each chapter lists
its own in ``chNN_<slug>/artifacts.py``. ``python -m roadmap_lib`` builds, verifies and lists them.
"""

from __future__ import annotations


def artifacts():
    """``{name: roadmap_lib.zoo.Artifact}`` for every shipped artifact, in build order."""
    from roadmap_lib import tasks, zoo
    from roadmap_lib.chapters.ch02_tokenization_embeddings.artifacts import ARTIFACTS as ch02
    from roadmap_lib.chapters.ch03_positional_encodings.artifacts import ARTIFACTS as ch03
    from roadmap_lib.chapters.ch04_core_components.artifacts import ARTIFACTS as ch04
    from roadmap_lib.chapters.ch05_encoder_decoder.artifacts import ARTIFACTS as ch05
    from roadmap_lib.chapters.ch06_encoder_only.artifacts import ARTIFACTS as ch06
    from roadmap_lib.chapters.ch07_decoder_only.artifacts import ARTIFACTS as ch07
    from roadmap_lib.chapters.ch08_text_to_text.artifacts import ARTIFACTS as ch08
    from roadmap_lib.chapters.ch09_scaling_laws_emergence.artifacts import ARTIFACTS as ch09
    from roadmap_lib.chapters.ch10_pretraining_finetuning.artifacts import ARTIFACTS as ch10
    from roadmap_lib.chapters.ch11_prompting_distillation.artifacts import ARTIFACTS as ch11
    from roadmap_lib.chapters.ch12_efficient_architectures.artifacts import ARTIFACTS as ch12
    from roadmap_lib.chapters.ch15_inference_optimization.artifacts import ARTIFACTS as ch15
    from roadmap_lib.chapters.ch16_peft_lora_qlora.artifacts import ARTIFACTS as ch16
    from roadmap_lib.chapters.ch17_llmops.artifacts import ARTIFACTS as ch17
    from roadmap_lib.chapters.ch19_alignment.artifacts import ARTIFACTS as ch19
    from roadmap_lib.chapters.ch20_responsible_ai.artifacts import ARTIFACTS as ch20
    from roadmap_lib.chapters.ch21_evaluation.artifacts import ARTIFACTS as ch21
    from roadmap_lib.chapters.ch22_applications.artifacts import ARTIFACTS as ch22
    from roadmap_lib.chapters.ch23_long_context_rag.artifacts import ARTIFACTS as ch23
    from roadmap_lib.chapters.ch24_multimodal.artifacts import ARTIFACTS as ch24
    from roadmap_lib.chapters.ch25_multilingual_economics_frontiers.artifacts import ARTIFACTS as ch25

    return zoo.registry([tasks.ARTIFACT, *ch02, *ch03, *ch04, *ch05, *ch06, *ch07, *ch08, *ch09, *ch10, *ch11, *ch12, *ch15, *ch16, *ch17, *ch19, *ch20, *ch21, *ch22, *ch23, *ch24, *ch25])
