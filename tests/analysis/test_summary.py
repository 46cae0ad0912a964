"""The whole summary of a real campaign (reference vs a perturbed LJ) through `hts-mlff report`."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import hts_mlff
from hts_mlff.analysis.summary import summarize
from hts_mlff.cli import app
from hts_mlff.forcefields import LennardJones
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A

CAMPAIGN = """\
name: compare
store: compare.zarr
systems:
  ar108: {kind: fcc, element: Ar, number_density_per_A3: 0.02148, repeat: [3, 3, 3]}
forcefields:
  lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}
  lj_soft: {kind: lennard_jones, epsilon_eV: 0.0093, sigma_A: 3.405, cutoff_A: 8.5}
protocol:
  timestep_fs: 10.78
  equilibration_steps: 100
  production_steps: 400
  sample_every_steps: 20
  save_positions_every_samples: 1
  save_forces_every_samples: 1
sweep:
  temperature_K: [30, 45]
  seed: [0, 1]
execution: {dtype: float64, pack_size: 4}
cluster: {kind: local, dashboard_address: ":0"}
"""


@pytest.fixture(scope="module")
def compare_store(tmp_path_factory, dask_client):
    folder = tmp_path_factory.mktemp("compare")
    (folder / "compare.yaml").write_text(CAMPAIGN)
    hts_mlff.run_campaign(hts_mlff.load_campaign(folder / "compare.yaml"), client=dask_client)
    return folder / "compare.zarr"


def test_summary_against_the_reference(compare_store):
    ds = hts_mlff.open_campaign(compare_store)
    reference = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    summary = summarize(ds, reference="lj", reference_forcefield=reference, mobile=18, n_bins=50)
    table = summary.per_forcefield
    assert table.loc["lj", "fraction_stable"] == 1.0  # no explosion, g(r) within 0.02 of the reference
    assert table.loc["lj", "survival_auc"] == 1.0 and table.loc["lj_soft", "survival_auc"] == 1.0
    assert table.loc["lj", "fv_geometric_mean"] < 1e-12  # the reference against itself
    c = 0.010327 / 0.0093  # reference forces are c × the soft ones on the same frames
    assert table.loc["lj_soft", "fv_geometric_mean"] == pytest.approx((c - 1) / (c + 1), rel=1e-6)
    assert table.loc["lj_soft", "rdf_mae"] > table.loc["lj", "rdf_mae"]
    assert np.isfinite(table.loc["lj", "sigma_300K_S_per_cm"])
    assert set(summary.diffusion.index.get_level_values("temperature_K")) == {30.0, 45.0}


def test_report_cli_prints_and_writes(compare_store, tmp_path):
    args = ["report", str(compare_store), "-r", "lj", "-o", str(tmp_path), "--mobile", "Ar", "--rdf-bins", "50"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "lj_soft" in result.output and "fraction_stable" in result.output
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "summary.png").stat().st_size > 5000
    assert (tmp_path / "arrhenius-lj_soft.png").exists()
    bad = CliRunner().invoke(app, ["report", str(compare_store), "-r", "nope"])
    assert bad.exit_code == 1 and "not a force field" in bad.output
