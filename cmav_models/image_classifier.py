"""Image classifier: a small CNN on square player crops (64 or 128 px, RGB in [-1, 1]).

Its penultimate layer is the image embedding (conditions I2S, and the space of the image Fréchet
distance). The last conv map is flattened rather than average-pooled, so where things are in the
picture (the bow or slide position) survives into the embedding; the bench's pose regressor is
the same network with one output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ImageCNNConfig:
    n_classes: int = 13  # outputs; 1 for the pose regressor
    image_size: int = 64
    depth: int = 4  # conv blocks, each halving the size
    channels: int = 32  # first block; doubled per block up to 8x
    embed_dim: int = 128
    dropout: float = 0.2


class ImageCNN(nn.Module):
    def __init__(self, config: ImageCNNConfig = ImageCNNConfig()):
        super().__init__()
        self.config = config
        blocks, c_in = [], 3
        for i in range(config.depth):
            c_out = config.channels * 2 ** min(i, 3)
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        side = config.image_size // 2 ** config.depth
        self.embedding = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, config.embed_dim),
                                       nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.embed_dim, config.n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, embed_dim] of images x [B, 3, S, S]."""
        return self.embedding(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
