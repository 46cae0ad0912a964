"""Buckingham + DSF against LAMMPS (pair_style hybrid/overlay buck + coul/dsf), an independent
implementation of both terms: energy, forces and stress of a disordered Li2O cell.

Needs the ``lammps`` Python module with its MPI library loadable (PyPI's wheel looks for
libmpi.so.12; on Debian, MPICH's libmpich.so.12 under that name on LD_LIBRARY_PATH). Skipped
where it cannot be imported (CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import REPO

PARAMS = {"Li": 0.6, "O": -1.2}
PAIRS = {("Li", "O"): (41051.94, 0.15116, 0.0), ("O", "O"): (2029.22, 0.343645, 192.58)}
CUTOFF_A, ALPHA_PER_A = 8.0, 0.35


def _lammps():
    try:
        from lammps import lammps

        return lammps(cmdargs=["-screen", "none", "-log", "none"])
    except Exception as exc:  # module missing or its MPI library not loadable
        pytest.skip(f"LAMMPS not available: {type(exc).__name__}: {exc}")


def _atoms():
    import ase.io

    atoms = ase.io.read(REPO / "campaigns" / "structures" / "li2o-conventional.extxyz").repeat((2, 2, 2))
    rng = np.random.default_rng(4)
    atoms.positions += rng.normal(0.0, 0.15, atoms.positions.shape)
    atoms.set_cell(
        atoms.cell.array @ np.array([[1.02, 0.01, 0.0], [0.0, 0.99, 0.0], [0.0, 0.0, 1.01]]), scale_atoms=True
    )
    return atoms


def _ours(atoms):
    from hts_mlff.forcefields.ase_calculator import as_ase_calculator
    from hts_mlff.forcefields.buckingham_dsf import BuckinghamDSF, BuckinghamPair

    z = {"Li": 3, "O": 8}
    ff = BuckinghamDSF(
        {z[s]: q for s, q in PARAMS.items()},
        pairs=[BuckinghamPair(z[a], z[b], *p) for (a, b), p in PAIRS.items()],
        cutoff_A=CUTOFF_A,
        alpha_per_A=ALPHA_PER_A,
    )
    atoms = atoms.copy()
    atoms.calc = as_ase_calculator(ff, dtype=torch.float64)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)


def test_energy_forces_and_stress_match_lammps():
    lmp = _lammps()
    atoms = _atoms()
    from ase.calculators.lammps.coordinatetransform import Prism

    prism = Prism(atoms.cell.array)
    xhi, yhi, zhi, xy, xz, yz = prism.get_lammps_prism()
    lmp.commands_list(
        [
            "units metal",
            "atom_style charge",
            "boundary p p p",
            f"region box prism 0 {xhi} 0 {yhi} 0 {zhi} {xy} {xz} {yz}",
            "create_box 2 box",
            "mass 1 6.94",
            "mass 2 15.999",
        ]
    )
    types = [1 if s == "Li" else 2 for s in atoms.get_chemical_symbols()]
    positions = prism.vector_to_lammps(atoms.positions, wrap=True)
    for t, p in zip(types, positions, strict=True):
        lmp.command(f"create_atoms {t} single {p[0]:.12f} {p[1]:.12f} {p[2]:.12f} units box")
    lmp.commands_list(
        [
            f"set type 1 charge {PARAMS['Li']}",
            f"set type 2 charge {PARAMS['O']}",
            f"pair_style hybrid/overlay buck {CUTOFF_A} coul/dsf {ALPHA_PER_A} {CUTOFF_A}",
            "pair_coeff 1 1 buck 0.0 1.0 0.0",
            "pair_coeff 1 2 buck {} {} {}".format(*PAIRS[("Li", "O")]),
            "pair_coeff 2 2 buck {} {} {}".format(*PAIRS[("O", "O")]),
            "pair_coeff * * coul/dsf",
            "pair_modify pair buck shift yes",
            "thermo_style custom pe pxx pyy pzz pxy pxz pyz",
            "run 0",
        ]
    )
    energy_lmp = lmp.get_thermo("pe")
    n = len(atoms)
    ids = np.asarray(lmp.numpy.extract_atom("id"))[:n].copy()
    forces_lmp = np.asarray(lmp.numpy.extract_atom("f"))[:n][np.argsort(ids)].copy()
    forces_lmp = prism.vector_to_ase(forces_lmp)
    # LAMMPS pressure in bar, sign convention P = −σ; the kinetic part is zero (no velocities)
    p = {k: lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")}
    lmp.close()
    energy, forces, stress = _ours(atoms)
    # The pair terms are the same; the self terms differ by a constant per ion. Ours is
    # Fennell–Gezelter's −k q²[erfc(αr_c)/(2r_c) + α/√π]; LAMMPS's coul/dsf takes −k q²(e_s/2 +
    # α/√π) with its e_s = erfc(αr_c)/r_c − f_s r_c, i.e. an extra −k q²[erfc(αr_c)/(2r_c) +
    # α/√π e^{−α²r_c²}]: a constant for a fixed composition (no force, no stress).
    from math import erfc, exp, pi, sqrt

    from hts_mlff.units import COULOMB_EV_A

    q2 = sum(PARAMS[s] ** 2 for s in atoms.get_chemical_symbols())
    extra = erfc(ALPHA_PER_A * CUTOFF_A) / (2 * CUTOFF_A) + ALPHA_PER_A / sqrt(pi) * exp(
        -((ALPHA_PER_A * CUTOFF_A) ** 2)
    )
    constant = COULOMB_EV_A * q2 * extra
    # LAMMPS evaluates erfc(αr) by a 5-term polynomial (|error| ≲ 1.5e-7 e^{−α²r²}): ~1e-6 relative
    assert energy == pytest.approx(energy_lmp + constant, rel=2e-6)
    assert abs(constant) > 1e-3  # the conventions differ measurably: the correction is real
    np.testing.assert_allclose(forces, forces_lmp, atol=1e-5)  # measured: 1.4e-6 eV/Å
    bar_per_eV_A3 = 1.602176634e6
    stress_lmp = (
        -np.array([[p["pxx"], p["pxy"], p["pxz"]], [p["pxy"], p["pyy"], p["pyz"]], [p["pxz"], p["pyz"], p["pzz"]]])
        / bar_per_eV_A3
    )
    rotation = prism.rot_mat
    stress_lmp = rotation @ stress_lmp @ rotation.T
    np.testing.assert_allclose(stress, stress_lmp, atol=1e-6)
