"""Lennard-Jones against ASE's calculator, finite differences and the contract checker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.lj import LennardJones as AseLJ

from hts_mlff.engine.forcefield import check_forcefield
from hts_mlff.forcefields import LennardJones, PairParameters, as_ase_calculator
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A, argon, batch


@pytest.mark.parametrize("a", [5.3, 5.71])
def test_energy_forces_stress_match_ase(lj, a):
    atoms = argon(a=a, repeat=3, rattle=0.15, seed=3)
    atoms.calc = AseLJ(epsilon=EPSILON_EV, sigma=SIGMA_A, rc=CUTOFF_A, smooth=False)
    e_ref, f_ref, s_ref = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    out = lj.forward(batch([atoms]))
    assert float(out.energy[0]) == pytest.approx(e_ref, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(out.forces.numpy(), f_ref, atol=1e-12)
    np.testing.assert_allclose(out.stress[0].numpy(), s_ref, atol=1e-14)


def test_unshifted_energy_differs_by_pair_count(lj):
    atoms = argon(a=5.6, repeat=3, rattle=0.1)
    unshifted = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A, shift=False)
    s = batch([atoms])
    diff = float(unshifted.forward(s).energy[0] - lj.forward(s).energy[0])
    from ase.neighborlist import neighbor_list

    n_pairs = len(neighbor_list("i", atoms, CUTOFF_A)) // 2
    c6 = (SIGMA_A / CUTOFF_A) ** 6
    assert diff == pytest.approx(n_pairs * 4 * EPSILON_EV * (c6 * c6 - c6), rel=1e-10)
    torch.testing.assert_close(unshifted.forward(s).forces, lj.forward(s).forces)


def test_forces_are_minus_gradient_of_energy(lj):
    state = batch([argon(repeat=3, rattle=0.2, seed=1), argon(repeat=3, rattle=0.2, seed=2, drop=1)])
    state.positions.requires_grad_(True)
    energy = lj.forward(state, compute_stress=False).energy.sum()
    (grad,) = torch.autograd.grad(energy, state.positions)
    forces = lj.forward(state, compute_stress=False).forces
    torch.testing.assert_close(forces, -grad.detach(), rtol=1e-10, atol=1e-12)


def test_contract_checker_passes_on_batched_mixed_sizes(lj):
    state = batch([argon(repeat=3, rattle=0.2, seed=1), argon(repeat=3, rattle=0.2, seed=2, drop=1)])
    assert check_forcefield(lj, state) == []


def test_contract_checker_catches_wrong_forces(lj):
    class Broken(LennardJones):
        def forward(self, state, *, neighbors=None, compute_stress=True):
            out = super().forward(state, neighbors=neighbors, compute_stress=compute_stress)
            out.forces = out.forces * 1.1
            return out

    broken = Broken(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    problems = check_forcefield(broken, batch([argon(repeat=3, rattle=0.2)]))
    assert problems and "−dE/dx" in problems[0]


def test_stress_is_strain_derivative(lj):
    atoms = argon(a=5.5, repeat=3, rattle=0.1, seed=4)
    state = batch([atoms])
    stress = lj.forward(state).stress[0]
    h = 1e-6
    for a, b in [(0, 0), (1, 2)]:
        energies = []
        for sign in (1, -1):
            strain = torch.eye(3, dtype=torch.float64)
            strain[a, b] += sign * h / (2 if a != b else 1)
            strain[b, a] += sign * h / 2 if a != b else 0
            s2 = batch([atoms])
            s2.positions = s2.positions @ strain.T
            s2.cell = s2.cell @ strain.T
            energies.append(float(lj.forward(s2).energy[0]))
        derivative = (energies[0] - energies[1]) / (2 * h) / float(state.volume[0])
        assert float(stress[a, b]) == pytest.approx(derivative, rel=1e-5, abs=1e-10)


def test_species_pairs_use_their_own_parameters():
    from ase import Atoms

    atoms = Atoms("ArKr", positions=[[1, 1, 1], [4.8, 1, 1]], cell=[20, 20, 20], pbc=True)
    lj2 = LennardJones(0.01, sigma_A=3.4, cutoff_A=8.0, shift=False, pairs=[PairParameters(18, 36, 0.02, 3.6)])
    e = float(lj2.forward(batch([atoms])).energy[0])
    r = 3.8
    assert e == pytest.approx(4 * 0.02 * ((3.6 / r) ** 12 - (3.6 / r) ** 6), rel=1e-12)


def test_ase_calculator_adapter_drives_ase(lj):
    from ase.optimize import BFGS

    atoms = argon(a=5.3, repeat=3, rattle=0.05, seed=5)
    atoms.calc = as_ase_calculator(lj)
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=200)
    assert np.abs(atoms.get_forces()).max() < 1e-3
    assert atoms.get_stress().shape == (6,)


def test_a_force_field_whose_forward_takes_no_neighbour_list_is_refused_at_definition():
    with pytest.raises(TypeError, match="must accept the keyword argument 'neighbors'"):

        class Old(LennardJones):
            def forward(self, state, *, compute_stress=True):
                return super().forward(state, compute_stress=compute_stress)
