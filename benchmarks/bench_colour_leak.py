"""Does colour give the demo's image task away? A mean-colour classifier against chance and a small CNN.

A nearest-centroid classifier on each image's RGB mean and standard deviation
(``cmav_data.demo.colour_baseline``) is trained on the train split of a Sub-URMP build and scored on
its validation split (held-out recordings). Goal: below 0.25 (chance is 1/13 = 0.077), i.e. colour
alone does not tell the instrument. Reference measured in the same run: the image classifier of the
benchmark (``cmav_models/image_classifier.py``, a few epochs on the same 64 px images), which must
find the instrument from its drawing. Intervals: 95 % percentile bootstrap over validation
recordings (a recording's images are resampled together); the CNN is one training seed.

    python benchmarks/bench_colour_leak.py                      # the default demo corpus (16 pieces)
    python benchmarks/bench_colour_leak.py --pieces 7 --seconds 6 --size 480x270 --epochs 2   # quick look
    python benchmarks/bench_colour_leak.py --data demo/suburmp  # an existing build
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section  # noqa: E402

from cmav_data.demo import DemoOptions, make_demo_urmp, parse_seconds, parse_size  # noqa: E402
from cmav_data.demo.colour_baseline import bootstrap_accuracy, colour_features, nearest_centroid  # noqa: E402
from cmav_data.manifest import read_manifest  # noqa: E402

GOAL = 0.25
N_CLASSES = 13
IMAGE_SIZE = 64


def read_images(root: Path, paths: list[str]) -> np.ndarray:
    """[N, S, S, 3] uint8: each crop resized to S x S, as the benchmark's models see it."""
    out = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for i, rel in enumerate(paths):
        with Image.open(root / rel) as img:
            img.draft("RGB", (2 * IMAGE_SIZE, 2 * IMAGE_SIZE))
            out[i] = np.asarray(img.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
    return out


def cnn_predictions(train: tuple[np.ndarray, np.ndarray], validation: np.ndarray, epochs: int, work: Path,
                 seed: int) -> np.ndarray:
    """Predicted validation labels of the benchmark's image classifier trained ``epochs`` on ``train``."""
    import torch

    from cmav_models.data import image_to_unit
    from cmav_models.image_classifier import ImageCNN, ImageCNNConfig
    from cmav_models.train import Stage, TrainConfig, apply_batched, classification_loss, train_supervised

    torch.set_num_threads(1)  # the machine is shared; one thread gives steadier timings
    torch.manual_seed(seed)
    model = ImageCNN(ImageCNNConfig(image_size=IMAGE_SIZE))
    images = torch.from_numpy(train[0].transpose(0, 3, 1, 2).copy())
    labels = torch.from_numpy(train[1].astype(np.int64))
    stage = Stage("image_classifier", work / "image_classifier.pt", {"seed": seed}, seed, torch.device("cpu"),
                  progress=False)
    train_supervised(stage, model, images, labels, classification_loss, image_to_unit, TrainConfig(epochs=epochs))
    val = image_to_unit(torch.from_numpy(validation.transpose(0, 3, 1, 2).copy()))
    return apply_batched(model, val, torch.device("cpu")).argmax(dim=1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="an existing Sub-URMP build (skips making one)")
    ap.add_argument("--pieces", type=int, default=DemoOptions.pieces)
    ap.add_argument("--seconds", default="20-40")
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (and the CNN's)")
    ap.add_argument("--epochs", type=int, default=3, help="image classifier epochs (0: skip it)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cmav-bench-colour"))
    ap.add_argument("--no-record", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    if args.data is None:
        options = DemoOptions(pieces=args.pieces, seconds=parse_seconds(args.seconds), size=parse_size(args.size),
                              seed=args.seed)
        with ProcessPoolExecutor(args.jobs) as pool:
            make_demo_urmp(args.work / "urmp", options, executor=pool, progress=False)
        data = args.work / "suburmp"
        subprocess.run([sys.executable, "-m", "cmav_data.cli", "build-suburmp", str(args.work / "urmp"), str(data),
                        "-j", str(args.jobs), "--quiet"], check=True)
        source = f"demo corpus: {args.pieces} pieces of {args.seconds} s at {args.size}, seed {args.seed}"
    else:
        data = args.data
        source = f"build {data}"

    table = read_manifest(data / "manifest.parquet", ["split", "class_index", "recording", "image_path"]).to_pydict()
    split = np.array(table["split"])
    labels = np.array(table["class_index"])
    recordings = np.array(table["recording"])
    train, val = split == "train", split == "validation"
    t = time.perf_counter()
    images = read_images(data, table["image_path"])
    features = colour_features(images)
    colour_correct = nearest_centroid(features[train], labels[train], features[val]) == labels[val]
    colour = bootstrap_accuracy(colour_correct, recordings[val], seed=args.seed)
    colour_s = time.perf_counter() - t
    n_val_rec, n_train_rec = len(set(recordings[val])), len(set(recordings[train]))
    lines = [
        f"{source}; {train.sum()} train images ({n_train_rec} recordings), "
        f"{val.sum()} validation images ({n_val_rec} recordings, {len(set(labels[val]))} classes)",
        f"chance                      {1 / N_CLASSES:.3f}   (13 classes)",
        f"mean-colour nearest centroid {colour[0]:.3f}   95% CI [{colour[1]:.3f}, {colour[2]:.3f}] over "
        f"{n_val_rec} recordings   {colour[0] * N_CLASSES:4.1f}x chance   goal < {GOAL}: "
        f"{'met' if colour[0] < GOAL else 'NOT met'}   ({colour_s:.1f} s)",
    ]
    if args.epochs > 0:
        t = time.perf_counter()
        predicted = cnn_predictions((images[train], labels[train]), images[val], args.epochs, args.work, args.seed)
        cnn_correct = predicted == labels[val]
        cnn = bootstrap_accuracy(cnn_correct, recordings[val], seed=args.seed)
        lines.append(
            f"image classifier (CNN)      {cnn[0]:.3f}   95% CI [{cnn[1]:.3f}, {cnn[2]:.3f}] over {n_val_rec} recordings, "
            f"1 seed ({args.seed}), {args.epochs} epochs   {cnn[0] * N_CLASSES:4.1f}x chance   "
            f"mean colour / CNN {colour[0] / max(cnn[0], 1e-9):.2f}   ({time.perf_counter() - t:.1f} s)")
    body = "\n".join(lines)
    print(body)
    if not args.no_record:
        command = ("python benchmarks/bench_colour_leak.py " + " ".join(sys.argv[1:])).strip()
        update_section("bench_colour_leak", command, body)
    if args.data is None:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
