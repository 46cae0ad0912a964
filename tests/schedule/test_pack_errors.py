"""A pack that raises does not stop the others; its tasks stay missing and the CLI says why."""

from __future__ import annotations

import textwrap

from typer.testing import CliRunner

import hts_mlff
from hts_mlff.cli import app
from hts_mlff.forcefields import GNNConfig, GNNForceField, save_checkpoint

CAMPAIGN = textwrap.dedent(
    """\
    name: errors
    store: errors.zarr
    systems:
      ar108: {kind: fcc, element: Ar, lattice_A: 5.71, repeat: [3, 3, 3]}
    forcefields:
      lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}
      krypton_only: {kind: gnn, checkpoint: kr.pt}
    protocol: {timestep_fs: 10.0, production_steps: 20, sample_every_steps: 10}
    sweep: {temperature_K: [50], seed: [0, 1]}
    execution: {pack_size: 2}
    cluster: {kind: local, dashboard_address: ":0"}
    """
)


def test_a_failing_pack_leaves_the_others_done(tmp_path, dask_client):
    # A GNN trained for krypton refuses argon: its pack raises inside the worker.
    save_checkpoint(tmp_path / "kr.pt", GNNForceField(GNNConfig(species=(36,), hidden=8, n_layers=1)))
    (tmp_path / "errors.yaml").write_text(CAMPAIGN)
    report = hts_mlff.run_campaign(hts_mlff.load_campaign(tmp_path / "errors.yaml"), client=dask_client)
    assert report.n_run == 2
    (error,) = report.pack_errors
    assert error["n_tasks"] == 2 and "trained on atomic numbers [36]" in error["error"]
    ds = hts_mlff.open_campaign(tmp_path / "errors.zarr")
    status = dict(zip(ds.indexes["traj"].get_level_values("forcefield"), ds["status"].values, strict=False))
    assert status == {"lj": "done", "krypton_only": "missing"}


def test_the_cli_exits_non_zero_and_names_the_error(tmp_path):
    save_checkpoint(tmp_path / "kr.pt", GNNForceField(GNNConfig(species=(36,), hidden=8, n_layers=1)))
    (tmp_path / "errors.yaml").write_text(
        CAMPAIGN.replace("cluster: {kind: local", "cluster: {kind: local, n_workers: 1")
    )
    result = CliRunner().invoke(app, ["run", "-q", str(tmp_path / "errors.yaml")])
    assert result.exit_code == 1
    assert "1 pack(s) raised an error" in result.output and "[36]" in result.output
