"""Adaptive sampling: windows go where E_b is least certain; rounds are ordinary, resumable tasks."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

import hts_mlff
from hts_mlff.cli import app
from hts_mlff.schedule.adaptive import allocation_scores, run_adaptive
from hts_mlff.store import CampaignStore
from hts_mlff.units import BOLTZMANN_EV_PER_K

CAMPAIGN = """\
name: adapt
store: adapt.zarr
systems:
  ar107: {kind: fcc, element: Ar, lattice_A: 5.3, repeat: [3, 3, 3], vacancies: [13]}
forcefields:
  lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}
protocol: {timestep_fs: 10.0, equilibration_steps: 10, production_steps: 40, sample_every_steps: 10}
sweep: {temperature_K: [20, 30], seed: [0], window: [0, 1]}
analyses: [thermo, vacancy]
adaptive: {target_barrier_interval_eV: 0.001, windows_per_round: 2, max_rounds: 2}
cluster: {kind: local, dashboard_address: ":0"}
"""


def test_scores_favour_informative_temperatures():
    temperatures = np.array([35.0, 40.0, 45.0, 50.0, 55.0, 60.0])
    assert allocation_scores(np.zeros(6), np.full(6, 500.0), temperatures).tolist() == [0, 0, 0, 0, 0, 1]
    rates = 2.0 * np.exp(-0.025 / (BOLTZMANN_EV_PER_K * temperatures))
    exposures = np.full(6, 500.0)
    scores = allocation_scores(np.round(rates * exposures), exposures, temperatures)
    assert (scores >= 0).all() and np.isfinite(scores).all()
    # far from the centre of the data (the lever arm of the slope) beats the middle
    assert min(scores[0], scores[-1]) > scores[3:5].max()
    assert 2 < int(np.argmin(scores)) < 5


def test_rounds_add_windows_as_ordinary_tasks_and_resume(tmp_path, dask_client):
    path = tmp_path / "adapt.yaml"
    path.write_text(CAMPAIGN)
    loaded = hts_mlff.load_campaign(path)
    report = run_adaptive(loaded, client=dask_client)
    assert report.stopped_because == "rounds" and len(report.rounds) == 3
    assert [r.added for r in report.rounds[:2]] == [{("lj", 0.0): (30.0, 2)}] * 2  # no jump yet: the hottest T
    store = CampaignStore(loaded.store_path)
    assert [e["reason"] for e in store.attrs()["extensions"]] == ["adaptive round 1", "adaptive round 2"]
    ds = hts_mlff.open_campaign(loaded.store_path)
    assert ds.sizes["traj"] == 4 + 4 and set(ds["status"].values) == {"done"}
    windows_at_30 = sorted(ds.sel(temperature_K=30.0)["window"].values.tolist())
    assert windows_at_30 == [0, 1, 2, 3, 4, 5]
    assert report.rounds[-1].atom_steps == 8 * 107 * 50
    # resumed: the rounds are in the store, nothing runs again
    again = run_adaptive(hts_mlff.load_campaign(path), client=dask_client)
    assert again.stopped_because == "rounds" and len(again.rounds) == 1
    assert hts_mlff.open_campaign(loaded.store_path).sizes["traj"] == 8
    result = CliRunner().invoke(app, ["run", "-q", str(path)])
    assert result.exit_code == 0 and "adaptive run stopped: max_rounds reached" in result.output, result.output
