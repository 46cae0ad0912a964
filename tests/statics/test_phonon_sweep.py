"""Phonon sweeps: force fields × pressures × steps in one resumable store, compared mode by mode."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from hts_mlff.analysis.phonon_report import mode_errors, phonon_table
from hts_mlff.cli import app
from hts_mlff.spec.load import CampaignError
from hts_mlff.spec.phonons import load_phonon_config
from hts_mlff.statics.phonon_sweep import run_phonon_sweep
from tests.conftest import REPO

CONFIG = """\
name: p
output: out
crystal: {element: Ar, repeat: [2, 2, 2], guess_lattice_A: 5.3}
forcefields:
  lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}
  lj-deep: {kind: lennard_jones, epsilon_eV: 0.0113597, sigma_A: 3.405, cutoff_A: 8.5}
pressure_bar: [0, -1000]
lattice_from: lj
phonons: {steps_A: [3.4e-4, 3.4e-3], reference: lj, path_points: 30}
device: cpu
"""


def test_sweep_compares_force_fields_mode_by_mode_and_resumes(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(CONFIG)
    config, resolved = load_phonon_config(path)
    seen = []
    ds = run_phonon_sweep(config, base_dir=resolved.parent, on_point=lambda *a: seen.append((a[0], a[1], a[3])))
    assert [s[2] for s in seen] == [False] * 4
    assert ds["mode_frequency_THz"].dims == ("forcefield", "pressure_bar", "step_A", "mode")
    assert ds.sizes["mode"] == 96 and ds.sizes["q"] == 30 and ds.sizes["band"] == 3
    # ε × 1.1 at the same lattice (lattice_from: lj) scales every force constant by 1.1, so
    # every frequency by √1.1: the comparison must find exactly that.
    ratio = ds["mode_frequency_THz"].sel(forcefield="lj-deep") / ds["mode_frequency_THz"].sel(forcefield="lj")
    np.testing.assert_allclose(ratio.isel(mode=slice(3, None)), np.sqrt(1.1), rtol=1e-6)
    np.testing.assert_allclose(
        ds["band_THz"].sel(forcefield="lj-deep").isel(q=slice(1, None)),
        np.sqrt(1.1) * ds["band_THz"].sel(forcefield="lj").isel(q=slice(1, None)),
        rtol=1e-6,
        atol=1e-5,  # the path passes Γ twice: zero modes to round-off
    )
    errors = mode_errors(ds, reference="lj")
    expected_mae = (np.sqrt(1.1) - 1) * ds["mode_frequency_THz"].sel(forcefield="lj").isel(mode=slice(3, None)).mean(
        "mode"
    )
    np.testing.assert_allclose(errors["mode_mae_THz"].sel(forcefield="lj-deep"), expected_mae, rtol=1e-6)
    assert float(errors["dos_overlap"].sel(forcefield="lj").min()) == pytest.approx(1.0)
    assert float(errors["dos_overlap"].sel(forcefield="lj-deep").max()) < 0.99
    assert (ds["symmetricity"] > 1 - 1e-6).all()  # LJ in float64
    assert float(ds["lattice_A"].sel(forcefield="lj", pressure_bar=-1000.0)) > float(
        ds["lattice_A"].sel(forcefield="lj", pressure_bar=0.0)
    )
    # Tension softens the crystal.
    top = ds["mode_frequency_THz"].max("mode").sel(forcefield="lj").isel(step_A=0)
    assert float(top.sel(pressure_bar=-1000.0)) < float(top.sel(pressure_bar=0.0))
    table = phonon_table(ds, reference="lj")
    assert len(table) == 8 and {"1 − S", "mode MAE (THz)", "DOS overlap"} <= set(table.columns)
    # A rerun reuses every point; a changed step recomputes.
    seen.clear()
    run_phonon_sweep(config, base_dir=resolved.parent, on_point=lambda *a: seen.append(a[3]))
    assert seen == [True] * 4
    changed = config.model_copy(update={"phonons": config.phonons.model_copy(update={"steps_A": [1e-3]})})
    seen.clear()
    run_phonon_sweep(changed, base_dir=resolved.parent, on_point=lambda *a: seen.append(a[3]))
    assert seen == [False] * 4


def test_bad_phonon_files_name_the_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(CONFIG.replace("reference: lj", "reference: gnn"))
    with pytest.raises(CampaignError) as caught:
        load_phonon_config(path)
    (problem,) = caught.value.problems
    assert problem.line == 9 and problem.path == "phonons"
    assert "reference 'gnn' is not one of the forcefields" in problem.message
    result = CliRunner().invoke(app, ["validate", str(REPO / "campaigns" / "ar-phonons.yaml")])
    assert result.exit_code == 2 and "hts-mlff phonons" in result.output


def test_cli_writes_table_store_and_figures(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        CONFIG.replace("pressure_bar: [0, -1000]", "pressure_bar: [0]").replace("[3.4e-4, 3.4e-3]", "[3.4e-4]")
    )
    result = CliRunner().invoke(app, ["phonons", str(path)], terminal_width=250)
    assert result.exit_code == 0, result.output
    for name in ("phonons.zarr", "phonons.csv", "phonon-dos.png", "phonon-dispersion.png", "phonon-symmetricity.png"):
        assert (tmp_path / "out" / name).exists(), name
    assert "lj-deep" in (tmp_path / "out" / "phonons.csv").read_text()
