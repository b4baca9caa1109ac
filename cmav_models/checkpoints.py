"""Checkpoints: one file per training stage, rewritten atomically after every epoch.

A checkpoint is a ``torch.save`` dict: ``meta`` (stage name, network config, the feature config
the network was trained on), module and optimizer states, epochs done and the loss history.
Loading checks the file is readable and that its feature config is the caller's, so a network is
never silently fed features it was not trained on.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from cmav_data.atomic import write_bytes


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, expected_meta: dict[str, Any]) -> dict[str, Any]:
    """The state saved at ``path``; CheckpointError if unreadable or its meta differs from ``expected_meta``."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (pickle, zip, runtime) for damaged files
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(e).__name__}: {first_line}); "
                              "delete it to retrain this stage") from None
    if not isinstance(state, dict) or "meta" not in state:
        raise CheckpointError(f"{path}: not a cmav checkpoint (no meta)")
    meta = state["meta"]
    for key, expected in expected_meta.items():
        if meta.get(key) != expected:
            what = "features made with another config" if key == "feature_config" else f"another {key}"
            raise CheckpointError(f"{path}: checkpoint expects {what}: saved {key} {meta.get(key)!r}, "
                                  f"this run has {expected!r}")
    return state
