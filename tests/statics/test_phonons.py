"""Lattice dynamics at T = 0: Hessian symmetry and sum rules, closed-form dispersion, ASE's
phonons as an independent computation, and the symmetricity of a non-conservative field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.phonons import Phonons

from hts_mlff.engine.forcefield import ForceField, ForceOutput
from hts_mlff.forcefields import LennardJones, as_ase_calculator
from hts_mlff.statics import phonons

LATTICE_A = 5.31  # near the T = 0 lattice of this LJ argon
H_EV_PS = 4.135667696e-3  # Planck constant in eV·ps: ν (THz) = E / h


@pytest.fixture(scope="module")
def lj() -> LennardJones:
    return LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5)


@pytest.fixture(scope="module")
def crystal():
    return bulk("Ar", "fcc", a=LATTICE_A, cubic=True).repeat(3)  # 108 atoms, 15.9 Å


def test_lj_hessian_is_symmetric_obeys_the_sum_rule_and_has_three_zero_modes(lj, crystal):
    h = phonons.hessian(lj, crystal)
    n = len(crystal)
    assert h.shape == (3 * n, 3 * n)
    assert phonons.symmetricity(h) > 1 - 1e-8  # symmetric to round-off of the force differences
    # Acoustic sum rule: a rigid translation costs nothing, so every row sums to zero per axis.
    assert np.abs(h.reshape(3 * n, n, 3).sum(axis=1)).max() < 1e-10 * np.abs(h).max() * n
    nu, _, acoustic = phonons.normal_modes(h, crystal.get_masses())
    assert np.abs(nu[acoustic]).max() < 1e-3  # THz
    assert (np.delete(nu, acoustic) > 0.1).all()  # a stable crystal: every other mode is real
    # Finite differences against the exact Jacobian of the forces.
    exact = phonons.hessian_autograd(lj, crystal)
    assert phonons.symmetricity(exact) == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(h, exact, atol=1e-6 * np.abs(exact).max())


def test_the_step_matters_for_float32_forces(lj, crystal):
    """The seeds' lesson: a step of 10⁻⁶ σ drowns float32 force differences in round-off
    (measured here: 1 − S = 2.7·10⁻⁴ at 3.4·10⁻⁴ Å, 2.5·10⁻² at 3.4·10⁻⁶ Å; float64: ~10⁻¹⁰)."""
    good = phonons.symmetricity(phonons.hessian(lj, crystal, step_A=3.4e-4, dtype=torch.float32))
    tiny = phonons.symmetricity(phonons.hessian(lj, crystal, step_A=3.4e-6, dtype=torch.float32))
    assert 1 - good < 1e-3
    assert 1 - tiny > 10 * (1 - good)
    assert phonons.default_step_A(crystal) == pytest.approx(1e-4 * LATTICE_A / np.sqrt(2))


def _pair_derivatives(r: float, *, epsilon: float, sigma: float) -> tuple[float, float]:
    """φ'(r), φ''(r) of LJ in eV/Å and eV/Å²."""
    s6 = (sigma / r) ** 6
    first = 4 * epsilon * (-12 * s6**2 + 6 * s6) / r
    second = 4 * epsilon * (156 * s6**2 - 42 * s6) / r**2
    return first, second


def test_nearest_neighbour_fcc_dispersion_matches_its_closed_form():
    """LJ cut between the first and second shells: a nearest-neighbour central-force crystal,
    D(q) = (1/m) Σ_δ (1 − cos q·δ) [φ'' δ̂δ̂ + (φ'/r)(1 − δ̂δ̂)] over the 12 neighbours."""
    a = 5.2  # compressed: the tension term φ'/r is not zero here, and is tested too
    cutoff = 0.5 * (a / np.sqrt(2) + a)
    ff = LennardJones(0.010327, sigma_A=3.405, cutoff_A=cutoff)
    primitive = bulk("Ar", "fcc", a=a)
    rng = np.random.default_rng(0)
    q_frac = np.vstack([[0.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.5, 0.5, 0.5], [0.375, 0.375, 0.75], rng.random((4, 3))])
    bands = phonons.frequencies_THz(ff, primitive, q_frac)
    r = a / np.sqrt(2)
    d1, d2 = _pair_derivatives(r, epsilon=0.010327, sigma=3.405)
    neighbours = np.array([[x, y, 0] for x in (-1, 1) for y in (-1, 1)], dtype=float)
    neighbours = np.vstack([neighbours, neighbours[:, [0, 2, 1]], neighbours[:, [2, 0, 1]]]) * a / 2
    unit = neighbours / r
    reciprocal = 2 * np.pi * np.linalg.inv(np.asarray(primitive.cell)).T
    mass = primitive.get_masses()[0]
    for q, computed in zip(q_frac @ reciprocal, bands, strict=True):
        weights = 1 - np.cos(neighbours @ q)
        outer = np.einsum("na,nb->nab", unit, unit)
        matrix = np.einsum("n,nab->ab", weights, d2 * outer + d1 / r * (np.eye(3) - outer)) / mass
        lam = np.linalg.eigvalsh(matrix)
        expected = np.sign(lam) * np.sqrt(np.abs(lam)) * phonons.THZ_PER_SQRT_EV_PER_A2_AMU
        np.testing.assert_allclose(computed, expected, atol=1e-5)


def test_lj_dispersion_agrees_with_ase_phonons_through_our_calculator(lj, tmp_path):
    primitive = bulk("Ar", "fcc", a=LATTICE_A)
    path = np.array([[0.5, 0.0, 0.5], [0.5, 0.5, 0.5], [0.375, 0.375, 0.75], [0.1, 0.2, 0.3]])
    ours = phonons.frequencies_THz(lj, primitive, path)
    reference = Phonons(primitive, as_ase_calculator(lj), supercell=(6, 6, 6), delta=1e-3, name=str(tmp_path / "ph"))
    reference.run()
    reference.read(acoustic=True)
    theirs = reference.band_structure(path) / H_EV_PS  # eV → THz
    np.testing.assert_allclose(np.sort(theirs, axis=1), ours, rtol=2e-4, atol=2e-4)


class CurlField(ForceField):
    """LJ plus a uniform rotational (curl) force c·(y, −x, 0) on every atom: not a gradient."""

    def __init__(self, base: ForceField, *, c_eV_per_A2: float) -> None:
        self.base, self.c = base, c_eV_per_A2
        self.cutoff_A = base.cutoff_A

    def forward(self, state, *, neighbors=None, compute_stress: bool = True) -> ForceOutput:
        out = self.base.forward(state, neighbors=neighbors, compute_stress=compute_stress)
        x, y = state.positions[:, 0], state.positions[:, 1]
        curl = torch.stack([self.c * y, -self.c * x, torch.zeros_like(x)], dim=1)
        return ForceOutput(energy=out.energy, forces=out.forces + curl, stress=out.stress)

    @property
    def provides_energy(self) -> bool:
        return False

    def config(self) -> dict[str, Any]:
        return {"base": self.base.config(), "c": self.c}


def test_a_non_conservative_field_has_the_expected_symmetricity(lj, crystal):
    """The curl adds the antisymmetric K with K[(i,x),(i,y)] = −c, K[(i,y),(i,x)] = c, so
    ‖A_a‖ = c√(2N) and S = (‖H_LJ‖ − c√(2N)) / (‖H_LJ‖ + c√(2N)) exactly."""
    c = 0.02
    h = phonons.hessian(CurlField(lj, c_eV_per_A2=c), crystal)
    exact_lj = phonons.hessian_autograd(lj, crystal)
    norm_sym, norm_anti = np.linalg.norm(exact_lj), c * np.sqrt(2 * len(crystal))
    expected = (norm_sym - norm_anti) / (norm_sym + norm_anti)
    assert phonons.symmetricity(h) == pytest.approx(expected, abs=1e-7)
    assert phonons.symmetricity(h) < 0.99
    assert phonons.symmetricity(np.array([[0.0, 1.0], [-1.0, 0.0]])) == -1.0


def test_density_of_states_is_normalised():
    nu = np.random.default_rng(1).uniform(0, 2, 3000)
    edges = np.linspace(0, 2.5, 101)
    for smearing in (None, 0.05):
        g = phonons.density_of_states(nu, bins_THz=edges, smearing_THz=smearing)
        assert np.sum(g * np.diff(edges)) == pytest.approx(1.0, abs=0.02)
