"""Adapters: any ASE calculator as a force field, TorchSim models as force fields, ours as ASE calculators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.lj import LennardJones as AseLJ

from hts_mlff.forcefields import (
    AseCalculatorForceField,
    GNNConfig,
    GNNForceField,
    TorchSimForceField,
    as_ase_calculator,
)
from hts_mlff.forcefields.registry import build_forcefield
from hts_mlff.spec.model import AseCalculatorSpec
from hts_mlff.spec.trust import approved
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A, argon, batch


def test_an_ase_calculator_drives_a_pack_like_our_lennard_jones(lj):
    spec = AseCalculatorSpec(
        kind="ase",
        calculator="ase.calculators.lj:LennardJones",
        parameters={"epsilon": EPSILON_EV, "sigma": SIGMA_A, "rc": CUTOFF_A, "smooth": False},
    )
    with approved([spec.calculator]):
        wrapped = build_forcefield(spec)
        changed = build_forcefield(spec.model_copy(update={"parameters": {"epsilon": 0.02}}))
    assert isinstance(wrapped, AseCalculatorForceField)
    state = batch([argon(rattle=0.1, seed=s) for s in range(2)] + [argon(rattle=0.1, seed=2, drop=1)])
    ours, theirs = lj(state), wrapped(state)
    np.testing.assert_allclose(theirs.forces.numpy(), ours.forces.numpy(), atol=1e-10)
    np.testing.assert_allclose(theirs.energy.numpy(), ours.energy.numpy(), atol=1e-9)
    np.testing.assert_allclose(theirs.stress.numpy(), ours.stress.numpy(), atol=1e-10)
    assert wrapped.checksum() != changed.checksum()


def test_gnn_as_an_ase_calculator_matches_the_batched_forward():
    ff = GNNForceField(GNNConfig(hidden=16, n_layers=2, force_scale_eV_per_A=0.02), seed=1)
    atoms = argon(repeat=3, rattle=0.1, seed=4)
    atoms.calc = as_ase_calculator(ff)
    expected = ff(batch([atoms])).forces.numpy()
    np.testing.assert_allclose(atoms.get_forces(), expected, atol=1e-12)
    assert atoms.get_stress().shape == (6,)


def test_torchsim_models_become_force_fields():
    pytest.importorskip("torch_sim")
    import torch_sim as ts
    from torch_sim.models.lennard_jones import LennardJonesModel

    model = LennardJonesModel(
        sigma=SIGMA_A,
        epsilon=EPSILON_EV,
        cutoff=CUTOFF_A,
        dtype=torch.float64,
        device=torch.device("cpu"),
        compute_stress=True,
    )
    wrapped = TorchSimForceField(model, cutoff_A=CUTOFF_A)
    systems = []
    for seed in range(2):  # sheared cells: the cell convention (TorchSim: column vectors) must be right
        atoms = argon(rattle=0.1, seed=seed)
        atoms.set_cell(atoms.cell.array @ np.array([[1, 0.05, 0], [0, 1, 0], [0, 0, 1]]).T, scale_atoms=True)
        systems.append(atoms)
    theirs = wrapped(batch(systems))
    direct = model(ts.io.atoms_to_state(systems, device=torch.device("cpu"), dtype=torch.float64))
    np.testing.assert_allclose(theirs.forces.numpy(), direct["forces"].numpy(), atol=1e-12)
    np.testing.assert_allclose(theirs.energy.numpy(), direct["energy"].numpy(), atol=1e-12)
    np.testing.assert_allclose(theirs.stress.numpy(), direct["stress"].numpy(), atol=1e-12)
    # Not compared with our LJ: TorchSim 0.3.0's LJ forces are 2 × −∇E of its own energy
    # (see docs/forcefields.md), so only the adapter's faithfulness is tested here.


def test_the_ase_reference_is_itself_consistent():
    """The comparison above trusts ASE's LJ: its forces are −∇E by central differences, so an
    agreement with it is an agreement with the potential, not with a shared mistake."""
    atoms = argon(rattle=0.1, seed=0)
    atoms.calc = AseLJ(epsilon=EPSILON_EV, sigma=SIGMA_A, rc=CUTOFF_A, smooth=False)
    forces = atoms.get_forces()
    h = 1e-5
    for atom, axis in [(0, 0), (7, 1), (31, 2)]:
        energies = []
        for sign in (1.0, -1.0):
            moved = atoms.copy()
            moved.calc = atoms.calc
            moved.positions[atom, axis] += sign * h
            energies.append(moved.get_potential_energy())
        assert forces[atom, axis] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=1e-7)


def test_a_force_only_model_refuses_to_report_an_energy():
    from ase.calculators.calculator import PropertyNotImplementedError

    ff = GNNForceField(GNNConfig(hidden=16, n_layers=2, force_scale_eV_per_A=0.02), seed=1)
    assert not ff.provides_energy
    atoms = argon(repeat=3, rattle=0.1, seed=4)
    atoms.calc = as_ase_calculator(ff)
    assert atoms.get_forces().shape == (len(atoms), 3)
    with pytest.raises(PropertyNotImplementedError, match="force-only model"):
        atoms.get_potential_energy()
    assert "energy" not in atoms.calc.results
