"""The LJ vacancy hop: the string barrier against ASE's climbing-image NEB with the same potential."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.mep import NEB
from ase.optimize import FIRE

from hts_mlff.forcefields import LennardJones
from hts_mlff.statics.lattice import relaxed_fcc
from hts_mlff.statics.vacancy_hop import HopSettings, hop_end_states, nearest_neighbor_site, vacancy_hop_path

EPSILON_EV, SIGMA_A, CUTOFF_A = 0.010327, 3.4, 8.5


@pytest.fixture(scope="module")
def lj() -> LennardJones:
    return LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)


@pytest.fixture(scope="module")
def crystal_under_tension(lj):
    """3×3×3 argon FCC at its T = 0 lattice for −2.5 kbar (the seeds' tension)."""
    return relaxed_fcc(lj, "Ar", guess_lattice_A=5.3, repeat=(3, 3, 3), pressure_bar=-2500.0)


def ase_neb_barrier(start, end, *, n_inner: int = 5) -> float:
    def calculator() -> AseLennardJones:
        return AseLennardJones(sigma=SIGMA_A, epsilon=EPSILON_EV, rc=CUTOFF_A)

    for atoms in (start, end):
        atoms.calc = calculator()
        FIRE(atoms, logfile=None).run(fmax=1e-4)
    images = [start] + [start.copy() for _ in range(n_inner)] + [end]
    for image in images[1:-1]:
        image.calc = calculator()
    neb = NEB(images, climb=True, method="improvedtangent")
    neb.interpolate()
    assert FIRE(neb, logfile=None).run(fmax=1e-3, steps=2000)
    energies = [image.get_potential_energy() for image in images]
    return max(energies) - energies[0]


def test_string_barrier_equals_ase_climbing_image_neb(lj, crystal_under_tension):
    site = nearest_neighbor_site(crystal_under_tension, 0)
    start, end = hop_end_states(crystal_under_tension, vacancy_site=0, target_site=site)
    reference = ase_neb_barrier(start, end)
    path = vacancy_hop_path(
        lj, crystal_under_tension, vacancy_site=0, target_site=site, settings=HopSettings(n_images=7)
    )
    assert path.string.converged
    assert path.barrier_eV == pytest.approx(reference, rel=0.01)  # from forces only
    assert path.barrier_energy_eV == pytest.approx(reference, rel=0.01)  # from energies


def test_force_integrated_profile_follows_the_energies_and_is_symmetric(lj, crystal_under_tension):
    path = vacancy_hop_path(lj, crystal_under_tension, settings=HopSettings(n_images=9))
    profile = path.string.energy_from_forces.numpy()
    scale = path.barrier_energy_eV
    np.testing.assert_allclose(profile, path.energy_eV, atol=0.01 * scale)
    np.testing.assert_allclose(profile, profile[::-1], atol=0.01 * scale)  # a hop between equivalent sites
    assert int(np.argmax(profile)) == 4  # the middle image sits on the saddle
    assert path.endpoint_fmax_eV_per_A < 1e-4


def test_tension_lowers_the_barrier(lj, crystal_under_tension):
    compressed = relaxed_fcc(lj, "Ar", guess_lattice_A=5.3, repeat=(3, 3, 3), pressure_bar=0.0)
    at_zero = vacancy_hop_path(lj, compressed, settings=HopSettings(n_images=7)).barrier_eV
    under_tension = vacancy_hop_path(lj, crystal_under_tension, settings=HopSettings(n_images=7)).barrier_eV
    assert under_tension < 0.6 * at_zero


def test_end_states_move_one_atom_onto_the_vacancy(crystal_under_tension):
    start, end = hop_end_states(crystal_under_tension, vacancy_site=0, target_site=1)
    moved = np.flatnonzero(np.linalg.norm(end.positions - start.positions, axis=1) > 1e-9)
    assert moved.tolist() == [0]  # the atom of site 1 is atom 0 once site 0 is removed
    np.testing.assert_allclose(end.positions[0], crystal_under_tension.positions[0], atol=1e-9)
