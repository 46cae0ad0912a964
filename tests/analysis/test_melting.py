"""Interface velocity and melting point on synthetic profiles with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hts_mlff.analysis.melting import interface_velocity, melting_point, solid_length

LX = LY = 21.6
LZ = 86.4
N_SLABS = 16


def _profiles(velocities_m_per_s: list[float], *, n_t: int = 60, dt_fs: float = 1000.0, seed: int = 0) -> xr.Dataset:
    """Slabs that turn solid (ψ = 0.7) or liquid (ψ = 0.01) as two fronts move at the given speeds."""
    rng = np.random.default_rng(seed)
    time = np.arange(n_t) * dt_fs
    order = np.empty((len(velocities_m_per_s), n_t, N_SLABS))
    for k, v in enumerate(velocities_m_per_s):
        solid = np.clip(LZ / 2 + 2 * v * 1e-5 * time, 0, LZ)  # Å; two fronts
        n_solid = np.floor(solid / (LZ / N_SLABS) + 1e-9).astype(int)
        for t, n in enumerate(n_solid):
            order[k, t] = np.where(np.arange(N_SLABS) < n, 0.7, 0.01) + rng.normal(0, 0.005, N_SLABS)
    cell = np.diag([LX, LY, LZ])
    return xr.Dataset(
        {
            "interface_order": (("traj", "time_fs", "slab"), order),
            "volume_A3": (("traj", "time_fs"), np.full((len(velocities_m_per_s), n_t), LX * LY * LZ)),
            "final_cell": (
                ("traj", "cell_vector", "xyz"),
                np.broadcast_to(cell, (len(velocities_m_per_s), 3, 3)).copy(),
            ),
        },
        coords={"time_fs": time},
    )


def test_a_planted_front_speed_is_recovered():
    lengths = solid_length(_profiles([30.0, -25.0, 0.0]))
    v = interface_velocity(lengths)["velocity_m_per_s"].to_numpy()
    np.testing.assert_allclose(v, [30.0, -25.0, 0.0], atol=2.5)  # slab quantisation: a slab per ~10 m/s
    assert lengths["solid_fraction"].isel(traj=0, time_fs=0) == pytest.approx(0.5)


def test_the_fit_stops_when_one_phase_fills_the_cell():
    lengths = solid_length(_profiles([40.0], n_t=200))  # solid everywhere after ~108 ps
    out = interface_velocity(lengths)
    assert float(out["final_solid_fraction"][0]) == 1.0
    assert float(out["velocity_m_per_s"][0]) == pytest.approx(40.0, rel=0.05)
    assert int(out["n_samples"][0]) < 200


def _velocities(temperatures: np.ndarray, seeds: int, *, tm: float, slope: float, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [(("lj", "slab", 0.0, t, s)) for t in temperatures for s in range(seeds)]
    index = pd.MultiIndex.from_tuples(rows, names=["forcefield", "system", "pressure_bar", "temperature_K", "seed"])
    v = np.array([slope * (tm - t) + rng.normal(0, noise) for _, _, _, t, _ in rows])
    ds = xr.Dataset({"velocity_m_per_s": ("traj", v)})
    return ds.assign_coords(xr.Coordinates.from_pandas_multiindex(index, "traj"))


def test_melting_point_interval_covers_the_planted_temperature():
    hits = 0
    for trial in range(40):
        table = melting_point(
            _velocities(np.array([70.0, 80.0, 90.0, 100.0]), 4, tm=84.0, slope=1.5, noise=4.0, seed=trial)
        )
        row = table.iloc[0]
        hits += row["T_m_low_K"] <= 84.0 <= row["T_m_high_K"]
    assert hits >= 34  # nominal 95 % of 40 is 38; allow sampling scatter


def test_a_crystal_that_melts_at_every_temperature_is_named():
    table = melting_point(_velocities(np.array([70.0, 80.0, 90.0]), 2, tm=40.0, slope=1.0, noise=0.1))
    row = table.iloc[0]
    assert np.isnan(row["T_m_K"]) and "melts at every temperature" in row["note"] and "< 70" in row["note"]


SLAB = """\
name: slab
store: slab.zarr
systems:
  slab:
    kind: fcc
    element: Ar
    lattice_A: 5.4
    repeat: [3, 3, {nz}]
forcefields:
  lj:
    kind: lennard_jones
    epsilon_eV: 0.010327
    sigma_A: 3.405
    cutoff_A: 7.5
protocol:
  ensemble: npt
  barostat_axes: z
  timestep_fs: 10.78
  equilibration_steps: 900
  production_steps: 1500
  sample_every_steps: 100
  friction_per_fs: 0.005
  barostat_time_constant_fs: 1000
  melt_half: {{temperature_K: 250, steps: 800}}
analyses: [thermo, interface]
sweep:
  temperature_K: [40, 140]
  seed: [0]
execution:
  pack_size: 2
  dtype: float64
cluster:
  kind: local
  dashboard_address: ":0"
"""


@pytest.mark.timeout(300)
def test_a_slab_freezes_when_cold_and_melts_when_hot_end_to_end(tmp_path, dask_client):
    from typer.testing import CliRunner

    import hts_mlff
    from hts_mlff.cli import app
    from hts_mlff.spec.load import CampaignError

    (tmp_path / "short.yaml").write_text(SLAB.format(nz=4))
    with pytest.raises(CampaignError, match="no room for two phases"):
        hts_mlff.load_campaign(tmp_path / "short.yaml")
    (tmp_path / "slab.yaml").write_text(SLAB.format(nz=10))
    hts_mlff.run_campaign(hts_mlff.load_campaign(tmp_path / "slab.yaml"), client=dask_client)
    ds = hts_mlff.open_campaign(tmp_path / "slab.zarr")
    order = ds["interface_order"].isel(time_fs=0).to_numpy()  # production start: two phases
    assert (order[:, :4] > 0.3).all() and (order[:, 6:9].min(axis=1) < 0.1).all()
    cell = ds["final_cell"].to_numpy()
    np.testing.assert_allclose(cell[:, 0, 0], 16.2, atol=1e-9)  # lateral lattice kept
    lengths = solid_length(ds)
    fraction = lengths["solid_fraction"].to_numpy()
    assert fraction[1, -1] == 0.0  # 140 K: all liquid at the end
    assert fraction[0, -1] >= fraction[0, 0]  # 40 K: the crystal does not shrink
    result = CliRunner().invoke(app, ["melting", str(tmp_path / "slab.zarr"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "melting-point.png").exists() and "interface velocity" in result.output
    store = str(tmp_path / "slab.zarr")
    result = CliRunner().invoke(app, ["melting", store, "--solid", store])
    assert result.exit_code == 1 and "--solid and --liquid go together" in result.output
    # the slab store standing in for both bulk phases: no latent heat between them, a clear refusal
    result = CliRunner().invoke(app, ["melting", store, "--solid", store, "--liquid", store])
    assert result.exit_code == 1 and "truncation correction" in result.output, result.output
