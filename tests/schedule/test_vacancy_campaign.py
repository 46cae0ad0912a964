"""A vacancy campaign under tension end to end: relaxed lattice per pressure, tracking, rates, fits."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import hts_mlff
from hts_mlff.cli import app
from hts_mlff.forcefields import LennardJones
from hts_mlff.spec.load import CampaignError
from hts_mlff.statics.lattice import fcc_lattice_constant_A, relaxed_fcc

CAMPAIGN = """\
name: vac-tension
store: vac.zarr
systems:
  ar107: {kind: fcc, element: Ar, lattice_A: 5.3, repeat: [3, 3, 3], vacancies: [0], relax_lattice_with: lj}
forcefields:
  lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}
protocol: {timestep_fs: 10.78, friction_per_fs: 0.001, equilibration_steps: 300, production_steps: 2000,
           sample_every_steps: 50}
sweep: {temperature_K: [60, 70], pressure_bar: [-2500, 0], seed: [0], window: [0, 1]}
analyses: [thermo, vacancy]
execution: {device: cpu}
cluster: {kind: local, dashboard_address: ":0"}
"""


def test_tension_campaign_runs_at_the_relaxed_lattice_and_reports_rates(tmp_path, dask_client):
    (tmp_path / "vac.yaml").write_text(CAMPAIGN)
    report = hts_mlff.run_campaign(hts_mlff.load_campaign(tmp_path / "vac.yaml"), client=dask_client)
    assert report.n_failed == 0 and not report.pack_errors
    ds = hts_mlff.open_campaign(tmp_path / "vac.zarr")
    lj = LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5)
    for pressure in (-2500.0, 0.0):
        expected = fcc_lattice_constant_A(
            relaxed_fcc(lj, "Ar", guess_lattice_A=5.3, repeat=(3, 3, 3), pressure_bar=pressure), (3, 3, 3)
        )
        cells = ds["final_cell"].sel(pressure_bar=pressure).values
        np.testing.assert_allclose(cells[:, 0, 0], 3 * expected, rtol=1e-9)  # NVT keeps the relaxed cell
    assert (ds["n_vacant"].values == 1).all()
    assert ds["vacancy_site"].values[:, 0].tolist() == [0] * 8  # the hole starts on site 0
    # The per-trajectory jump summary written by the workers agrees with the analysis.
    from hts_mlff.analysis.vacancy import window_jumps

    windows = window_jumps(ds).compute()
    np.testing.assert_array_equal(ds["vacancy_jumps"].values, windows["n_jumps"].values)
    np.testing.assert_array_equal(ds["first_vacancy_jump_fs"].values, windows["first_jump_fs"].values)

    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["vacancy", str(tmp_path / "vac.zarr"), "-r", "lj", "-o", str(out), "--bootstrap", "50"]
    )
    assert result.exit_code == 0, result.output
    for name in (
        "vacancy-rates.csv",
        "vacancy-arrhenius.csv",
        "vacancy-arrhenius.png",
        "vacancy-survival--2500bar.png",
    ):
        assert (out / name).stat().st_size > 0
    assert "activation_energy_eV" in (out / "vacancy-arrhenius.csv").read_text()
    assert "debye_frequency_THz" in (out / "vacancy-arrhenius.csv").read_text()


def test_relax_lattice_with_must_name_a_forcefield(tmp_path):
    (tmp_path / "vac.yaml").write_text(CAMPAIGN.replace("relax_lattice_with: lj", "relax_lattice_with: gnn"))
    with pytest.raises(CampaignError, match=r"vac.yaml:4: error: systems.ar107.relax_lattice_with: 'gnn' is not one"):
        hts_mlff.load_campaign(tmp_path / "vac.yaml")


def test_task_ids_follow_the_lattice_force_field(tmp_path):
    """Tasks of another force field change identity when the one that sets their lattice changes."""
    from hts_mlff.tasks import expand

    other = "  other: {kind: lennard_jones, epsilon_eV: 0.0095, sigma_A: 3.405, cutoff_A: 8.5}\nprotocol:"
    base = CAMPAIGN.replace("protocol:", other, 1).replace("window: [0, 1]}", "window: [0, 1], forcefield: [other]}")
    (tmp_path / "a.yaml").write_text(base)
    (tmp_path / "b.yaml").write_text(base.replace("epsilon_eV: 0.010327", "epsilon_eV: 0.0103"))
    (tmp_path / "c.yaml").write_text(base.replace("cluster: {kind: local", "cluster: {kind: local, n_workers: 1"))
    ids = [
        set(expand(hts_mlff.load_campaign(tmp_path / f"{n}.yaml").spec, base_dir=tmp_path).tasks.task_id) for n in "abc"
    ]
    assert ids[0] == ids[2]  # unrelated edits keep them
    assert not ids[0] & ids[1]
