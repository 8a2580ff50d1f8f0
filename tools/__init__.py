"""Build and test tooling for the book (not part of the installed library)."""
