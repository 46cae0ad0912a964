"""``kind: nequip``: a NequIP model (``nequip-package`` file) driven over whole packs on the
engine's own neighbour list.

Runs where ``nequip`` is installed (the ``[nequip]`` extra, e3nn >= 0.5: ``.ci/adapters``
tests it in the e3nn family's environment). The shipped ``models/nequip-argon-small.nequip.zip``
(campaigns/training/nequip/argon-small.yaml) computes in float64: measured against NequIP's own
calculator 2e-16 eV/Å on forces and 4e-15 eV on energies.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from ase import Atoms

from hts_mlff.engine.forcefield import check_forcefield
from hts_mlff.forcefields.graph_edges import environment_restored
from hts_mlff.forcefields.kinds import build_forcefield
from hts_mlff.spec.model import NequIPSpec
from hts_mlff.spec.trust import CodeNotAllowedError, approved, file_approval
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
    pytest.importorskip("nequip.model.saved_models.load_utils")

SHIPPED = REPO / "models" / "nequip-argon-small.nequip.zip"


@pytest.fixture(scope="module")
def nequip():
    spec = NequIPSpec(kind="nequip", model=SHIPPED.name)
    with approved([file_approval(SHIPPED)]):
        return build_forcefield(spec, base_dir=SHIPPED.parent)


def test_loading_a_model_leaves_torchs_default_dtype_and_random_state_alone(tmp_path):
    """nequip's set-up makes float64 torch's default dtype and seeds torch for the process: a
    SevenNet built after it failed ("Float did not match Double"), a user's stream was reset."""
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    spec = NequIPSpec(kind="nequip", model=SHIPPED.name)
    with approved([file_approval(SHIPPED)]):
        ff = build_forcefield(spec, base_dir=SHIPPED.parent)
    assert torch.get_default_dtype() == torch.float32
    assert torch.equal(torch.rand(3), expected)
    assert ff(batch(different_sizes()[:1])).forces.dtype == torch.float64  # runs on float32 defaults


def test_a_pack_of_three_sizes_passes_the_contract(nequip):
    assert check_forcefield(nequip, batch(different_sizes()), atol_eV_per_A=1e-7) == []
    assert nequip.cutoff_A == 5.0 and nequip.compute_dtype == torch.float64


def test_energy_forces_and_stress_equal_the_packages_own_calculator(nequip):
    with environment_restored():
        from nequip.integrations.ase import NequIPCalculator

        calc = NequIPCalculator._from_saved_model(str(SHIPPED), device="cpu", chemical_species_to_atom_type_map=True)
    # NequIP's own calculator builds its inputs in torch's default dtype, which its set-up makes
    # float64; our adapter leaves the default alone and converts to the model's dtype itself
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert_matches_calculator(nequip, different_sizes(), calc, energy_rtol=1e-12, relative=1e-12)
    finally:
        torch.set_default_dtype(default)


def test_the_stress_is_the_strain_derivative_of_the_energy(nequip):
    state = batch([argon(a=5.4, repeat=2, rattle=0.1, seed=3)])
    np.testing.assert_allclose(nequip(state).stress[0].numpy(), stress_by_finite_strain(nequip, state)[0], atol=1e-8)


def test_a_pack_equals_each_replica_alone_to_float64_round_off(nequip):
    assert_pack_equals_replicas_alone(nequip, different_sizes(), rtol=16 * torch.finfo(torch.float64).eps)


def test_the_file_is_code_its_bytes_are_its_identity(tmp_path, monkeypatch):
    model = tmp_path / "ar.nequip.zip"
    shutil.copy(SHIPPED, model)
    spec = NequIPSpec(kind="nequip", model=model.name)
    assert spec.code_paths() == {"model": model.name}
    monkeypatch.setenv("HTS_MLFF_CONFIG", str(tmp_path / "none.yaml"))
    with pytest.raises(CodeNotAllowedError, match=r"ar\.nequip\.zip"):
        build_forcefield(spec, base_dir=tmp_path)
    before = forcefield_checksum(spec, base_dir=tmp_path)
    data = bytearray(model.read_bytes())
    data[-30] ^= 1
    model.write_bytes(bytes(data))
    assert forcefield_checksum(spec, base_dir=tmp_path) != before
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ


def test_the_shipped_argon_model_follows_its_lennard_jones_reference(nequip, frames_store):
    from hts_mlff.training.frames import frames_from_store

    errors, forces = [], []
    for frame in frames_from_store(frames_store)[::4]:
        atoms = Atoms(numbers=frame.atomic_numbers, positions=frame.positions, cell=frame.cell, pbc=True)
        errors.append(np.abs(nequip(batch([atoms])).forces.numpy() - frame.forces))
        forces.append(frame.forces)
    mae, rms = np.mean(np.concatenate(errors)), np.sqrt(np.mean(np.concatenate(forces) ** 2))
    assert mae < 0.1 * rms, f"MAE {mae * 1e3:.2f} meV/Å against an RMS force of {rms * 1e3:.2f} meV/Å"


def test_kill_minus_9_then_resume_gives_the_same_store(tmp_path):
    """On one thread NequIP's forces in a pack equal the replica's alone bit for bit, its stress
    to 2e-19 eV/Å³ (measured): tasks stored before the kill are compared bit for bit, rerun
    ones to 1e-9 of each quantity."""
    kill_and_resume_matches(tmp_path, {"kind": "nequip", "model": str(SHIPPED)}, rerun_rtol=1e-9)


def test_the_argon_zoos_e3nn_half_validates_and_names_its_package_as_code():
    from hts_mlff.spec import load_campaign
    from hts_mlff.spec.trust import describe_code

    loaded = load_campaign(REPO / "campaigns" / "mlff-zoo-argon-e3nn.yaml")
    assert set(loaded.spec.forcefields) == {"lj", "gnn", "nequip"}
    (line,) = describe_code(loaded.spec, base_dir=loaded.base_dir)
    assert line.startswith("forcefields.nequip.model loads") and "nequip-argon-small.nequip.zip" in line
