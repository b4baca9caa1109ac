"""Loading and validating a built Sub-URMP dataset for the bench, on a tiny dataset made here.

``make_tiny_dataset`` writes real JPEGs (a distinct drawing per instrument, a bow whose height
follows the pitch, as the demo corpus does), real 0.5 s stereo WAV tones at 44.1 kHz and a real
Parquet manifest; the other bench/model tests import it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from PIL import Image, ImageDraw

from cmav_data.instruments import BY_CLASS
from cmav_data.manifest import PAIR_SCHEMA, read_manifest, table_metadata, write_table
from cmav_models.data import DatasetError, LoadOptions, load_pairs

SR = 44100
TINY_CLASSES = ("cello", "flute", "trumpet")


def _pitch_position(class_name: str, f0: float) -> float:
    inst = BY_CLASS[class_name]
    midi = 69 + 12 * np.log2(f0 / 440.0)
    return float((midi - inst.low_midi) / (inst.high_midi - inst.low_midi))


def _draw(class_index: int, position: float, size=(48, 108)) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, (20, 20, 20))
    d = ImageDraw.Draw(img)
    hue = [(200, 60, 60), (60, 200, 60), (60, 60, 200), (200, 200, 60)][class_index % 4]
    if class_index % 3 == 0:
        d.ellipse([4, 10, w - 4, h - 10], fill=hue)
    elif class_index % 3 == 1:
        d.rectangle([w // 3, 4, 2 * w // 3, h - 4], fill=hue)
    else:
        d.polygon([(w // 2, 4), (w - 4, h - 4), (4, h - 4)], fill=hue)
    y = int((1 - position) * (h - 10)) + 5  # the bow: high for high notes
    d.rectangle([0, y - 3, w, y + 3], fill=(255, 255, 255))
    return img


def make_tiny_dataset(root: Path, pairs_per_recording: int = 12, classes=TINY_CLASSES,
                      splits=("train", "validation")) -> Path:
    """A built-dataset tree: one recording per class and split, ``pairs_per_recording`` pairs each."""
    rows = []
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    for split in splits:
        for k, class_name in enumerate(classes):
            inst = BY_CLASS[class_name]
            nn_ = 1 if split == "train" else 2
            recording = f"{class_name}{nn_:02d}"
            for j in range(pairs_per_recording):
                midi = rng.uniform(inst.low_midi + 2, inst.high_midi - 2)
                f0 = 440.0 * 2 ** ((midi - 69) / 12)
                t_end = 0.5 + 0.1 * j
                pair_id = f"{recording}_{round(t_end * 1000)}"
                image_path = f"img/{split}/{class_name}/{pair_id}.jpg"
                audio_path = f"chunk/{split}/{class_name}/{pair_id}.wav"
                (root / image_path).parent.mkdir(parents=True, exist_ok=True)
                (root / audio_path).parent.mkdir(parents=True, exist_ok=True)
                _draw(inst.class_index, _pitch_position(class_name, f0)).save(root / image_path, quality=90)
                # Timbre differs per class: the number of harmonics.
                tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 2 + 3 * (k % 3)))
                tone = (0.3 * tone / np.abs(tone).max()).astype(np.float32)
                sf.write(root / audio_path, np.stack([tone, tone], axis=1), SR, subtype="PCM_16")
                rows.append(dict(
                    id=pair_id, split=split, class_name=class_name, class_index=inst.class_index,
                    recording=recording, piece="01_Tiny", part=k + 1, t_start=t_end - 0.5, t_end=t_end,
                    frame_index=j, image_path=image_path, image_sha256="", audio_path=audio_path,
                    audio_sha256="", note_coverage=1.0, mean_f0=f0, silent=False,
                    source_audio_sha256="", source_video_sha256=""))
    table = pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)
    write_table(table, root / "manifest.parquet", table_metadata("suburmp", {"tiny": True}))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_suburmp"))


def test_load_pairs_decodes_images_and_lms(tiny_dataset):
    pairs = load_pairs(tiny_dataset, LoadOptions(image_size=32))
    n = 2 * len(TINY_CLASSES) * 12
    assert pairs.images.shape == (n, 3, 32, 32)
    assert pairs.lms.shape == (n, 1, 128, 44)
    assert set(pairs.split) == {"train", "validation"}
    # Images of different classes differ; a JPEG is not a constant picture.
    assert pairs.images.float().std() > 10
    # Voiced rows have a pitch position in [0, 1] of their instrument's range.
    assert pairs.pitch_position.min() >= 0 and pairs.pitch_position.max() <= 1


def test_load_pairs_subsample_is_deterministic(tiny_dataset):
    opts = LoadOptions(image_size=16, max_train=10, max_validation=6)
    a, b = load_pairs(tiny_dataset, opts), load_pairs(tiny_dataset, opts)
    assert list(a.ids) == list(b.ids)
    assert (a.split == "train").sum() == 10 and (a.split == "validation").sum() == 6
    assert torch_equal(a.lms, b.lms) and torch_equal(a.images, b.images)


def torch_equal(x, y) -> bool:
    return bool((x == y).all())


def rewrite_manifest(src: Path, dst: Path, keep) -> Path:
    import shutil

    shutil.copytree(src, dst)
    table = read_manifest(src / "manifest.parquet")
    rows = [r for r in table.to_pylist() if keep(r)]
    write_table(pa.Table.from_pylist(rows, schema=PAIR_SCHEMA), dst / "manifest.parquet", {})
    return dst


def test_no_validation_split_is_a_clear_error(tiny_dataset, tmp_path):
    root = rewrite_manifest(tiny_dataset, tmp_path / "d", lambda r: r["split"] == "train")
    with pytest.raises(DatasetError, match="no validation"):
        load_pairs(root, LoadOptions(image_size=16))


def test_class_missing_from_a_split_is_a_clear_error(tiny_dataset, tmp_path):
    root = rewrite_manifest(tiny_dataset, tmp_path / "d",
                             lambda r: not (r["split"] == "validation" and r["class_name"] == "flute"))
    with pytest.raises(DatasetError, match="flute.*validation"):
        load_pairs(root, LoadOptions(image_size=16))


def test_missing_manifest_and_missing_media_name_the_file(tiny_dataset, tmp_path):
    with pytest.raises(DatasetError, match="manifest.parquet"):
        load_pairs(tmp_path, LoadOptions(image_size=16))
    root = rewrite_manifest(tiny_dataset, tmp_path / "d", lambda r: True)
    victim = next((root / "chunk" / "train" / "cello").iterdir())
    victim.write_bytes(b"not a wav")
    with pytest.raises(DatasetError, match=victim.name):
        load_pairs(root, LoadOptions(image_size=16))


def test_decoding_does_not_depend_on_the_executor(tiny_dataset):
    from concurrent.futures import ThreadPoolExecutor

    opts = LoadOptions(image_size=16)
    serial = load_pairs(tiny_dataset, opts)
    with ThreadPoolExecutor(2) as pool:
        parallel = load_pairs(tiny_dataset, opts, executor=pool)
    assert torch_equal(serial.lms, parallel.lms) and torch_equal(serial.images, parallel.images)
