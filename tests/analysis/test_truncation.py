"""Truncation correction of the melting point: the missing energy against the engine's own
Lennard-Jones at two cutoffs, the uniform tail against quadrature, the Clausius–Clapeyron shift
on phases with planted properties."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from ase.build import bulk
from scipy.integrate import quad

from hts_mlff.analysis.truncation import (
    lennard_jones_eV,
    missing_energy_per_atom_eV,
    phase_properties,
    truncation_correction,
    uniform_tail_eV,
)
from hts_mlff.forcefields.ase_calculator import as_ase_calculator
from hts_mlff.forcefields.lennard_jones import LennardJones

EPS, SIGMA = 0.010327, 3.405


def _liquid_like(seed: int = 0):
    atoms = bulk("Ar", "fcc", a=5.6, cubic=True).repeat((4, 4, 4))
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(0.0, 0.35, atoms.positions.shape)
    return atoms


@pytest.mark.parametrize("shift", [True, False])
def test_missing_energy_is_the_engines_long_cutoff_energy_minus_the_model(shift):
    atoms = _liquid_like()
    cutoff, radius = 2.5 * SIGMA, 4.0 * SIGMA
    energies = {}
    for name, ff in {
        "model": LennardJones(EPS, sigma_A=SIGMA, cutoff_A=cutoff, shift=shift),
        "reference": LennardJones(EPS, sigma_A=SIGMA, cutoff_A=radius, shift=False),
    }.items():
        atoms.calc = as_ase_calculator(ff)
        energies[name] = atoms.get_potential_energy()
    n = len(atoms)
    tail = uniform_tail_eV(radius, density_per_A3=n / atoms.get_volume(), epsilon_eV=EPS, sigma_A=SIGMA)
    expected = (energies["reference"] - energies["model"]) / n + tail
    got = missing_energy_per_atom_eV(
        atoms.positions,
        cell_A=atoms.cell.array,
        epsilon_eV=EPS,
        sigma_A=SIGMA,
        cutoff_A=cutoff,
        shift=shift,
        radius_A=radius,
    )
    assert got == pytest.approx(expected, rel=1e-9)
    assert got < 0  # the attraction left out


def test_missing_energy_converges_with_the_reference_radius():
    atoms = _liquid_like(1)
    kwargs = dict(cell_A=atoms.cell.array, epsilon_eV=EPS, sigma_A=SIGMA, cutoff_A=2.5 * SIGMA, shift=True)
    near = missing_energy_per_atom_eV(atoms.positions, radius_A=4.0 * SIGMA, **kwargs)
    far = missing_energy_per_atom_eV(atoms.positions, radius_A=6.0 * SIGMA, **kwargs)
    assert near == pytest.approx(far, rel=5e-3)  # g(r) ≈ 1 beyond 4σ in a disordered system
    with pytest.raises(ValueError, match="must exceed the cutoff"):
        missing_energy_per_atom_eV(atoms.positions, radius_A=2.0 * SIGMA, **kwargs)


def test_uniform_tail_is_the_integral_of_the_pair_energy():
    density, radius = 0.021, 12.0
    integral, _ = quad(lambda r: r * r * lennard_jones_eV(r, epsilon_eV=EPS, sigma_A=SIGMA), radius, np.inf)
    expected = 2.0 * np.pi * density * integral
    assert uniform_tail_eV(radius, density_per_A3=density, epsilon_eV=EPS, sigma_A=SIGMA) == pytest.approx(expected)


def _phase(delta_u: list[float], enthalpy: list[float]) -> xr.Dataset:
    n = len(delta_u)
    return xr.Dataset(
        {
            "missing_energy_eV_per_atom": ("traj", np.array(delta_u)),
            "enthalpy_eV_per_atom": ("traj", np.array(enthalpy)),
            "density_per_A3": ("traj", np.full(n, 0.02)),
        }
    )


def test_shift_follows_clausius_clapeyron_and_its_sign():
    solid = _phase([-0.0030, -0.0030], [-0.080, -0.080])
    liquid = _phase([-0.0026, -0.0026], [-0.070, -0.070])
    result = truncation_correction(solid, liquid, melting_point_K=80.0, melting_point_err_K=1.0)
    # the liquid loses less to the cutoff: the crystal is favoured, T_m rises by T δΔu/Δh
    assert result["shift_K"] == pytest.approx(80.0 * 0.0004 / 0.010)
    assert result["T_m_full_K"] == pytest.approx(83.2)
    assert result["T_m_full_err_K"] == pytest.approx(1.04)  # only T_m's error, carried through 1 + δT/T
    noisy = truncation_correction(
        _phase([-0.0031, -0.0029], [-0.080, -0.080]), liquid, melting_point_K=80.0, melting_point_err_K=1.0
    )
    assert noisy["T_m_full_err_K"] > result["T_m_full_err_K"]
    with pytest.raises(ValueError, match="crystallise"):
        truncation_correction(liquid, solid, melting_point_K=80.0)


def test_phase_properties_from_a_store_shaped_dataset():
    atoms = _liquid_like(2)
    n, frames = len(atoms), 5
    index = pd.MultiIndex.from_arrays(
        [["lj", "lj", "other"], [0.0, 0.0, 0.0], [80.0, 80.0, 80.0]],
        names=["forcefield", "pressure_bar", "temperature_K"],
    )
    volume = np.full((3, frames), atoms.get_volume())
    ds = xr.Dataset(
        {
            "total_energy_eV": (("traj", "frame"), np.full((3, frames), -0.05 * n)),
            "volume_A3": (("traj", "frame"), volume),
            "final_positions": (("traj", "atom", "xyz"), np.stack([atoms.positions] * 3)),
            "final_cell": (("traj", "row", "xyz"), np.stack([atoms.cell.array] * 3)),
            "n_atoms": ("traj", np.full(3, n)),
        },
        coords=xr.Coordinates.from_pandas_multiindex(index, "traj"),
        attrs={
            "campaign": "phase",
            "forcefields_json": json.dumps(
                {
                    "lj": {
                        "kind": "lennard_jones",
                        "epsilon_eV": EPS,
                        "sigma_A": SIGMA,
                        "cutoff_A": 8.5,
                        "shift": True,
                    },
                    "other": {"kind": "buckingham_dsf"},
                }
            ),
        },
    )
    ds = ds.assign_coords(status=("traj", ["done", "done", "done"]))
    props = phase_properties(ds, forcefield="lj")
    assert props.sizes["traj"] == 2
    np.testing.assert_allclose(props["enthalpy_eV_per_atom"], -0.05)  # P = 0: the energy per atom
    np.testing.assert_allclose(props["density_per_A3"], n / atoms.get_volume())
    with pytest.raises(ValueError, match="is for lennard_jones"):
        phase_properties(ds, forcefield="other")
    with pytest.raises(ValueError, match="no force field 'gnn'"):
        phase_properties(ds, forcefield="gnn")
