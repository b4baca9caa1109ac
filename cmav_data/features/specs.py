"""Feature configurations: one frozen dataclass per representation, every parameter explicit.

The defaults follow the 2017 Sub-URMP paper's setting and librosa's own defaults, for 0.5 s chunks
at 44.1 kHz (22,050 samples): n_fft 2048, hop 512, centred frames padded with zeros (librosa's
``center=True, pad_mode="constant"``), so every representation has 1 + 22050 // 512 = 44 frames.

All representations end in decibels of *power*, ``10 log10(max(amin, S) / ref)``, against one fixed
level reference and a fixed floor, the same for every chunk and every representation:

- ``db_ref="full_scale"`` (the default): 0 dB is the peak power that a full-scale sine (amplitude 1)
  at 1 kHz, lasting the whole chunk, reaches in this representation (its largest value; for MFCC,
  in the log-mel it is computed from). A number instead is that power itself (librosa's ``ref``).
  So a chunk's level is its level, not its level relative to its own loudest bin: digital silence
  and near-silent chunks stay quiet, a quiet chunk is below a loud one.
- ``floor_db=-120``: values are raised to this fixed floor (dB against the reference; real
  recordings here sit between about -140 and -8 dB of a full-scale 1 kHz sine, half of their
  values below -85 dB). Digital silence is the floor everywhere (MFCC: c0 at its minimum).
- ``top_db`` (None by default) adds librosa's floor relative to each chunk's own maximum (per chunk,
  never per batch: a batch-wide top_db shifts quiet chunks by several dB).

``normalize="standard"`` then scales each chunk to zero mean and unit variance (a constant chunk
becomes all zeros); training code standardises per row on training data instead
(``cmav_models.compare_features``).

A spec's ``to_dict()`` (with its kind) is what is recorded beside the features and hashed into
the cache key, so any changed parameter gives a new output folder.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

NORMALIZATIONS = ("none", "standard")
FULL_SCALE = "full_scale"  # db_ref: 0 dB = the peak of a full-scale 1 kHz sine (module docstring)
FULL_SCALE_HZ = 1000.0
FLOOR_DB = -120.0


class SpecError(ValueError):
    """An invalid feature parameter (unknown name, bad value)."""


def _check_levels(spec: Any) -> None:
    if spec.normalize not in NORMALIZATIONS:
        raise SpecError(f"normalize must be one of {NORMALIZATIONS}, not {spec.normalize!r}")
    if isinstance(spec.db_ref, str) and spec.db_ref != FULL_SCALE:
        raise SpecError(f"db_ref must be {FULL_SCALE!r} or a positive power, not {spec.db_ref!r}")
    if not isinstance(spec.db_ref, str) and not spec.db_ref > 0:
        raise SpecError(f"db_ref must be {FULL_SCALE!r} or a positive power, not {spec.db_ref!r}")


@dataclass(frozen=True)
class StftSpec:
    """Log-power short-time Fourier transform (linear frequency, 1 + n_fft // 2 rows)."""

    kind: ClassVar[str] = "stft"
    sample_rate: int = 44100  # chunks of another rate are resampled to this (soxr, high quality)
    n_samples: int = 22050  # chunks are zero-padded or cut at the end to this many samples
    n_fft: int = 2048
    hop_length: int = 512
    window: str = "hann"  # scipy.signal.get_window name, periodic (librosa fftbins=True)
    center: bool = True  # frames centred on t * hop, the signal padded by n_fft // 2 each side
    pad_mode: str = "constant"  # librosa's default: zeros (torch/torchaudio default to reflect)
    amin: float = 1e-10  # floor on power before the log
    db_ref: float | str = FULL_SCALE  # power mapped to 0 dB: "full_scale" (module docstring) or a power
    floor_db: float | None = FLOOR_DB  # fixed floor in dB against db_ref; None = none
    top_db: float | None = None  # also floor at (chunk max - top_db) dB, librosa's; None = not
    normalize: str = "none"  # "none" or "standard" (per chunk zero mean, unit variance)

    def __post_init__(self) -> None:
        _check_levels(self)
        if self.pad_mode not in ("constant", "reflect"):
            raise SpecError(f"pad_mode must be 'constant' or 'reflect', not {self.pad_mode!r}")
        for name in ("sample_rate", "n_samples", "hop_length"):
            if getattr(self, name) <= 0:
                raise SpecError(f"{name} must be positive, not {getattr(self, name)}")

    @property
    def n_frames(self) -> int:
        if self.center:
            return 1 + self.n_samples // self.hop_length
        return 1 + (self.n_samples - self.n_fft) // self.hop_length

    @property
    def n_rows(self) -> int:
        return 1 + self.n_fft // 2

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, frames) of one chunk's feature matrix."""
        return self.n_rows, self.n_frames

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class LmsSpec(StftSpec):
    """Log-mel spectrogram (LMS), the paper's choice: mel filterbank on the power STFT."""

    kind: ClassVar[str] = "lms"
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None  # None = sample_rate / 2
    htk: bool = False  # librosa default: Slaney mel scale
    mel_norm: str | None = "slaney"  # librosa default: each filter has unit area

    @property
    def n_rows(self) -> int:
        return self.n_mels


@dataclass(frozen=True)
class MfccSpec(LmsSpec):
    """Mel-frequency cepstral coefficients: DCT-II of the log-mel spectrogram (librosa.feature.mfcc)."""

    kind: ClassVar[str] = "mfcc"
    n_mfcc: int = 20
    dct_norm: str | None = "ortho"
    lifter: float = 0.0

    @property
    def n_rows(self) -> int:
        return self.n_mfcc


@dataclass(frozen=True)
class CqtSpec:
    """Log-power constant-Q transform (librosa.cqt: recursive octave downsampling).

    The default band, A1 (55 Hz) to G#9 (13.3 kHz) in 8 octaves, reaches as high as the other kinds
    need (above 8 kHz) while its longest filter (13,897 samples at 55 Hz) stays shorter than a
    0.5 s chunk and every octave's FFT fits the (downsampled) chunk, so librosa does not warn. From
    C1 (librosa's default) the lowest filters would be longer than the chunk and 84 bins would stop
    at 3.95 kHz. The cost: fundamentals below 55 Hz (the lowest notes of double bass and tuba) are
    seen only through their harmonics.
    """

    kind: ClassVar[str] = "cqt"
    sample_rate: int = 44100
    n_samples: int = 22050
    hop_length: int = 512  # must be divisible by 2 ** (octaves - 1)
    fmin: float = 55.0  # A1 (see the class docstring)
    n_bins: int = 96  # 8 octaves, A1..G#9
    bins_per_octave: int = 12
    tuning: float = 0.0  # fixed; librosa would otherwise estimate it per chunk
    filter_scale: float = 1.0
    window: str = "hann"
    sparsity: float = 0.01  # fraction of each filter's energy dropped in the FFT basis
    res_type: str = "soxr_hq"  # octave downsampler
    pad_mode: str = "constant"
    amin: float = 1e-10
    db_ref: float | str = FULL_SCALE
    floor_db: float | None = FLOOR_DB
    top_db: float | None = None
    normalize: str = "none"

    def __post_init__(self) -> None:
        _check_levels(self)
        n_octaves = -(-self.n_bins // self.bins_per_octave)
        if self.hop_length % 2 ** (n_octaves - 1):
            raise SpecError(f"hop_length {self.hop_length} is not divisible by 2**{n_octaves - 1}")

    @property
    def n_frames(self) -> int:
        return 1 + self.n_samples // self.hop_length

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_bins, self.n_frames

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


FeatureSpec = StftSpec | CqtSpec
SPEC_TYPES: dict[str, type] = {s.kind: s for s in (StftSpec, LmsSpec, MfccSpec, CqtSpec)}
KINDS: tuple[str, ...] = ("stft", "cqt", "mfcc", "lms")


def _parse_value(text: str, annotation: Any, name: str) -> Any:
    """Coerce a command-line string to a field's annotated type ("none" means None where allowed)."""
    options = typing.get_args(annotation) or (annotation,)
    if type(None) in options and text.lower() == "none":
        return None
    for option in options:
        if option is bool:
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
        elif option in (int, float, str):
            try:
                return option(text)
            except ValueError:
                continue
    raise SpecError(f"cannot read {text!r} as a value for {name} ({annotation})")


def make_spec(kind: str, overrides: Mapping[str, Any] | Sequence[str] = ()) -> FeatureSpec:
    """The spec of ``kind`` with defaults replaced by ``overrides`` (a mapping or "name=value" strings)."""
    if kind not in SPEC_TYPES:
        raise SpecError(f"unknown feature kind {kind!r} (known: {', '.join(KINDS)})")
    spec_type = SPEC_TYPES[kind]
    fields = {f.name: f for f in dataclasses.fields(spec_type)}
    hints = typing.get_type_hints(spec_type)
    if not isinstance(overrides, Mapping):
        pairs = {}
        for item in overrides:
            name, sep, text = item.partition("=")
            if not sep:
                raise SpecError(f"parameter {item!r} is not of the form name=value")
            if name not in fields:
                raise SpecError(f"{kind} has no parameter {name!r} (known: {', '.join(fields)})")
            pairs[name] = _parse_value(text, hints[name], name)
        overrides = pairs
    unknown = set(overrides) - set(fields)
    if unknown:
        raise SpecError(f"{kind} has no parameter(s) {sorted(unknown)} (known: {', '.join(fields)})")
    return spec_type(**overrides)


def spec_from_dict(data: Mapping[str, Any]) -> FeatureSpec:
    """Inverse of ``spec.to_dict()``."""
    params = dict(data)
    return make_spec(params.pop("kind"), params)


def normalize_features(features: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Apply ``spec.normalize`` to a float32 batch [B, rows, frames] in place, per chunk; returns it."""
    if spec.normalize == "standard":
        mean = features.mean(axis=(1, 2), keepdims=True)
        std = features.std(axis=(1, 2), keepdims=True)
        features -= mean
        # A constant (e.g. silent) chunk has std 0: leave it at zero rather than divide by zero.
        features /= np.where(std > 0, std, 1.0)
    return features
