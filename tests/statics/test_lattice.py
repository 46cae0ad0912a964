"""Zero-temperature lattice at a pressure, and the Debye frequency from the force constants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list

from hts_mlff.engine.state import state_from_atoms
from hts_mlff.forcefields import LennardJones
from hts_mlff.statics.lattice import debye_frequency_THz, fcc_lattice_constant_A, relaxed_fcc, self_force_constants
from hts_mlff.units import BAR_PER_EV_PER_A3, debye_temperature_to_frequency_THz

EPSILON_EV, SIGMA_A, CUTOFF_A = 0.010327, 3.4, 8.5


@pytest.mark.parametrize("pressure_bar", [0.0, -2500.0, 1000.0])
def test_relaxed_lattice_has_the_target_pressure(pressure_bar):
    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    crystal = relaxed_fcc(lj, "Ar", guess_lattice_A=5.3, repeat=(3, 3, 3), pressure_bar=pressure_bar)
    state = state_from_atoms([crystal], device=torch.device("cpu"), dtype=torch.float64)
    stress = lj(state).stress[0]
    pressure = -float(torch.trace(stress)) / 3 * BAR_PER_EV_PER_A3
    assert pressure == pytest.approx(pressure_bar, abs=2.0)
    assert np.allclose(crystal.cell, np.diag(np.diag(crystal.cell)))  # still cubic


def test_tension_expands_the_lattice():
    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    a = [
        fcc_lattice_constant_A(relaxed_fcc(lj, "Ar", guess_lattice_A=5.3, repeat=(2, 2, 2), pressure_bar=p), (2, 2, 2))
        for p in (1000.0, 0.0, -2500.0)
    ]
    assert a[0] < a[1] < a[2]


def test_self_force_constants_match_the_pair_sum():
    """Σ_α Φ_{0α,0α} = Σ_j φ''(r) + 2φ'(r)/r for a pair potential."""
    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    crystal = relaxed_fcc(lj, "Ar", guess_lattice_A=5.3, repeat=(3, 3, 3), pressure_bar=0.0)
    phi = self_force_constants(lj, crystal)
    i, d = neighbor_list("id", crystal, CUTOFF_A)
    r = d[i == 0]
    s6 = (SIGMA_A / r) ** 6
    first = 4 * EPSILON_EV * (-12 * s6 * s6 + 6 * s6) / r
    second = 4 * EPSILON_EV * (156 * s6 * s6 - 42 * s6) / r**2
    assert phi.sum() == pytest.approx(np.sum(second + 2 * first / r), rel=1e-5)
    np.testing.assert_allclose(phi, phi.mean(), rtol=1e-6)  # cubic symmetry


def test_debye_frequency_of_lj_argon_is_near_the_experimental_estimate():
    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    crystal = relaxed_fcc(lj, "Ar", guess_lattice_A=5.3, repeat=(3, 3, 3), pressure_bar=0.0)
    nu = debye_frequency_THz(lj, crystal)
    assert debye_temperature_to_frequency_THz(92.0) == pytest.approx(1.917, abs=0.005)  # the seeds' 1.92 THz
    assert nu == pytest.approx(1.92, rel=0.15)
