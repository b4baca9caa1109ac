"""A modern baseline beside the paper's GANs: conditional flow matching (rectified flow) with a small U-Net.

Ours, not the paper's. Training draws a noise sample x0 ~ N(0, I), a data sample x1 (in [-1, 1]) and a
time t ~ U(0, 1), and regresses the network's velocity v(x_t, t, c) at x_t = (1 - t) x0 + t x1 onto
the straight path's velocity x1 - x0 (Lipman et al. 2023; Liu et al. 2023, "rectified flow").
Sampling integrates dx/dt = v from noise at t = 0 to t = 1 with ``sample_steps`` Euler steps
(8-32: cheap enough to score on a CPU).

Classifier-free guidance (Ho & Salimans 2022): in training, the condition is replaced by a learnt
"no condition" vector with probability ``cond_dropout``; in sampling, v = v_uncond + w (v_cond -
v_uncond) with w = ``guidance`` (w = 1 is the plain conditional model).

The condition is the same encoder feature the GANs get, [B, cond_dim]; it and the time's sinusoidal
embedding are summed into one vector that shifts and scales every residual block (FiLM). The U-Net
works on ``patch`` x ``patch`` blocks of pixels folded into channels (pixel unshuffle, as patch-based
diffusion models do; at patch 2 a quarter of the full-resolution cost, which on a CPU is what lets it
train in the GANs' time): a 3x3 stem, ``len(channel_mults)`` levels of one residual block each
(average-pool down, nearest upsample up, skip connections), group norm throughout (no batch
statistics, so a sample does not depend on its batch), then the blocks unfolded back. Inputs whose
sides are not multiples of patch x 2^(levels - 1) (an LMS's 44 frames) are zero-padded and the
output cropped back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from cmav_models.train import Stage, batches, run_stage

MIN_STEPS, MAX_STEPS = 1, 1000


@dataclass(frozen=True)
class FlowConfig:
    channels: int = 3  # 3 for an RGB image, 1 for an LMS
    shape: tuple[int, int] = (64, 64)  # (height, width) of one sample; an LMS is (128, 44)
    cond_dim: int = 128  # the encoder's feature fed in
    patch: int = 2  # pixels per side folded into channels before the U-Net (1 = full resolution)
    base_channels: int = 32  # the U-Net's first level's width
    channel_mults: tuple[int, ...] = (1, 2, 2)  # width of each level in base_channels; one halving between levels
    embed_dim: int = 128  # the time + condition vector that modulates every block
    groups: int = 8  # group norm's groups (divides every level's width)
    cond_dropout: float = 0.1  # training: probability of the "no condition" vector (classifier-free guidance)
    guidance: float = 2.0  # sampling: w in v_uncond + w (v_cond - v_uncond); 1 = no guidance
    sample_steps: int = 16  # sampling: Euler steps from t = 0 to 1

    def __post_init__(self) -> None:
        if self.patch < 1:
            raise ValueError(f"patch must be positive, not {self.patch}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be positive, not {self.channel_mults}")
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.groups:
                raise ValueError(f"groups {self.groups} must divide every level's width "
                                 f"({self.base_channels} x {self.channel_mults})")
        if not 0 <= self.cond_dropout < 1:
            raise ValueError(f"cond_dropout must be in [0, 1), not {self.cond_dropout}")
        if not MIN_STEPS <= self.sample_steps <= MAX_STEPS:
            raise ValueError(f"sample_steps must be in {MIN_STEPS}..{MAX_STEPS}, not {self.sample_steps}")
        if self.guidance < 0:
            raise ValueError(f"guidance must be >= 0, not {self.guidance}")

    @property
    def multiple(self) -> int:
        """Inputs are padded to a multiple of this per side."""
        return self.patch * 2 ** (len(self.channel_mults) - 1)


@dataclass(frozen=True)
class FlowTraining:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 5e-4
    beta1: float = 0.9


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features [B, dim] of times t [B] in [0, 1] (the transformer's, on 1000 t)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with group norm and SiLU; the embedding scales and shifts the second's input."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(groups, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return self.skip(x) + h


class VelocityUNet(nn.Module):
    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        e = config.embed_dim
        self.time = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.cond = nn.Sequential(nn.Linear(config.cond_dim, e), nn.SiLU(), nn.Linear(e, e))
        self.null_cond = nn.Parameter(torch.zeros(config.cond_dim))  # the "no condition" input (guidance)
        widths = [config.base_channels * m for m in config.channel_mults]
        folded = config.channels * config.patch ** 2
        self.fold, self.unfold = nn.PixelUnshuffle(config.patch), nn.PixelShuffle(config.patch)
        self.stem = nn.Conv2d(folded, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        c = widths[0]
        for w in widths:
            self.down.append(ResBlock(c, w, e, config.groups))
            c = w
        self.mid = ResBlock(c, c, e, config.groups)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(ResBlock(c + w, w, e, config.groups))
            c = w
        self.out = nn.Sequential(nn.GroupNorm(config.groups, c), nn.SiLU(), nn.Conv2d(c, folded, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                keep_cond: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity [B, C, H, W] at x [B, C, H, W], times t [B]; conditions cond [B, cond_dim], each
        replaced by the "no condition" vector where ``keep_cond`` [B] (bool) is False."""
        if keep_cond is not None:
            cond = torch.where(keep_cond[:, None], cond, self.null_cond.expand_as(cond))
        emb = self.time(time_embedding(t, self.config.embed_dim)) + self.cond(cond)  # [B, embed_dim]
        height, width = x.shape[2:]
        m = self.config.multiple
        h = F.pad(x, (0, -width % m, 0, -height % m))  # [B, C, H', W'], multiples of m
        h = self.stem(self.fold(h))  # [B, c, H' / patch, W' / patch]
        skips = []
        for level, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if level < len(self.down) - 1:
                h = F.avg_pool2d(h, 2)  # [B, c, H' / 2**level, ...]
        h = self.mid(h, emb)
        for level, block in enumerate(self.up):
            if level:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.unfold(self.out(h))[:, :, :height, :width]  # [B, C, H, W]


def flow_matching_loss(model: VelocityUNet, x1: torch.Tensor, cond: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
    """The mean-squared error of v(x_t, t, c) against x1 - x0, with conditions dropped for guidance."""
    n = len(x1)
    x0 = torch.randn(x1.shape, generator=generator).to(x1.device)
    t = torch.rand(n, generator=generator).to(x1.device)
    keep = (torch.rand(n, generator=generator) >= model.config.cond_dropout).to(x1.device)
    tb = t[:, None, None, None]
    x_t = (1 - tb) * x0 + tb * x1
    return F.mse_loss(model(x_t, t, cond, keep), x1 - x0)


def train_flow(stage: Stage, model: VelocityUNet, samples: torch.Tensor, conditions: torch.Tensor,
               to_unit: Callable[[torch.Tensor], torch.Tensor], training: FlowTraining) -> list[dict]:
    """Fit the velocity field to (sample, condition) rows; conditions are fixed encoder features."""
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr, betas=(training.beta1, 0.999))

    def epoch(rng: torch.Generator) -> dict[str, float]:
        losses = []
        for index in batches(len(samples), training.batch_size, rng):
            loss = flow_matching_loss(model, to_unit(samples[index]).to(stage.device),
                                      conditions[index].to(stage.device), rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return {"loss": sum(losses) / max(len(losses), 1)}

    return run_stage(stage, {"model": model}, {"optimizer": optimizer}, training.epochs, epoch)


@torch.no_grad()
def sample(model: VelocityUNet, conditions: torch.Tensor, seed: int, device: torch.device,
           steps: int | None = None, guidance: float | None = None, batch_size: int = 128) -> torch.Tensor:
    """One sample per condition row [N, cond_dim] -> [N, C, H, W] on the CPU, clipped to [-1, 1]:
    Euler steps from seeded noise, guided (``steps``/``guidance`` default to the config's)."""
    model.eval()
    config = model.config
    steps = config.sample_steps if steps is None else steps
    w = config.guidance if guidance is None else guidance
    noise = torch.randn(len(conditions), config.channels, *config.shape, generator=torch.Generator().manual_seed(seed))
    out = []
    for i in range(0, len(conditions), batch_size):
        x = noise[i:i + batch_size].to(device)
        cond = conditions[i:i + batch_size].to(device)
        n = len(x)
        both = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)]).to(device)
        for k in range(steps):
            t = torch.full((2 * n,), k / steps, device=device)
            v_cond, v_uncond = model(torch.cat([x, x]), t, torch.cat([cond, cond]), both).chunk(2)
            x = x + (v_uncond + w * (v_cond - v_uncond)) / steps
        out.append(x.clamp(-1, 1).cpu())
    return torch.cat(out)
