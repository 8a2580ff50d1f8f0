"""Chapter 02, tokenization and embeddings: the tokenizer study (fertility, shipped tokenizers) and the embedding probe LM.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
