"""Training at the hardware's pace: samples/s of one compare-features cell and of one GAN stage
against a bare loop of the same model on random tensors already in memory (the floor). Goal: within 1.25x.

Cell: ``cmav_models.compare_features.train_cell`` on a memory-mapped float32 inputs array on disk
(the layout compare-features writes: [pairs, rows, frames], read one gathered batch at a time),
including its scoring of the selection and held-out rows; floor: the same SoundCNN, AdamW, batch
size and number of optimizer steps on one random tensor held in memory, plus the same forward
passes for scoring. Both at one torch thread, as compare-features trains.

GAN-CLS: ``cmav_models.gan_cls.train_gan_cls`` (the fast suite's S2I-C, the default rows: 32 px
images, the sound classifier's embedding as condition, instrument mismatches), one epoch of uint8
images in memory, including its per-epoch checkpoint; floor: the same G and D steps (the real
features shared by the matching and mismatched scores, as in training) on random tensors already in
the output space, without batching, mismatch sampling or checkpoint.

Projection: ``cmav_models.train.train_cgan`` (the fast suite's S2I projection cGAN, `--gan projection`:
a 13-class posterior as condition, mismatched pairs on), measured the same way.

    python benchmarks/bench_train.py                      # stft, 1024 fit pairs, 1 epoch; GANs 1024 pairs
    python benchmarks/bench_train.py --kind lms --pairs 256 --gan-pairs 256 --repeats 2 --no-record   # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section  # noqa: E402

from cmav_data.features.specs import make_spec  # noqa: E402
from cmav_models import gan_cls  # noqa: E402
from cmav_models.bench import SUITES  # noqa: E402
from cmav_models.projection_gan import Discriminator, Generator, discriminator_loss, generator_loss  # noqa: E402
from cmav_models.compare_features import POOLINGS, CellTask, CompareConfig, Inputs, train_cell  # noqa: E402
from cmav_models.data import image_to_unit  # noqa: E402
from cmav_models.sound_classifier import SoundCNN, SoundCNNConfig  # noqa: E402
from cmav_models.train import Stage, batches, train_cgan  # noqa: E402

N_CLASSES = 13


def cell_inputs(work: Path, kind: str, n_fit: int, n_score: int) -> Inputs:
    """A random standardised inputs array on disk (what prepare_inputs writes), 13 classes."""
    shape = make_spec(kind).shape
    n = n_fit + 2 * n_score
    path = work / f"{kind}-{n}.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, *shape))
    rng = np.random.default_rng(0)
    for i in range(0, n, 256):
        array[i:i + 256] = rng.standard_normal((min(256, n - i), *shape), dtype=np.float32)
    array.flush()
    del array
    labels = tuple(i % N_CLASSES for i in range(n))
    rows_of = {"fit": tuple(range(n_fit)), "selection": tuple(range(n_fit, n_fit + n_score)),
               "heldout": tuple(range(n_fit + n_score, n))}
    return Inputs(kind, str(path), "bench", labels, rows_of)


def cell_floor(inputs: Inputs, config: CompareConfig, depth: int, pooling: str) -> float:
    """Seconds of the same training steps and scoring passes on tensors already in memory."""
    n_fit, n_score = len(inputs.rows_of["fit"]), 2 * len(inputs.rows_of["selection"])
    shape = make_spec(inputs.kind).shape
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = SoundCNN(SoundCNNConfig(n_classes=N_CLASSES, depth=depth, in_shape=shape, channels=config.channels,
                                        dropout=config.dropout, keep_frequency=POOLINGS[pooling]))
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        x = torch.randn(config.batch_size, 1, *shape)
        y = torch.randint(N_CLASSES, (config.batch_size,))
        steps = config.epochs * len(batches(n_fit, config.batch_size, torch.Generator().manual_seed(0)))
        start = time.perf_counter()
        model.train()
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        score = torch.randn(256, 1, *shape)
        with torch.inference_mode():
            for i in range(0, n_score, 256):
                model(score[: min(256, n_score - i)]).argmax(1)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)


def alternated(floor_fn, real_fn, repeats: int) -> tuple[float, float, list[float]]:
    """Fastest floor and real seconds over ``repeats`` alternated runs (so a busy spell hits both),
    and each round's ratio."""
    floors, reals = [], []
    for _ in range(repeats):
        floors.append(floor_fn())
        reals.append(real_fn())
    return min(floors), min(reals), [r / f for f, r in zip(floors, reals)]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _rounds(ratios: list[float]) -> str:
    return f"fastest of {len(ratios)} alternated rounds; per-round ratios " + ", ".join(f"{r:.2f}" for r in ratios)


def bench_cell(work: Path, kind: str, n_fit: int, epochs: int, depth: int, pooling: str,
               repeats: int) -> tuple[str, float]:
    config = dataclasses.replace(CompareConfig(), epochs=epochs, channels=32)
    inputs = cell_inputs(work, kind, n_fit, n_fit // 4)
    np.load(inputs.path, mmap_mode="r").sum()  # warm the page cache, as a rerun finds it
    task = CellTask(inputs, depth, pooling, 0, config, "cpu", str(work / "cell.json"))
    cell_floor(inputs, config, depth, pooling)  # warm-up: allocator, kernels
    floor, cell, ratios = alternated(lambda: cell_floor(inputs, config, depth, pooling),
                                     lambda: _timed(lambda: train_cell(task)), repeats)
    samples = epochs * n_fit
    return (f"compare-features cell ({kind} {make_spec(kind).shape}, {depth} conv, {pooling}, {n_fit} fit pairs x "
            f"{epochs} epochs + scoring of {n_fit // 2}, 1 thread):\n"
            f"  cell  {cell:7.2f} s  {samples / cell:8.1f} samples/s\n"
            f"  floor {floor:7.2f} s  {samples / floor:8.1f} samples/s\n"
            f"  ratio {cell / floor:5.2f}x (goal <= 1.25x; {_rounds(ratios)})"), cell / floor


def gan_floor(generator: torch.nn.Module, discriminator: torch.nn.Module, n: int, training, d_loss, g_loss) -> float:
    """Seconds of one epoch's G and D steps on random tensors already in the output space.
    ``d_loss(real, fake, cond, mismatched)`` and ``g_loss(fake, cond)`` are the family's losses."""
    config, batch_size = generator.config, training.batch_size
    g_opt = torch.optim.Adam(generator.parameters(), lr=training.lr_generator, betas=(training.beta1, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=training.lr_discriminator, betas=(training.beta1, 0.999))
    real = torch.rand(batch_size, config.out_channels, *config.out_shape) * 2 - 1
    cond, mismatched = torch.randn(batch_size, config.cond_dim), torch.randn(batch_size, config.cond_dim)
    z = torch.randn(batch_size, config.noise_dim)
    generator.train()
    discriminator.train()
    start = time.perf_counter()
    for _ in range(n // batch_size):
        fake = generator(z, cond)
        loss = d_loss(real, fake, cond, mismatched)
        d_opt.zero_grad(set_to_none=True)
        loss.backward()
        d_opt.step()
        g = g_loss(fake, cond)
        g_opt.zero_grad(set_to_none=True)
        g.backward()
        g_opt.step()
        loss.item(), g.item()
    return time.perf_counter() - start


def gan_cls_losses(discriminator: gan_cls.Discriminator):
    """GAN-CLS's losses as its training computes them: the real features shared by both real scores."""
    def d_loss(real, fake, cond, mismatched):
        features = discriminator.features(real)
        return gan_cls.discriminator_loss(discriminator.score(features, cond), discriminator(fake.detach(), cond),
                                          discriminator.score(features, mismatched))

    return d_loss, lambda fake, cond: gan_cls.generator_loss(discriminator(fake, cond))


def projection_losses(discriminator: Discriminator, mismatch: bool):
    def d_loss(real, fake, cond, mismatched):
        return discriminator_loss(discriminator, real, fake, cond, mismatched if mismatch else None)

    return d_loss, lambda fake, cond: generator_loss(discriminator, fake, cond)


def bench_gan(work: Path, n: int, repeats: int, family: str) -> tuple[str, float]:
    """One epoch of the fast suite's S2I GAN of ``family`` ("gan_cls": S2I-C; "projection") against its floor."""
    suite = SUITES["fast"]
    size = suite.load.image_size
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=rng)
    labels = torch.arange(n) % N_CLASSES
    if family == "gan_cls":
        # The condition is the fast suite's sound classifier embedding: channels x the rows it keeps.
        cond_dim = SoundCNN(dataclasses.replace(suite.sound_cnn, n_classes=N_CLASSES,
                                                in_shape=make_spec("lms").shape)).head.in_features
        config = dataclasses.replace(suite.gan_cls, out_channels=3, out_shape=(size, size), cond_dim=cond_dim)
        training = dataclasses.replace(suite.gan_cls_training, epochs=1)
        conditions, pose = torch.randn(n, cond_dim, generator=rng), torch.rand(n, generator=rng)
        models = lambda: (gan_cls.Generator(config), gan_cls.Discriminator(config))
        losses = gan_cls_losses
        train = lambda stage, g, d: gan_cls.train_gan_cls(stage, g, d, images, conditions, labels, pose,
                                                          image_to_unit, training)
        title = (f"GAN-CLS stage (S2I-C of the fast suite, the default rows: {size} px, condition {cond_dim}-d, "
                 "instrument mismatches")
        name = "train_gan_cls"
    else:
        config = dataclasses.replace(suite.projection_gan, out_channels=3, out_shape=(size, size), cond_dim=N_CLASSES)
        training = dataclasses.replace(suite.gan_training, epochs=1)
        conditions = torch.softmax(torch.randn(n, N_CLASSES, generator=rng), dim=1)
        models = lambda: (Generator(config), Discriminator(config))
        losses = lambda d: projection_losses(d, config.mismatch)
        train = lambda stage, g, d: train_cgan(stage, g, d, images, conditions, labels, image_to_unit,
                                               training)
        title = f"projection GAN stage (S2I cGAN of the fast suite, --gan projection: {size} px, mismatch on"
        name = "train_cgan"
    batch_size = training.batch_size

    def floor_run(pairs: int = n) -> float:
        torch.manual_seed(0)
        g, d = models()
        return gan_floor(g, d, pairs, training, *losses(d))

    floor_run(min(n, 4 * batch_size))  # warm-up: allocator, kernels

    def gan_run() -> float:
        (work / f"{family}.pt").unlink(missing_ok=True)  # a fresh stage, not a resumed one
        torch.manual_seed(0)
        stage = Stage("bench", work / f"{family}.pt", {"bench": True}, 0, torch.device("cpu"), progress=False)
        return _timed(lambda: train(stage, *models()))

    floor, gan, ratios = alternated(floor_run, gan_run, repeats)
    steps = n // batch_size
    return (f"{title}; g/d width {config.g_channels}, n_up {config.n_up}, batch {batch_size}; 1 epoch of {n} pairs = "
            f"{steps} steps, {torch.get_num_threads()} thread(s)):\n"
            f"  {name:<13} {gan:7.2f} s  {steps * batch_size / gan:8.1f} samples/s\n"
            f"  {'floor':<13} {floor:7.2f} s  {steps * batch_size / floor:8.1f} samples/s\n"
            f"  ratio {gan / floor:5.2f}x (goal <= 1.25x; {_rounds(ratios)})"), gan / floor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", default="stft", help="feature kind of the cell (its shape)")
    ap.add_argument("--pairs", type=int, default=1024, help="fit pairs of the cell")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--pooling", default="keep", choices=sorted(POOLINGS))
    ap.add_argument("--gan-pairs", type=int, default=1024, help="pairs in each GAN's epoch")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the GANs (the cell always uses 1)")
    ap.add_argument("--repeats", type=int, default=3, help="alternated floor/real rounds (the fastest of each is kept)")
    ap.add_argument("--no-record", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="cmav-bench-train-") as tmp:
        cell_text, _ = bench_cell(Path(tmp), args.kind, args.pairs, args.epochs, args.depth, args.pooling,
                                  args.repeats)
        gan_texts = [bench_gan(Path(tmp), args.gan_pairs, args.repeats, family)[0]
                     for family in ("gan_cls", "projection")]
    body = "\n\n".join([cell_text, *gan_texts,
                         "(wall-clock timings; the fastest round of each side is compared)"])
    print(body)
    if not args.no_record:
        update_section("bench_train", ("python benchmarks/bench_train.py " + " ".join(sys.argv[1:])).strip(), body)


if __name__ == "__main__":
    main()
