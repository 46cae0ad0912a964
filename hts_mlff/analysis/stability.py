r"""Stability statistics of trajectories: failures, survival curves, summary per force field.

Seeds: GraNNField (RDF MAE < 0.02 for a stable structure; atom fusion as a failure mode),
EGraFFBench (stable simulations), the engine's stability guard.

Per trajectory:

- **explosion** — the guard froze it: non-finite values, a force or a per-step displacement
  beyond its bounds (``failure_reason`` 1–3), at ``failure_step``;
- **atom fusion** — the guard saw two atoms closer than ``min_pair_distance_A`` (reason 4);
- **structural failure** — it ran to the end but its g(r) differs from the reference's at the
  same state point by an RDF MAE above 0.02 (needs :func:`structure.compare_structure`);
- time to failure t_f = failure_step × timestep (from the start of the run, equilibration
  included); survivors have t_f = ∞;
- centre-of-mass drift: max_t |⟨r(t)⟩ − ⟨r(0)⟩| over the stored unwrapped positions (Å;
  frames after a failure are NaN and skipped).

Per group (force field, temperature, pressure by default): the survival curve
S(t) = fraction of trajectories with t_f > t, the area under it divided by the run length
(1: nothing failed), and the fraction stable (no failure of any kind).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hts_mlff.engine.guard import FailureReason
from hts_mlff.spec.model import STATE_POINT_AXES as GROUP_AXES


def trajectory_stability(ds: xr.Dataset, *, structure: xr.Dataset | None = None) -> xr.Dataset:
    """Failure kind, time to failure and centre-of-mass drift of every trajectory (lazy-friendly).

    Args:
        ds: an open campaign (``failure_step``, ``failure_reason``; ``positions`` for the drift).
        structure: output of :func:`structure.compare_structure` for the structural criterion.
    """
    timestep = float(ds.attrs.get("timestep_fs", np.nan))
    steps = ds.attrs.get("equilibration_steps", 0) + ds.attrs.get("production_steps", 0)
    step = np.asarray(ds["failure_step"].values)
    reason = np.asarray(ds["failure_reason"].values)
    done = np.isin(np.asarray(ds["status"].values), ("done", "failed"))
    fusion = (reason == int(FailureReason.ATOMS_FUSED)) & done
    explosion = (step >= 0) & ~fusion & done
    structural = np.zeros_like(done)
    if structure is not None:
        mae = np.asarray(structure["rdf_mae"].values, dtype=float)
        structural = (mae > structure.attrs.get("stable_rdf_mae", 0.02)) & (step < 0) & done
    time_to_failure = np.where(step >= 0, step * timestep, np.inf)
    time_to_failure = np.where(done, time_to_failure, np.nan)
    values = {
        "explosion": explosion,
        "atom_fusion": fusion,
        "structural_failure": structural,
        "stable": done & ~(explosion | fusion | structural),
        "time_to_failure_fs": time_to_failure,
    }
    out = xr.Dataset({name: ("traj", value) for name, value in values.items()})
    out = out.assign_coords(xr.Coordinates.from_pandas_multiindex(ds.indexes["traj"], "traj"))
    if "positions" in ds:
        centre = ds["positions"].mean("atom", skipna=True)  # (traj, position_time_fs, xyz)
        moved = np.sqrt(((centre - centre.isel(position_time_fs=0)) ** 2).sum("xyz", skipna=False))
        out["com_drift_A"] = ("traj", moved.max("position_time_fs", skipna=True).data)
    out.attrs = {"run_length_fs": steps * timestep, "timestep_fs": timestep}
    return out


def survival_summary(stability: xr.Dataset, *, n_times: int = 101, by: tuple[str, ...] = GROUP_AXES) -> xr.Dataset:
    """Survival curve, its normalised area and the fraction stable per group of ``by`` values."""
    stability = stability.compute()
    length = float(stability.attrs.get("run_length_fs", np.nan))
    times = np.linspace(0.0, length, n_times)
    traj = stability.indexes["traj"]
    keys = list(zip(*(traj.get_level_values(a) for a in by), strict=True))
    groups = sorted(set(keys), key=lambda k: tuple(str(v) for v in k))
    t_fail = stability["time_to_failure_fs"].values
    stable = stability["stable"].values.astype(bool)
    done = np.isfinite(t_fail) | np.isinf(t_fail)
    curves, auc, fraction, count = [], [], [], []
    for key in groups:
        rows = [k for k, kk in enumerate(keys) if kk == key and done[k]]
        if not rows:
            curves.append(np.full(n_times, np.nan))
            auc.append(np.nan)
            fraction.append(np.nan)
            count.append(0)
            continue
        tf = t_fail[rows]
        curve = (tf[None, :] > times[:, None]).mean(axis=1)
        curves.append(curve)
        auc.append(float(np.trapezoid(curve, times) / length) if length > 0 else np.nan)
        fraction.append(float(stable[rows].mean()))
        count.append(len(rows))
    import pandas as pd

    index = pd.MultiIndex.from_tuples(groups, names=list(by))
    coords = xr.Coordinates.from_pandas_multiindex(index, "group")
    return xr.Dataset(
        {
            "survival": (("group", "time_fs"), np.array(curves)),
            "survival_auc": ("group", np.array(auc)),
            "fraction_stable": ("group", np.array(fraction)),
            "n_trajectories": ("group", np.array(count)),
        },
        coords={**coords, "time_fs": times},
        attrs={"run_length_fs": length},
    )
