r"""Energy and force violation along trajectories (EGraFFBench eq. 4).

For every stored frame of a force field's trajectory, the reference is evaluated on the same
positions (a post-pass over the store) and

.. math::

    EV(t) = \frac{(\hat E(t) - E(t))^2}{\hat E(t)^2 + E(t)^2}, \qquad
    FV(t) = \frac{\lVert \hat{\mathbf F}(t) - \mathbf F(t) \rVert_2}
                 {\lVert \hat{\mathbf F}(t) \rVert_2 + \lVert \mathbf F(t) \rVert_2}

with Ê, F̂ the force field's (stored) potential energy and forces and E, F the reference's;
‖·‖₂ runs over all atoms and components. Both lie in [0, 1]. The cumulative EV and FV of a
trajectory are geometric means over its frames (0 when any frame agrees exactly).

The trajectory must have saved positions and forces at the same samples. A force field
without an energy (the direct GNN reports zeros) gets EV = NaN.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from ase.data import atomic_masses

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.state import state_from_arrays


def geometric_mean(values: xr.DataArray, dim: str) -> xr.DataArray:
    """exp⟨ln x⟩ over ``dim`` ignoring NaN; 0 where any value is 0."""
    has_zero = (values == 0).any(dim)
    logs = np.log(values.where(values > 0))
    return xr.where(has_zero, 0.0, np.exp(logs.mean(dim, skipna=True)))


def violation(
    ds: xr.Dataset,
    reference: ForceField,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> xr.Dataset:
    """EV(t), FV(t) and their geometric means for every completed trajectory of ``ds``.

    Returns:
        Dataset with ``energy_violation`` and ``force_violation`` (traj, frame_time_fs) and
        ``ev_geometric_mean``, ``fv_geometric_mean`` (traj).
    """
    for name in ("positions", "forces", "cells", "atomic_numbers", "potential_energy_eV"):
        if name not in ds:
            raise ValueError(f"the dataset has no {name!r}; the campaign must save positions and forces")
    times = np.intersect1d(ds["position_time_fs"].values, ds["force_time_fs"].values)
    times = np.intersect1d(times, ds["time_fs"].values)
    n_traj = ds.sizes["traj"]
    ev = np.full((n_traj, len(times)), np.nan)
    fv = np.full((n_traj, len(times)), np.nan)
    status = ds["status"].values
    torch_device = torch.device(device)
    for k in range(n_traj):
        if status[k] not in ("done", "failed"):
            continue
        one = ds.isel(traj=k)
        n = int(one["n_atoms"])
        z = one["atomic_numbers"].values[:n]
        pos = one["positions"].sel(position_time_fs=times).values[:, :n]
        cells = one["cells"].sel(position_time_fs=times).values
        forces = one["forces"].sel(force_time_fs=times).values[:, :n]
        energy = one["potential_energy_eV"].sel(time_fs=times).values
        alive = np.isfinite(pos).all(axis=(1, 2)) & np.isfinite(forces).all(axis=(1, 2)) & np.isfinite(energy)
        if not alive.any():
            continue
        frames = np.flatnonzero(alive)
        state = state_from_arrays(
            list(pos[frames]),
            cells=list(cells[frames]),
            atomic_numbers=[z] * len(frames),
            masses=[atomic_masses[z]] * len(frames),
            device=torch_device,
            dtype=dtype,
        )
        out = reference.forward(state, compute_stress=False)
        ref_e = out.energy.detach().cpu().double().numpy()
        ref_f = out.forces.detach().cpu().double().numpy().reshape(len(frames), n, 3)
        mine_e, mine_f = energy[frames], forces[frames]
        if np.all(mine_e == 0.0):
            ev[k, frames] = np.nan
        else:
            ev[k, frames] = (mine_e - ref_e) ** 2 / (mine_e**2 + ref_e**2)
        diff = np.linalg.norm((mine_f - ref_f).reshape(len(frames), -1), axis=1)
        norms = np.linalg.norm(mine_f.reshape(len(frames), -1), axis=1) + np.linalg.norm(
            ref_f.reshape(len(frames), -1), axis=1
        )
        fv[k, frames] = np.where(norms > 0, diff / np.where(norms > 0, norms, 1.0), 0.0)
    dims = ("traj", "frame_time_fs")
    out = xr.Dataset(
        {"energy_violation": (dims, ev), "force_violation": (dims, fv)},
        coords={"frame_time_fs": times},
    )
    out["ev_geometric_mean"] = geometric_mean(out["energy_violation"], "frame_time_fs")
    out["fv_geometric_mean"] = geometric_mean(out["force_violation"], "frame_time_fs")
    out = out.assign_coords(xr.Coordinates.from_pandas_multiindex(ds.indexes["traj"], "traj"))
    out.attrs = {"analysis": "energy/force violation (EGraFFBench eq. 4)", "reference": type(reference).__name__}
    return out
