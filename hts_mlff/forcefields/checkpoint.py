"""GNN checkpoints: weights + JSON config + provenance, read without unpickling objects.

A checkpoint is a ``torch.save`` file of one plain dictionary::

    format          "hts_mlff.gnn"
    format_version  1
    config_json     GNNConfig as JSON
    provenance_json source stores, spec hashes, training config, metrics, versions (JSON)
    weights         name → tensor (float32)
    training        optional: optimiser state, epoch, split … (resume of ``hts-mlff train``)

It is read with ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
containers: a file carrying a pickled object (or any foreign file) is refused with a
:class:`CheckpointError` before anything in it runs.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from hts_mlff.forcefields.gnn import GNNConfig, GNNForceField, GNNModule

CHECKPOINT_FORMAT = "hts_mlff.gnn"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """The file is not a readable hts_mlff GNN checkpoint."""


def save_checkpoint(
    path: str | Path,
    forcefield: GNNForceField,
    *,
    provenance: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``forcefield`` (weights, config, provenance) atomically to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config_json": json.dumps(forcefield.gnn_config.to_dict(), sort_keys=True),
        "provenance_json": json.dumps(provenance if provenance is not None else forcefield.provenance, default=str),
        "weights": {k: v.detach().cpu().float().clone() for k, v in forcefield.module.state_dict().items()},
    }
    if training is not None:
        payload["training"] = training
    tmp = target.with_name(target.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, target)
    return target


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dictionary, checked; never unpickles objects."""
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"{source}: no such checkpoint file")
    if not zipfile.is_zipfile(source):
        raise CheckpointError(f"{source}: not a readable checkpoint (not a torch.save file)")
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if "global" in line.lower()]
        first = lines[0].split(" Please")[0] if lines else type(exc).__name__
        raise CheckpointError(
            f"{source}: refused: the file holds Python objects that only a full unpickler could rebuild "
            f"(a tampered or foreign file; hts_mlff reads checkpoints with weights_only=True): {first}"
        ) from None
    except Exception as exc:  # truncated, not a torch file at all, …
        raise CheckpointError(f"{source}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source}: not an hts_mlff GNN checkpoint (no format={CHECKPOINT_FORMAT!r} entry)")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{source}: checkpoint format version {version!r}; this hts_mlff reads up to {CHECKPOINT_VERSION}"
        )
    for key, kind in (("config_json", str), ("provenance_json", str), ("weights", dict)):
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(f"{source}: checkpoint entry {key!r} is missing or of the wrong type")
    return payload


def forcefield_from_payload(
    payload: dict[str, Any], *, source: str = "<checkpoint>", dtype: torch.dtype = torch.float32
) -> GNNForceField:
    try:
        config = GNNConfig.from_dict(json.loads(payload["config_json"]))
        provenance = json.loads(payload["provenance_json"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: bad model config in checkpoint: {exc}") from None
    module = GNNModule(config)
    try:
        module.load_state_dict(payload["weights"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit the model config: {exc}") from None
    return GNNForceField(config, module=module, dtype=dtype, provenance=provenance)


def load(path: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device | None = None):
    """The force field stored at ``path`` (a GNN checkpoint written by ``hts-mlff train``).

    >>> ff = load("models/model-b.pt")
    >>> atoms.calc = as_ase_calculator(ff)
    """
    payload = read_checkpoint(path)
    forcefield = forcefield_from_payload(payload, source=str(path), dtype=dtype)
    if device is not None:
        forcefield.to(device)
    return forcefield
