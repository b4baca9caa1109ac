"""Audio features: specs, fast-vs-librosa parity, Parquet cache, bad input, Dataset, classifier."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.signal
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from cmav_data.cli import main
from cmav_data.features.dataset import FeatureDataset
from cmav_data.features import fast as fast_module
from cmav_data.features.fast import FastFeatures, window_taps
from cmav_data.features.reference import reference_features
from cmav_data.features.specs import SpecError, make_spec
from cmav_data.features.store import FeatureInputError, extract_features, load_chunk, read_features
from cmav_data.parallel import executor_for
from cmav_data.manifest import read_metadata
from cmav_models.sound_classifier import SoundCNN, SoundCNNConfig
from test_features_fixtures import FRAMES, RATE, build_dataset, write_manifest

# Stated tolerances of the fast path against librosa (max abs over every value):
DB_TOLERANCE = 1e-3  # STFT and LMS, in dB
MFCC_TOLERANCE = 1e-3  # MFCC coefficients (values span about +-500)
CQT_TOLERANCE = 2e-3  # CQT in dB: librosa's algorithm and filters, float32 products (measured 7e-4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("suburmp")
    shared = Path(__file__).resolve().parent.parent.parent / "shared"
    build_dataset(root, samples_dir=shared if shared.is_dir() else None)
    return root


def _real_chunks(shared_dir: Path) -> np.ndarray:
    chunks = []
    for path in sorted((shared_dir / "samples").glob("*.wav")):
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if rate == RATE:
            chunks += [audio[s : s + FRAMES] for s in range(0, len(audio) - FRAMES + 1, FRAMES)]
    return np.stack(chunks)


def _engine(fft: str) -> str:
    if fft == "fftw" and fast_module.pyfftw is None:
        pytest.skip("pyFFTW is not installed (pip install 'cmav[fftw]'; make installs it)")
    return fft


def _tolerance(kind: str) -> float:
    return {"stft": DB_TOLERANCE, "lms": DB_TOLERANCE, "mfcc": MFCC_TOLERANCE, "cqt": CQT_TOLERANCE}[kind]


def test_make_spec_parses_overrides_and_rejects_bad_ones():
    spec = make_spec("lms", ["n_mels=64", "fmax=none", "center=false", "top_db=70"])
    assert (spec.n_mels, spec.fmax, spec.center, spec.top_db) == (64, None, False, 70.0)
    assert spec.shape == (64, 1 + (22050 - 2048) // 512)
    assert make_spec("cqt").shape == (96, 44) and make_spec("stft").shape == (1025, 44)
    assert make_spec("mfcc", ["db_ref=2.5"]).db_ref == 2.5 and make_spec("stft").db_ref == "full_scale"
    with pytest.raises(SpecError, match="db_ref must be"):
        make_spec("stft", ["db_ref=loudest"])
    with pytest.raises(SpecError, match="no parameter 'n_mel'"):
        make_spec("lms", ["n_mel=64"])
    with pytest.raises(SpecError, match="cannot read"):
        make_spec("lms", ["n_mels=many"])
    with pytest.raises(SpecError, match="unknown feature kind"):
        make_spec("chroma")


@pytest.mark.parametrize("fft", fast_module.FFT_ENGINES)
@pytest.mark.parametrize("kind", ["stft", "lms", "mfcc"])
def test_fast_matches_librosa_on_real_recordings(shared_dir, kind, fft):
    audio = _real_chunks(shared_dir)
    spec = make_spec(kind)
    fast, reference = FastFeatures(spec, fft=_engine(fft))(audio), reference_features(audio, spec)
    assert fast.shape == reference.shape == (len(audio), *spec.shape)
    assert np.abs(fast - reference).max() <= _tolerance(kind)


def test_window_taps_cover_cosine_sum_windows_only():
    def taps(name):
        return window_taps(scipy.signal.get_window(name, 2048, fftbins=True))

    assert np.count_nonzero(taps("hann")) == 3 and np.count_nonzero(taps("hamming")) == 3
    assert np.count_nonzero(taps("blackman")) == 5 and np.count_nonzero(taps("boxcar")) == 1
    assert taps("triang") is None and taps("blackmanharris") is None  # 7 taps: applied in time


@pytest.mark.parametrize("fft", ["fftw", "pocketfft"])
@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", "boxcar", "triang", "blackmanharris"])
def test_cpu_engines_match_librosa_for_frequency_and_time_domain_windows(dataset, window, fft):
    # Odd lengths, no centring and a hop that does not divide the length: frames at every alignment.
    spec = make_spec("lms", [f"window={window}", "n_fft=1000", "hop_length=333", "center=false"])
    paths = sorted(dataset.glob("chunk/*/*/*.wav"))[::9]
    audio = np.stack([load_chunk(p, spec, p.stem)[0] for p in paths])
    fast = FastFeatures(spec, fft=_engine(fft))(audio)
    assert np.abs(fast - reference_features(audio, spec)).max() <= DB_TOLERANCE


def test_fast_results_do_not_depend_on_threads_or_batch_position(dataset):
    spec = make_spec("mfcc")
    paths = sorted(dataset.glob("chunk/*/*/*.wav"))[:37]  # batches of 16 and groups of 2 end mid-way
    audio = np.stack([load_chunk(p, spec, p.stem)[0] for p in paths])
    fast = FastFeatures(spec)
    serial = fast(audio)
    with ThreadPoolExecutor(2) as pool:
        assert np.array_equal(fast(audio, pool), serial)
    assert np.array_equal(fast(audio[5:6])[0], serial[5])


def test_fast_cqt_matches_librosa_on_real_recordings(shared_dir):
    audio = _real_chunks(shared_dir)
    spec = make_spec("cqt")
    assert np.abs(FastFeatures(spec)(audio) - reference_features(audio, spec)).max() <= CQT_TOLERANCE


@pytest.mark.parametrize("kind", ["stft", "lms", "mfcc", "cqt"])
def test_fast_matches_librosa_on_dataset_chunks_with_options(dataset, kind):
    # Non-default padding, reference level and normalisation take the other code paths.
    extra = ["bins_per_octave=24", "n_bins=120", "fmin=110"] if kind == "cqt" else ["n_fft=1024"]
    spec = make_spec(kind, ["pad_mode=reflect", "db_ref=1.0", "normalize=standard", *extra])
    paths = sorted(dataset.glob("chunk/*/*/*.wav"))[::5]
    audio = np.stack([load_chunk(p, spec, p.stem)[0] for p in paths])
    fast, reference = FastFeatures(spec)(audio), reference_features(audio, spec)
    assert np.abs(fast - reference).max() <= _tolerance(kind)
    assert np.allclose(fast.mean(axis=(1, 2)), 0, atol=1e-4)


@pytest.mark.parametrize("kind", ["lms", "cqt"])
def test_top_db_is_per_chunk_not_per_batch(kind):
    # A quiet chunk batched with a loud one must get the same features as on its own.
    t = np.arange(FRAMES) / RATE
    loud = (0.9 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    quiet = (1e-3 * np.sin(2 * np.pi * 330 * t) + 1e-4 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
    spec = make_spec(kind, ["top_db=80"])
    fast = FastFeatures(spec)
    batched = fast(np.stack([loud, quiet]))
    alone = fast(quiet[None])
    assert np.abs(batched[1] - alone[0]).max() <= _tolerance(kind)
    assert batched[1].min() >= batched[1].max() - spec.top_db - 1e-4


def _levels(kind: str, backend: str) -> np.ndarray:
    """Features of [digital silence, a quiet chunk, the same chunk 40 dB louder, a full-scale 1 kHz sine]."""
    t = np.arange(FRAMES) / RATE
    rng = np.random.default_rng(0)
    music = 0.5 * np.sin(2 * np.pi * 330 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t) + 0.01 * rng.standard_normal(FRAMES)
    audio = np.stack([np.zeros(FRAMES), 0.005 * music, 0.5 * music, np.sin(2 * np.pi * 1000 * t)]).astype(np.float32)
    spec = make_spec(kind)
    return FastFeatures(spec)(audio) if backend == "fast" else reference_features(audio, spec)


@pytest.mark.parametrize("backend", ["fast", "reference"])
@pytest.mark.parametrize("kind", ["stft", "lms", "cqt"])
def test_one_fixed_level_reference_silence_at_the_floor(kind, backend):
    silence, quiet, loud, sine = _levels(kind, backend)
    floor = make_spec(kind).floor_db
    assert np.all(silence == floor)  # digital silence is the floor, never the top
    assert quiet.min() >= floor and quiet.max() < loud.max() - 30  # 40 dB quieter stays quieter
    assert sine.max() == pytest.approx(0.0, abs=1e-3)  # 0 dB: the peak of a full-scale 1 kHz sine


@pytest.mark.parametrize("backend", ["fast", "reference"])
def test_silence_gives_the_smallest_mfcc_c0(backend):
    silence, quiet, loud, sine = _levels("mfcc", backend)
    spec = make_spec("mfcc")
    # c0 of the orthonormal DCT is sum(log-mel) / sqrt(n_mels): at the floor everywhere, its minimum.
    assert silence[0] == pytest.approx(np.full(FRAMES // 512 + 1, spec.floor_db * np.sqrt(spec.n_mels)), abs=1e-3)
    assert silence[0].max() < quiet[0].min() and quiet[0].mean() < loud[0].mean()
    assert np.allclose(silence[1:], 0, atol=1e-3)


def test_cqt_default_band_and_filters_fit_a_chunk_without_librosa_warnings():
    import warnings

    import librosa

    spec = make_spec("cqt")
    freqs = librosa.cqt_frequencies(spec.n_bins, fmin=spec.fmin, bins_per_octave=spec.bins_per_octave)
    assert freqs[-1] >= 8000  # a band comparable to the other kinds
    lengths, _ = librosa.filters.wavelet_lengths(
        freqs=freqs, sr=spec.sample_rate, window=spec.window, filter_scale=spec.filter_scale,
        alpha=librosa.filters._relative_bandwidth(freqs=freqs))
    assert lengths.max() <= spec.n_samples  # no filter longer than the chunk
    audio = np.random.default_rng(1).standard_normal((3, spec.n_samples)).astype(np.float32) * 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast, reference = FastFeatures(spec)(audio), reference_features(audio, spec)
    assert np.abs(fast - reference).max() <= CQT_TOLERANCE


def _shard_bytes(out_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out_dir.iterdir())}


def test_extract_writes_shards_caches_and_is_worker_count_independent(dataset, tmp_path):
    spec = make_spec("lms")
    first = extract_features(dataset, spec, "fast", shard_size=20, progress=False)
    assert first.computed_shards == first.n_shards == -(-first.n_pairs // 20) > 1
    assert first.out_dir == dataset / "features" / f"lms-{first.cache_key[:12]}"
    info = json.loads((first.out_dir / "features.json").read_text())
    assert info["cache_key"] == first.cache_key and info["shape"] == [128, 44]
    meta = read_metadata(first.out_dir / "part-00000.parquet")["options"]
    assert meta["spec"]["n_mels"] == 128 and meta["shape"] == [128, 44] and "librosa" in meta["versions"]
    frame = pd.read_parquet(first.out_dir / "part-00000.parquet")
    assert list(frame.columns) == ["id", "features"] and len(frame.features[0]) == 128 * 44
    ids, features, _ = read_features(first.out_dir)
    assert len(ids) == first.n_pairs and np.isfinite(features).all()
    # Values are the reference's, for the pairs in manifest order.
    manifest = pq.read_table(dataset / "manifest.parquet").to_pydict()
    assert ids == manifest["id"]
    audio = np.stack([load_chunk(dataset / p, spec, i)[0] for i, p in zip(ids[:8], manifest["audio_path"][:8])])
    assert np.abs(features[:8] - reference_features(audio, spec)).max() <= DB_TOLERANCE
    before = _shard_bytes(first.out_dir)
    again = extract_features(dataset, spec, "fast", shard_size=20, progress=False)
    assert again.computed_shards == 0 and _shard_bytes(first.out_dir) == before
    # Worker count does not change a byte: recompute with two processes after deleting a shard.
    (first.out_dir / "features.json").unlink()
    for name in ("part-00000.parquet", "part-00001.parquet"):
        (first.out_dir / name).unlink()
    with executor_for(2) as pool:
        resumed = extract_features(dataset, spec, "fast", executor=pool, shard_size=20, progress=False)
    assert resumed.computed_shards == 2 and _shard_bytes(first.out_dir) == before
    changed = extract_features(dataset, make_spec("lms", {"n_mels": 64}), "fast", shard_size=20, progress=False)
    assert changed.out_dir != first.out_dir and changed.computed_shards == changed.n_shards
    assert read_features(changed.out_dir)[1].shape[1:] == (64, 44)


def _bad_dataset(root: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> None:
    build_dataset(root, train_per_class=1, validation_per_class=1)
    manifest = pq.read_table(root / "manifest.parquet").to_pylist()
    sf.write(root / manifest[0]["audio_path"], audio, rate, subtype=subtype)
    write_manifest(root, manifest)


def test_resampled_padded_and_silent_chunks_give_finite_features(tmp_path):
    build_dataset(tmp_path, train_per_class=2, validation_per_class=1)
    rows = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    t = np.arange(24000) / 48000
    sf.write(tmp_path / rows[0]["audio_path"], 0.5 * np.sin(2 * np.pi * 440 * t), 48000, subtype="PCM_16")
    sf.write(tmp_path / rows[1]["audio_path"], np.zeros(FRAMES), RATE, subtype="PCM_16")
    sf.write(tmp_path / rows[2]["audio_path"], 0.5 * np.sin(2 * np.pi * 440 * t[:15000]), RATE)
    write_manifest(tmp_path, rows)
    for kind in ("lms", "mfcc"):
        result = extract_features(tmp_path, make_spec(kind), "fast", progress=False)
        assert (result.n_resampled, result.n_resized) == (1, 1)
        _, features, _ = read_features(result.out_dir)
        assert np.isfinite(features).all()
        assert np.all(features[1] == features[1][:, :1])  # the silent chunk: every frame the same


@pytest.mark.parametrize("problem", ["nan", "unreadable"])
def test_bad_chunk_is_a_clear_error_naming_the_pair(tmp_path, problem):
    if problem == "nan":
        audio = np.full(FRAMES, np.nan, dtype=np.float32)
        _bad_dataset(tmp_path, audio, RATE, subtype="FLOAT")
    else:
        _bad_dataset(tmp_path, np.zeros(FRAMES), RATE)
        rows = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
        (tmp_path / rows[0]["audio_path"]).write_bytes(b"not a wav file at all")
        write_manifest(tmp_path, rows)  # the manifest's checksum is the garbage's: decoding is what fails
    pair_id = pq.read_table(tmp_path / "manifest.parquet").column("id")[0].as_py()
    cause = "cannot read" if problem == "unreadable" else "holds NaN"
    with pytest.raises(FeatureInputError, match=f"pair {pair_id}: .*{cause}"):
        extract_features(tmp_path, make_spec("lms"), "fast", progress=False)
    result = CliRunner().invoke(main, ["extract-features", str(tmp_path), "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: pair ") and len(result.output.strip().splitlines()) == 1


def test_cli_extract_reports_cache_hit(dataset):
    args = ["extract-features", str(dataset), "--kind", "mfcc", "--param", "n_mfcc=13", "--quiet"]
    first = CliRunner().invoke(main, args)
    second = CliRunner().invoke(main, args)
    assert first.exit_code == second.exit_code == 0, first.output
    assert "shard(s) computed" in first.output and "cached, nothing to do" in second.output
    bad = CliRunner().invoke(main, ["extract-features", str(dataset), "--param", "n_mel=3"])
    assert bad.exit_code == 1 and "no parameter 'n_mel'" in bad.output


def test_feature_dataset_serves_split_features_and_labels(dataset):
    spec = make_spec("lms")
    train = FeatureDataset(dataset, spec, "train")
    valid = FeatureDataset(dataset, spec, "validation", max_per_class=2)
    manifest = pq.read_table(dataset / "manifest.parquet").to_pandas().set_index("id")
    assert len(train) == (manifest.split == "train").sum() and len(valid) == 2 * 4
    x, y = train[3]
    assert x.shape == (1, 128, 44) and x.dtype == torch.float32
    assert int(y) == manifest.loc[train.ids[3], "class_index"]
    loader = torch.utils.data.DataLoader(train, batch_size=8)
    xb, yb = next(iter(loader))
    assert xb.shape == (8, 1, 128, 44) and yb.dtype == torch.int64


@pytest.mark.parametrize("shape", [(128, 44), (1025, 44), (20, 44), (84, 44)])
def test_sound_cnn_shapes_for_every_depth(shape):
    x = torch.randn(3, 1, *shape)
    for depth in (2, 3, 4, 5):
        model = SoundCNN(SoundCNNConfig(n_classes=13, depth=depth, in_shape=shape, channels=16)).eval()
        assert model(x).shape == (3, 13) and model.embed(x).shape == (3, 16)
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == depth
    for depth in (1, 6):
        with pytest.raises(ValueError, match="depth"):
            SoundCNN(SoundCNNConfig(depth=depth))


def test_truncated_manifest_is_a_one_line_error(tmp_path):
    build_dataset(tmp_path, train_per_class=1, validation_per_class=1)
    manifest = tmp_path / "manifest.parquet"
    manifest.write_bytes(manifest.read_bytes()[:1000])
    result = CliRunner().invoke(main, ["extract-features", str(tmp_path), "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert str(manifest) in result.output and "unreadable Parquet" in result.output


def test_feature_dataset_refuses_an_unknown_split_naming_the_valid_ones(tmp_path):
    build_dataset(tmp_path, train_per_class=1, validation_per_class=1)
    with pytest.raises(FeatureInputError, match=r"no split 'bogus' \(its splits: train, validation"):
        FeatureDataset(tmp_path, make_spec("lms"), split="bogus")
    assert not (tmp_path / "features").exists()  # refused before any feature was computed


# ---------------------------------------------------------------- integrity of the cache and its inputs


def _extract_cli(root: Path):
    return CliRunner().invoke(main, ["extract-features", str(root), "--kind", "mfcc",
                                      "--shard-size", "4", "--quiet"])


@pytest.fixture()
def extracted(tmp_path) -> tuple[Path, Path, dict[str, bytes]]:
    """A small dataset with its MFCC features (3 shards), and the shards' bytes."""
    build_dataset(tmp_path, train_per_class=2, validation_per_class=1)
    first = _extract_cli(tmp_path)
    assert first.exit_code == 0 and "3 shard(s) computed" in first.stdout, first.output
    (out,) = (tmp_path / "features").iterdir()
    return tmp_path, out, _shard_bytes(out)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_is_recomputed_with_a_notice_naming_it(extracted, damage):
    root, out, before = extracted
    shard = out / "part-00001.parquet"
    if damage == "truncate":
        with open(shard, "r+b") as f:  # truncate -s 1000
            f.truncate(1000)
    else:
        _flip_byte(shard, shard.stat().st_size // 2)
    again = _extract_cli(root)
    assert again.exit_code == 0 and "1 shard(s) computed" in again.stdout, again.output
    (notice,) = again.stderr.strip().splitlines()
    expected = "1000 bytes, features.json says" if damage == "truncate" else "sha256 "
    assert notice.startswith(f"warning: {shard}: {expected}") and "recomputing" in notice
    assert _shard_bytes(out) == before
    assert "cached, nothing to do" in _extract_cli(root).stdout


def test_garbage_index_is_named_and_recomputed_from_checked_shards(extracted):
    root, out, before = extracted
    (out / "features.json").write_bytes(b"\x00{garbage")
    with pytest.raises(FeatureInputError, match=r"features.json: not a feature index"):
        read_features(out)
    # The shards are the killed-run case now: adopted only if whole. Damage one inside a page.
    _flip_byte(out / "part-00002.parquet", 200)
    again = _extract_cli(root)
    assert again.exit_code == 0 and "1 shard(s) computed" in again.stdout, again.output
    (notice,) = again.stderr.strip().splitlines()
    assert notice.startswith(f"warning: {out / 'features.json'}: not a feature index")
    assert _shard_bytes(out) == before
    assert len(read_features(out)[0]) == 12


def test_edited_chunk_is_an_error_naming_it_and_nothing_is_cached(tmp_path):
    build_dataset(tmp_path, train_per_class=2, validation_per_class=1)
    rows = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    chunk = tmp_path / rows[5]["audio_path"]
    audio, rate = sf.read(chunk)
    sf.write(chunk, audio * 0.5, rate, subtype="PCM_16")  # still a valid WAV: only its checksum tells
    result = _extract_cli(tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == (f"Error: pair {rows[5]['id']}: {chunk}: sha256 differs from the manifest's "
                                     "audio_sha256 (edited or damaged since the build)")
    (out,) = (tmp_path / "features").iterdir()
    assert not (out / "features.json").exists() and not (out / "part-00001.parquet").exists()


def test_feature_dataset_warns_when_it_recomputes_a_damaged_shard(tmp_path):
    from cmav_data.features.dataset import FeatureCacheWarning

    build_dataset(tmp_path, train_per_class=2, validation_per_class=1)
    first = FeatureDataset(tmp_path, make_spec("mfcc"), "train")
    shard = first.features_dir / "part-00000.parquet"
    _flip_byte(shard, shard.stat().st_size // 2)
    with pytest.warns(FeatureCacheWarning, match=f"{shard}: sha256 .* recomputing it"):
        again = FeatureDataset(tmp_path, make_spec("mfcc"), "train")
    assert torch.equal(again.features, first.features)
