"""Chapter 23: long contexts and retrieval-augmented generation on the Jargon File."""
