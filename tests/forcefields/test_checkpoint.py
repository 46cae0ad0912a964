"""GNN checkpoints: round trip, and refusal of files that would need a full unpickler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hts_mlff.forcefields import CheckpointError, GNNConfig, GNNForceField, load, save_checkpoint
from tests.conftest import argon, batch


class Payload:
    """An object whose unpickling would run code (writes a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_round_trip_gives_the_same_forces_checksum_and_provenance(tmp_path):
    ff = GNNForceField(GNNConfig(hidden=16, n_layers=2, force_scale_eV_per_A=0.02), seed=3)
    path = save_checkpoint(tmp_path / "m.pt", ff, provenance={"sources": ["a.zarr"], "metrics": {"mae": 1e-4}})
    back = load(path)
    state = batch([argon(repeat=3, rattle=0.1, seed=1)])
    np.testing.assert_array_equal(back(state).forces.numpy(), ff(state).forces.numpy())
    assert back.checksum() == ff.checksum()
    assert back.provenance["metrics"] == {"mae": 1e-4}
    assert back.gnn_config == ff.gnn_config


def test_checksum_changes_with_the_weights():
    a = GNNForceField(GNNConfig(hidden=8, n_layers=1), seed=0)
    b = GNNForceField(GNNConfig(hidden=8, n_layers=1), seed=1)
    assert a.checksum() != b.checksum()


def test_a_pickled_object_is_refused_and_never_run(tmp_path):
    ff = GNNForceField(GNNConfig(hidden=8, n_layers=1), seed=0)
    marker = tmp_path / "pwned"
    evil = {
        "format": "hts_mlff.gnn",
        "format_version": 1,
        "config_json": json.dumps(ff.gnn_config.to_dict()),
        "provenance_json": "{}",
        "weights": ff.module.state_dict(),
        "extra": Payload(str(marker)),
    }
    path = tmp_path / "evil.pt"
    torch.save(evil, path)
    with pytest.raises(CheckpointError, match="refused"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint at all", "not a readable checkpoint"),
        (None, "not an hts_mlff GNN checkpoint"),
    ],
)
def test_foreign_files_are_refused_with_a_clear_error(tmp_path, content, message):
    path = tmp_path / "foreign.pt"
    if content is None:
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load(path)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    ff = GNNForceField(GNNConfig(hidden=8, n_layers=1), seed=0)
    path = save_checkpoint(tmp_path / "m.pt", ff)
    payload = torch.load(path, weights_only=True)
    payload["config_json"] = json.dumps({**ff.gnn_config.to_dict(), "hidden": 16})
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load(path)
