"""Chapter 16, parameter-efficient fine-tuning: LoRA, DoRA, QLoRA, prompt tuning and IA³ on the
character-level GPT of chapter 07, adapted to a new language.

``experiments`` holds the methods, the fine-tuning driver and the memory and speed measurements;
``study`` the three-seed sweep behind the chapter's table (a shipped results file, built by
``artifacts``); ``plots`` draws the figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
