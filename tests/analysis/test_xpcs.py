"""Scattering and XPCS on synthetic trajectories with closed-form answers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from hts_mlff.analysis.scattering import (
    density_modes,
    intermediate_scattering,
    self_intermediate_scattering,
    shell_vectors,
)
from hts_mlff.analysis.xpcs import (
    contrast_of_exponential_decay,
    correlation_time,
    decay_rate_of_self_part,
    fit_decay_rate,
    g2,
    optical_contrast,
    pulse_average,
)

BOX_A = 20.0
DT_FS = 10.0


def _dataset(positions: np.ndarray, *, box_A: float = BOX_A, chunks: dict | None = None) -> xr.Dataset:
    """A campaign-like dataset of (traj, T, n, 3) unwrapped positions in a fixed cubic box."""
    n_traj, n_t, n, _ = positions.shape
    cells = np.broadcast_to(np.eye(3) * box_A, (n_traj, n_t, 3, 3)).copy()
    ds = xr.Dataset(
        {
            "positions": (("traj", "position_time_fs", "atom", "xyz"), positions),
            "cells": (("traj", "position_time_fs", "cell_vector", "xyz"), cells),
            "n_atoms": ("traj", np.full(n_traj, n)),
        },
        coords={"position_time_fs": np.arange(n_t) * DT_FS, "traj": np.arange(n_traj)},
    )
    return ds.chunk(chunks) if chunks else ds


def _brownian(*, n_traj: int = 2, n_t: int = 3000, n: int = 300, diffusion: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, BOX_A, (n_traj, 1, n, 3))
    steps = rng.normal(0.0, np.sqrt(2 * diffusion * DT_FS), (n_traj, n_t - 1, n, 3))
    return start + np.concatenate([np.zeros((n_traj, 1, n, 3)), np.cumsum(steps, axis=1)], axis=1)


def test_shell_vectors_are_allowed_unique_and_in_the_shell():
    cell = np.diag([20.0, 20.0, 30.0])
    q = shell_vectors(cell, q_per_A=1.0, width_per_A=0.1)
    n = q @ cell.T / (2 * np.pi)
    np.testing.assert_allclose(n, np.round(n), atol=1e-9)  # integer multiples of the reciprocal vectors
    norm = np.linalg.norm(q, axis=1)
    assert ((norm >= 0.95) & (norm < 1.05)).all()
    keys = {tuple(np.round(v, 9)) for v in q}
    assert not any(tuple(np.round(-v, 9)) in keys for v in q)  # one of each ±q
    assert len(shell_vectors(cell, q_per_A=1.0, width_per_A=0.1, max_vectors=5)) == 5


def test_a_shell_without_allowed_vectors_is_refused_with_the_smallest_q():
    with pytest.raises(ValueError, match=r"no allowed q vector .* smallest \|q\| is 0\.6283"):
        shell_vectors(np.eye(3) * 10.0, q_per_A=0.3, width_per_A=0.05)


def test_self_part_of_brownian_walkers_decays_at_d_q_squared():
    diffusion = 5e-4  # Å²/fs
    ds = _dataset(_brownian(diffusion=diffusion), chunks={"position_time_fs": 500})
    q = 1.0
    fs = self_intermediate_scattering(ds, q_per_A=q, width_per_A=0.1, max_atoms=None, max_lag_fs=6000)
    lag = fs["lag_fs"].to_numpy()
    measured = fs["F_s"].mean("traj").to_numpy()
    shell = shell_vectors(np.eye(3) * BOX_A, q_per_A=q, width_per_A=0.1, max_vectors=12)
    expected = np.mean(np.exp(-diffusion * np.sum(shell**2, axis=1)[:, None] * lag[None, :]), axis=0)
    np.testing.assert_allclose(measured[:300], expected[:300], atol=0.02)
    fit = decay_rate_of_self_part(fs["F_s"])
    q2 = float(np.mean(np.sum(shell**2, axis=1)))
    np.testing.assert_allclose(fit["gamma_per_fs"].to_numpy(), diffusion * q2, rtol=0.1)


def test_self_part_of_an_ideal_gas_is_gaussian_in_time():
    rng = np.random.default_rng(3)
    sigma_v = 0.002  # Å/fs per component
    start = rng.uniform(0, BOX_A, (1, 1, 400, 3))
    velocity = rng.normal(0, sigma_v, (1, 1, 400, 3))
    times = np.arange(400)[None, :, None, None] * DT_FS
    fs = self_intermediate_scattering(_dataset(start + velocity * times), q_per_A=1.5, width_per_A=0.1, max_atoms=None)
    lag = fs["lag_fs"].to_numpy()
    shell = shell_vectors(np.eye(3) * BOX_A, q_per_A=1.5, width_per_A=0.1, max_vectors=12)
    expected = np.mean(np.exp(-0.5 * sigma_v**2 * np.sum(shell**2, axis=1)[:, None] * lag[None, :] ** 2), axis=0)
    np.testing.assert_allclose(fs["F_s"].to_numpy()[0, :60], expected[:60], atol=0.03)


def test_g2_of_independent_scatterers_obeys_the_siegert_relation():
    diffusion = 5e-4
    positions = _brownian(n_traj=4, diffusion=diffusion, n_t=12000, n=100, seed=1)
    ds = _dataset(positions, chunks={"traj": 1, "position_time_fs": 1000})
    modes = density_modes(ds, q_per_A=1.0, width_per_A=0.1)
    assert modes["rho"].chunks is not None  # lazy until asked
    q2 = float(np.nanmean(modes["q_norm"].to_numpy() ** 2))
    curve = g2(modes, max_lag_fs=8000)
    fit = fit_decay_rate(curve.mean("traj"))  # seeds averaged, then fitted
    np.testing.assert_allclose(float(fit["gamma_per_fs"][0]), diffusion * q2, rtol=0.1)
    np.testing.assert_allclose(float(fit["baseline"][0]), 1.0, atol=0.03)
    np.testing.assert_allclose(fit["beta_0"].to_numpy(), 1.0, atol=0.08)  # exponential intensities
    collective = intermediate_scattering(modes, max_lag_fs=8000)
    np.testing.assert_allclose(collective["f"].isel(lag_fs=0).to_numpy(), 1.0, atol=0.1)  # S(q) = 1
    lag = collective["lag_fs"].to_numpy()
    np.testing.assert_allclose(collective["F"].mean("traj")[:100], np.exp(-diffusion * q2 * lag[:100]), atol=0.08)


def test_contrast_falls_with_pulse_width_as_for_an_exponential_decay():
    diffusion = 5e-4
    ds = _dataset(_brownian(diffusion=diffusion, n_t=4000, n=400, seed=2))
    modes = density_modes(ds, q_per_A=1.0, width_per_A=0.1)
    q2 = float(np.nanmean(modes["q_norm"].to_numpy() ** 2))
    frames = np.array([1, 20, 50, 100, 200, 400, 800])
    contrast = optical_contrast(modes, pulse_frames=frames).mean("traj").to_numpy()
    gamma = diffusion * q2
    # the discrete pulse: (1/n²) Σ_ij exp(−2Γ|i − j|δt)
    expected = [
        np.mean(np.exp(-2 * gamma * DT_FS * np.abs(np.subtract.outer(np.arange(n), np.arange(n))))) for n in frames
    ]
    np.testing.assert_allclose(contrast / contrast[0], expected, atol=0.06)
    # the continuous closed form is its limit
    np.testing.assert_allclose(contrast_of_exponential_decay(frames * DT_FS, gamma_per_fs=gamma), expected, atol=0.02)
    tau = correlation_time(optical_contrast(modes, pulse_frames=np.arange(1, 600, 10)))
    widths = np.linspace(1, 6000, 6000)
    truth = widths[np.argmin(np.abs(contrast_of_exponential_decay(widths, gamma_per_fs=gamma) - 0.5))]
    np.testing.assert_allclose(tau.to_numpy(), truth, rtol=0.15)


def test_pulse_average_is_a_running_mean():
    x = np.arange(10.0)[:, None]
    np.testing.assert_allclose(pulse_average(x, 3)[:, 0], [1, 2, 3, 4, 5, 6, 7, 8])
    with pytest.raises(ValueError):
        pulse_average(x, 0)


def test_a_changing_cell_is_refused():
    positions = _brownian(n_traj=1, n_t=10, n=5, diffusion=1e-4)
    ds = _dataset(positions)
    ds["cells"][0, 5] = np.eye(3) * 21.0
    with pytest.raises(ValueError, match="fixed cell"):
        density_modes(ds, q_per_A=1.0, width_per_A=0.1)


LIQUID = """\
name: liquid-xpcs
store: liquid.zarr
systems:
  ar256:
    kind: file
    path: {structure}
forcefields:
  lj:
    kind: lennard_jones
    epsilon_eV: 0.010327
    sigma_A: 3.405
    cutoff_A: 8.5
protocol:
  ensemble: nve
  equilibration_ensemble: nvt
  timestep_fs: 10.78
  equilibration_steps: 300
  production_steps: 4000
  sample_every_steps: 10
  friction_per_fs: 0.001
  save_positions_every_samples: 1
sweep:
  temperature_K: [100]
  seed: [0, 1, 2]
execution:
  pack_size: 3
  dtype: float64
cluster:
  kind: local
  dashboard_address: ":0"
"""


@pytest.mark.timeout(300)
def test_liquid_argon_self_decay_meets_the_msd_diffusion_and_the_command_writes_figures(tmp_path, dask_client):
    from typer.testing import CliRunner

    import hts_mlff
    from hts_mlff.cli import app
    from hts_mlff.liquid_dynamics import xpcs_study
    from tests.conftest import REPO

    path = tmp_path / "liquid.yaml"
    path.write_text(LIQUID.format(structure=REPO / "campaigns" / "structures" / "ar256-liquid-100K.extxyz"))
    hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)
    store = tmp_path / "liquid.zarr"
    study = xpcs_study(hts_mlff.open_campaign(store), q_grid_per_A=[1.0], pulse_frames=[1, 2, 5, 10, 20, 40, 80])
    row = study.dispersion.isel(group=0, q_per_A=0)
    # Γ_s(q) → D⟨q²⟩ (Gaussian regime), D from the package's own MSD. 3 × 43 ps of 256 atoms: the
    # tail of F_s carries ~5 % noise (a handful of independent time origins), hence 12 %; the
    # trajectories themselves change with the thread count (chaos), so the margin must hold for any.
    np.testing.assert_allclose(float(row["gamma_self_per_ps"]), float(row["D_q2_per_ps"]), rtol=0.12)
    fits = study.fits.isel(group=0)
    assert 0.5 < float(fits["beta_0"]) < 1.2  # speckle intensities near exponential
    assert 500 < float(fits["correlation_time_fs"]) < 8000  # β_Δ halves within the run
    assert np.all(np.diff(study.contrast.isel(group=0).to_numpy()) < 0.02)  # contrast falls with the pulse

    runner = CliRunner()
    out = tmp_path / "xpcs"
    result = runner.invoke(app, ["xpcs", str(store), "--q-grid", "1.0,1.844", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {
        "xpcs-g2.png",
        "xpcs-dispersion.png",
        "xpcs-contrast.png",
        "xpcs-fits.csv",
    }
    result = runner.invoke(app, ["xpcs", str(store), "--q", "0.1", "--width", "0.02"])
    assert result.exit_code == 1 and "no allowed q vector" in result.output


def test_f_and_f_self_agree_with_dynasor(tmp_path):
    """Cross-check against the optional library dynasor (``pip install hts-mlff[crosscheck]``)."""
    dynasor = pytest.importorskip("dynasor")
    from ase import Atoms
    from ase.io import write

    positions = _brownian(n_traj=1, n_t=300, n=60, diffusion=5e-4, seed=4)
    write(tmp_path / "b.extxyz", [Atoms("Ar60", positions=p, cell=np.eye(3) * BOX_A, pbc=True) for p in positions[0]])
    ds = _dataset(positions)
    modes = density_modes(ds, q_per_A=1.0, width_per_A=0.1, max_vectors=None)
    ours = intermediate_scattering(modes, max_lag_fs=40 * DT_FS)["f"].to_numpy()[0]
    ours_self = self_intermediate_scattering(
        ds, q_per_A=1.0, width_per_A=0.1, max_vectors=None, max_atoms=None, max_lag_fs=40 * DT_FS
    )["F_s"].to_numpy()[0]
    trajectory = dynasor.Trajectory(str(tmp_path / "b.extxyz"), trajectory_format="extxyz")
    theirs = dynasor.compute_dynamic_structure_factors(
        trajectory,
        modes["q_vectors"].to_numpy()[0],
        dt=DT_FS,
        window_size=40,
        calculate_incoherent=True,
        logging_interval=0,
    )
    np.testing.assert_allclose(ours, theirs.Fqt_coh.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(ours_self, theirs.Fqt_incoh.mean(axis=0), atol=1e-9)
