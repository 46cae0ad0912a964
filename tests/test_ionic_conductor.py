"""The ionic-conductor study on a synthetic antifluorite store with known answers: Arrhenius
random walkers for Li on a vibrating O lattice; one "MLFF" is the reference's twin, another has
its lattice 6 % too large (a lattice mismatch, the seed's first failure mode)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hts_mlff.analysis.arrhenius import arrhenius_fit
from hts_mlff.analysis.conductivity import nernst_einstein
from hts_mlff.ionic_conductor import conductor_study, stable_trajectories
from hts_mlff.units import BOLTZMANN_EV_PER_K

TEMPERATURES = (600.0, 800.0, 1000.0, 1200.0)
ACTIVATION_EV = 0.30
D0_A2_PER_FS = 0.5  # D(T) = D0 exp(−E_a/k_B T)
LATTICE_A = 4.6
DT_FS = 100.0


def _antifluorite(repeat: int) -> tuple[np.ndarray, np.ndarray]:
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    tetra = np.array([[x, y, z] for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)])
    cells = np.array([[i, j, k] for i in range(repeat) for j in range(repeat) for k in range(repeat)])
    oxygen = (cells[:, None, :] + fcc[None]).reshape(-1, 3) * LATTICE_A
    lithium = (cells[:, None, :] + tetra[None]).reshape(-1, 3) * LATTICE_A
    positions = np.concatenate([lithium, oxygen])
    numbers = np.concatenate([np.full(len(lithium), 3), np.full(len(oxygen), 8)])
    return positions, numbers


def _store(*, n_seeds: int = 4, n_t: int = 200) -> xr.Dataset:
    sites, numbers = _antifluorite(2)
    n_atoms = len(sites)
    lithium = numbers == 3
    rows, positions, cells = [], [], []
    for k, (forcefield, scale) in enumerate((("ref", 1.0), ("twin", 1.0), ("wide", 1.06))):
        for temperature in TEMPERATURES:
            d = D0_A2_PER_FS * np.exp(-ACTIVATION_EV / (BOLTZMANN_EV_PER_K * temperature))
            for seed in range(n_seeds):
                rng = np.random.default_rng([k, int(temperature), seed])
                vibration = rng.normal(0, 0.08, (n_t, n_atoms, 3))
                steps = rng.normal(0, np.sqrt(2 * d * DT_FS), (n_t - 1, int(lithium.sum()), 3))
                walk = np.zeros((n_t, n_atoms, 3))
                walk[1:, lithium] = np.cumsum(steps, axis=0)
                positions.append((sites * scale)[None] + vibration + walk)
                cells.append(np.broadcast_to(np.eye(3) * 2 * LATTICE_A * scale, (n_t, 3, 3)))
                rows.append((forcefield, "li2o", temperature, 1.0, seed))
    index = pd.MultiIndex.from_tuples(rows, names=["forcefield", "system", "temperature_K", "pressure_bar", "seed"])
    n_traj = len(rows)
    volume = np.array([np.linalg.det(c[0]) for c in cells])
    return xr.Dataset(
        {
            "positions": (("traj", "position_time_fs", "atom", "xyz"), np.stack(positions)),
            "cells": (("traj", "position_time_fs", "cell_vector", "xyz"), np.stack(cells)),
            "atomic_numbers": (("traj", "atom"), np.broadcast_to(numbers, (n_traj, n_atoms)).copy()),
            "volume_A3": (("traj", "time_fs"), np.repeat(volume[:, None], 3, axis=1)),
            "status": ("traj", np.full(n_traj, "done")),
        },
        coords={
            **xr.Coordinates.from_pandas_multiindex(index, "traj"),
            "position_time_fs": np.arange(n_t) * DT_FS,
            "time_fs": [0.0, 1.0, 2.0],
        },
    )


@pytest.fixture(scope="module")
def study():
    return conductor_study(_store(), reference="ref", mobile="Li", n_windows=4, r_max_A=4.5, n_bins=45)


def test_tracer_diffusion_per_species_matches_the_planted_walk(study):
    rows = study.state_points.xs("ref", level="forcefield")
    for (_, temperature, _), row in rows.iterrows():
        truth_cm2_per_s = D0_A2_PER_FS * np.exp(-ACTIVATION_EV / (BOLTZMANN_EV_PER_K * temperature)) * 0.1
        assert row["D_Li_cm2_per_s"] == pytest.approx(truth_cm2_per_s, rel=0.15)
        assert abs(row["D_O_cm2_per_s"]) < 0.02 * truth_cm2_per_s
        assert row["n_seeds"] == 4
    assert (rows["D_Li_low"] < rows["D_Li_cm2_per_s"]).all()


def test_independent_walkers_have_a_haven_ratio_near_one(study):
    ratios = study.state_points["haven_ratio"].to_numpy()
    assert np.nanmedian(ratios) == pytest.approx(1.0, abs=0.3)
    assert np.isfinite(study.state_points["haven_ratio_err"]).all()


def test_sigma_is_nernst_einstein_and_its_arrhenius_fit_finds_the_barrier(study):
    per_traj = study.per_trajectory
    first = per_traj.iloc[0]
    n_li = 64 / (2 * LATTICE_A) ** 3 * 1e24
    assert first["sigma_S_per_cm"] == pytest.approx(
        nernst_einstein(first["D_Li_cm2_per_s"], number_density_per_cm3=n_li, charge=1.0, temperature_K=600.0),
        rel=1e-9,
    )
    fit = study.arrhenius.loc[("ref", "li2o", 1.0)]
    assert fit["activation_energy_low_eV"] < ACTIVATION_EV < fit["activation_energy_high_eV"]
    assert fit["sigma_low"] < fit["sigma_300K_S_per_cm"] < fit["sigma_high"]
    assert fit["n_points"] == 16


def test_a_lattice_mismatch_is_caught_window_by_window(study):
    mae = study.windows["rdf_mae"]
    forcefield = mae.indexes["traj"].get_level_values("forcefield")
    twin = mae.values[forcefield == "twin"]
    wide = mae.values[forcefield == "wide"]
    assert np.nanmin(wide) > 2 * np.nanmax(twin)
    assert set(study.windows["rdf_mae_pair"]["pair"].values) == {"Li-Li", "Li-O", "O-O"}
    floor = study.windows["rdf_mae_floor"].values
    assert np.all((0 < floor) & (floor < np.nanmax(twin)))
    assert not study.per_trajectory["stable"][np.asarray(forcefield) == "wide"].any()
    threshold = np.sqrt(np.nanmax(twin) * np.nanmin(wide)) - floor.max()
    stable = stable_trajectories(study.windows, mae_threshold=threshold)
    assert stable[np.asarray(forcefield) != "wide"].all()
    assert not stable[np.asarray(forcefield) == "wide"].any()


def test_a_species_not_in_the_store_is_refused():
    with pytest.raises(ValueError, match="mobile species 'Na'"):
        conductor_study(_store(n_seeds=1, n_t=20), reference="ref", mobile="Na")


def test_the_extrapolated_interval_covers_the_truth_on_synthetic_arrhenius_data():
    """95 % intervals of σ(300 K) from σT = A exp(−E_a/k_B T) with log-normal scatter over
    seeds: the truth inside in about 95 % of 400 repetitions."""
    rng = np.random.default_rng(11)
    temperatures = np.repeat([700.0, 850.0, 1000.0, 1200.0], 3)
    prefactor, energy = 2.0e4, 0.35
    sigma = prefactor / temperatures * np.exp(-energy / (BOLTZMANN_EV_PER_K * temperatures))
    truth = prefactor / 300.0 * np.exp(-energy / (BOLTZMANN_EV_PER_K * 300.0))
    hits = 0
    repeats = 400
    for _ in range(repeats):
        noisy = sigma * np.exp(rng.normal(0, 0.25, sigma.shape))
        values = xr.DataArray(noisy, dims="temperature_K", coords={"temperature_K": temperatures})
        fit = arrhenius_fit(values, times_temperature=True)
        hits += float(fit["value_low"]) < truth < float(fit["value_high"])
    assert 0.91 < hits / repeats < 0.99


LI2O_CAMPAIGN = """\
name: li2o
store: li2o.zarr
systems:
  li2o-96:
    kind: file
    path: li2o.extxyz
    formula: Li2O
    repeat: [2, 2, 2]
forcefields:
  teter:
    kind: buckingham_dsf
    charges_e: {Li: 0.6, O: -1.2}
    pairs:
      - {species: [Li, O], a_eV: 41051.94, rho_A: 0.15116}
      - {species: [O, O], a_eV: 2029.22, rho_A: 0.343645, c_eV_A6: 192.58}
    cutoff_A: 7.0
    alpha_per_A: 0.4
protocol:
  ensemble: nve
  equilibration_ensemble: npt
  timestep_fs: 1.0
  equilibration_steps: 600
  production_steps: 2400
  sample_every_steps: 20
  friction_per_fs: 0.02
  barostat_time_constant_fs: 300
  guard: {max_force_eV_per_A: 50.0}
  save_positions_every_samples: 2
  save_forces_every_samples: 20
sweep:
  temperature_K: [300, 1300]
  pressure_bar: [1.0]
  seed: [0, 1]
execution:
  dtype: float32
  pack_size: 4
"""


def test_li2o_runs_through_the_engine_and_the_conductor_command(tmp_path, dask_client):
    """The shipped Li2O cell with the Teter reference, NPT then NVE at 300 and 1300 K: at 1300 K
    the Li sublattice flows while O stays on its lattice, at 300 K nothing hops; the conductor
    command prints and writes its tables and figures, the report gets its section."""
    import shutil

    from typer.testing import CliRunner

    import hts_mlff
    from hts_mlff.cli import app
    from tests.conftest import REPO

    shutil.copy(REPO / "campaigns" / "structures" / "li2o-conventional.extxyz", tmp_path / "li2o.extxyz")
    (tmp_path / "li2o.yaml").write_text(LI2O_CAMPAIGN)
    hts_mlff.run_campaign(hts_mlff.load_campaign(tmp_path / "li2o.yaml"), client=dask_client)
    store = tmp_path / "li2o.zarr"
    study = conductor_study(hts_mlff.open_campaign(store), reference="teter", mobile="Li", n_windows=2)
    points = study.state_points.droplevel(["forcefield", "system", "pressure_bar"])
    hot, cold = points.loc[1300.0], points.loc[300.0]
    assert hot["D_Li_cm2_per_s"] > 1e-5
    assert hot["D_Li_cm2_per_s"] > 30 * abs(hot["D_O_cm2_per_s"])
    assert cold["D_Li_cm2_per_s"] < 0.01 * hot["D_Li_cm2_per_s"]
    diffusive = study.per_trajectory.groupby("temperature_K")["diffusive"]
    assert not diffusive.any()[300.0] and diffusive.all()[1300.0]
    assert 250 < cold["temperature_measured_K"] < 350

    result = CliRunner().invoke(
        app, ["conductor", str(store), "--mobile", "Li", "--windows", "2", "-o", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "Haven" in result.output or "haven" in result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(
        [f"conductor-{n}" for n in ("state-points.csv", "arrhenius.csv", "trajectories.csv", "arrhenius.png",
                                    "partial-rdf.png", "rdf-mae.png")]
    )  # fmt: skip
    bad = CliRunner().invoke(app, ["conductor", str(store), "--mobile", "Na"])
    assert bad.exit_code == 1 and "mobile species 'Na'" in bad.output

    from hts_mlff.report import build_report

    page = build_report(store, output=tmp_path / "report", reference="teter", mobile=3).read_text()
    assert "Ionic conductor: Li (reference teter)" in page
    assert "conductor-rdf-mae" in page
    _parity_per_species(store)


def _parity_per_species(store) -> None:
    """A force field that gets every Li force 10 % too large and every O force right: parity
    per species sees exactly that."""
    import dataclasses

    import torch

    import hts_mlff
    from hts_mlff.analysis.parity import force_parity
    from hts_mlff.engine.forcefield import ForceField
    from hts_mlff.forcefields.registry import build_forcefield

    spec = hts_mlff.load_campaign(store.parent / "li2o.yaml").spec
    teter = build_forcefield(spec.forcefields["teter"])

    class LithiumTooStrong(ForceField):
        cutoff_A = teter.cutoff_A

        def forward(self, state, *, neighbors=None, compute_stress=True):
            out = teter.forward(state, neighbors=neighbors, compute_stress=compute_stress)
            scale = torch.where(state.atomic_numbers == 3, 1.1, 1.0).to(out.forces.dtype)
            return dataclasses.replace(out, forces=out.forces * scale[:, None])

        def config(self):
            return {}

    ds = hts_mlff.open_campaign(store)
    parity = force_parity(ds, LithiumTooStrong(), max_frames_per_system=None).sel(system="li2o-96")
    numbers = ds["atomic_numbers"].values[0]
    forces = ds["forces"].values[np.isin(ds["status"].values, ["done"])]
    lithium = forces[:, :, numbers == 3][np.isfinite(forces[:, :, numbers == 3]).all(axis=(2, 3))]
    expected = 0.1 * np.mean(np.abs(lithium))
    assert float(parity["mae_by_species_eV_per_A"].sel(species="Li")) == pytest.approx(expected, rel=1e-2)
    assert float(parity["mae_by_species_eV_per_A"].sel(species="O")) < 1e-2 * expected  # float32 run
