"""`cmav-bench run` end to end on a tiny dataset (the hidden `--suite smoke`): outputs, the report,
resume, determinism of a rerun, and bad input failing early with one line."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner
from PIL import Image

from cmav_models.bench import VARIANTS
from cmav_models.cli import main
from cmav_models.metrics import METRICS, Scored, register_metric
from test_bench_data import TINY_CLASSES, make_tiny_dataset, rewrite_manifest, tiny_dataset  # noqa: F401 (fixture)

torch.set_num_threads(1)
STAGES = ("image_classifier", "sound_classifier", "sound_autoencoder", "pose_regressor", *VARIANTS)


@register_metric("test_n_samples", "number of scored samples (a user-registered metric)", True)
def n_samples(scored: Scored) -> float:
    return float(len(scored.samples))


def _run(data: Path, out: Path, *extra: str):
    metrics = [a for m in ("accuracy", "frechet", "pose_r", "pose_mae", "test_n_samples") for a in ("--metric", m)]
    return CliRunner().invoke(main, ["run", "--suite", "smoke", "--data", str(data), "--out", str(out),
                                     "--quiet", "--device", "cpu", *metrics, *extra])


def _files(run_dir: Path) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for needle in needles:
        assert needle in lines[0]


# One test for the whole life of a run, so that the training happens once even when pytest-xdist
# spreads this module's tests over workers.
def test_smoke_run_end_to_end(tiny_dataset, tmp_path):  # noqa: F811
    out = tmp_path / "runs"
    result = _run(tiny_dataset, out)
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    assert result.output.strip() == f"report: {run_dir / 'report.md'}"

    # Outputs: config, metrics of every row (the user's metric too), checkpoints, figures, report.
    assert run_dir.name.startswith("smoke-")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["suite"] == "smoke" and config["config"]["load"]["lms"]["n_mels"] == 128
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"image classifier (real)", "sound classifier (real)", *VARIANTS}
    for row, values in metrics.items():
        assert 0 <= values["accuracy"] <= 1
        assert values["test_n_samples"] == 12 * len(TINY_CLASSES)
        assert (values["pose_r"] is None) == (row in ("sound classifier (real)", "I2S"))
    for stage in STAGES:
        assert (run_dir / "checkpoints" / f"{stage}.pt").stat().st_size > 1000
    for figure in ("s2i_samples", "i2s_samples", "training_curves"):
        with Image.open(run_dir / "figures" / f"{figure}.png") as img:
            assert img.width > 200 and img.height > 100
    report = (run_dir / "report.md").read_text()
    assert "| S2I-C |" in report and "| I2S |" in report
    assert "0.9375" in report and "not directly comparable" in report  # published rows, marked
    assert "test_n_samples" in report and "Pearson r" in report  # every measure is stated

    # Rerun: resumes, trains nothing (no checkpoint rewritten), identical outputs.
    before = _files(run_dir)
    assert _run(tiny_dataset, out).exit_code == 0
    after = _files(run_dir)
    assert set(after) == set(before)
    for stage in STAGES:
        path = run_dir / "checkpoints" / f"{stage}.pt"
        assert after[path][0] == before[path][0]
    for name in ("metrics.json", "report.md", "config.json", "figures/s2i_samples.png"):
        assert after[run_dir / name][1] == before[run_dir / name][1], name

    # Another metric list scores the same trained run (same folder), nothing retrained.
    result = CliRunner().invoke(main, ["run", "--suite", "smoke", "--data", str(tiny_dataset), "--out", str(out),
                                       "--quiet", "--device", "cpu", "--metric", "accuracy"])
    assert result.exit_code == 0 and [p.name for p in out.iterdir()] == [run_dir.name]
    assert all(set(v) == {"accuracy"} for v in json.loads((run_dir / "metrics.json").read_text()).values())

    # A checkpoint of another feature config is refused, before anything is retrained.
    path = run_dir / "checkpoints" / "sound_classifier.pt"
    good = path.read_bytes()
    state = torch.load(path, weights_only=True)
    state["meta"]["feature_config"]["n_mels"] = 64
    torch.save(state, path)
    (run_dir / "checkpoints" / "image_classifier.pt").unlink()  # would be retrained first if not checked early
    _assert_one_line_error(_run(tiny_dataset, out), "sound_classifier.pt", "features made with another config")
    assert not (run_dir / "checkpoints" / "image_classifier.pt").exists()

    # A corrupt checkpoint likewise.
    path.write_bytes(good)
    (run_dir / "checkpoints" / "S2I-A.pt").write_bytes(b"\x00garbage")
    _assert_one_line_error(_run(tiny_dataset, out), "S2I-A.pt", "corrupt checkpoint")
    assert not (run_dir / "checkpoints" / "image_classifier.pt").exists()


def test_bad_datasets_fail_with_one_line_before_any_run_folder(tiny_dataset, tmp_path):  # noqa: F811
    no_validation = make_tiny_dataset(tmp_path / "a", pairs_per_recording=2, splits=("train",))
    _assert_one_line_error(_run(no_validation, tmp_path / "runs"), "manifest.parquet", "no validation split")
    missing_class = rewrite_manifest(tiny_dataset, tmp_path / "b",
                                     lambda r: not (r["split"] == "validation" and r["class_name"] == "flute"))
    _assert_one_line_error(_run(missing_class, tmp_path / "runs"), "'flute' has train pairs but no validation")
    _assert_one_line_error(_run(tmp_path / "nothing", tmp_path / "runs"), "no manifest")
    assert not (tmp_path / "runs").exists()


def test_unknown_metric_is_a_one_line_error(tiny_dataset, tmp_path):  # noqa: F811
    result = CliRunner().invoke(main, ["run", "--suite", "smoke", "--data", str(tiny_dataset), "--out",
                                       str(tmp_path), "--metric", "nope"])
    _assert_one_line_error(result, "unknown metric 'nope'", "accuracy")
    assert "test_n_samples" in METRICS  # registered at import of this module


def test_help_shows_defaults_and_an_example():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    assert "cmav-bench run" in result.output and "default: fast" in result.output


def test_classifier_conditions_are_class_posteriors_and_the_autoencoder_gives_its_code(tiny_dataset):  # noqa: F811
    from cmav_models.bench import SUITES, Bench
    from cmav_models.data import load_pairs

    config = SUITES["smoke"]
    bench = Bench(config, tiny_dataset / "unused", torch.device("cpu"), progress=False)
    pairs = load_pairs(tiny_dataset, config.load)
    for name, variant in VARIANTS.items():
        encoder = bench.new_model(variant.encoder).eval()
        cond = bench.conditions(encoder, variant.encoder, pairs)
        assert cond.shape == (len(pairs), bench.gan_config(name).cond_dim)
        if variant.encoder == "sound_autoencoder":
            assert cond.shape[1] == config.sound_autoencoder.embed_dim
        else:  # a posterior over the 13 instruments, peaked where the classifier's vote is
            assert cond.shape[1] == 13 and torch.allclose(cond.sum(1), torch.ones(len(pairs)))
            inputs = bench.to_lms_unit(pairs.lms) if variant.direction == "s2i" else pairs.images.float() / 127.5 - 1
            with torch.no_grad():
                assert torch.equal(cond.argmax(1), encoder(inputs).argmax(1))


def test_truncated_or_garbage_manifest_is_a_one_line_error(tiny_dataset, tmp_path):  # noqa: F811
    import shutil

    for name, damage in (("truncated", lambda data: data[:1000]), ("garbage", lambda data: b"\x00garbage" * 50)):
        root = tmp_path / name
        shutil.copytree(tiny_dataset, root)
        manifest = root / "manifest.parquet"
        manifest.write_bytes(damage(manifest.read_bytes()))
        _assert_one_line_error(_run(root, tmp_path / "runs"), str(manifest), "unreadable Parquet")
    assert not (tmp_path / "runs").exists()
