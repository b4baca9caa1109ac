"""Conditional GAN of the 2017 cross-modal paper (S2I and I2S), sized by a config.

Generator: noise z and the projected condition code are concatenated, a linear layer makes a
small grid, then ``n_up`` (nearest upsample, 3x3 conv, batch norm, ReLU) layers, each doubling the
size and halving the channels -> tanh; cropped to ``out_shape`` when the output's sides are not the
grid times 2^n_up (the LMS's 44 frames come from a 48-frame grid).

Discriminator: a projection discriminator (Miyato & Koyama 2018) with spectral norm on every
layer: strided convolutions on the sample, a linear layer to features h, then one logit ("is this
a real sample of this condition") = a linear read-out of h plus the inner product of h with a
linear embedding of the condition. Trained with the hinge loss on three kinds of pairs, as in the
paper: (real sample, its own condition) -> real; (generated sample, the condition) -> fake; (real
sample, a mismatched condition) -> fake. The last term teaches the discriminator, and so the
generator, to respect the condition and not only to look real; ``mismatch=False`` drops it (the
S2I-N variant). Spectral norm, hinge and projection learn class-conditional samples in a few
hundred CPU steps where concatenation and a batch-normed, cross-entropy discriminator did not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm


@dataclass(frozen=True)
class CGANConfig:
    out_channels: int = 3
    out_shape: tuple[int, int] = (64, 64)
    cond_dim: int = 128  # size of the condition embedding fed in
    code_dim: int = 32  # the generator's projected condition code
    noise_dim: int = 64
    n_up: int = 4  # generator upsamplings (discriminator downsamplings)
    g_channels: int = 32  # generator's last layer; doubled per layer towards the input
    d_channels: int = 32  # discriminator's first layer; doubled per layer
    d_features: int = 256  # discriminator's feature vector h, projected onto the condition
    mismatch: bool = True  # train the discriminator on (real, mismatched condition) pairs


class Generator(nn.Module):
    def __init__(self, config: CGANConfig):
        super().__init__()
        self.config = config
        self.project = nn.Sequential(nn.Linear(config.cond_dim, config.code_dim), nn.LeakyReLU(0.2, inplace=True))
        self.grid = tuple(-(-n // 2 ** config.n_up) for n in config.out_shape)
        c = config.g_channels * 2 ** (config.n_up - 1)
        self.stem = nn.Sequential(nn.Linear(config.noise_dim + config.code_dim, c * self.grid[0] * self.grid[1],
                                            bias=False), nn.Unflatten(1, (c, *self.grid)),
                                  nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        layers = []
        for i in reversed(range(config.n_up)):
            c_out = config.g_channels * 2 ** (i - 1) if i else config.g_channels
            # Nearest upsampling + conv rather than a transposed conv: no checkerboard artefacts,
            # which otherwise dominate the pictures of a short (CPU) training run.
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c = c_out
        self.body = nn.Sequential(*layers, nn.Conv2d(c, config.out_channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.body(self.stem(torch.cat([z, self.project(cond)], dim=1)))
        return out[:, :, : self.config.out_shape[0], : self.config.out_shape[1]]


class Discriminator(nn.Module):
    def __init__(self, config: CGANConfig):
        super().__init__()
        layers, c = [], config.out_channels
        for i in range(config.n_up):
            c_out = config.d_channels * 2 ** i
            layers += [spectral_norm(nn.Conv2d(c, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            c = c_out
        with torch.no_grad():
            flat = nn.Sequential(*layers, nn.Flatten())(torch.zeros(1, config.out_channels, *config.out_shape)).shape[1]
        self.features = nn.Sequential(*layers, nn.Flatten(), spectral_norm(nn.Linear(flat, config.d_features)),
                                      nn.LeakyReLU(0.2, inplace=True))
        self.realness = spectral_norm(nn.Linear(config.d_features, 1))
        self.match = spectral_norm(nn.Linear(config.cond_dim, config.d_features, bias=False))

    def score(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Logits [B] of sample features (from ``features``) paired with conditions."""
        # Projection term: "does it fit the condition" is an explicit inner product, so
        # conditioning is learnt in few steps.
        return self.realness(features).squeeze(1) + (features * self.match(cond)).sum(1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x), cond)


def discriminator_loss(d: Discriminator, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor,
                       mismatched_cond: torch.Tensor | None) -> torch.Tensor:
    """Hinge loss: real pairs pushed above +1; fake pairs (and, if given, real-with-mismatched
    pairs, sharing the fake pairs' weight) below -1."""
    real_features = d.features(real)  # shared by the matched and mismatched real pairs
    loss_real = F.relu(1 - d.score(real_features, cond)).mean()
    loss_fake = F.relu(1 + d(fake.detach(), cond)).mean()
    if mismatched_cond is None:
        return loss_real + loss_fake
    loss_mismatch = F.relu(1 + d.score(real_features, mismatched_cond)).mean()
    return loss_real + (loss_fake + loss_mismatch) / 2


def generator_loss(d: Discriminator, fake: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: raise the discriminator's score of (generated sample, condition)."""
    return -d(fake, cond).mean()
