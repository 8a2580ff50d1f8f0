"""Chapter 22: applications, each a small system with its metric against a simple strong baseline."""
