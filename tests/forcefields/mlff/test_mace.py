"""``kind: mace``: a MACE model driven over whole packs on the engine's own neighbour list.

Runs where ``mace-torch`` is installed (the ``[mace]`` extra; ``.ci/run`` tests it in an
environment of its own, since it pins ``e3nn==0.4.4``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from ase import Atoms

from hts_mlff.engine.forcefield import check_forcefield
from hts_mlff.forcefields.graph_edges import environment_restored
from hts_mlff.forcefields.kinds import build_forcefield
from hts_mlff.spec.model import MaceSpec
from hts_mlff.spec.trust import approved, file_approval
from hts_mlff.tasks import forcefield_checksum
from tests.conftest import REPO, argon, batch
from tests.forcefields.mlff.common import (
    assert_matches_calculator,
    assert_pack_equals_replicas_alone,
    different_sizes,
    kill_and_resume_matches,
    stress_by_finite_strain,
)

with environment_restored():
    pytest.importorskip("mace.modules")  # all at once: e3nn 0.4.4 unpickles its constants on import

from tests.forcefields.mlff.models import write_mace_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return write_mace_model(tmp_path_factory.mktemp("mace") / "ar.model")


def _build(model_file, **fields):
    spec = MaceSpec(kind="mace", model=model_file.name, **fields)
    with approved([file_approval(model_file)]):
        return build_forcefield(spec, base_dir=model_file.parent)


def test_a_pack_of_three_sizes_passes_the_contract(model_file):
    ff = _build(model_file)
    state = batch(different_sizes())
    assert check_forcefield(ff, state, atol_eV_per_A=1e-7) == []
    assert ff.cutoff_A == 5.0 and ff.neighbor_layout == "pairs"


def test_energy_forces_and_stress_equal_the_packages_own_calculator(model_file):
    with environment_restored():
        from mace.calculators import MACECalculator

        calc = MACECalculator(model_paths=str(model_file), device="cpu", default_dtype="float64")
    assert_matches_calculator(_build(model_file), different_sizes(), calc, energy_rtol=1e-12, relative=1e-12)


def test_the_stress_is_the_strain_derivative_of_the_energy(model_file):
    ff = _build(model_file)
    state = batch([argon(repeat=2, rattle=0.1, seed=3)])
    np.testing.assert_allclose(ff(state).stress[0].numpy(), stress_by_finite_strain(ff, state)[0], atol=1e-8)


def test_a_pack_equals_each_replica_alone_to_the_round_off_of_its_dtype(model_file):
    """Measured: float64 forces 2e-17 relative (energy, stress bit for bit), float32 4e-7 (3 ulp):
    BLAS blocks the pack's longer matrices differently. Checked at 16 ulp of each dtype."""
    for dtype in (torch.float64, torch.float32):
        ulp = torch.finfo(dtype).eps
        assert_pack_equals_replicas_alone(_build(model_file), different_sizes(), rtol=16 * ulp, dtype=dtype)


def test_float32_follows_the_campaign_or_the_spec(model_file):
    exact = _build(model_file)(batch(different_sizes()))
    f32 = _build(model_file, compute_dtype="float32")
    out = f32(batch(different_sizes()))
    assert out.forces.dtype == torch.float64  # handed back in the state's dtype
    scale = exact.forces.abs().max().item()
    np.testing.assert_allclose(out.forces.numpy(), exact.forces.numpy(), atol=1e-5 * scale)
    on_state = _build(model_file)(batch(different_sizes(), dtype=torch.float32))
    assert on_state.forces.dtype == torch.float32
    np.testing.assert_allclose(on_state.forces.double().numpy(), exact.forces.numpy(), atol=1e-5 * scale)


def test_an_element_the_model_does_not_know_is_named(model_file):
    ff = _build(model_file)
    atoms = argon(repeat=2)
    atoms.numbers[0] = 36
    with pytest.raises(ValueError, match=r"knows the elements \['Ar'\]; the system has \['Kr'\]"):
        ff(batch([atoms]))


def test_the_task_id_changes_with_one_byte_of_the_model_file(tmp_path):
    path = write_mace_model(tmp_path / "m.model")
    spec = MaceSpec(kind="mace", model="m.model")
    before = forcefield_checksum(spec, base_dir=tmp_path)
    data = bytearray(path.read_bytes())
    data[-30] ^= 1
    path.write_bytes(bytes(data))
    assert forcefield_checksum(spec, base_dir=tmp_path) != before


def test_importing_mace_leaves_torch_load_weights_only_for_everything_else(model_file, tmp_path):
    from hts_mlff.forcefields import GNNConfig, GNNForceField
    from hts_mlff.forcefields.checkpoint import load, save_checkpoint

    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    _build(model_file)  # imports mace, loads its pickle
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(model_file)  # a pickle still needs an explicit weights_only=False
    gnn = GNNForceField(GNNConfig(hidden=8, n_layers=1), seed=0)
    save_checkpoint(tmp_path / "gnn.pt", gnn)
    assert load(tmp_path / "gnn.pt").checksum() == gnn.checksum()


def test_kill_minus_9_then_resume_gives_the_same_store(model_file, tmp_path):
    """MACE's dense layers go through BLAS, which blocks a pack's matrices by their row count:
    a replica's forces in another pack differ by ~2e-17 relative even on one thread (seen once
    as 1 ulp of one virial pressure in a resumed store). Tasks stored before the kill are
    compared bit for bit, rerun ones to 1e-9 of each quantity (round-off grown over 70 steps)."""
    kill_and_resume_matches(tmp_path, {"kind": "mace", "model": str(model_file)}, rerun_rtol=1e-9)


def test_the_shipped_argon_model_follows_its_lennard_jones_reference(frames_store):
    """models/mace-argon-small.model (campaigns/training/mace-argon-small.sh) on reference frames
    it never saw: its force error is a small fraction of the forces themselves."""
    from hts_mlff.training.frames import frames_from_store

    shipped = REPO / "models" / "mace-argon-small.model"
    ff = _build(shipped)
    frames = frames_from_store(frames_store)[::4]
    errors, forces = [], []
    for frame in frames:
        atoms = Atoms(numbers=frame.atomic_numbers, positions=frame.positions, cell=frame.cell, pbc=True)
        out = ff(batch([atoms]))
        errors.append(np.abs(out.forces.numpy() - frame.forces))
        forces.append(frame.forces)
    mae, rms = np.mean(np.concatenate(errors)), np.sqrt(np.mean(np.concatenate(forces) ** 2))
    assert mae < 0.1 * rms, f"MAE {mae * 1e3:.2f} meV/Å against an RMS force of {rms * 1e3:.2f} meV/Å"


def test_the_argon_zoo_campaign_validates_and_names_its_mace_file_as_code():
    from hts_mlff.spec import load_campaign
    from hts_mlff.spec.trust import describe_code

    loaded = load_campaign(REPO / "campaigns" / "mlff-zoo-argon.yaml")
    assert set(loaded.spec.forcefields) == {"lj", "gnn", "mace"}
    (line,) = describe_code(loaded.spec, base_dir=loaded.base_dir)
    assert line.startswith("forcefields.mace.model loads") and "mace-argon-small.model" in line
