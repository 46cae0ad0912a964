"""Collective (charge) MSD and the Haven ratio on walkers with known correlations."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from hts_mlff.analysis.conductivity import charge_msd, haven_ratio
from hts_mlff.analysis.diffusion import diffusion_coefficient, msd


def _walkers(*, n_traj: int, n_t: int, n_mobile: int, n_frame: int, paired: bool, seed: int = 0) -> xr.Dataset:
    """Mobile ions hopping 1 Å in random directions (each in its own walk, or in pairs that hop
    together: a concerted hop) among immobile framework atoms that anchor the centre of mass."""
    rng = np.random.default_rng(seed)
    n_walks = n_mobile // 2 if paired else n_mobile
    steps = rng.normal(0, 1.0, (n_traj, n_t - 1, n_walks, 3)) * 0.3
    walk = np.concatenate([np.zeros((n_traj, 1, n_walks, 3)), np.cumsum(steps, axis=1)], axis=1)
    mobile = np.repeat(walk, 2, axis=2) if paired else walk
    mobile = mobile + rng.uniform(0, 20, (n_traj, 1, n_mobile, 3))
    frame = np.broadcast_to(rng.uniform(0, 20, (n_traj, 1, n_frame, 3)), (n_traj, n_t, n_frame, 3))
    positions = np.concatenate([mobile, frame], axis=2)
    charges = np.concatenate([np.ones(n_mobile), np.zeros(n_frame)])
    return xr.Dataset(
        {
            "positions": (("traj", "position_time_fs", "atom", "xyz"), positions),
            "charge": (("traj", "atom"), np.broadcast_to(charges, (n_traj, n_mobile + n_frame)).copy()),
        },
        coords={"position_time_fs": np.arange(n_t) * 100.0},
    )


def _haven(ds: xr.Dataset) -> float:
    window = (2000.0, 20000.0)
    mobile = ds["charge"] != 0
    tracer = diffusion_coefficient(
        msd(ds["positions"], atom_mask=mobile, remove_com_drift=False).mean("traj"), fit_window_fs=window
    )
    collective = diffusion_coefficient(
        charge_msd(ds["positions"], charges=ds["charge"], remove_com_drift=False).mean("traj"), fit_window_fs=window
    )
    return float(haven_ratio(tracer["D_A2_per_fs"], collective["D_A2_per_fs"]))


def test_uncorrelated_ions_have_a_haven_ratio_of_one():
    assert _haven(_walkers(n_traj=60, n_t=500, n_mobile=20, n_frame=20, paired=False)) == pytest.approx(1.0, abs=0.15)


def test_ions_hopping_in_pairs_have_a_haven_ratio_of_one_half():
    assert _haven(_walkers(n_traj=60, n_t=500, n_mobile=20, n_frame=20, paired=True, seed=1)) == pytest.approx(
        0.5, abs=0.1
    )


def test_the_collective_msd_of_one_ion_is_its_tracer_msd():
    ds = _walkers(n_traj=2, n_t=200, n_mobile=1, n_frame=5, paired=False, seed=2)
    mobile = ds["charge"] != 0
    np.testing.assert_allclose(
        charge_msd(ds["positions"], charges=ds["charge"]).to_numpy(),
        msd(ds["positions"], atom_mask=mobile).to_numpy(),
        rtol=1e-10,
    )
