"""``cmav-bench run``: train the reference models on a built Sub-URMP over several seeds and score
them with fixed judges.

A run is three layers, each reused when already done:

1. **Judges** (``cmav_models.judges``): image classifier, sound classifier and pose regressor,
   trained once per dataset with their own seed (or given with ``--judges J``), never retrained per seed.
2. **Seeds**: per seed, the condition encoders (sound classifier, image classifier, sound autoencoder:
   separate trainings from the judges, part of the method under test) and one generator per
   :data:`VARIANTS` row, checkpointed under ``seeds/seed-<k>/checkpoints/``; the seed's scores go to
   ``seeds/seed-<k>/result.json``, keyed by the run, the seed, the judges and the metric list, so a
   rerun of the same command trains and scores nothing again.
3. **Summary**: ``metrics.json`` and ``report.md``: per row and metric the per-seed values, mean, sample
   std, a Student-t interval over seeds and an interval over validation recordings (a cluster
   bootstrap, ``cmav_models.stats``); paired differences for :data:`COMPARISONS`.

Silent pairs (the manifest's ``silent`` flag) are left out of every training and of scoring unless
``include_silent``; the counts left out are reported.

The run folder is ``OUT/<suite>-<hash>``, the hash of the config (not the seeds or metric list), the
dataset's manifest bytes and ``include_silent``, with no timestamp: ``--seeds 0,1,2`` after
``--seeds 0,1`` trains only seed 2.

Variants (:data:`VARIANTS`): the paper's S2I-C, S2I-A, S2I-N and I2S (``cmav_models.gan_cls``,
conditioned on the encoder's classification feature), our projection GAN's rows (``-proj``,
conditioned on a classifier's class posterior, standardised) and our flow-matching rows (``-FM``).
``BenchConfig.gan`` (``--gan``) chooses the GAN rows (:data:`GAN_CHOICES`); the flow-matching rows
always run. A model family is a function in :data:`FAMILIES` that trains one variant from a
:class:`GeneratorJob` and returns its validation samples; a new family or variant is one entry there
and in :data:`VARIANTS`.

The published reference rows (``manifests/published_accuracies.csv``) are on real Sub-URMP with
other networks and features; the report prints them beside, never mixed into, our rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cmav_data.atomic import write_text
from cmav_data.checksum import sha256_file
from cmav_data.instruments import CLASS_NAMES
from cmav_data.manifest import ManifestError, read_manifest
from cmav_data.parallel import executor_for
from cmav_models import flow_matching, gan_cls
from cmav_models.flow_matching import FlowConfig, FlowTraining
from cmav_models.gan_cls import GanClsConfig, GanClsTraining
from cmav_models.projection_gan import CGANConfig, Discriminator, Generator
from cmav_models.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from cmav_models.data import (DatasetError, LoadOptions, Pairs, image_to_unit, lms_to_unit, load_pairs,
                               validate_manifest)
from cmav_models.image_classifier import ImageCNN, ImageCNNConfig
from cmav_models.judges import Judges, JudgesError, JudgeSpec, load_judges, train_judges
from cmav_models.metrics import ItemScores, Scored, UnknownMetricError, get_metric
from cmav_models.run_pages import write_run_pages
from cmav_models.report import FigureInputs, example_rows, write_report
from cmav_models.sound_autoencoder import SoundAutoencoder, SoundAutoencoderConfig
from cmav_models.sound_classifier import SoundCNN, SoundCNNConfig
from cmav_models.stats import cluster_bootstrap, paired_difference, summarize
from cmav_models.train import (GANTrainConfig, Stage, TrainConfig, apply_batched, derive_seed, standardize,
                               supervised_task, train_cgan, train_supervised)

DEFAULT_METRICS = ("accuracy", "frechet", "kid", "pose_r", "pose_mae")
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
RESULT_FORMAT_VERSION = 1
INTERVAL_NOTES = {
    "seeds": "Student t interval (95%) over seeds of the per-seed values: the spread of training",
    "recordings": "cluster bootstrap (95%, 1000 resamples) over validation recordings of the mean over "
                  "seeds: every resample draws whole recordings with replacement and scores all seeds on "
                  "the same draw (chunks of one recording are correlated); the spread of the validation set",
}


@dataclass(frozen=True)
class Variant:
    direction: str  # "s2i" (sound in, image out) | "i2s"
    family: str  # the key of FAMILIES that trains it
    encoder: str  # the condition encoder (ENCODERS), trained per seed; never a judge
    condition: str  # "posterior" (a classifier's softmax) | "embedding" (the encoder's .embed)
    mismatch: bool  # train D on (real, mismatched condition) pairs
    description: str  # one sentence for the report


_PAPER = "the paper's design (Chen et al. 2017), built as GAN-CLS (Reed et al. 2016)"
VARIANTS: dict[str, Variant] = {
    # The paper's family (cmav_models.gan_cls), condition = the encoder's classification feature.
    "S2I-C": Variant("s2i", "gan_cls", "sound_classifier", "embedding", True,
                     f"{_PAPER}: a sound classifier's feature -> a 64-d code + 10-d noise -> a deconvolutional "
                     "generator; the discriminator scores (real, matching), (real, mismatched) and (generated, "
                     "matching) pairs, the code joined after its conv stack"),
    "S2I-A": Variant("s2i", "encoder_decoder", "sound_classifier", "embedding", False,
                     "the paper's encoder-decoder: the same code layer and generator trained with a mean-squared "
                     "error on the image, no discriminator, noise held at zero"),
    "S2I-N": Variant("s2i", "gan_cls", "sound_classifier", "embedding", False,
                     "S2I-C without the (real image, mismatched sound) term in the discriminator's loss"),
    "I2S": Variant("i2s", "gan_cls", "image_classifier", "embedding", True,
                   "S2I-C's mirror: an image classifier's feature -> code + noise -> an LMS; mismatches are "
                   "always of another instrument (the paper sets no pose constraint on sounds)"),
    # Ours: the projection/hinge GAN of cmav_models.projection_gan (--gan projection or both).
    "S2I-C-proj": Variant("s2i", "projection", "sound_classifier", "posterior", True,
                          "ours: conditional GAN with a projection discriminator, spectral norm and hinge loss, "
                          "condition = a sound classifier's class posterior (softmax), standardised"),
    "S2I-AE-proj": Variant("s2i", "projection", "sound_autoencoder", "embedding", True,
                           "ours: the same GAN, condition = the code of a sound autoencoder (trained to "
                           "reconstruct the LMS); not the paper's S2I-A"),
    "S2I-N-proj": Variant("s2i", "projection", "sound_classifier", "posterior", False,
                          "ours: S2I-C-proj without the (real image, mismatched sound) term"),
    "I2S-proj": Variant("i2s", "projection", "image_classifier", "posterior", True,
                        "ours: the projection GAN the other way, an image classifier's posterior in, LMS out"),
    # Ours: a modern baseline (cmav_models.flow_matching), in every run.
    "S2I-FM": Variant("s2i", "flow", "sound_classifier", "embedding", False,
                      "ours: conditional flow matching (rectified flow, small U-Net, classifier-free guidance, "
                      "Euler sampler) on the sound classifier's feature"),
    "I2S-FM": Variant("i2s", "flow", "image_classifier", "embedding", False,
                      "ours: the same flow matching the other way, the image classifier's feature in, LMS out"),
}

# Which rows a run trains (``--gan``): a GAN family's rows, and always the flow-matching rows.
GAN_CHOICES: dict[str, tuple[str, ...]] = {
    "gan-cls": ("gan_cls", "encoder_decoder", "flow"),
    "projection": ("projection", "flow"),
    "both": ("gan_cls", "encoder_decoder", "projection", "flow"),
}

# Paired comparisons (a - b, seed by seed) the report makes, when both rows ran.
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("S2I-C", "S2I-A"), ("S2I-C", "S2I-N"), ("S2I-FM", "S2I-C"), ("I2S-FM", "I2S"),
    ("S2I-C-proj", "S2I-N-proj"), ("S2I-C", "S2I-C-proj"), ("I2S", "I2S-proj"))

# Condition encoders, trained per seed (separately from the judges of cmav_models.judges).
ENCODERS: dict[str, type[nn.Module]] = {
    "image_classifier": ImageCNN, "sound_classifier": SoundCNN, "sound_autoencoder": SoundAutoencoder,
}

REAL_ROWS = {"image classifier (real)": "image", "sound classifier (real)": "sound"}


@dataclass(frozen=True)
class BenchConfig:
    suite: str
    load: LoadOptions
    encoder_training: TrainConfig  # the condition encoders: image classifier, sound autoencoder
    sound_classifier_training: TrainConfig  # sounds are the harder task: more epochs, higher rate
    gan_training: GANTrainConfig  # the projection GAN's
    image_cnn: ImageCNNConfig
    sound_cnn: SoundCNNConfig
    sound_autoencoder: SoundAutoencoderConfig
    projection_gan: CGANConfig  # base config; out_channels/out_shape/cond_dim/mismatch are set per variant
    i2s_gan_width: int  # I2S's g/d channels (both GAN families): an LMS has 5.5x the pixels of a 32 px image
    gan_cls: GanClsConfig  # base config of the paper's family; shapes, cond_dim and mismatch set per variant
    gan_cls_training: GanClsTraining
    flow: FlowConfig  # S2I-FM's; I2S-FM's differs in its shape and width (flow_i2s_width)
    flow_i2s_width: int
    flow_training: FlowTraining
    # The judges (trained once per dataset, see judge_spec): every score rests on them, so they get
    # what the per-seed encoders cannot afford: more training pairs (JUDGE_MAX_TRAIN in the fast
    # suite, all in the full one), a wider image network, more epochs, augmentation and a decaying rate.
    judge_image_cnn: ImageCNNConfig
    judge_image_training: TrainConfig  # the image classifier and the pose regressor
    judge_sound_training: TrainConfig
    judge_max_train: int | None  # training rows (a seeded uniform sample), None = all
    gan: str = "gan-cls"  # the GAN rows trained (GAN_CHOICES); the flow-matching rows always are
    metrics: tuple[str, ...] = DEFAULT_METRICS

    def __post_init__(self) -> None:
        if self.gan not in GAN_CHOICES:
            raise ValueError(f"gan must be one of {', '.join(GAN_CHOICES)}, not {self.gan!r}")

    @property
    def variants(self) -> dict[str, Variant]:
        """The rows this config trains, in VARIANTS' order."""
        return {n: v for n, v in VARIANTS.items() if v.family in GAN_CHOICES[self.gan]}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["load"]["lms"] = self.load.lms.to_dict()
        return data


# The fast suite's judges train on at most this many training rows (a seeded sample, as
# LoadOptions.max_train), so the suite's cost is bounded whatever the dataset's size: on all of a
# full-size build's ~136,000 rows their 25 epochs would take hours on 2 cores. It is above the
# default demo build's 12,855 training rows, whose judges are unchanged by it; on a full-size build's
# sample (14,470 rows once the silent ones are left out) they took 8 min 20 s on 2 cores.
JUDGE_MAX_TRAIN = 16_000


def _suite(name: str, image_size: int, max_train: int | None, max_validation: int | None, encoder_epochs: int,
           sound_epochs: int, gan_epochs: int, width: int, sound_width: int, gan_width: int, i2s_gan_width: int,
           gan_n_up: int, batch_size: int, flow_epochs: int, flow_width: int, flow_i2s_width: int,
           flow_steps: int, judge_width: int, judge_epochs: int, judge_sound_epochs: int,
           judge_max_train: int | None) -> BenchConfig:
    depth = 4 if image_size <= 64 else 5
    return BenchConfig(
        suite=name,
        load=LoadOptions(image_size=image_size, max_train=max_train, max_validation=max_validation),
        encoder_training=TrainConfig(epochs=encoder_epochs, batch_size=batch_size, lr=1e-3),
        sound_classifier_training=TrainConfig(epochs=sound_epochs, batch_size=batch_size, lr=3e-3),
        gan_training=GANTrainConfig(epochs=gan_epochs, batch_size=batch_size),
        image_cnn=ImageCNNConfig(image_size=image_size, channels=width, depth=depth),
        sound_cnn=SoundCNNConfig(channels=sound_width, keep_frequency=True),
        sound_autoencoder=SoundAutoencoderConfig(channels=max(4, width // 2)),
        projection_gan=CGANConfig(g_channels=gan_width, d_channels=gan_width, n_up=gan_n_up),
        i2s_gan_width=i2s_gan_width,
        gan_cls=GanClsConfig(g_channels=gan_width, d_channels=gan_width, n_up=gan_n_up),
        gan_cls_training=GanClsTraining(epochs=gan_epochs, batch_size=batch_size),
        flow=FlowConfig(base_channels=flow_width, sample_steps=flow_steps,
                        groups=min(8, flow_width)),
        flow_i2s_width=flow_i2s_width,
        flow_training=FlowTraining(epochs=flow_epochs, batch_size=batch_size),
        judge_image_cnn=ImageCNNConfig(image_size=image_size, channels=judge_width, depth=depth),
        judge_image_training=TrainConfig(epochs=judge_epochs, batch_size=batch_size, lr=1e-3, schedule="cosine",
                                         augment=True),
        judge_sound_training=TrainConfig(epochs=judge_sound_epochs, batch_size=batch_size, lr=3e-3,
                                         schedule="cosine"),
        judge_max_train=judge_max_train,
    )


# smoke: seconds on a tiny dataset (tests); fast: a bounded CPU budget (on the default demo build, judges
# 9 min once, then 5 to 7 min a seed, on 2 cores); full: the paper's scale.
# The fast suite works at 32 px, where a GAN step costs a quarter of a 64 px one, so the GANs get the
# steps they need. At 32 px the leak-free demo's instruments are a few pixels wide: its judge, on all
# its training pairs with augmentation, recognises 0.494 of the default demo build's real validation
# images (every run reports its figure as the row "image classifier (real)").
SUITES: dict[str, BenchConfig] = {
    "smoke": _suite("smoke", image_size=32, max_train=None, max_validation=None, encoder_epochs=1, sound_epochs=1,
                    gan_epochs=1, width=8, sound_width=8, gan_width=8, i2s_gan_width=4, gan_n_up=3, batch_size=16,
                    flow_epochs=1, flow_width=8, flow_i2s_width=4, flow_steps=2, judge_width=8, judge_epochs=1,
                    judge_sound_epochs=1, judge_max_train=None),
    # flow_epochs = gan_epochs: on 2 quiet cores an S2I-FM epoch costs what an S2I-C epoch does (4.4 s
    # against 4.3 s) and an I2S-FM epoch 1.2x an I2S one, so the flow rows get about the GANs' CPU time.
    "fast": _suite("fast", image_size=32, max_train=2400, max_validation=800, encoder_epochs=4, sound_epochs=5,
                   gan_epochs=6, width=8, sound_width=8, gan_width=16, i2s_gan_width=8, gan_n_up=3, batch_size=32,
                   flow_epochs=6, flow_width=16, flow_i2s_width=8, flow_steps=8, judge_width=16, judge_epochs=10,
                   judge_sound_epochs=5, judge_max_train=JUDGE_MAX_TRAIN),
    "full": _suite("full", image_size=128, max_train=None, max_validation=None, encoder_epochs=30, sound_epochs=30,
                   gan_epochs=100, width=64, sound_width=32, gan_width=64, i2s_gan_width=64, gan_n_up=4,
                   batch_size=64, flow_epochs=100, flow_width=64, flow_i2s_width=32, flow_steps=32, judge_width=64,
                   judge_epochs=30, judge_sound_epochs=30, judge_max_train=None),
}


def judge_spec(config: BenchConfig, seed: int = 0, include_silent: bool = False) -> JudgeSpec:
    """The judges of a suite: its judge networks and schedules (the sound network is the encoders'),
    their own seed and training pairs."""
    return JudgeSpec(image_size=config.load.image_size, lms=config.load.lms.to_dict(),
                     image_cnn=config.judge_image_cnn, sound_cnn=config.sound_cnn,
                     image_training=config.judge_image_training, sound_training=config.judge_sound_training,
                     max_train=config.judge_max_train, include_silent=include_silent, seed=seed)


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict  # the metrics.json payload


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _hash(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def run_id(config: BenchConfig, manifest_sha256: str, include_silent: bool = False) -> str:
    """Suite and a hash of what changes the trained weights: config (not the metric list), data, silent pairs."""
    training = {k: v for k, v in config.to_dict().items() if k != "metrics"}
    return f"{config.suite}-{_hash({'config': training, 'manifest': manifest_sha256, 'silent': include_silent})}"


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2); a single count ``"3"`` -> (0, 1, 2)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"bad seeds {text!r} (examples: 0,1,2 or 3)") from None
    if not numbers or min(numbers) < 0 or len(set(numbers)) != len(numbers):
        raise ValueError(f"bad seeds {text!r}: non-negative and distinct (examples: 0,1,2 or 3)")
    if "," not in text:
        if numbers[0] < 1:
            raise ValueError(f"bad seeds {text!r}: a count of seeds is at least 1")
        return tuple(range(numbers[0]))
    return tuple(numbers)


# -- data -------------------------------------------------------------------------------------------

@dataclass
class Dataset:
    """The run's pairs after leaving silent ones out, and what scoring needs to know about them."""

    train: Pairs
    validation: Pairs
    validation_recordings: np.ndarray  # recording of each validation pair (bootstrap groups)
    manifest_sha256: str
    left_out: dict[str, int] | None  # silent pairs left out per split; None when included


def check_dataset(data_dir: Path) -> tuple[Path, str]:
    manifest = data_dir / "manifest.parquet"
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: no manifest (is {data_dir} a built Sub-URMP dataset?)")
    validate_manifest(read_manifest(manifest), manifest)
    return manifest, sha256_file(manifest)


def load_cached_pairs(data_dir: Path, cache: Path | None, options: LoadOptions, executor: Executor | None,
                      progress: bool) -> Pairs:
    """Decoded pairs, cached as tensors (when ``cache`` is given) so a resumed run skips decoding."""
    if cache is not None and cache.exists():
        state = load_checkpoint(cache, {"feature_config": options.lms.to_dict()})
        return Pairs(state["ids"], np.array(state["split"]), state["labels"], state["images"], state["lms"],
                     state["pitch_position"])
    pairs = load_pairs(data_dir, options, executor, progress)
    if cache is not None:
        save_checkpoint(cache, {"meta": {"feature_config": options.lms.to_dict()}, "ids": pairs.ids,
                                "split": [str(s) for s in pairs.split], "labels": pairs.labels,
                                "images": pairs.images, "lms": pairs.lms, "pitch_position": pairs.pitch_position})
    return pairs


def prepare_dataset(data_dir: Path, manifest: Path, manifest_sha256: str, options: LoadOptions,
                    include_silent: bool, cache: Path | None, executor: Executor | None,
                    progress: bool) -> Dataset:
    pairs = load_cached_pairs(data_dir, cache, options, executor, progress)
    table = read_manifest(manifest, columns=["id", "recording", "silent"])
    recording = dict(zip(table.column("id").to_pylist(), table.column("recording").to_pylist()))
    silent_ids = {i for i, s in zip(table.column("id").to_pylist(), table.column("silent").to_pylist()) if s}
    silent = np.array([i in silent_ids for i in pairs.ids], dtype=bool)
    left_out = None
    if not include_silent:
        left_out = {split: int((silent & (pairs.split == split)).sum()) for split in ("train", "validation")}
        pairs = replace(pairs, split=np.where(silent, "silent (left out)", pairs.split))
    train, validation = pairs.subset("train"), pairs.subset("validation")
    for split, part in (("train", train), ("validation", validation)):
        if len(part) == 0:
            raise DatasetError(f"{manifest}: no {split} pairs left once silent pairs are left out "
                               "(--include-silent keeps them)")
    return Dataset(train, validation, np.array([recording[i] for i in validation.ids]), manifest_sha256, left_out)


# -- generators -------------------------------------------------------------------------------------

@dataclass
class GeneratorJob:
    """What a model family needs to train one variant for one seed and sample it on validation."""

    name: str
    variant: Variant
    config: BenchConfig
    seed: int
    device: torch.device
    stage: Callable[[object], Stage]  # network config -> the stage (checkpoint, seeds) of this variant
    out_shape: tuple[int, int, int]  # channels, height, width of one sample
    samples: torch.Tensor  # training targets (uint8 images or LMS in dB)
    to_unit: Callable[[torch.Tensor], torch.Tensor]  # samples -> the [-1, 1] model space
    labels: torch.Tensor  # class of each training row (for mismatched pairs)
    poses: torch.Tensor  # pitch position of each training row, NaN when unvoiced (pose mismatches)
    train_conditions: torch.Tensor  # standardised encoder outputs, one row per training sample
    validation_conditions: torch.Tensor  # the same for validation: one sample is generated per row


@torch.no_grad()
def generate(generator: Generator, conditions: torch.Tensor, seed: int, device: torch.device,
             batch_size: int = 256) -> torch.Tensor:
    """One sample per condition row, from seeded noise (the same samples on every rerun)."""
    noise = torch.randn(len(conditions), generator.config.noise_dim, generator=torch.Generator().manual_seed(seed))
    return torch.cat([generator(noise[i:i + batch_size].to(device), conditions[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(conditions), batch_size)])


def projection_gan_config(job: GeneratorJob) -> CGANConfig:
    width = job.config.projection_gan.g_channels if job.variant.direction == "s2i" else job.config.i2s_gan_width
    return replace(job.config.projection_gan, out_channels=job.out_shape[0], out_shape=job.out_shape[1:],
                   cond_dim=job.train_conditions.shape[1], mismatch=job.variant.mismatch,
                   g_channels=width, d_channels=width)


def train_projection_gan(job: GeneratorJob) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """The projection/hinge conditional GAN of ``cmav_models.projection_gan``; validation samples and losses."""
    config = projection_gan_config(job)
    torch.manual_seed(derive_seed(job.seed, job.name, "init"))
    generator, discriminator = Generator(config), Discriminator(config)
    history = train_cgan(job.stage(config), generator, discriminator, job.samples, job.train_conditions,
                         job.labels, job.to_unit, job.config.gan_training)
    samples = generate(generator, job.validation_conditions, derive_seed(job.seed, job.name, "eval"), job.device)
    return samples, history


def gan_cls_config(job: GeneratorJob) -> GanClsConfig:
    s2i = job.variant.direction == "s2i"
    width = job.config.gan_cls.g_channels if s2i else job.config.i2s_gan_width
    return replace(job.config.gan_cls, out_channels=job.out_shape[0], out_shape=job.out_shape[1:],
                   cond_dim=job.train_conditions.shape[1], mismatch=job.variant.mismatch, g_channels=width,
                   d_channels=width, mismatch_kind=job.config.gan_cls.mismatch_kind if s2i else "instrument")


def train_gan_cls(job: GeneratorJob) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """The paper's GAN (``cmav_models.gan_cls``); validation samples and losses."""
    config = gan_cls_config(job)
    torch.manual_seed(derive_seed(job.seed, job.name, "init"))
    generator, discriminator = gan_cls.Generator(config), gan_cls.Discriminator(config)
    history = gan_cls.train_gan_cls(job.stage(config), generator, discriminator, job.samples, job.train_conditions,
                                    job.labels, job.poses, job.to_unit, job.config.gan_cls_training)
    samples = gan_cls.generate(generator, job.validation_conditions, derive_seed(job.seed, job.name, "eval"),
                               job.device)
    return samples, history


def train_encoder_decoder(job: GeneratorJob) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """The paper's S2I-A: ``gan_cls``'s code layer and generator fitted by mean-squared error."""
    config = gan_cls_config(job)
    torch.manual_seed(derive_seed(job.seed, job.name, "init"))
    generator = gan_cls.Generator(config)
    history = gan_cls.train_encoder_decoder(job.stage(config), generator, job.samples, job.train_conditions,
                                            job.to_unit, job.config.gan_cls_training)
    return gan_cls.generate(generator, job.validation_conditions, 0, job.device, noise=False), history


def flow_config(job: GeneratorJob) -> FlowConfig:
    width = job.config.flow.base_channels if job.variant.direction == "s2i" else job.config.flow_i2s_width
    return replace(job.config.flow, channels=job.out_shape[0], shape=job.out_shape[1:],
                   cond_dim=job.train_conditions.shape[1], base_channels=width, groups=min(job.config.flow.groups, width))


def train_flow(job: GeneratorJob) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Conditional flow matching (``cmav_models.flow_matching``); validation samples and losses."""
    config = flow_config(job)
    torch.manual_seed(derive_seed(job.seed, job.name, "init"))
    model = flow_matching.VelocityUNet(config)
    history = flow_matching.train_flow(job.stage(config), model, job.samples, job.train_conditions, job.to_unit,
                                       job.config.flow_training)
    samples = flow_matching.sample(model, job.validation_conditions, derive_seed(job.seed, job.name, "eval"),
                                   job.device)
    return samples, history


FAMILIES: dict[str, Callable[[GeneratorJob], tuple[torch.Tensor, list[dict[str, float]]]]] = {
    "gan_cls": train_gan_cls, "encoder_decoder": train_encoder_decoder, "projection": train_projection_gan,
    "flow": train_flow,
}


class SeedRun:
    """One seed of a run: its folder, encoders and generators."""

    def __init__(self, config: BenchConfig, seed: int, seed_dir: Path, device: torch.device, progress: bool):
        self.config, self.seed, self.seed_dir, self.device, self.progress = config, seed, seed_dir, device, progress
        self.feature_config = config.load.lms.to_dict()
        self.history: dict[str, list[dict[str, float]]] = {}

    def stage(self, name: str, network_config: object) -> Stage:
        meta = {"stage": name, "network_config": asdict(network_config), "feature_config": self.feature_config}
        return Stage(name, self.seed_dir / "checkpoints" / f"{name}.pt", meta, self.seed, self.device, self.progress)

    def check_checkpoints(self) -> None:
        """Load every checkpoint already present, so a bad one fails now, not after hours of training."""
        for path in sorted((self.seed_dir / "checkpoints").glob("*.pt")):
            load_checkpoint(path, {"feature_config": self.feature_config})

    def encoder_configs(self) -> dict[str, object]:
        c = self.config
        return {"image_classifier": c.image_cnn, "sound_classifier": c.sound_cnn,
                "sound_autoencoder": c.sound_autoencoder}

    def new_encoder(self, name: str) -> nn.Module:
        torch.manual_seed(derive_seed(self.seed, name, "init"))
        return ENCODERS[name](self.encoder_configs()[name])

    def to_lms_unit(self, lms: torch.Tensor) -> torch.Tensor:
        return lms_to_unit(lms, self.config.load.lms.top_db)

    def train_encoders(self, train: Pairs, names: set[str]) -> dict[str, nn.Module]:
        c = self.config
        encoders = {}
        for name in sorted(names):
            inputs, targets, loss_fn, to_input, augment = supervised_task(name, train, c.load.lms.top_db)
            training = c.sound_classifier_training if name == "sound_classifier" else c.encoder_training
            model = self.new_encoder(name)
            self.history[name] = train_supervised(self.stage(name, model.config), model, inputs, targets, loss_fn,
                                                  to_input, training, augment)
            encoders[name] = model
        return encoders

    def conditions(self, encoder: nn.Module, variant: Variant, pairs: Pairs) -> torch.Tensor:
        """A classifier's class posterior (see the module docstring) or the encoder's embedding
        (the autoencoder's code), one row per pair."""
        inputs = image_to_unit(pairs.images) if variant.encoder == "image_classifier" else self.to_lms_unit(pairs.lms)
        condition = encoder.embed if variant.condition == "embedding" else lambda x: F.softmax(encoder(x), dim=1)
        return apply_batched(condition, inputs, self.device)

    def train_generators(self, train: Pairs, validation: Pairs) -> dict[str, torch.Tensor]:
        """Train every variant; returns its samples generated from the validation conditions."""
        encoders = self.train_encoders(train, {v.encoder for v in self.config.variants.values()})
        generated = {}
        for name, variant in self.config.variants.items():
            encoder = encoders[variant.encoder]
            train_cond, val_cond = (self.conditions(encoder, variant, p) for p in (train, validation))
            mean, std = standardize(train_cond)
            s2i = variant.direction == "s2i"
            lms = self.config.load.lms
            job = GeneratorJob(
                name=name, variant=variant, config=self.config, seed=self.seed, device=self.device,
                stage=lambda network_config, name=name: self.stage(name, network_config),
                out_shape=(3, self.config.load.image_size, self.config.load.image_size) if s2i
                else (1, lms.n_mels, lms.n_frames),
                samples=train.images if s2i else train.lms, to_unit=image_to_unit if s2i else self.to_lms_unit,
                labels=train.labels, poses=train.pitch_position, train_conditions=(train_cond - mean) / std,
                validation_conditions=(val_cond - mean) / std)
            generated[name], self.history[name] = FAMILIES[variant.family](job)
        return generated


# -- scoring ----------------------------------------------------------------------------------------

def score_rows(rows: dict[str, tuple[str, torch.Tensor, torch.Tensor]], validation: Pairs, judges: Judges,
               metric_names: tuple[str, ...], device: torch.device) -> dict[str, dict[str, dict]]:
    """Row -> metric -> {"value", and for per-item metrics "items" and "rows"} (plain JSON values)."""
    classifier = {"image": judges.modules["image_classifier"], "sound": judges.modules["sound_classifier"]}
    out = {}
    for row, (modality, samples, reference) in rows.items():
        scored = Scored(modality, samples, validation.labels, reference, validation.pitch_position,
                        classifier[modality], judges.modules["pose_regressor"] if modality == "image" else None,
                        device)
        out[row] = {}
        for name in metric_names:
            metric = get_metric(name)
            if metric.items is None:
                out[row][name] = {"value": _finite(metric.fn(scored))}
                continue
            items: ItemScores | None = metric.items(scored)
            out[row][name] = {"value": None} if items is None else {
                "value": _finite(metric.statistic(items.values)), "items": items.values.tolist(),
                "rows": items.rows.tolist()}
        scored_accuracy = out[row].get("accuracy", {}).get("items")
        correct = (np.asarray(scored_accuracy) if scored_accuracy is not None
                   else get_metric("accuracy").items(scored).values)
        out[row]["per_class_accuracy"] = {
            CLASS_NAMES[k]: float(correct[validation.labels.numpy() == k].mean())
            for k in sorted(set(validation.labels.tolist()))}
    return out


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def real_rows(train: Pairs, validation: Pairs, top_db: float) -> dict[str, tuple[str, torch.Tensor, torch.Tensor]]:
    """The judges on real validation data (reference for the Fréchet distance: real training data)."""
    return {"image classifier (real)": ("image", image_to_unit(validation.images), image_to_unit(train.images)),
            "sound classifier (real)": ("sound", lms_to_unit(validation.lms, top_db), lms_to_unit(train.lms, top_db))}


def run_seed(config: BenchConfig, run: str, seed: int, run_dir: Path, data: Dataset, judges: Judges,
             device: torch.device, progress: bool) -> dict:
    """One seed's result record: reused from ``seeds/seed-<k>/result.json`` when its key matches."""
    seed_dir = run_dir / "seeds" / f"seed-{seed}"
    key = {"format_version": RESULT_FORMAT_VERSION, "run": run, "seed": seed, "judges": judges.sha256,
           "metrics": list(config.metrics)}
    result_path = seed_dir / "result.json"
    if result_path.is_file():
        try:
            record = json.loads(result_path.read_text())
        except ValueError:
            record = {}
        if record.get("key") == key and (seed_dir / "examples.pt").is_file():
            return record
    seed_run = SeedRun(config, seed, seed_dir, device, progress)
    seed_run.check_checkpoints()
    generated = seed_run.train_generators(data.train, data.validation)
    real = {"image": image_to_unit(data.validation.images), "sound": seed_run.to_lms_unit(data.validation.lms)}
    rows = {}
    for name, samples in generated.items():
        modality = "image" if VARIANTS[name].direction == "s2i" else "sound"
        rows[name] = (modality, samples, real[modality])
    examples = example_rows(data.validation)
    save_checkpoint(seed_dir / "examples.pt", {"meta": {"feature_config": seed_run.feature_config, "rows": examples},
                                                "generated": {n: g[examples] for n, g in generated.items()}})
    record = {"key": key, "rows": score_rows(rows, data.validation, judges, config.metrics, device),
              "history": seed_run.history}
    write_text(result_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


# -- summary ----------------------------------------------------------------------------------------

def recording_interval(per_seed: list[dict], statistic: Callable[[np.ndarray], float],
                       recordings: np.ndarray) -> list[float] | None:
    """Cluster-bootstrap interval over validation recordings of the mean over seeds (one draw of
    recordings scores every seed); None without per-item scores or with fewer than 2 recordings."""
    if any(s.get("items") is None for s in per_seed):
        return None
    blocks, groups = [], []
    for k, s in enumerate(per_seed):
        values = np.asarray(s["items"], dtype=float).reshape(len(s["rows"]), -1)
        blocks.append(np.column_stack([np.full(len(values), k), values]))
        groups.append(recordings[np.asarray(s["rows"], dtype=int)])
    groups_all = np.concatenate(groups)
    if len(np.unique(groups_all)) < 2:
        return None

    def seed_mean(rows: np.ndarray) -> float:
        per = []
        for k in range(len(per_seed)):
            values = rows[rows[:, 0] == k, 1:]
            per.append(statistic(values[:, 0] if values.shape[1] == 1 else values))
        return float(np.mean(per))

    low, high = cluster_bootstrap(np.concatenate(blocks), groups_all, statistic=seed_mean,
                                  n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    return [low, high] if math.isfinite(low) and math.isfinite(high) else None


def _seed_summary(values: list[float]) -> dict:
    """summarize() as plain JSON, the values under "per_seed"."""
    out = summarize(values).to_dict()
    out["per_seed"] = out.pop("values")
    return out


def summarize_metric(per_seed: list[dict], statistic, recordings: np.ndarray) -> dict | None:
    values = [s["value"] for s in per_seed]
    if any(v is None for v in values):
        return None
    return {**_seed_summary(values),
            "recordings_interval": None if statistic is None else recording_interval(per_seed, statistic, recordings),
            "n_samples": len(per_seed[0]["rows"]) if per_seed[0].get("rows") is not None else None}


def summarize_run(config: BenchConfig, run: str, seeds: tuple[int, ...], data: Dataset, judges: Judges,
                  real: dict[str, dict[str, dict]], per_seed: dict[int, dict]) -> dict:
    """The metrics.json payload: plain JSON, everything the report prints."""
    recordings = data.validation_recordings
    metric_info = {m: {"description": get_metric(m).description, "higher_is_better": get_metric(m).higher_is_better,
                       "per_item": get_metric(m).statistic is not None} for m in config.metrics}
    rows = {}
    sources = [(row, "real (fixed judges)", [real[row]]) for row in REAL_ROWS]
    sources += [(name, "generated", [per_seed[s]["rows"][name] for s in seeds]) for name in config.variants]
    for row, kind, records in sources:
        metrics = {m: summarize_metric([r[m] for r in records], get_metric(m).statistic, recordings)
                   for m in config.metrics}
        per_class = {c: _seed_summary([r["per_class_accuracy"][c] for r in records])
                     for c in records[0]["per_class_accuracy"]}
        for c, summary in per_class.items():
            summary["n_samples"] = int((data.validation.labels == CLASS_NAMES.index(c)).sum())
        rows[row] = {"kind": kind, "metrics": metrics, "per_class_accuracy": per_class}
    paired = []
    for a, b in COMPARISONS:
        if a not in rows or b not in rows:
            continue
        for m in config.metrics:
            if rows[a]["metrics"][m] is None or rows[b]["metrics"][m] is None:
                continue
            d = paired_difference(rows[a]["metrics"][m]["per_seed"], rows[b]["metrics"][m]["per_seed"])
            better = None
            if d.resolved:
                a_higher = d.summary.mean > 0
                better = a if a_higher == get_metric(m).higher_is_better else b
            paired.append({"a": a, "b": b, "metric": m, **d.to_dict(), "better": better})
    return {
        "run": run, "suite": config.suite, "seeds": list(seeds),
        "data": {"manifest_sha256": data.manifest_sha256, "train_pairs": len(data.train),
                 "validation_pairs": len(data.validation),
                 "validation_recordings": int(len(np.unique(recordings))),
                 "classes": len(set(data.validation.labels.tolist())),
                 "include_silent": data.left_out is None, "silent_left_out": data.left_out},
        "judges": {"sha256": judges.sha256, "manifest_sha256": judges.manifest_sha256, "seed": judges.spec["seed"],
                   "include_silent": judges.spec["include_silent"], "train_pairs": judges.train_pairs,
                   "max_train": judges.spec["max_train"]},
        "setup": {"image_size": config.load.image_size, "lms": [config.load.lms.n_mels, config.load.lms.n_frames],
                  "mismatch_same_class": config.gan_training.mismatch_same_class,
                  "models": {name: v.description for name, v in config.variants.items()},
                  "gan": config.gan, "mismatch_kind": config.gan_cls.mismatch_kind,
                  "pose_margin": config.gan_cls.pose_margin},
        "intervals": INTERVAL_NOTES, "metrics": metric_info, "rows": rows, "paired": paired,
    }


# -- the run ----------------------------------------------------------------------------------------

def judges_for_run(data_dir: Path, manifest: Path, manifest_sha256: str, out_dir: Path, config: BenchConfig,
                   include_silent: bool, executor: Executor | None, device: torch.device, progress: bool) -> Judges:
    """Judges trained once per dataset and suite, in ``OUT/judges-<suite>-<hash>/``, shared by runs."""
    spec = judge_spec(config, include_silent=include_silent)
    folder = out_dir / f"judges-{config.suite}-{_hash({'spec': spec.to_dict(), 'manifest': manifest_sha256})}"
    return judges_in(folder, spec, config, data_dir, manifest, manifest_sha256, executor, device, progress)


def judges_in(folder: Path, spec: JudgeSpec, config: BenchConfig, data_dir: Path, manifest: Path,
              manifest_sha256: str, executor: Executor | None, device: torch.device, progress: bool) -> Judges:
    """The judges of ``spec`` in ``folder``: loaded if there, else trained on their own pairs (decoded
    only then, with the judges' cap on training pairs, not the run's)."""
    def load_train(cache: Path) -> Pairs:
        return prepare_dataset(data_dir, manifest, manifest_sha256, replace(config.load, max_train=spec.max_train),
                               spec.include_silent, cache, executor, progress).train

    return train_judges(spec, load_train, folder, manifest_sha256, device, progress)


def run_bench(data_dir: str | os.PathLike, out_dir: str | os.PathLike, config: BenchConfig,
              seeds: tuple[int, ...] = (0,), judges_dir: str | os.PathLike | None = None,
              include_silent: bool = False, device: str = "auto", executor: Executor | None = None,
              progress: bool = True) -> RunResult:
    """Train and score every seed; writes ``out_dir/<run id>/`` (config.json, metrics.json,
    report.md, figures/, seeds/) and returns its folder and the metrics payload."""
    data_dir, out_dir, torch_device = Path(data_dir), Path(out_dir), resolve_device(device)
    for name in config.metrics:
        get_metric(name)  # unknown names fail before any work
    manifest, manifest_sha256 = check_dataset(data_dir)
    judges = None
    if judges_dir is not None:  # refused before anything is written
        judges = load_judges(judges_dir, manifest_sha256, config.load.image_size, config.load.lms.to_dict())
    run = run_id(config, manifest_sha256, include_silent)
    run_dir = out_dir / run
    for seed in seeds:
        SeedRun(config, seed, run_dir / "seeds" / f"seed-{seed}", torch_device, progress).check_checkpoints()
    write_text(run_dir / "config.json", json.dumps(
        {"config": config.to_dict(), "data": str(data_dir.resolve()), "manifest_sha256": manifest_sha256,
         "include_silent": include_silent}, indent=2, sort_keys=True) + "\n")
    data = prepare_dataset(data_dir, manifest, manifest_sha256, config.load, include_silent,
                           run_dir / "cache" / "pairs.pt", executor, progress)
    if judges is None:
        judges = judges_for_run(data_dir, manifest, manifest_sha256, out_dir, config, include_silent, executor,
                                torch_device, progress)
    per_seed = {seed: run_seed(config, run, seed, run_dir, data, judges, torch_device, progress) for seed in seeds}
    real = score_rows(real_rows(data.train, data.validation, config.load.lms.top_db), data.validation, judges,
                      config.metrics, torch_device)
    payload = summarize_run(config, run, seeds, data, judges, real, per_seed)
    write_text(run_dir / "metrics.json", json.dumps(payload, indent=2, sort_keys=True) + "\n")
    first = seeds[0]
    examples = load_checkpoint(run_dir / "seeds" / f"seed-{first}" / "examples.pt",
                               {"feature_config": config.load.lms.to_dict()})
    rows = torch.as_tensor(examples["meta"]["rows"], dtype=torch.long)
    shown = Pairs([data.validation.ids[i] for i in rows.tolist()], data.validation.split[rows.numpy()],
                  data.validation.labels[rows], data.validation.images[rows], data.validation.lms[rows],
                  data.validation.pitch_position[rows])
    history = {**{f"judge {k}": v for k, v in judges.history.items()}, **per_seed[first]["history"]}
    figures = FigureInputs(shown, examples["generated"], config.load.lms, first, history)
    write_report(run_dir, payload, figures)
    write_run_pages(run_dir, figures, config.load.lms)  # report.html, rate.html + rate_key.json
    return RunResult(run_dir, payload)


def make_judges(data_dir: str | os.PathLike, out_dir: str | os.PathLike, config: BenchConfig, seed: int = 0,
                include_silent: bool = False, device: str = "auto", executor: Executor | None = None,
                progress: bool = True) -> Judges:
    """``cmav-bench judges``: train (or find already trained) the judges of ``config`` into ``out_dir``."""
    data_dir = Path(data_dir)
    manifest, manifest_sha256 = check_dataset(data_dir)
    return judges_in(Path(out_dir), judge_spec(config, seed, include_silent), config, data_dir, manifest,
                     manifest_sha256, executor, resolve_device(device), progress)


# Bad input of a run, each with a message naming the file or name and what is wrong.
INPUT_ERRORS = (DatasetError, ManifestError, CheckpointError, UnknownMetricError, JudgesError)


def run_from_options(suite: str, data_dir: str, out_dir: str, device: str, jobs: int, metrics: tuple[str, ...],
                     seeds: tuple[int, ...], judges_dir: str | None, include_silent: bool, threads: int,
                     progress: bool, gan: str = "gan-cls", mismatch: str = "instrument") -> Path:
    """The CLI's one call: a suite with the command line's overrides, run; the run folder."""
    torch.set_num_threads(threads)
    base = SUITES[suite]
    config = replace(base, metrics=tuple(metrics) or DEFAULT_METRICS, gan=gan,
                     gan_cls=replace(base.gan_cls, mismatch_kind=mismatch))
    with executor_for(jobs) as executor:
        return run_bench(data_dir, out_dir, config, seeds, judges_dir, include_silent, device, executor,
                         progress).run_dir


def judges_from_options(suite: str, data_dir: str, out_dir: str, device: str, jobs: int, seed: int,
                        include_silent: bool, threads: int, progress: bool) -> Judges:
    torch.set_num_threads(threads)
    with executor_for(jobs) as executor:
        return make_judges(data_dir, out_dir, SUITES[suite], seed, include_silent, device, executor, progress)
