"""Chapter 10: pretraining and fine-tuning (training setup, how much to fine-tune)."""
