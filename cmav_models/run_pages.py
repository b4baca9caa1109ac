"""The HTML pages of a run: ``report.html`` (report.md's content, its figures, and the I2S sounds
playable beside the real ones) and the blind rating page ``rate.html`` (``cmav_data.view.rate``).

For each validation example the report shows: the real image and each S2I variant's image, as PNG;
the real LMS and each I2S variant's LMS turned into sound by ``cmav_data.features.inverse``
(librosa's mel inversion and Griffin-Lim, a fixed random state, peak-normalised), as WAV. The real sound goes through the same inversion as the generated ones,
so raters compare models, not the inversion's artefacts against a clean recording.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image

from cmav_data.atomic import write_bytes, write_text
from cmav_data.features.inverse import DEFAULT_ITERATIONS as GRIFFIN_LIM_ITERATIONS, lms_to_audio
from cmav_data.features.specs import LmsSpec
from cmav_data.media import wav_bytes
from cmav_data.view.rate import RatingSample, write_rating_page
from cmav_data.view.report_page import audio_table, report_page
from cmav_models.data import unit_to_lms
from cmav_models.report import FigureInputs

SAMPLE_DIR = "rate_samples"


def _png(image: torch.Tensor) -> bytes:
    """uint8 or [-1, 1] [3, H, W] -> PNG bytes."""
    x = image.float() if image.dtype == torch.uint8 else (image.float() + 1) * 127.5
    array = x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    out = io.BytesIO()
    Image.fromarray(array, "RGB").save(out, format="PNG")
    return out.getvalue()


def lms_to_wav(lms_db: torch.Tensor, spec: LmsSpec) -> bytes:
    """An LMS in dB re full scale [1, n_mels, frames] -> a 16-bit WAV of ``spec.n_samples`` samples,
    by the project's one inversion (``cmav_data.features.inverse``: Griffin-Lim, fixed output level)."""
    audio = lms_to_audio(lms_db.float().squeeze(0).numpy(), spec, n_iter=GRIFFIN_LIM_ITERATIONS)
    return wav_bytes(audio, spec.sample_rate)


def write_run_rating_page(run_dir: Path, figures: FigureInputs, spec: LmsSpec) -> tuple[Path, Path]:
    """Write the run's sample files under ``rate_samples/`` and its ``rate.html`` + ``rate_key.json``."""
    folder = run_dir / SAMPLE_DIR
    pairs, samples = figures.examples, []

    def add(name: str, data: bytes, variant: str, kind: str) -> None:
        write_bytes(folder / name, data)
        samples.append(RatingSample(str(folder / name), variant, kind))

    for r, pair_id in enumerate(pairs.ids):
        add(f"{pair_id}-real.png", _png(pairs.images[r]), "real", "image")
        add(f"{pair_id}-real.wav", lms_to_wav(pairs.lms[r], spec), "real", "audio")
        for name, generated in sorted(figures.generated.items()):
            if generated.shape[1] == 3:
                add(f"{pair_id}-{name}.png", _png(generated[r]), name, "image")
            else:
                add(f"{pair_id}-{name}.wav", lms_to_wav(unit_to_lms(generated[r], spec.top_db), spec), name, "audio")
    return write_rating_page(run_dir, samples, seed=figures.seed,
                             title="Rate these images and sounds of music performances")


def write_run_pages(run_dir: Path, figures: FigureInputs, spec: LmsSpec) -> None:
    """report.html (from report.md, written first) and rate.html + rate_key.json."""
    write_run_rating_page(run_dir, figures, spec)
    sounds = sorted(n for n, g in figures.generated.items() if g.shape[1] == 1)
    rows = [(pair_id, [f"{SAMPLE_DIR}/{pair_id}-{n}.wav" for n in ["real", *sounds]])
            for pair_id in figures.examples.ids]
    players = audio_table(f"I2S sounds (seed {figures.seed})", ["real LMS", *[f"{n} LMS" for n in sounds]], rows,
                          "Each LMS (the real one and each generated one) is turned into sound by the same "
                          f"Griffin-Lim inversion ({GRIFFIN_LIM_ITERATIONS} iterations), so they compare fairly; "
                          "the real recordings are in the dataset.")
    markdown = (run_dir / "report.md").read_text(encoding="utf-8")
    write_text(run_dir / "report.html", report_page(f"cmav-bench run {run_dir.name}", markdown, players))
