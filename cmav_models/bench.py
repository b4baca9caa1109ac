"""``cmav-bench run``: train the reference models on a built Sub-URMP and score them.

Stages, each checkpointed under ``runs/<id>/checkpoints/`` and resumed when present:
image classifier, sound classifier, sound autoencoder, pose regressor (the judges and encoders),
then the conditional GANs of :data:`VARIANTS`. The run id is the suite name and a hash of the
config and the dataset's manifest bytes, with no timestamp, so rerunning the same command resumes.

Variants (Chen et al. 2017): S2I-C conditions on the sound classifier, S2I-A on the sound
autoencoder's code. A classifier conditions through its class posterior (softmax), standardised: a
condition that plainly says which instrument is playing is what a short CPU run can learn to draw
(demo, 32 px, 3 GAN epochs, the same GAN and sound classifier: generated-image accuracy 0.35 from
the penultimate embedding, 0.50 from the posterior). S2I-N is our reading of the paper's ablation
without mismatched pairs: S2I-C with the (real image, mismatched sound) term removed from the
discriminator's loss. I2S is the same GAN the other way: the image classifier's posterior in, an
LMS out.

The published reference rows (``manifests/published_accuracies.csv``) are on real Sub-URMP with
other networks and features; the report prints them beside, never mixed into, our rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cmav_data.atomic import write_text
from cmav_data.checksum import sha256_file
from cmav_data.manifest import read_manifest
from cmav_data.parallel import executor_for
from cmav_models.cgan import CGANConfig, Discriminator, Generator
from cmav_models.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from cmav_models.data import (DatasetError, LoadOptions, Pairs, image_to_unit, lms_to_unit, load_pairs,
                               validate_manifest)
from cmav_models.image_classifier import ImageCNN, ImageCNNConfig
from cmav_models.metrics import Scored, UnknownMetricError, get_metric
from cmav_models.report import write_report
from cmav_models.sound_autoencoder import SoundAutoencoder, SoundAutoencoderConfig
from cmav_models.sound_classifier import SoundCNN, SoundCNNConfig
from cmav_models.train import (GANTrainConfig, Stage, TrainConfig, apply_batched, classification_loss,
                               derive_seed, reconstruction_loss, regression_loss, standardize, train_cgan,
                               train_supervised)

DEFAULT_METRICS = ("accuracy", "frechet", "pose_r", "pose_mae")


@dataclass(frozen=True)
class Variant:
    direction: str  # "s2i" (sound in, image out) | "i2s"
    encoder: str  # the stage whose output is the condition
    mismatch: bool  # train D on (real, mismatched condition) pairs


VARIANTS: dict[str, Variant] = {
    "S2I-C": Variant("s2i", "sound_classifier", True),
    "S2I-A": Variant("s2i", "sound_autoencoder", True),
    "S2I-N": Variant("s2i", "sound_classifier", False),
    "I2S": Variant("i2s", "image_classifier", True),
}

# The networks trained before the GANs: encoders of the conditions and judges of the samples.
JUDGE_NETWORKS: dict[str, type[nn.Module]] = {
    "image_classifier": ImageCNN, "sound_classifier": SoundCNN,
    "sound_autoencoder": SoundAutoencoder, "pose_regressor": ImageCNN,
}


@dataclass(frozen=True)
class BenchConfig:
    suite: str
    load: LoadOptions
    judge_training: TrainConfig  # image classifier, sound autoencoder, pose regressor
    sound_classifier_training: TrainConfig  # sounds are the harder task: more epochs, higher rate
    gan_training: GANTrainConfig
    image_cnn: ImageCNNConfig
    sound_cnn: SoundCNNConfig
    sound_autoencoder: SoundAutoencoderConfig
    gan: CGANConfig  # base config; out_channels/out_shape/cond_dim/mismatch are set per variant
    i2s_gan_width: int  # I2S's g/d channels: an LMS has 5.5x the pixels of a 32 px image
    seed: int = 0
    metrics: tuple[str, ...] = DEFAULT_METRICS

    def to_dict(self) -> dict:
        data = asdict(self)
        data["load"]["lms"] = self.load.lms.to_dict()
        return data


def _suite(name: str, image_size: int, max_train: int | None, max_validation: int | None, judge_epochs: int,
           sound_epochs: int, gan_epochs: int, width: int, sound_width: int, gan_width: int, i2s_gan_width: int,
           gan_n_up: int, batch_size: int) -> BenchConfig:
    return BenchConfig(
        suite=name,
        load=LoadOptions(image_size=image_size, max_train=max_train, max_validation=max_validation),
        judge_training=TrainConfig(epochs=judge_epochs, batch_size=batch_size, lr=1e-3),
        sound_classifier_training=TrainConfig(epochs=sound_epochs, batch_size=batch_size, lr=3e-3),
        gan_training=GANTrainConfig(epochs=gan_epochs, batch_size=batch_size),
        image_cnn=ImageCNNConfig(image_size=image_size, channels=width, depth=4 if image_size <= 64 else 5),
        sound_cnn=SoundCNNConfig(channels=sound_width, keep_frequency=True),
        sound_autoencoder=SoundAutoencoderConfig(channels=max(4, width // 2)),
        gan=CGANConfig(g_channels=gan_width, d_channels=gan_width, n_up=gan_n_up),
        i2s_gan_width=i2s_gan_width,
    )


# smoke: seconds on a tiny dataset (tests); fast: < 10 min on 2 CPU cores; full: the paper's scale.
# The fast suite works at 32 px: the demo's instruments are told apart there (real-image accuracy
# ~0.95), and a 32 px GAN step costs a quarter of a 64 px one, so the GANs get the steps they need.
SUITES: dict[str, BenchConfig] = {
    "smoke": _suite("smoke", 32, None, None, 1, 1, 1, width=8, sound_width=8, gan_width=8, i2s_gan_width=4,
                    gan_n_up=3, batch_size=16),
    "fast": _suite("fast", 32, 2400, 800, 4, 5, 6, width=8, sound_width=8, gan_width=16, i2s_gan_width=8,
                   gan_n_up=3, batch_size=32),
    "full": _suite("full", 128, None, None, 30, 30, 100, width=64, sound_width=32, gan_width=64, i2s_gan_width=64,
                   gan_n_up=4, batch_size=64),
}


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, dict[str, float | None]]  # row -> metric -> value
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # stage -> per-epoch losses


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_id(config: BenchConfig, manifest_sha256: str) -> str:
    """Suite and a hash of what changes the trained weights: config (but not the metric list) and data."""
    training = {k: v for k, v in config.to_dict().items() if k != "metrics"}
    payload = json.dumps({"config": training, "manifest": manifest_sha256}, sort_keys=True)
    return f"{config.suite}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


@torch.no_grad()
def generate(generator: Generator, conditions: torch.Tensor, seed: int, device: torch.device,
             batch_size: int = 256) -> torch.Tensor:
    """One sample per condition row, from seeded noise (the same samples on every rerun)."""
    noise = torch.randn(len(conditions), generator.config.noise_dim, generator=torch.Generator().manual_seed(seed))
    return torch.cat([generator(noise[i:i + batch_size].to(device), conditions[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(conditions), batch_size)])


class Bench:
    """One run: its folder, config, data and trained modules; methods are the stages, in order."""

    def __init__(self, config: BenchConfig, run_dir: Path, device: torch.device, progress: bool):
        self.config, self.run_dir, self.device, self.progress = config, run_dir, device, progress
        self.feature_config = config.load.lms.to_dict()
        self.history: dict[str, list[dict[str, float]]] = {}

    # -- stages -----------------------------------------------------------------------------------
    def stage(self, name: str, network_config: object) -> Stage:
        meta = {"stage": name, "network_config": asdict(network_config), "feature_config": self.feature_config}
        return Stage(name, self.run_dir / "checkpoints" / f"{name}.pt", meta, self.config.seed, self.device,
                     self.progress)

    def check_checkpoints(self) -> None:
        """Load every checkpoint already present, so a bad one fails now, not after hours of training."""
        for name, network_config in self.network_configs().items():
            stage = self.stage(name, network_config)
            if os.path.exists(stage.checkpoint):
                load_checkpoint(stage.checkpoint, stage.meta)

    def judge_configs(self) -> dict[str, object]:
        c = self.config
        return {"image_classifier": c.image_cnn, "sound_classifier": c.sound_cnn,
                "sound_autoencoder": c.sound_autoencoder, "pose_regressor": replace(c.image_cnn, n_classes=1)}

    def network_configs(self) -> dict[str, object]:
        return {**self.judge_configs(), **{name: self.gan_config(name) for name in VARIANTS}}

    def gan_config(self, name: str) -> CGANConfig:
        variant = VARIANTS[name]
        out = ((3, (self.config.load.image_size,) * 2) if variant.direction == "s2i"
               else (1, (self.config.load.lms.n_mels, self.config.load.lms.n_frames)))
        cond_dim = (self.config.sound_autoencoder.embed_dim if variant.encoder == "sound_autoencoder"
                    else self.judge_configs()[variant.encoder].n_classes)
        width = self.config.gan.g_channels if variant.direction == "s2i" else self.config.i2s_gan_width
        return replace(self.config.gan, out_channels=out[0], out_shape=out[1], cond_dim=cond_dim,
                       mismatch=variant.mismatch, g_channels=width, d_channels=width)

    def new_model(self, name: str) -> nn.Module:
        torch.manual_seed(derive_seed(self.config.seed, name, "init"))
        return JUDGE_NETWORKS[name](self.judge_configs()[name])

    def to_lms_unit(self, lms: torch.Tensor) -> torch.Tensor:
        return lms_to_unit(lms, self.config.load.lms.top_db)

    def train_judges(self, train: Pairs) -> dict[str, nn.Module]:
        c = self.config
        models = {name: self.new_model(name) for name in JUDGE_NETWORKS}
        voiced = ~torch.isnan(train.pitch_position)
        jobs = {
            "image_classifier": (train.images, train.labels, classification_loss, image_to_unit),
            "sound_classifier": (train.lms, train.labels, classification_loss, self.to_lms_unit),
            "sound_autoencoder": (train.lms, self.to_lms_unit(train.lms), reconstruction_loss, self.to_lms_unit),
            "pose_regressor": (train.images[voiced], train.pitch_position[voiced], regression_loss, image_to_unit),
        }
        for name, (inputs, targets, loss_fn, to_input) in jobs.items():
            stage = self.stage(name, models[name].config)
            training = c.sound_classifier_training if name == "sound_classifier" else c.judge_training
            self.history[name] = train_supervised(stage, models[name], inputs, targets, loss_fn, to_input, training)
        return models

    def conditions(self, encoder: nn.Module, name: str, pairs: Pairs) -> torch.Tensor:
        """The autoencoder's code, or a classifier's class posterior (see the module docstring)."""
        inputs = image_to_unit(pairs.images) if name == "image_classifier" else self.to_lms_unit(pairs.lms)
        condition = encoder.embed if name == "sound_autoencoder" else lambda x: F.softmax(encoder(x), dim=1)
        return apply_batched(condition, inputs, self.device)

    def train_gans(self, train: Pairs, validation: Pairs, judges: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        """Train every variant; returns its samples generated from the validation conditions."""
        generated = {}
        for name, variant in VARIANTS.items():
            encoder = judges[variant.encoder]
            train_cond, val_cond = (self.conditions(encoder, variant.encoder, p) for p in (train, validation))
            mean, std = standardize(train_cond)
            config = self.gan_config(name)
            torch.manual_seed(derive_seed(self.config.seed, name, "init"))
            generator, discriminator = Generator(config), Discriminator(config)
            samples = train.images if variant.direction == "s2i" else train.lms
            to_unit = image_to_unit if variant.direction == "s2i" else self.to_lms_unit
            self.history[name] = train_cgan(self.stage(name, config), generator, discriminator, samples,
                                            (train_cond - mean) / std, train.labels, to_unit, self.config.gan_training)
            generated[name] = generate(generator, (val_cond - mean) / std,
                                       derive_seed(self.config.seed, name, "eval"), self.device)
        return generated

    def score(self, train: Pairs, validation: Pairs, judges: dict[str, nn.Module],
              generated: dict[str, torch.Tensor]) -> dict[str, dict[str, float | None]]:
        real = {"image": image_to_unit(validation.images), "sound": self.to_lms_unit(validation.lms)}
        real_train = {"image": image_to_unit(train.images), "sound": self.to_lms_unit(train.lms)}
        classifier = {"image": judges["image_classifier"], "sound": judges["sound_classifier"]}
        rows = {"image classifier (real)": ("image", real["image"], real_train["image"]),
                "sound classifier (real)": ("sound", real["sound"], real_train["sound"])}
        for name, samples in generated.items():
            modality = "image" if VARIANTS[name].direction == "s2i" else "sound"
            rows[name] = (modality, samples, real[modality])
        metrics = [get_metric(m) for m in self.config.metrics]
        out = {}
        for row, (modality, samples, reference) in rows.items():
            scored = Scored(modality, samples, validation.labels, reference, validation.pitch_position,
                            classifier[modality], judges["pose_regressor"] if modality == "image" else None,
                            self.device)
            out[row] = {m.name: m.fn(scored) for m in metrics}
        return out


def load_cached_pairs(data_dir: Path, run_dir: Path, options: LoadOptions, executor: Executor | None,
                      progress: bool) -> Pairs:
    """Decoded pairs, cached as tensors in the run folder so a resumed run skips decoding."""
    path = run_dir / "cache" / "pairs.pt"
    if path.exists():
        state = load_checkpoint(path, {"feature_config": options.lms.to_dict()})
        return Pairs(state["ids"], np.array(state["split"]), state["labels"], state["images"], state["lms"],
                     state["pitch_position"])
    pairs = load_pairs(data_dir, options, executor, progress)
    save_checkpoint(path, {"meta": {"feature_config": options.lms.to_dict()}, "ids": pairs.ids,
                           "split": [str(s) for s in pairs.split], "labels": pairs.labels, "images": pairs.images,
                           "lms": pairs.lms, "pitch_position": pairs.pitch_position})
    return pairs


def run_bench(data_dir: str | os.PathLike, out_dir: str | os.PathLike, config: BenchConfig, device: str = "auto",
              executor: Executor | None = None, progress: bool = True) -> RunResult:
    """Train and score everything; writes ``out_dir/<run id>/`` (config.json, metrics.json,
    report.md, figures/, checkpoints/) and returns its folder and metrics."""
    data_dir = Path(data_dir)
    for name in config.metrics:
        get_metric(name)  # unknown names fail before any work
    manifest = data_dir / "manifest.parquet"
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: no manifest (is {data_dir} a built Sub-URMP dataset?)")
    validate_manifest(read_manifest(manifest), manifest)
    manifest_sha256 = sha256_file(manifest)
    run_dir = Path(out_dir) / run_id(config, manifest_sha256)
    bench = Bench(config, run_dir, resolve_device(device), progress)
    bench.check_checkpoints()
    write_text(run_dir / "config.json", json.dumps(
        {"config": config.to_dict(), "data": str(data_dir.resolve()), "manifest_sha256": manifest_sha256},
        indent=2, sort_keys=True) + "\n")
    pairs = load_cached_pairs(data_dir, run_dir, config.load, executor, progress)
    train, validation = pairs.subset("train"), pairs.subset("validation")
    judges = bench.train_judges(train)
    generated = bench.train_gans(train, validation, judges)
    metrics = bench.score(train, validation, judges, generated)
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    result = RunResult(run_dir, metrics, bench.history)
    write_report(result, config, validation, generated)
    return result


# Bad input of a run, each with a message naming the file or name and what is wrong.
INPUT_ERRORS = (DatasetError, CheckpointError, UnknownMetricError)


def run_from_options(suite: str, data_dir: str, out_dir: str, device: str, jobs: int, metrics: tuple[str, ...],
                     seed: int, threads: int, progress: bool) -> Path:
    """The CLI's one call: a suite with the command line's overrides, run; the run folder."""
    torch.set_num_threads(threads)
    config = replace(SUITES[suite], seed=seed, metrics=tuple(metrics) or DEFAULT_METRICS)
    with executor_for(jobs) as executor:
        return run_bench(data_dir, out_dir, config, device, executor, progress).run_dir
