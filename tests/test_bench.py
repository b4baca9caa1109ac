"""`cmav-bench run` end to end on a tiny dataset (the hidden `--suite smoke`): seeds, intervals and
paired comparisons in the outputs, silent pairs left out, finished seeds reused, determinism of a
rerun, and bad input failing early with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from click.testing import CliRunner
import soundfile as sf
from PIL import Image

from cmav_data.manifest import PAIR_SCHEMA, read_manifest, write_table
from cmav_models.bench import COMPARISONS, GAN_CHOICES, SUITES, VARIANTS, parse_seeds
from cmav_models.cli import main
from cmav_models.metrics import METRICS, Scored, register_metric
from test_bench_data import TINY_CLASSES, make_tiny_dataset, rewrite_manifest, tiny_dataset  # noqa: F401 (fixture)

torch.set_num_threads(1)
ROWS = SUITES["smoke"].variants  # the default --gan gan-cls: the paper's rows and flow matching
ENCODER_STAGES = tuple(sorted({v.encoder for v in ROWS.values()}))
REAL_ROWS = ("image classifier (real)", "sound classifier (real)")


@register_metric("test_n_samples", "number of scored samples (a user-registered metric)", True)
def n_samples(scored: Scored) -> float:
    return float(len(scored.samples))


def _run(data: Path, out: Path, *extra: str):
    metrics = [a for m in ("accuracy", "frechet", "kid", "pose_r", "pose_mae", "test_n_samples")
               for a in ("--metric", m)]
    return CliRunner().invoke(main, ["run", "--suite", "smoke", "--data", str(data), "--out", str(out),
                                     "--quiet", "--device", "cpu", *metrics, *extra])


def _files(folder: Path) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for needle in needles:
        assert needle in lines[0]


def with_silent(src: Path, dst: Path, silent_ids: set[str]) -> Path:
    """A copy of ``src`` whose manifest flags ``silent_ids`` as silent."""
    shutil.copytree(src, dst)
    rows = read_manifest(src / "manifest.parquet").to_pylist()
    for row in rows:
        row["silent"] = row["id"] in silent_ids
    write_table(pa.Table.from_pylist(rows, schema=PAIR_SCHEMA), dst / "manifest.parquet", {})
    return dst


# One test for the whole life of a run, so that the training happens once even when pytest-xdist
# spreads this module's tests over workers.
def test_smoke_run_end_to_end(tiny_dataset, tmp_path):  # noqa: F811
    ids = read_manifest(tiny_dataset / "manifest.parquet", columns=["id", "split"]).to_pylist()
    silent = [r["id"] for r in ids if r["split"] == "train"][:2]
    silent += [r["id"] for r in ids if r["split"] == "validation"][:3]
    data = with_silent(tiny_dataset, tmp_path / "data", set(silent))
    out = tmp_path / "runs"
    result = _run(data, out, "--seeds", "0,1")
    assert result.exit_code == 0, result.output
    (judges_dir,) = out.glob("judges-smoke-*")
    (run_dir,) = out.glob("smoke-*")
    assert result.output.strip() == f"report: {run_dir / 'report.md'}"

    # metrics.json: per-seed values, mean, std, intervals for every row and metric.
    payload = json.loads((run_dir / "metrics.json").read_text())
    assert payload["seeds"] == [0, 1]
    n_validation = 12 * len(TINY_CLASSES) - 3
    assert payload["data"]["silent_left_out"] == {"train": 2, "validation": 3}
    assert payload["data"]["validation_pairs"] == n_validation and payload["data"]["validation_recordings"] == 3
    assert set(payload["rows"]) == {*REAL_ROWS, *ROWS}
    assert set(ROWS) == {"S2I-C", "S2I-A", "S2I-N", "I2S", "S2I-FM", "I2S-FM"}
    for row, record in payload["rows"].items():
        accuracy = record["metrics"]["accuracy"]
        real = row in REAL_ROWS
        assert accuracy["n"] == (1 if real else 2) and len(accuracy["per_seed"]) == accuracy["n"]
        assert all(0 <= v <= 1 for v in accuracy["per_seed"])
        if real:
            assert accuracy["std"] is None and accuracy["low"] is None
        else:
            assert accuracy["low"] <= accuracy["mean"] <= accuracy["high"] and accuracy["std"] >= 0
        low, high = accuracy["recordings_interval"]
        assert 0 <= low <= high <= 1
        assert record["metrics"]["test_n_samples"]["per_seed"] == [n_validation] * accuracy["n"]
        assert record["metrics"]["test_n_samples"]["recordings_interval"] is None  # no per-sample values
        assert (record["metrics"]["pose_r"] is None) == (row in ("sound classifier (real)", "I2S", "I2S-FM"))
        kid = record["metrics"]["kid"]
        assert np.isfinite(kid["mean"]) and kid["recordings_interval"] is None  # a set statistic
        per_class = record["per_class_accuracy"]
        assert set(per_class) == set(TINY_CLASSES)
        assert sum(c["n_samples"] for c in per_class.values()) == n_validation
        assert all(len(c["per_seed"]) == accuracy["n"] and 0 <= c["mean"] <= 1 for c in per_class.values())
        # Per-class accuracies weighted by class size give back the accuracy (seed by seed).
        for k, overall in enumerate(accuracy["per_seed"]):
            weighted = sum(c["n_samples"] * c["per_seed"][k] for c in per_class.values()) / n_validation
            assert weighted == pytest.approx(overall)
    paired = {(p["a"], p["b"], p["metric"]): p for p in payload["paired"]}
    for a, b in [(a, b) for a, b in COMPARISONS if a in ROWS and b in ROWS]:
        p = paired[(a, b, "accuracy")]
        expected = [x - y for x, y in zip(payload["rows"][a]["metrics"]["accuracy"]["per_seed"],
                                          payload["rows"][b]["metrics"]["accuracy"]["per_seed"])]
        assert p["differences"] == pytest.approx(expected)
        assert p["sentence"] in ("resolved at this sample size", "not resolved at this sample size")

    # The judges were trained once, in their own folder, and are not the encoders of seed 0.
    judges = json.loads((judges_dir / "judges.json").read_text())
    assert judges["manifest_sha256"] == payload["data"]["manifest_sha256"]
    assert payload["judges"]["manifest_sha256"] == payload["data"]["manifest_sha256"]
    judge = torch.load(judges_dir / "sound_classifier.pt", weights_only=True)["state_dict"]
    encoder = torch.load(run_dir / "seeds" / "seed-0" / "checkpoints" / "sound_classifier.pt",
                         weights_only=True)["modules"]["model"]
    assert not torch.equal(judge["head.weight"], encoder["head.weight"])
    for seed in (0, 1):
        for stage in (*ENCODER_STAGES, *ROWS):
            assert (run_dir / "seeds" / f"seed-{seed}" / "checkpoints" / f"{stage}.pt").stat().st_size > 1000
    for figure in ("s2i_samples", "i2s_samples", "training_curves"):
        with Image.open(run_dir / "figures" / f"{figure}.png") as img:
            assert img.width > 200 and img.height > 100

    key = json.loads((run_dir / "rate_key.json").read_text())  # the blind rating page and its key
    assert {i["variant"] for i in key["items"]} == {"real", *ROWS}  # every row this run trained, and the real samples
    assert "S2I-C" not in (run_dir / "rate.html").read_text()
    report_html = (run_dir / "report.html").read_text()  # report.md's tables, the figures, I2S sounds to play
    n_examples = sum(i["variant"] == "real" and i["kind"] == "image" for i in key["items"])
    assert '<img src="figures/s2i_samples.png"' in report_html and "<td>S2I-C</td>" in report_html
    sound_rows = sum(v.direction == "i2s" for v in ROWS.values())  # I2S and I2S-FM
    assert report_html.count("<audio") == (1 + sound_rows) * n_examples  # the real and each I2S row's sound

    report = (run_dir / "report.md").read_text()
    assert "± 0.000" not in report and "(1 judge training, no interval)" in report
    assert "| S2I-C |" in report and "| I2S |" in report and ", 2 seeds)" in report
    assert "| S2I-C − S2I-A | accuracy |" in report and "| S2I-C − S2I-N | accuracy |" in report
    assert "silent pairs left out: 2 train, 3 validation" in report
    assert "0.9375" in report and "not directly comparable" in report  # published rows, marked
    assert "test_n_samples" in report and "Pearson r" in report  # every measure is stated
    assert "| S2I-FM − S2I-C | accuracy |" in report and "another instrument (instrument-oriented" in report
    assert "## Accuracy per instrument" in report and "| cello (n=" in report
    assert "biased upwards at small n" in report and f"all {n_validation} validation pairs" in report

    # Sound: every example's real LMS and each I2S row's LMS, inverted, linked from the report.
    wavs = sorted((run_dir / "audio" / "seed-0").glob("*.wav"))
    assert len(wavs) == 3 * len(TINY_CLASSES)  # one example per instrument: real, I2S, I2S-FM
    for wav in wavs:
        assert f"](audio/seed-0/{wav.name})" in report
        audio, rate = sf.read(wav, dtype="float32")
        assert rate == 44100 and len(audio) == 22050
        assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(-3.0, abs=0.01)  # one fixed level

    # Rerun: every seed and the judges are reused (nothing rewritten but the summary), identical outputs.
    before = {**_files(run_dir), **_files(judges_dir)}
    assert _run(data, out, "--seeds", "0,1").exit_code == 0
    after = {**_files(run_dir), **_files(judges_dir)}
    assert set(after) == set(before)
    for path in after:
        if "seeds" in path.parts or path.parent == judges_dir:
            assert after[path][0] == before[path][0], path
    for name in ("metrics.json", "report.md", "config.json", "figures/s2i_samples.png"):
        assert after[run_dir / name][1] == before[run_dir / name][1], name

    # A third seed trains only that seed (`--seeds 3` = 0, 1, 2).
    assert _run(data, out, "--seeds", "3").exit_code == 0
    assert json.loads((run_dir / "metrics.json").read_text())["seeds"] == [0, 1, 2]
    for seed in (0, 1):
        path = run_dir / "seeds" / f"seed-{seed}" / "result.json"
        assert path.stat().st_mtime_ns == before[path][0]
    assert ", 3 seeds)" in (run_dir / "report.md").read_text()

    # Another metric list scores the same trained seeds (same folder), nothing retrained.
    result = CliRunner().invoke(main, ["run", "--suite", "smoke", "--data", str(data), "--out", str(out),
                                       "--quiet", "--device", "cpu", "--seed", "0", "--metric", "accuracy"])
    assert result.exit_code == 0 and sorted(p.name for p in out.iterdir()) == sorted([run_dir.name, judges_dir.name])
    rows = json.loads((run_dir / "metrics.json").read_text())["rows"]
    assert all(set(r["metrics"]) == {"accuracy"} for r in rows.values())
    checkpoint = run_dir / "seeds" / "seed-0" / "checkpoints" / "S2I-C.pt"
    assert checkpoint.stat().st_mtime_ns == before[checkpoint][0]

    # A checkpoint of another feature config is refused, before anything is retrained.
    path = run_dir / "seeds" / "seed-0" / "checkpoints" / "sound_classifier.pt"
    good = path.read_bytes()
    state = torch.load(path, weights_only=True)
    state["meta"]["feature_config"]["n_mels"] = 64
    torch.save(state, path)
    (run_dir / "seeds" / "seed-0" / "result.json").unlink()  # forces seed 0 to be redone
    image_classifier = run_dir / "seeds" / "seed-0" / "checkpoints" / "image_classifier.pt"
    image_classifier.unlink()  # would be retrained first if not checked early
    _assert_one_line_error(_run(data, out, "--seeds", "0,1"), "sound_classifier.pt",
                           "features made with another config")
    assert not image_classifier.exists()

    # A corrupt checkpoint likewise.
    path.write_bytes(good)
    (run_dir / "seeds" / "seed-0" / "checkpoints" / "S2I-A.pt").write_bytes(b"\x00garbage")
    _assert_one_line_error(_run(data, out), "S2I-A.pt", "corrupt checkpoint")
    assert not image_classifier.exists()


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


def test_seeds_option():
    assert parse_seeds("0,1,2") == (0, 1, 2) and parse_seeds("3") == (0, 1, 2) and parse_seeds("7,") == (7,)
    for bad in ("0,0", "a", "0", "-1,2", ""):
        with pytest.raises(ValueError, match="bad seeds"):
            parse_seeds(bad)
    result = CliRunner().invoke(main, ["run", "--seeds", "1,1"])
    assert result.exit_code == 2 and "bad seeds" in result.output
    result = CliRunner().invoke(main, ["run", "--seeds", "2", "--seed", "1"])
    assert result.exit_code == 2 and "not both" in result.output


def test_cli_suite_choices_are_the_suites():
    for command in ("run", "judges"):
        option = next(p for p in main.commands[command].params if p.name == "suite")
        assert sorted(option.type.choices) == sorted(SUITES)
    option = next(p for p in main.commands["run"].params if p.name == "gan")
    assert sorted(option.type.choices) == sorted(GAN_CHOICES)


def test_gan_choice_selects_the_rows_and_separates_the_runs():
    from dataclasses import replace

    from cmav_models.bench import run_id

    rows = {gan: set(replace(SUITES["fast"], gan=gan).variants) for gan in GAN_CHOICES}
    flow = {"S2I-FM", "I2S-FM"}
    assert rows["gan-cls"] == {"S2I-C", "S2I-A", "S2I-N", "I2S"} | flow
    assert rows["projection"] == {"S2I-C-proj", "S2I-AE-proj", "S2I-N-proj", "I2S-proj"} | flow
    assert rows["both"] == set(VARIANTS)
    assert all(VARIANTS[n].family == "gan_cls" for n in ("S2I-C", "S2I-N", "I2S"))
    assert VARIANTS["S2I-A"].family == "encoder_decoder" and not VARIANTS["S2I-N"].mismatch
    ids = {run_id(replace(SUITES["smoke"], gan=gan), "0" * 64) for gan in GAN_CHOICES}
    assert len(ids) == len(GAN_CHOICES)
    with pytest.raises(ValueError, match="gan must be one of"):
        replace(SUITES["smoke"], gan="dcgan")


def test_help_shows_defaults_and_an_example():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())  # as read, whatever the wrapping
    assert "cmav-bench run" in help_text and "default: fast" in help_text and "--seeds 3" in help_text
    # The suite's caps are written out in the help (cli.py does not import torch); they must be the suite's.
    fast = SUITES["fast"]
    assert (f"models on at most {fast.load.max_train:,} training pairs and judges on at most "
            f"{fast.judge_max_train:,}") in help_text
    result = CliRunner().invoke(main, ["judges", "--help"])
    assert result.exit_code == 0 and "cmav-data verify" in result.output


def test_conditions_are_the_encoders_features_or_class_posteriors(tiny_dataset):  # noqa: F811
    from cmav_models.bench import SeedRun
    from cmav_models.data import load_pairs

    config = SUITES["smoke"]
    seed_run = SeedRun(config, 0, tiny_dataset / "unused", torch.device("cpu"), progress=False)
    pairs = load_pairs(tiny_dataset, config.load)
    for variant in VARIANTS.values():
        encoder = seed_run.new_encoder(variant.encoder).eval()
        cond = seed_run.conditions(encoder, variant, pairs)
        inputs = pairs.images.float() / 127.5 - 1 if variant.encoder == "image_classifier" else \
            seed_run.to_lms_unit(pairs.lms)
        with torch.no_grad():
            if variant.condition == "embedding":  # the paper's: the encoder's own feature (or the autoencoder's code)
                assert torch.allclose(cond, encoder.embed(inputs), atol=1e-5)
            else:  # a posterior over the 13 instruments, peaked where the classifier's vote is
                assert cond.shape == (len(pairs), 13) and torch.allclose(cond.sum(1), torch.ones(len(pairs)))
                assert torch.equal(cond.argmax(1), encoder(inputs).argmax(1))
    assert VARIANTS["S2I-C"].condition == "embedding" and VARIANTS["S2I-C-proj"].condition == "posterior"


def test_truncated_or_garbage_manifest_is_a_one_line_error(tiny_dataset, tmp_path):  # noqa: F811
    import shutil

    for name, damage in (("truncated", lambda data: data[:1000]), ("garbage", lambda data: b"\x00garbage" * 50)):
        root = tmp_path / name
        shutil.copytree(tiny_dataset, root)
        manifest = root / "manifest.parquet"
        manifest.write_bytes(damage(manifest.read_bytes()))
        _assert_one_line_error(_run(root, tmp_path / "runs"), str(manifest), "unreadable Parquet")
    assert not (tmp_path / "runs").exists()


def test_recording_interval_resamples_recordings_jointly_for_all_seeds():
    from cmav_models.bench import recording_interval

    recordings = np.array(["a"] * 4 + ["b"] * 4)
    rows = list(range(8))
    # Recording a always right, b always wrong, in both seeds: resamples give 0, 0.5 or 1.
    both = [{"items": [1.0] * 4 + [0.0] * 4, "rows": rows}] * 2
    assert recording_interval(both, np.mean, recordings) == [0.0, 1.0]
    # Seed 0 right everywhere, seed 1 wrong everywhere: every draw's mean over seeds is 0.5 (the
    # spread between seeds is the other interval's business).
    split = [{"items": [1.0] * 8, "rows": rows}, {"items": [0.0] * 8, "rows": rows}]
    assert recording_interval(split, np.mean, recordings) == [0.5, 0.5]
    assert recording_interval([{"items": [1.0] * 4, "rows": [0, 1, 2, 3]}], np.mean, recordings) is None  # 1 recording
    assert recording_interval([{"value": 3.0}], np.mean, recordings) is None  # no per-sample values


def test_silent_pairs_are_left_out_unless_included(tiny_dataset, tmp_path):  # noqa: F811
    from cmav_data.checksum import sha256_file
    from cmav_models.bench import SUITES, prepare_dataset, run_id

    rows = read_manifest(tiny_dataset / "manifest.parquet", columns=["id", "split"]).to_pylist()
    silent = {next(r["id"] for r in rows if r["split"] == split) for split in ("train", "validation")}
    data = with_silent(tiny_dataset, tmp_path / "data", silent)
    manifest = data / "manifest.parquet"
    sha = sha256_file(manifest)
    config = SUITES["smoke"]
    left = prepare_dataset(data, manifest, sha, config.load, False, None, None, False)
    kept = prepare_dataset(data, manifest, sha, config.load, True, None, None, False)
    assert left.left_out == {"train": 1, "validation": 1} and kept.left_out is None
    assert len(kept.train) == len(left.train) + 1 and len(kept.validation) == len(left.validation) + 1
    assert not silent & set(left.train.ids + left.validation.ids)
    assert silent <= set(kept.train.ids + kept.validation.ids)
    assert len(left.validation_recordings) == len(left.validation)
    assert run_id(config, sha, True) != run_id(config, sha, False)  # separate run folders
