"""The CNN sound classifier of the 2017 cross-modal paper, in one readable file.

Chen et al. (2017) chose their audio representation by training CNN sound classifiers with
different numbers of convolution layers on each candidate representation (log-mel with 4 conv
layers won). This is that classifier: ``depth`` conv blocks (conv 3x3, batch norm, ReLU, 2x2 max
pool), global average pooling, dropout and a linear layer. ``embed`` returns the pooled features
before the linear layer (the GANs condition on them).

``keep_frequency=True`` averages over time only and flattens (channels x remaining rows): where the
energy sits in frequency (timbre, register) survives into the embedding. On the demo corpus this
lifts a width-8 classifier from 0.66 to 0.94 validation accuracy in the same 5 epochs; the bench
uses it; the representation comparison (``cmav_models.compare_features``) runs both poolings.

Input: float tensor [B, 1, rows, frames], e.g. a log-mel spectrogram [B, 1, 128, 44]. A batch norm
on the single input channel brings dB, MFCC or any other scale to one overall scale; it cannot
balance rows against each other (MFCC's c0 against c1..c19), so compare-features standardises
each row on its training data first. Inputs much taller than 128 rows (a 1025-row STFT) enter through a first layer strided in
frequency, so every representation meets a network of about the same size and cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MIN_DEPTH, MAX_DEPTH = 2, 5
STEM_ROWS = 128  # rows the first layer reduces tall inputs to (about)


@dataclass
class SoundCNNConfig:
    n_classes: int = 13
    depth: int = 4  # number of conv layers, 2..5
    in_shape: tuple[int, int] = (128, 44)  # (rows, frames) of one input
    channels: int = 32  # width of every conv layer
    dropout: float = 0.2
    kernel_size: int = 3
    keep_frequency: bool = False  # pool over time only (see the module docstring)


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        padding = (kernel[0] // 2, kernel[1] // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.norm = nn.BatchNorm2d(c_out)
        # ceil_mode keeps a 1-row input 1 row tall, so depth 5 works on 20 MFCC rows.
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.norm(self.conv(x))))


class SoundCNN(nn.Module):
    def __init__(self, config: SoundCNNConfig) -> None:
        super().__init__()
        if not MIN_DEPTH <= config.depth <= MAX_DEPTH:
            raise ValueError(f"depth must be in {MIN_DEPTH}..{MAX_DEPTH}, not {config.depth}")
        self.config = config
        k = config.kernel_size
        stem_stride = max(1, config.in_shape[0] // STEM_ROWS)
        # A strided first layer must still see every row: its kernel spans at least two strides.
        stem_kernel = (max(k, 2 * stem_stride - 1) | 1, k)
        self.input_norm = nn.BatchNorm2d(1)
        blocks = [ConvBlock(1, config.channels, stem_kernel, (stem_stride, 1))]
        blocks += [ConvBlock(config.channels, config.channels, (k, k), (1, 1)) for _ in range(config.depth - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        with torch.no_grad():
            stacked = self.eval().blocks(torch.zeros(1, 1, *config.in_shape))
        self.train()
        # Frequency rows left after the conv stack: at 1 (20 MFCC rows, 5 blocks) both poolings are
        # the same network.
        self.rows_out = stacked.shape[2]
        embed_dim = config.channels * self.rows_out if config.keep_frequency else config.channels
        self.head = nn.Linear(embed_dim, config.n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the conv stack average-pooled over time and frequency [B, channels],
        or over time only and flattened [B, channels * rows] (``keep_frequency``)."""
        h = self.blocks(self.input_norm(x))
        return h.mean(dim=3).flatten(1) if self.config.keep_frequency else h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, n_classes]."""
        return self.head(self.dropout(self.embed(x)))
