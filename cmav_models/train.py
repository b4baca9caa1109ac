"""Training loops for the reference models, with per-epoch checkpoints and exact resume.

Every epoch starts from seeds derived from (run seed, stage name, epoch), and each stage's
checkpoint holds its modules, optimizers, epochs done and loss history. So a run killed after
epoch k and resumed gives the same weights as one that never stopped, and two runs with the same
config give the same weights (on one device type).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from cmav_models.projection_gan import Discriminator, Generator, discriminator_loss, generator_loss
from cmav_models.checkpoints import load_checkpoint, save_checkpoint
from cmav_models.data import Pairs, augment_images, image_to_unit, lms_to_unit


SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    beta1: float = 0.9  # Adam; GANs use 0.5 (DCGAN)
    schedule: str = "constant"  # "cosine": the rate decays per epoch to near 0, so the last epoch is not a noisy one
    augment: bool = False  # image tasks only: colour, grey and shift jitter (cmav_models.data.augment_images)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")

    def lr_factor(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (from 0) as a fraction of ``lr``."""
        if self.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))


@dataclass
class Stage:
    """What a stage needs to checkpoint and resume: its name, file and the meta it must match."""

    name: str
    checkpoint: str | os.PathLike
    meta: dict
    seed: int
    device: torch.device
    progress: bool = True


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, stable across Python processes (unlike hash())."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch of indices in full batches (a last batch of one would break BatchNorm)."""
    order = torch.randperm(n, generator=generator)
    return [order[i:i + batch_size] for i in range(0, n, batch_size) if len(order[i:i + batch_size]) > 1]


def run_stage(stage: Stage, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
              epochs: int, epoch_fn: Callable[[torch.Generator], dict[str, float]],
              lr_factor: Callable[[int], float] | None = None) -> list[dict[str, float]]:
    """Resume ``stage`` from its checkpoint if any, train the remaining epochs; the loss history.
    ``lr_factor(epoch)`` scales every optimizer's initial rate at the start of each epoch."""
    history: list[dict[str, float]] = []
    # Taken before a checkpoint loads: an optimizer's saved state carries the last epoch's rate.
    base_lrs = {k: [group["lr"] for group in o.param_groups] for k, o in optimizers.items()}
    for module in modules.values():
        module.to(stage.device)  # first: optimizer states load onto their parameters' device
    if os.path.exists(stage.checkpoint):
        state = load_checkpoint(stage.checkpoint, stage.meta)
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        history = state["history"]
    for epoch in tqdm(range(len(history), epochs), desc=stage.name, unit="epoch", disable=not stage.progress,
                      initial=len(history), total=epochs, dynamic_ncols=True):
        torch.manual_seed(derive_seed(stage.seed, stage.name, epoch, "torch"))  # dropout
        generator = torch.Generator().manual_seed(derive_seed(stage.seed, stage.name, epoch, "data"))
        if lr_factor is not None:
            for k, optimizer in optimizers.items():
                for group, base in zip(optimizer.param_groups, base_lrs[k]):
                    group["lr"] = base * lr_factor(epoch)
        for module in modules.values():
            module.train()
        history.append(epoch_fn(generator))
        save_checkpoint(stage.checkpoint, {
            "meta": stage.meta, "history": history,
            "modules": {k: {n: t.cpu() for n, t in m.state_dict().items()} for k, m in modules.items()},
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        })
    for module in modules.values():
        module.eval()
    return history


def adam(module: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=config.lr, betas=(config.beta1, 0.999))


def _mean(values: list[float]) -> float:
    return float(sum(values) / max(len(values), 1))


Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def train_supervised(stage: Stage, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                     loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     to_input: Callable[[torch.Tensor], torch.Tensor], config: TrainConfig,
                     augment: Augment | None = None) -> list[dict]:
    """Fit ``model(to_input(x))`` to targets: classifiers (cross-entropy), the pose regressor
    (MSE), the autoencoder (targets = inputs). With ``config.augment``, ``augment`` (the task's,
    see :func:`supervised_task`) jitters each training batch, drawing from the epoch's generator."""
    if config.augment and augment is None:
        raise ValueError(f"{stage.name}: augment=True, but this task has no augmentation")
    optimizer = adam(model, config)

    def epoch(generator: torch.Generator) -> dict[str, float]:
        losses = []
        for index in batches(len(inputs), config.batch_size, generator):
            x = to_input(inputs[index])
            if config.augment:
                x = augment(x, generator)
            x = x.to(stage.device)
            y = targets[index].to(stage.device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return {"loss": _mean(losses)}

    return run_stage(stage, {"model": model}, {"optimizer": optimizer}, config.epochs, epoch, config.lr_factor)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def regression_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(prediction.squeeze(1), target)


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(reconstruction, target)


SupervisedTask = tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                       Callable[[torch.Tensor], torch.Tensor], Augment | None]


def supervised_task(name: str, pairs: Pairs, top_db: float) -> SupervisedTask:
    """(inputs, targets, loss, input scaling, augmentation or None) of a supervised network on
    ``pairs``, for :func:`train_supervised`: the image and sound classifiers (class labels), the pose
    regressor (pitch position of the voiced pairs) and the sound autoencoder (its own input)."""
    to_lms = partial(lms_to_unit, top_db=top_db)
    if name == "image_classifier":
        return pairs.images, pairs.labels, classification_loss, image_to_unit, augment_images
    if name == "sound_classifier":
        return pairs.lms, pairs.labels, classification_loss, to_lms, None
    if name == "sound_autoencoder":
        return pairs.lms, to_lms(pairs.lms), reconstruction_loss, to_lms, None
    if name == "pose_regressor":
        voiced = ~torch.isnan(pairs.pitch_position)
        return pairs.images[voiced], pairs.pitch_position[voiced], regression_loss, image_to_unit, augment_images
    raise ValueError(f"no supervised task named {name!r}")


def mismatched_indices(labels: torch.Tensor, index: torch.Tensor, same_class_fraction: float,
                       generator: torch.Generator) -> torch.Tensor:
    """For each row in ``index``, another row whose condition does not fit it: of another
    instrument, or (a ``same_class_fraction`` of the time) the same instrument at another time."""
    n = len(labels)
    same_class = torch.rand(len(index), generator=generator) < same_class_fraction
    other = torch.randint(n, (len(index),), generator=generator)
    for _attempt in range(100):  # rejection sampling; classes are many, so this ends fast
        wrong = torch.where(same_class, (labels[other] != labels[index]) | (other == index),
                            labels[other] == labels[index])
        if not wrong.any():
            return other
        other[wrong] = torch.randint(n, (int(wrong.sum()),), generator=generator)
    # A class with one row (or one class in all) has no valid partner of that kind: keep what we have.
    return other


@dataclass(frozen=True)
class GANTrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    beta1: float = 0.5
    mismatch_same_class: float = 0.25  # pose-oriented: part of the mismatched pairs are same-instrument


def standardize(embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension (mean, std) so conditions from different encoders share one scale."""
    return embeddings.mean(0), embeddings.std(0).clamp_min(1e-6)


def train_cgan(stage: Stage, generator: Generator, discriminator: Discriminator, samples: torch.Tensor,
               conditions: torch.Tensor, labels: torch.Tensor,
               to_output_space: Callable[[torch.Tensor], torch.Tensor], config: GANTrainConfig) -> list[dict]:
    """Train G and D on (sample, condition) rows; ``conditions`` are fixed encoder outputs."""
    g_opt = torch.optim.Adam(generator.parameters(), lr=config.lr_generator, betas=(config.beta1, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator, betas=(config.beta1, 0.999))
    use_mismatch = generator.config.mismatch

    def epoch(rng: torch.Generator) -> dict[str, float]:
        d_losses, g_losses = [], []
        for index in batches(len(samples), config.batch_size, rng):
            real = to_output_space(samples[index]).to(stage.device)
            cond = conditions[index].to(stage.device)
            z = torch.randn(len(index), generator.config.noise_dim, generator=rng).to(stage.device)
            fake = generator(z, cond)
            mismatched = None
            if use_mismatch:
                other = mismatched_indices(labels, index, config.mismatch_same_class, rng)
                mismatched = conditions[other].to(stage.device)
            d_loss = discriminator_loss(discriminator, real, fake, cond, mismatched)
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            g_loss = generator_loss(discriminator, fake, cond)
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            d_losses.append(d_loss.item())
            g_losses.append(g_loss.item())
        return {"d_loss": _mean(d_losses), "g_loss": _mean(g_losses)}

    return run_stage(stage, {"generator": generator, "discriminator": discriminator},
                     {"generator": g_opt, "discriminator": d_opt}, config.epochs, epoch)


@torch.no_grad()
def apply_batched(fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, device: torch.device,
                  batch_size: int = 256) -> torch.Tensor:
    """``fn`` over ``inputs`` in batches on ``device``; results on the CPU."""
    return torch.cat([fn(inputs[i:i + batch_size].to(device)).cpu() for i in range(0, len(inputs), batch_size)])
