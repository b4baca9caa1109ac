"""Judges: the fixed yardstick that scores generated samples (``cmav-bench judges``).

Three networks, trained once on a dataset's training split with their own seed and then frozen:
the image classifier and the sound classifier (top-1 accuracy and the Fréchet distance of generated
samples) and the pose regressor (the pitch position read from an image). Scoring every GAN seed with
the same judges means a seed changes the GANs, never the ruler they are measured with.

A judges folder is published like dataset shards, so two labs can score with the same yardstick::

    J/
      image_classifier.pt  sound_classifier.pt  pose_regressor.pt   # weights + network config
      judges.json    # what they were trained on: manifest sha256, spec, training pairs, each file's size and sha256
      index.json     # the shards index layout (files, sizes, sha256): `cmav-data verify J` checks it,
                     # `cmav-data download <url>/index.json J` fetches it

The judges are never the condition encoders of the models they score: the bench trains its encoders
separately (their own seed stream, retrained with every GAN seed), so no model is ever fed, tuned or
selected through the networks that grade it.

Judges from another dataset (another manifest sha256) or for other inputs (image size, LMS config)
are refused with one line naming both sides.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from cmav_data.atomic import write_bytes
from cmav_data.checksum import sha256_bytes, sha256_file
from cmav_data.shards.index import INDEX_NAME, IndexedFile, ShardIndex
from cmav_models.checkpoints import load_checkpoint, save_checkpoint
from cmav_models.data import Pairs
from cmav_models.image_classifier import ImageCNN, ImageCNNConfig
from cmav_models.sound_classifier import SoundCNN, SoundCNNConfig
from cmav_models.train import Stage, TrainConfig, derive_seed, supervised_task, train_supervised

JUDGES_FILE = "judges.json"
JUDGES_FORMAT = "cmav-judges"
JUDGES_FORMAT_VERSION = 1
INDEX_KIND = "judges"
TRAINING_DIR = ".training"  # per-epoch resume state; removed once the judges are written
JUDGE_NAMES = ("image_classifier", "sound_classifier", "pose_regressor")


class JudgesError(Exception):
    """Judges that cannot be used for this run; the message names the folder and the cause."""


@dataclass(frozen=True)
class JudgeSpec:
    """Everything that changes the judges' weights, beside the dataset itself."""

    image_size: int
    lms: dict  # the LMS feature config (LmsSpec.to_dict()) the sound classifier reads
    image_cnn: ImageCNNConfig
    sound_cnn: SoundCNNConfig
    image_training: TrainConfig  # image classifier and pose regressor
    sound_training: TrainConfig
    max_train: int | None  # training pairs (seeded subsample), None = all
    include_silent: bool
    seed: int = 0

    def network_configs(self) -> dict[str, object]:
        return {"image_classifier": self.image_cnn, "sound_classifier": self.sound_cnn,
                "pose_regressor": replace(self.image_cnn, n_classes=1)}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Judges:
    """Loaded, frozen judges and what identifies them."""

    path: Path
    modules: dict[str, nn.Module]  # JUDGE_NAMES -> network in eval mode
    sha256: str  # of judges.json (which holds every weight file's sha256): the judges' identity
    manifest_sha256: str
    spec: dict
    history: dict[str, list[dict[str, float]]]
    train_pairs: int | None  # the training pairs they learnt from (after spec.max_train); None if not recorded


def _build(name: str, network_config: dict) -> nn.Module:
    if name == "sound_classifier":
        return SoundCNN(SoundCNNConfig(**{**network_config, "in_shape": tuple(network_config["in_shape"])}))
    return ImageCNN(ImageCNNConfig(**network_config))


def train_judges(spec: JudgeSpec, load_train: Callable[[Path], Pairs], out_dir: str | os.PathLike,
                 manifest_sha256: str, device: torch.device, progress: bool = True) -> Judges:
    """Train the judges into ``out_dir`` (resumable), or load them if already there. Their training
    pairs come from ``load_train(cache)`` (``cache``: a file it may keep decoded pairs in while the
    judges train), called only when there is training to do."""
    out_dir = Path(out_dir)
    if (out_dir / JUDGES_FILE).is_file():
        judges = load_judges(out_dir, manifest_sha256, spec.image_size, spec.lms)
        if judges.spec != json.loads(json.dumps(spec.to_dict())):
            raise JudgesError(f"{out_dir}: holds judges trained with another config; choose another --out")
        return judges
    work = out_dir / TRAINING_DIR
    train = load_train(work / "pairs.pt")
    training = {"image_classifier": spec.image_training, "sound_classifier": spec.sound_training,
                "pose_regressor": spec.image_training}
    files, history = {}, {}
    for name, network_config in spec.network_configs().items():
        inputs, targets, loss_fn, to_input, augment = supervised_task(name, train, spec.lms["top_db"])
        meta = {"stage": f"judge-{name}", "network_config": asdict(network_config), "feature_config": spec.lms}
        # A seed stream of its own ("judge-..."): a judge is never the same training as an encoder.
        stage = Stage(f"judge-{name}", work / f"{name}.pt", meta, spec.seed, device, progress)
        torch.manual_seed(derive_seed(spec.seed, stage.name, "init"))
        model = _build(name, asdict(network_config))
        history[name] = train_supervised(stage, model, inputs, targets, loss_fn, to_input, training[name], augment)
        weights = out_dir / f"{name}.pt"
        save_checkpoint(weights, {"meta": {"judge": name, "network_config": asdict(network_config),
                                           "feature_config": spec.lms},
                                  "state_dict": {k: t.cpu() for k, t in model.state_dict().items()}})
        files[name] = {"path": weights.name, "size": weights.stat().st_size, "sha256": sha256_file(weights)}
    record = {"format": JUDGES_FORMAT, "format_version": JUDGES_FORMAT_VERSION, "manifest_sha256": manifest_sha256,
              "spec": spec.to_dict(), "files": files, "history": history, "train_pairs": len(train)}
    judges_json = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    listed = [IndexedFile(f["path"], f["size"], f["sha256"]) for f in files.values()]
    listed.append(IndexedFile(JUDGES_FILE, len(judges_json), sha256_bytes(judges_json)))
    index = ShardIndex(kind=INDEX_KIND, schema_version=str(JUDGES_FORMAT_VERSION), options=spec.to_dict(),
                       build={"manifest_sha256": manifest_sha256}, files=sorted(listed, key=lambda f: f.path))
    write_bytes(out_dir / INDEX_NAME, index.to_json())
    write_bytes(out_dir / JUDGES_FILE, judges_json)  # last: its presence means the judges are complete
    shutil.rmtree(work, ignore_errors=True)
    return load_judges(out_dir, manifest_sha256, spec.image_size, spec.lms)


def load_judges(path: str | os.PathLike, manifest_sha256: str, image_size: int, lms: dict) -> Judges:
    """The judges in ``path``, checked against this dataset's manifest, this run's inputs and their
    files' sha256; JudgesError (one line) otherwise."""
    path = Path(path)
    record_path = path / JUDGES_FILE
    if not record_path.is_file():
        raise JudgesError(f"{path}: no {JUDGES_FILE} (make a judges folder with `cmav-bench judges`)")
    data = record_path.read_bytes()
    try:
        record = json.loads(data)
        if record.get("format") != JUDGES_FORMAT:
            raise ValueError(f"format {record.get('format')!r} is not {JUDGES_FORMAT!r}")
        theirs, spec, files = record["manifest_sha256"], record["spec"], record["files"]
        if set(files) != set(JUDGE_NAMES):
            raise ValueError(f"lists {sorted(files)}, expected {list(JUDGE_NAMES)}")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise JudgesError(f"{record_path}: not a usable judges file ({e})") from None
    if theirs != manifest_sha256:
        raise JudgesError(f"{path}: judges were trained on the dataset with manifest sha256 {theirs}, "
                          f"this dataset's manifest has sha256 {manifest_sha256}")
    if spec["image_size"] != image_size or spec["lms"] != lms:
        raise JudgesError(f"{path}: judges read {spec['image_size']} px images and LMS {spec['lms']}, "
                          f"this run has {image_size} px and LMS {lms}")
    modules = {}
    for name in JUDGE_NAMES:
        file = path / files[name]["path"]
        if not file.is_file():
            raise JudgesError(f"{file}: missing (listed in {record_path})")
        digest = sha256_file(file)
        if digest != files[name]["sha256"]:
            raise JudgesError(f"{file}: sha256 {digest}, {JUDGES_FILE} says {files[name]['sha256']}")
        state = load_checkpoint(file, {"judge": name, "feature_config": lms})
        module = _build(name, state["meta"]["network_config"])
        module.load_state_dict(state["state_dict"])
        modules[name] = module.eval()
    return Judges(path, modules, sha256_bytes(data), theirs, spec, record.get("history", {}),
                  record.get("train_pairs"))
