"""Sound autoencoder: the S2I-A sound encoder, trained to reconstruct the LMS, not to classify.

Chen et al. 2017 compare a sound encoder trained as a classifier (S2I-C) with one trained as an
autoencoder (S2I-A). Input and output: LMS [B, 1, 128, 44] scaled to [-1, 1]. The encoder's
bottleneck code is the sound embedding. Strided convolutions round the odd time axis up, so the
decoder's output is cropped back to the input's shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SoundAutoencoderConfig:
    in_shape: tuple[int, int] = (128, 44)  # (mel bands, frames)
    depth: int = 4  # stride-2 conv layers in the encoder (and transposed ones in the decoder)
    channels: int = 16  # first encoder layer; doubled per layer
    embed_dim: int = 128


class SoundAutoencoder(nn.Module):
    def __init__(self, config: SoundAutoencoderConfig = SoundAutoencoderConfig()):
        super().__init__()
        self.config = config
        enc, c_in = [], 1
        for i in range(config.depth):
            c_out = config.channels * 2 ** i
            enc += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.encoder = nn.Sequential(*enc)
        # Bottleneck grid: ceil division, as strided convs with padding round up.
        self.grid = tuple(-(-n // 2 ** config.depth) for n in config.in_shape)
        flat = c_in * self.grid[0] * self.grid[1]
        self.to_code = nn.Linear(flat, config.embed_dim)
        self.from_code = nn.Sequential(nn.Linear(config.embed_dim, flat), nn.LeakyReLU(0.2, inplace=True))
        dec = []
        for i in reversed(range(config.depth)):
            c_out = config.channels * 2 ** (i - 1) if i else config.channels
            dec += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.decoder = nn.Sequential(*dec, nn.Conv2d(c_in, 1, 3, padding=1), nn.Tanh())

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The code [B, embed_dim] of LMS x [B, 1, F, T]."""
        h = self.encoder(x)
        h = nn.functional.pad(h, (0, self.grid[1] - h.shape[3], 0, self.grid[0] - h.shape[2]))
        return self.to_code(h.flatten(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        h = self.from_code(code).view(len(code), -1, *self.grid)
        out = self.decoder(h)
        return out[:, :, : self.config.in_shape[0], : self.config.in_shape[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.embed(x))
