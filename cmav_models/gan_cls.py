"""The paper's conditional GAN (Chen et al. 2017), built in the manner of GAN-CLS (Reed et al. 2016).

What the paper describes (``../shared/reference/paper-facts.md``), and how it is read here:

- **Condition.** An encoder's classification feature (the paper: 128-d) is mapped to a 64-d code by a
  linear layer trained with the GAN. As in GAN-CLS, G and D each own such a layer (a linear map and a
  leaky ReLU), so neither player moves the other's reading of the condition.
- **Generator.** The code concatenated with a 10-d noise z -> a linear layer to a small grid ->
  ``n_up`` deconvolutions (4x4 transposed convolutions, stride 2, batch norm, ReLU; DCGAN's) -> tanh,
  cropped to ``out_shape`` (an LMS's 44 frames come from a 48-frame grid).
- **Discriminator.** Strided 4x4 convolutions (batch norm, leaky ReLU) on the sample alone; the code
  joins late: replicated over the last feature map's grid and concatenated with it, then a 1x1
  convolution and a linear read-out give one logit ("a real sample that matches this condition").
- **Loss (GAN-CLS).** D: (real, matching) -> real; (real, mismatched) -> fake; (generated, matching)
  -> fake; the two fake terms share one half each. G: the non-saturating loss on (generated,
  matching). ``mismatch=False`` drops the mismatched term (S2I-N), leaving the plain conditional GAN.
- **Mismatches** (:func:`mismatched_rows`): "instrument" draws a row of another instrument (the
  paper's instrument-oriented generation); "pose" draws the same instrument at a pose that differs
  by at least ``pose_margin`` (pose-oriented generation; on the demo corpus the pose is the pitch
  position read from the F0, 0..1 of the instrument's range).
- **S2I-A** (:func:`train_encoder_decoder`): no discriminator; the same code layer and generator
  trained with a mean-squared error on the image, with the noise held at zero.
- **I2S** is the same model the other way: an image classifier's feature in, an LMS out.

Ours, not the paper's (its layer shapes could not be retrieved): widths and depths, Adam settings,
the pose margin, zero noise in S2I-A, and the fallback when a row has no mismatch of the asked kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from cmav_models.train import Stage, batches, run_stage

MISMATCH_KINDS = ("instrument", "pose")


@dataclass(frozen=True)
class GanClsConfig:
    out_channels: int = 3  # 3 for an RGB image, 1 for an LMS
    out_shape: tuple[int, int] = (64, 64)  # (height, width) of one sample; an LMS is (128, 44)
    cond_dim: int = 128  # the encoder's feature fed in (the paper's 128-d classification feature)
    code_dim: int = 64  # the condition code (the paper's 64-d)
    noise_dim: int = 10  # the noise z (the paper's 10-d)
    n_up: int = 4  # G's stride-2 deconvolutions; D has as many stride-2 convolutions
    g_channels: int = 32  # G's last deconvolution's width, doubled per layer towards the input
    d_channels: int = 32  # D's first convolution's width, doubled per layer
    mismatch: bool = True  # train D on (real, mismatched condition) pairs; False = S2I-N
    mismatch_kind: str = "instrument"  # "instrument" | "pose" (see mismatched_rows)
    pose_margin: float = 0.25  # "pose": the mismatch's pose differs by at least this (0..1 scale)

    def __post_init__(self) -> None:
        if self.out_channels < 1 or min(self.out_shape) < 2 ** self.n_up:
            raise ValueError(f"out_shape {self.out_shape} must be at least 2**n_up = {2 ** self.n_up} per side")
        for name in ("cond_dim", "code_dim", "noise_dim", "n_up", "g_channels", "d_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.mismatch_kind not in MISMATCH_KINDS:
            raise ValueError(f"mismatch_kind must be one of {MISMATCH_KINDS}, not {self.mismatch_kind!r}")
        if not 0 < self.pose_margin < 1:
            raise ValueError(f"pose_margin must be in (0, 1), not {self.pose_margin}")


@dataclass(frozen=True)
class GanClsTraining:
    epochs: int = 10
    batch_size: int = 64
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    beta1: float = 0.5  # DCGAN's Adam setting, as GAN-CLS


def condition_code(config: GanClsConfig) -> nn.Sequential:
    """The encoder's feature [B, cond_dim] -> the code [B, code_dim]."""
    return nn.Sequential(nn.Linear(config.cond_dim, config.code_dim), nn.LeakyReLU(0.2, inplace=True))


class Generator(nn.Module):
    def __init__(self, config: GanClsConfig):
        super().__init__()
        self.config = config
        self.code = condition_code(config)
        self.grid = tuple(-(-n // 2 ** config.n_up) for n in config.out_shape)
        c = config.g_channels * 2 ** (config.n_up - 1)
        self.stem = nn.Sequential(nn.Linear(config.code_dim + config.noise_dim, c * self.grid[0] * self.grid[1],
                                            bias=False), nn.Unflatten(1, (c, *self.grid)),
                                  nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        layers = []
        for i in reversed(range(1, config.n_up)):
            c_out = config.g_channels * 2 ** (i - 1)
            layers += [nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c = c_out
        self.body = nn.Sequential(*layers, nn.ConvTranspose2d(c, config.out_channels, 4, stride=2, padding=1),
                                  nn.Tanh())

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """z [B, noise_dim], cond [B, cond_dim] -> samples [B, out_channels, *out_shape] in [-1, 1]."""
        h = torch.cat([self.code(cond), z], dim=1)  # [B, code_dim + noise_dim]
        out = self.body(self.stem(h))  # [B, C, grid * 2**n_up]
        return out[:, :, : self.config.out_shape[0], : self.config.out_shape[1]]


class Discriminator(nn.Module):
    def __init__(self, config: GanClsConfig):
        super().__init__()
        self.config = config
        layers, c = [], config.out_channels
        for i in range(config.n_up):
            c_out = config.d_channels * 2 ** i
            # DCGAN: no batch norm on the first layer, which sees the raw sample.
            norm = [nn.BatchNorm2d(c_out)] if i else []
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1, bias=not i), *norm,
                       nn.LeakyReLU(0.2, inplace=True)]
            c = c_out
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            self.grid = tuple(self.features(torch.zeros(2, config.out_channels, *config.out_shape)).shape[2:])
        self.code = condition_code(config)
        self.joint = nn.Sequential(nn.Conv2d(c + config.code_dim, c, 1, bias=False), nn.BatchNorm2d(c),
                                   nn.LeakyReLU(0.2, inplace=True), nn.Flatten(),
                                   nn.Linear(c * self.grid[0] * self.grid[1], 1))

    def score(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Logits [B] of sample features [B, c, *grid] (from ``features``) paired with conditions [B, cond_dim]."""
        code = self.code(cond)[:, :, None, None].expand(-1, -1, *features.shape[2:])  # [B, code_dim, *grid]
        return self.joint(torch.cat([features, code], dim=1)).squeeze(1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Samples [B, out_channels, *out_shape] and conditions [B, cond_dim] -> logits [B]."""
        return self.score(self.features(x), cond)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       mismatched_logits: torch.Tensor | None) -> torch.Tensor:
    """GAN-CLS's D loss on logits: -log D(real, match) - [log(1 - D(real, mismatch)) + log(1 - D(fake,
    match))] / 2; without mismatched logits, the conditional GAN's -log D(real) - log(1 - D(fake))."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    if mismatched_logits is None:
        return real + fake
    mismatched = F.binary_cross_entropy_with_logits(mismatched_logits, torch.zeros_like(mismatched_logits))
    return real + (fake + mismatched) / 2


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating G loss: -log D(fake, match)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def mismatched_rows(labels: torch.Tensor, pose: torch.Tensor, index: torch.Tensor, kind: str, margin: float,
                    generator: torch.Generator) -> torch.Tensor:
    """For each row of ``index``, a row (uniformly among the fitting ones) whose condition does not match it.

    ``kind="instrument"``: a row of another instrument. ``kind="pose"``: a row of the same instrument
    whose pose (``pose``, NaN when unknown) differs by at least ``margin``. A row with no such partner
    (unknown pose, or its instrument played in one pose only) falls back to another instrument, and
    with one instrument in all, to any other row. Labels, poses and index are [N], [N], [B].
    """
    if kind not in MISMATCH_KINDS:
        raise ValueError(f"kind must be one of {MISMATCH_KINDS}, not {kind!r}")
    other_instrument = labels[None, :] != labels[index][:, None]  # [B, N]
    if kind == "pose":
        apart = (pose[None, :] - pose[index][:, None]).abs() >= margin  # NaN compares False
        candidates = ~other_instrument & apart
        candidates = torch.where(candidates.any(1, keepdim=True), candidates, other_instrument)
    else:
        candidates = other_instrument
    not_self = torch.ones_like(candidates)
    not_self[torch.arange(len(index)), index] = False
    candidates = torch.where(candidates.any(1, keepdim=True), candidates, not_self)
    # Uniform among candidates: the largest of independent uniforms over the allowed columns.
    draw = torch.rand(candidates.shape, generator=generator)
    return torch.where(candidates, draw, -1.0).argmax(1)


def _adam(module: nn.Module, lr: float, training: GanClsTraining) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(training.beta1, 0.999))


def train_gan_cls(stage: Stage, generator: Generator, discriminator: Discriminator, samples: torch.Tensor,
                  conditions: torch.Tensor, labels: torch.Tensor, pose: torch.Tensor,
                  to_unit: Callable[[torch.Tensor], torch.Tensor], training: GanClsTraining) -> list[dict]:
    """Train G and D on (sample, condition) rows; conditions are fixed encoder features [N, cond_dim],
    ``labels`` and ``pose`` [N] choose the mismatches. Returns the per-epoch losses."""
    config = generator.config
    g_opt = _adam(generator, training.lr_generator, training)
    d_opt = _adam(discriminator, training.lr_discriminator, training)

    def epoch(rng: torch.Generator) -> dict[str, float]:
        d_losses, g_losses = [], []
        for index in batches(len(samples), training.batch_size, rng):
            real = to_unit(samples[index]).to(stage.device)
            cond = conditions[index].to(stage.device)
            z = torch.randn(len(index), config.noise_dim, generator=rng).to(stage.device)
            fake = generator(z, cond)
            real_features = discriminator.features(real)  # shared by the matching and mismatched pairs
            mismatched_logits = None
            if config.mismatch:
                other = mismatched_rows(labels, pose, index, config.mismatch_kind, config.pose_margin, rng)
                mismatched_logits = discriminator.score(real_features, conditions[other].to(stage.device))
            d_loss = discriminator_loss(discriminator.score(real_features, cond), discriminator(fake.detach(), cond),
                                        mismatched_logits)
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            g_loss = generator_loss(discriminator(fake, cond))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            d_losses.append(d_loss.item())
            g_losses.append(g_loss.item())
        return {"d_loss": sum(d_losses) / max(len(d_losses), 1), "g_loss": sum(g_losses) / max(len(g_losses), 1)}

    return run_stage(stage, {"generator": generator, "discriminator": discriminator},
                     {"generator": g_opt, "discriminator": d_opt}, training.epochs, epoch)


def train_encoder_decoder(stage: Stage, generator: Generator, samples: torch.Tensor, conditions: torch.Tensor,
                          to_unit: Callable[[torch.Tensor], torch.Tensor], training: GanClsTraining) -> list[dict]:
    """S2I-A: the code layer and generator fitted to the samples by mean-squared error, noise at zero."""
    optimizer = _adam(generator, training.lr_generator, training)

    def epoch(rng: torch.Generator) -> dict[str, float]:
        losses = []
        for index in batches(len(samples), training.batch_size, rng):
            target = to_unit(samples[index]).to(stage.device)
            cond = conditions[index].to(stage.device)
            z = torch.zeros(len(index), generator.config.noise_dim, device=stage.device)
            loss = F.mse_loss(generator(z, cond), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return {"mse": sum(losses) / max(len(losses), 1)}

    return run_stage(stage, {"generator": generator}, {"generator": optimizer}, training.epochs, epoch)


@torch.no_grad()
def generate(generator: Generator, conditions: torch.Tensor, seed: int, device: torch.device, noise: bool = True,
             batch_size: int = 256) -> torch.Tensor:
    """One sample per condition row from seeded noise (zero noise for the encoder-decoder), on the CPU."""
    generator.eval()
    z = torch.randn(len(conditions), generator.config.noise_dim, generator=torch.Generator().manual_seed(seed))
    if not noise:
        z.zero_()
    return torch.cat([generator(z[i:i + batch_size].to(device), conditions[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(conditions), batch_size)])
