"""A tiny tied-embedding LM with dropout, shared by the training and checkpoint tests."""

import torch

VOCAB = 13

class Tiny(torch.nn.Module):
    """Bigram-ish LM with dropout (so RNG state matters) and tied embeddings (so aliases matter)."""

    def __init__(self, dim=16):
        super().__init__()
        self.wte = torch.nn.Embedding(VOCAB, dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.GELU(), torch.nn.Dropout(0.2))
        self.head = torch.nn.Linear(dim, VOCAB, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, ids):
        return self.head(self.mlp(self.wte(ids)))


