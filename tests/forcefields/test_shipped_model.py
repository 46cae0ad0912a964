"""The shipped small model B: force accuracy on fresh LJ frames (solid, liquid, 256 and 4000 atoms), GNN-MD."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

import hts_mlff
from hts_mlff.analysis.parity import force_error_metrics
from hts_mlff.engine import MDProtocol, run_md
from hts_mlff.engine.observers import SnapshotObserver, ThermoObserver
from hts_mlff.forcefields import load
from hts_mlff.spec.load import CampaignError, load_campaign
from tests.conftest import REPO, argon, batch

MODEL = REPO / "models" / "model-b-small.pt"


@pytest.fixture(scope="module")
def model_b():
    return load(MODEL)


def lj_frames(lj, *, repeat: int, temperature_K: float, melt_K: float | None, seed: int) -> tuple:
    """Positions, cells and LJ forces of a few frames of a fresh trajectory (not in the training set).

    With ``melt_K`` the crystal is first melted at that temperature, then equilibrated at
    ``temperature_K`` before sampling.
    """
    state = batch([argon(repeat=repeat)])
    if melt_K:
        melt = MDProtocol(timestep_fs=10.78, production_steps=1000, sample_every_steps=1000)
        run_md(state, lj, protocol=melt, temperature_K=torch.tensor([melt_K]), pressure_bar=torch.zeros(1), keys=[seed])
    protocol = MDProtocol(
        timestep_fs=10.78,
        equilibration_steps=300,
        production_steps=300,
        sample_every_steps=100,
    )
    target = torch.tensor([temperature_K], dtype=torch.float64)
    observers = [
        ThermoObserver(),
        SnapshotObserver("positions", every_samples=1),
        SnapshotObserver("forces", every_samples=1),
    ]
    result = run_md(
        state,
        lj,
        protocol=protocol,
        temperature_K=target,
        pressure_bar=torch.zeros(1),
        keys=[seed + 1],
        observers=observers,
    )
    return result["positions"][0], result["cells"][0], result["forces"][0], result["potential_energy_eV"][0]


@pytest.mark.parametrize(
    ("phase", "repeat", "temperature_K", "melt_K"),
    [("solid", 4, 40.0, None), ("liquid", 4, 100.0, 250.0), ("solid", 10, 60.0, None), ("liquid", 10, 100.0, 250.0)],
)
def test_force_error_on_fresh_frames_is_below_1_meV_per_A(model_b, lj, phase, repeat, temperature_K, melt_K):
    positions, cells, reference, potential = lj_frames(
        lj, repeat=repeat, temperature_K=temperature_K, melt_K=melt_K, seed=12345
    )
    n = len(positions[0])
    per_atom_meV = 1e3 * potential / n
    assert (per_atom_meV > -55).all() if phase == "liquid" else (per_atom_meV < -58).all()  # the phase we meant
    frames = range(len(positions)) if repeat == 4 else [len(positions) - 1]
    predicted, expected = [], []
    for k in frames:
        from ase import Atoms

        atoms = Atoms("Ar" * n, positions=positions[k], cell=cells[k], pbc=True)
        predicted.append(model_b(batch([atoms], dtype=torch.float32)).forces.double().numpy())
        expected.append(reference[k])
    metrics = force_error_metrics(np.concatenate(predicted), np.concatenate(expected))
    assert metrics["mae_eV_per_A"] < 1e-3, metrics
    assert metrics["r2"] > 0.99, metrics


def test_gnn_md_keeps_the_temperature_and_no_replica_fails(model_b):
    state = batch([argon(rattle=0.02, seed=s) for s in range(2)], dtype=torch.float32)
    protocol = MDProtocol(timestep_fs=10.78, equilibration_steps=20, production_steps=40, sample_every_steps=10)
    result = run_md(
        state,
        model_b,
        protocol=protocol,
        temperature_K=torch.tensor([60.0, 60.0]),
        pressure_bar=torch.zeros(2),
        keys=[1, 2],
    )
    assert (result["failure_step"] < 0).all()
    temperature = result["kinetic_temperature_K"][:, 1:]
    assert 30 < temperature.mean() < 90


def test_the_direct_model_b_has_an_asymmetric_hessian(model_b):
    from tests.forcefields.test_gnn import hessian_block

    ff64 = load(MODEL, dtype=torch.float64)
    ff64.radial_table_points = 0
    h_ij, h_ji = hessian_block(ff64, argon(rattle=0.05, seed=3), 0, 1, h=1e-4)
    asymmetry = np.abs(h_ij - h_ji.T).max() / np.abs(h_ij).max()
    assert asymmetry > 1e-4


def test_a_campaign_runs_the_gnn_next_to_the_reference(tmp_path, dask_client):
    campaign = tmp_path / "gnn.yaml"
    campaign.write_text(
        textwrap.dedent(
            f"""\
            name: gnn-vs-lj
            store: gnn.zarr
            systems:
              ar256: {{kind: fcc, element: Ar, number_density_per_A3: 0.02148, repeat: [4, 4, 4]}}
            forcefields:
              lj: {{kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}}
              gnn: {{kind: gnn, checkpoint: {MODEL}}}
            protocol: {{timestep_fs: 10.78, equilibration_steps: 10, production_steps: 20, sample_every_steps: 10}}
            sweep: {{temperature_K: [60], seed: [0]}}
            execution: {{dtype: float32}}
            cluster: {{kind: local, dashboard_address: ":0"}}
            """
        )
    )
    report = hts_mlff.run_campaign(load_campaign(campaign), client=dask_client)
    assert report.n_run == 2 and report.n_failed == 0
    ds = hts_mlff.open_campaign(tmp_path / "gnn.zarr")
    assert set(ds.indexes["traj"].get_level_values("forcefield")) == {"lj", "gnn"}
    temperature = ds.kinetic_temperature_K.sel(forcefield="gnn").values
    assert np.isfinite(temperature).all()

    campaign.write_text(campaign.read_text().replace(str(MODEL), "missing.pt"))
    with pytest.raises(CampaignError, match=r"gnn\.yaml:7: error: forcefields\.gnn\.checkpoint: checkpoint not found"):
        load_campaign(campaign)
