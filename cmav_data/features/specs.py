"""Feature configurations: one frozen dataclass per representation, every parameter explicit.

The defaults follow the 2017 Sub-URMP paper's setting and librosa's own defaults, for 0.5 s chunks
at 44.1 kHz (22,050 samples): n_fft 2048, hop 512, centred frames padded with zeros (librosa's
``center=True, pad_mode="constant"``), so every representation has 1 + 22050 // 512 = 44 frames.

All representations end in decibels of *power*: ``10 log10(max(amin, S) / ref)``, floored at
``top_db`` below the chunk's own maximum (per chunk, never per batch: a batch-wide top_db shifts
quiet chunks by several dB). ``db_ref=None`` means "the chunk's maximum" (librosa ``ref=np.max``,
values in [-top_db, 0]); MFCC keeps librosa's ``ref=1.0``. ``normalize="standard"`` then scales each
chunk to zero mean and unit variance (a constant chunk becomes all zeros).

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


class SpecError(ValueError):
    """An invalid feature parameter (unknown name, bad value)."""


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
    top_db: float | None = 80.0  # floor at (chunk max - top_db) dB; None = no floor
    db_ref: float | None = None  # power mapped to 0 dB; None = the chunk's maximum
    normalize: str = "none"  # "none" or "standard" (per chunk zero mean, unit variance)

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise SpecError(f"normalize must be one of {NORMALIZATIONS}, not {self.normalize!r}")
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
    db_ref: float | None = 1.0  # librosa.feature.mfcc's power_to_db(ref=1.0)
    n_mfcc: int = 20
    dct_norm: str | None = "ortho"
    lifter: float = 0.0

    @property
    def n_rows(self) -> int:
        return self.n_mfcc


@dataclass(frozen=True)
class CqtSpec:
    """Log-power constant-Q transform (librosa.cqt: recursive octave downsampling)."""

    kind: ClassVar[str] = "cqt"
    sample_rate: int = 44100
    n_samples: int = 22050
    hop_length: int = 512  # must be divisible by 2 ** (octaves - 1)
    fmin: float = 32.703195662574764  # C1, librosa's default
    n_bins: int = 84  # 7 octaves, C1..B7
    bins_per_octave: int = 12
    tuning: float = 0.0  # fixed; librosa would otherwise estimate it per chunk
    filter_scale: float = 1.0
    window: str = "hann"
    sparsity: float = 0.01  # fraction of each filter's energy dropped in the FFT basis
    res_type: str = "soxr_hq"  # octave downsampler
    pad_mode: str = "constant"
    amin: float = 1e-10
    top_db: float | None = 80.0
    db_ref: float | None = None
    normalize: str = "none"

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise SpecError(f"normalize must be one of {NORMALIZATIONS}, not {self.normalize!r}")
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
