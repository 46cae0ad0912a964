"""Stability statistics on crafted trajectories: explosion, atom fusion, structural failure, survival."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from hts_mlff.analysis.stability import survival_summary, trajectory_stability
from hts_mlff.engine import MDProtocol, run_md
from hts_mlff.engine.guard import FailureReason, GuardLimits
from hts_mlff.forcefields import LennardJones
from tests.conftest import argon, batch


def crafted(failure_step, failure_reason, *, drift=None) -> xr.Dataset:
    n = len(failure_step)
    index = pd.MultiIndex.from_arrays(
        [["mlff"] * n, ["ar"] * n, [100.0] * n, [0.0] * n, list(range(n)), [0] * n],
        names=["forcefield", "system", "temperature_K", "pressure_bar", "seed", "window"],
    )
    positions = np.zeros((n, 3, 4, 3))
    for k, d in enumerate(drift or [0.0] * n):
        positions[k, :, :, 0] = np.linspace(0, d, 3)[:, None]
    ds = xr.Dataset(
        {
            "failure_step": ("traj", np.array(failure_step)),
            "failure_reason": ("traj", np.array(failure_reason, dtype=np.int8)),
            "positions": (("traj", "position_time_fs", "atom", "xyz"), positions),
        },
        coords={**xr.Coordinates.from_pandas_multiindex(index, "traj"), "status": ("traj", ["done"] * n)},
        attrs={"timestep_fs": 2.0, "equilibration_steps": 0, "production_steps": 1000},
    )
    return ds


def test_failures_are_classified_with_their_times_and_survival_is_summarised():
    ds = crafted(
        [-1, 250, 500, -1],
        [0, FailureReason.NON_FINITE, FailureReason.ATOMS_FUSED, 0],
        drift=[0.0, 0.0, 0.0, 1.5],
    )
    structure = xr.Dataset(
        {"rdf_mae": ("traj", [0.01, np.nan, np.nan, 0.05])}, attrs={"stable_rdf_mae": 0.02}
    ).assign_coords(traj=ds["traj"])
    stab = trajectory_stability(ds, structure=structure)
    assert stab["explosion"].values.tolist() == [False, True, False, False]
    assert stab["atom_fusion"].values.tolist() == [False, False, True, False]
    assert stab["structural_failure"].values.tolist() == [False, False, False, True]
    assert stab["stable"].values.tolist() == [True, False, False, False]
    np.testing.assert_array_equal(stab["time_to_failure_fs"].values, [np.inf, 500.0, 1000.0, np.inf])
    np.testing.assert_allclose(stab["com_drift_A"].values, [0, 0, 0, 1.5])

    summary = survival_summary(stab, n_times=5)  # t = 0, 500, 1000, 1500, 2000 fs
    group = summary.isel(group=0)
    np.testing.assert_allclose(group["survival"].values, [1.0, 0.75, 0.5, 0.5, 0.5])
    assert float(group["fraction_stable"]) == 0.25
    area = np.trapezoid([1.0, 0.75, 0.5, 0.5, 0.5], [0, 500, 1000, 1500, 2000]) / 2000
    assert float(group["survival_auc"]) == pytest.approx(area)


def test_the_engine_guard_flags_a_fusing_and_an_exploding_replica():
    """Real trajectories: one replica squeezed until atoms fuse, one so hot that its atoms fly
    more than the displacement bound in one step (an explosion), one healthy."""
    lj = LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5)
    squeezed = argon(a=3.4, repeat=3, rattle=0.3, seed=1)  # neighbours at 2.4 Å
    systems = [argon(repeat=3), squeezed, argon(repeat=3, seed=2)]
    state = batch(systems)
    protocol = MDProtocol(
        timestep_fs=10.0,
        production_steps=40,
        sample_every_steps=10,
        guard=GuardLimits(max_force_eV_per_A=50.0, max_step_displacement_A=0.5, min_pair_distance_A=2.5),
    )
    # 10⁶ K: thermal speeds ~0.14 Å/fs, so atoms move ~1.4 Å per 10 fs step.
    temperature = torch.tensor([50.0, 50.0, 1e6])
    result = run_md(
        state, lj, protocol=protocol, temperature_K=temperature, pressure_bar=torch.zeros(3), keys=[1, 2, 3]
    )
    assert result["failure_step"][0] == -1
    assert result["failure_reason"][1] == FailureReason.ATOMS_FUSED and result["failure_step"][1] >= 0
    exploded = FailureReason(int(result["failure_reason"][2]))
    assert exploded in (FailureReason.DISPLACEMENT_BOUND, FailureReason.FORCE_BOUND, FailureReason.NON_FINITE)
    assert 0 <= result["failure_step"][2] <= 10  # caught at the first check
