"""Frames of a store as extended XYZ for other packages' trainers, labelled by the reference."""

from __future__ import annotations

import numpy as np
from ase.calculators.lj import LennardJones as AseLJ
from ase.io import read
from typer.testing import CliRunner

from hts_mlff.cli import app
from hts_mlff.training.export import ENERGY_KEY, FORCES_KEY, STRESS_KEY
from hts_mlff.training.frames import frames_from_store
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A


def test_exported_frames_carry_the_references_energy_forces_and_stress(frames_store, tmp_path):
    out = tmp_path / "frames.extxyz"
    result = CliRunner().invoke(app, ["export-frames", str(frames_store), "-r", "lj", "-o", str(out)])
    assert result.exit_code == 0, result.output
    frames = frames_from_store(frames_store)
    written = read(out, index=":", format="extxyz")
    assert len(written) == len(frames) == 44
    calc = AseLJ(epsilon=EPSILON_EV, sigma=SIGMA_A, rc=CUTOFF_A, smooth=False)
    for k in (0, 17, 43):  # extended XYZ keeps 8 decimals: 1e-8 Å, 1e-8 eV/Å
        atoms, frame = written[k], frames[k]
        np.testing.assert_allclose(atoms.positions, frame.positions, rtol=0, atol=1e-8)
        # the store's forces are the reference's: relabelling reproduces them
        np.testing.assert_allclose(atoms.arrays[FORCES_KEY], frame.forces, rtol=0, atol=1e-8)
        probe = atoms.copy()
        probe.calc = calc  # ASE's LJ, shifted to zero at the cutoff as the campaign's is
        np.testing.assert_allclose(atoms.arrays[FORCES_KEY], probe.get_forces(), rtol=0, atol=1e-7)
        np.testing.assert_allclose(atoms.info[ENERGY_KEY], probe.get_potential_energy(), rtol=1e-8)
        stress = probe.get_stress()  # Voigt xx yy zz yz xz xy, ASE's sign
        np.testing.assert_allclose(atoms.info[STRESS_KEY], stress, rtol=1e-6, atol=1e-10)
        assert atoms.info["label"] == frame.label


def test_a_reference_the_campaign_does_not_have_is_named(frames_store, tmp_path):
    result = CliRunner().invoke(
        app, ["export-frames", str(frames_store), "-r", "mace", "-o", str(tmp_path / "x.extxyz")]
    )
    assert result.exit_code == 1 and "--reference 'mace' is not a force field of this campaign" in result.output
