"""Chapter 18: decoding and generation (experiments on the character GPT of chapter 07, and figures)."""
