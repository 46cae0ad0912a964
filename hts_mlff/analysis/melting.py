r"""Melting point by the solid–liquid interface method (transferability seed §3.4, A.5).

A cell long along z, half crystal and half liquid (``protocol.melt_half``), runs at (T, P) with
the z length alone following P_zz (NP_zT). The per-slab order parameter ψ_s(t)
(:mod:`hts_mlff.engine.observers.interface`) classifies each slab as solid (ψ_s > ``threshold``,
default 0.1, between a liquid slab's ≈ 1/N_s and a crystal's ≈ 0.7) or liquid. With two
interfaces in the periodic cell,

.. math::

    L_s(t) = \frac{n_\text{solid}(t)}{n_\text{slabs}}\, L_z(t), \qquad
    v = \frac12 \frac{dL_s}{dt},

L_z(t) = V(t)/(L_x L_y) from the stored volume (L_x, L_y fixed by the z-only barostat). v is the
least-squares slope over the samples where the solid fraction lies in [0.1, 0.9] (both phases
present; once one phase fills the cell the front has stopped), in m/s: v > 0 the crystal grows
(T < T_m), v < 0 it melts (T > T_m).

Per (force field, system, pressure): the seeds' velocities are averaged per temperature (mean
and standard error), and v(T) = a + b T is fitted by least squares weighted by those errors; T_m = −a/b with its
standard error from the fit covariance (delta method) and a 95 % interval (±1.96 σ). With one
seed per temperature the scatter about the line sets the errors (≥ 3 temperatures); with two
temperatures of one seed each there is no interval. If every
temperature melts (or every one freezes), T_m lies outside the sampled range: it is NaN and
``note`` says on which side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

#: ψ above which a slab counts as crystalline.
SOLID_THRESHOLD = 0.1
#: 1 Å/fs in m/s.
M_PER_S_PER_A_PER_FS = 1e5


def solid_length(ds: xr.Dataset, *, threshold: float = SOLID_THRESHOLD) -> xr.Dataset:
    """Solid fraction and solid length L_s(t) per trajectory.

    Args:
        ds: a campaign dataset with ``interface_order`` (traj, time_fs, slab), ``volume_A3`` and
            ``final_cell``.

    Returns:
        Dataset (traj, time_fs): ``solid_fraction``, ``solid_length_A``, ``length_z_A``.
    """
    for name in ("interface_order", "volume_A3", "final_cell"):
        if name not in ds:
            raise ValueError(f"the dataset has no {name!r}; run the campaign with analyses: [interface]")
    order = ds["interface_order"]
    counted = order.notnull().sum("slab")
    solid = (order > threshold).sum("slab") / counted.where(counted > 0)
    cell = ds["final_cell"]
    area = np.abs(
        cell.isel(cell_vector=0, xyz=0) * cell.isel(cell_vector=1, xyz=1)
        - cell.isel(cell_vector=0, xyz=1) * cell.isel(cell_vector=1, xyz=0)
    )
    length = ds["volume_A3"] / area
    return xr.Dataset(
        {
            "solid_fraction": solid,
            "solid_length_A": (solid * length).assign_attrs(units="Å"),
            "length_z_A": length.assign_attrs(units="Å"),
        },
        attrs={"threshold": threshold},
    )


def interface_velocity(
    lengths: xr.Dataset, *, fraction_window: tuple[float, float] = (0.1, 0.9), min_samples: int = 4
) -> xr.Dataset:
    """Interface velocity v = ½ dL_s/dt per trajectory (m/s), over the two-phase samples.

    Returns:
        Dataset (traj): ``velocity_m_per_s``, ``n_samples`` (used in the fit), and
        ``final_solid_fraction``.
    """
    lo, hi = fraction_window
    time = lengths["time_fs"].to_numpy()
    fraction = np.atleast_2d(lengths["solid_fraction"].to_numpy())
    length = np.atleast_2d(lengths["solid_length_A"].to_numpy())
    velocity = np.full(len(fraction), np.nan)
    used = np.zeros(len(fraction), dtype=int)
    final = np.full(len(fraction), np.nan)
    for k in range(len(fraction)):
        finite = np.isfinite(fraction[k]) & np.isfinite(length[k])
        if finite.any():
            final[k] = fraction[k][finite][-1]
        # the first contiguous run of two-phase samples: the front moves until one phase fills the cell
        inside = finite & (fraction[k] >= lo) & (fraction[k] <= hi)
        if not inside.any():
            continue
        start = int(np.argmax(inside))
        left = np.flatnonzero(~inside[start:])
        chosen = np.arange(start, start + (left[0] if left.size else len(time) - start))
        used[k] = chosen.size
        if chosen.size >= min_samples:
            slope = np.polyfit(time[chosen], length[k][chosen], 1)[0]
            velocity[k] = 0.5 * slope * M_PER_S_PER_A_PER_FS
    out = xr.Dataset(
        {
            "velocity_m_per_s": ("traj", velocity, {"units": "m/s", "long_name": "interface velocity (+: freezing)"}),
            "n_samples": ("traj", used),
            "final_solid_fraction": ("traj", final),
        }
    )
    if "traj" in lengths.coords:
        out = out.assign_coords(lengths["traj"].coords)
    return out


def melting_point(
    velocity: xr.Dataset, *, by: tuple[str, ...] = ("forcefield", "system", "pressure_bar")
) -> pd.DataFrame:
    """T_m per group from v(T) = a + b T over the temperatures' seed means (see module doc).

    Returns:
        One row per group: ``T_m_K``, ``T_m_err_K``, ``T_m_low_K``, ``T_m_high_K`` (95 %),
        ``slope_m_per_s_per_K``, ``n_temperatures``, ``note``; and the per-temperature means are
        in ``velocity_table`` (attribute ``attrs["per_temperature"]`` of the frame).
    """
    index = velocity.indexes["traj"]
    table = pd.DataFrame(
        {axis: index.get_level_values(axis) for axis in (*by, "temperature_K")}
        | {"v": velocity["velocity_m_per_s"].to_numpy()}
    ).dropna(subset=["v"])
    per_t = (
        table.groupby([*by, "temperature_K"])["v"]
        .agg(v_mean="mean", v_sem=lambda x: x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan, n="count")
        .reset_index()
    )
    rows = []
    for key, group in per_t.groupby(list(by)):
        t = group["temperature_K"].to_numpy(dtype=float)
        v = group["v_mean"].to_numpy(dtype=float)
        sem = group["v_sem"].to_numpy(dtype=float)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row |= {"n_temperatures": len(t), "T_m_K": np.nan, "T_m_err_K": np.nan, "note": ""}
        if (v < 0).all():
            row["note"] = f"the crystal melts at every temperature sampled: T_m < {t.min():g} K"
        elif (v > 0).all():
            row["note"] = f"the crystal grows at every temperature sampled: T_m > {t.max():g} K"
        if len(t) < 2:
            row["note"] = row["note"] or "one temperature: no fit"
            rows.append(row)
            continue
        have_errors = bool(np.isfinite(sem).all() and (sem > 0).all())
        if have_errors:  # absolute errors from the seeds: unscaled covariance
            (b, a), cov = np.polyfit(t, v, 1, w=1.0 / sem, cov="unscaled")
        elif len(t) >= 3:  # one seed per temperature: the scatter about the line sets the errors
            (b, a), cov = np.polyfit(t, v, 1, cov=True)
        else:
            (b, a), cov = np.polyfit(t, v, 1), np.full((2, 2), np.nan)
            row["note"] = row["note"] or "two temperatures of one seed each: T_m without an interval"
        row["slope_m_per_s_per_K"] = b
        if not row["note"].startswith("the crystal") and b != 0:
            tm = -a / b
            gradient = np.array([a / b**2, -1.0 / b])  # ∂T_m/∂(b, a)
            err = float(np.sqrt(gradient @ cov @ gradient))
            row |= {"T_m_K": tm, "T_m_err_K": err, "T_m_low_K": tm - 1.96 * err, "T_m_high_K": tm + 1.96 * err}
        rows.append(row)
    out = pd.DataFrame(rows).set_index(list(by))
    out.attrs["per_temperature"] = per_t
    return out


def plot_interface(lengths: xr.Dataset, velocity: xr.Dataset, path: str) -> str:
    """Solid length L_s(t) of every trajectory, coloured by temperature (PNG/PDF/SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    time_ps = lengths["time_fs"].to_numpy() / 1e3
    index = velocity.indexes["traj"] if "traj" in velocity.indexes else None
    temps = np.asarray(index.get_level_values("temperature_K"), dtype=float) if index is not None else None
    cmap = plt.get_cmap("coolwarm")
    span = (np.nanmin(temps), np.nanmax(temps)) if temps is not None else (0.0, 1.0)
    for k in range(lengths.sizes["traj"]):
        colour = cmap((temps[k] - span[0]) / max(span[1] - span[0], 1e-9)) if temps is not None else None
        label = f"{temps[k]:g} K" if temps is not None else None
        ax.plot(time_ps, lengths["solid_length_A"].isel(traj=k), color=colour, lw=1, label=label)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    ax.legend(unique.values(), unique.keys(), fontsize=7)
    ax.set(xlabel="t (ps)", ylabel="solid length L_s (Å)", title="solid–liquid interface")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_melting_point(velocity: xr.Dataset, table: pd.DataFrame, path: str) -> str:
    """Interface velocity against T per group, the weighted line and T_m with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_t = table.attrs["per_temperature"]
    by = list(table.index.names)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, group in per_t.groupby(by):
        label = ", ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        t = group["temperature_K"].to_numpy(dtype=float)
        line = ax.errorbar(t, group["v_mean"], yerr=group["v_sem"], marker="o", ls="none", label=label)
        row = table.loc[key]
        if np.isfinite(row.get("T_m_K", np.nan)):
            grid = np.linspace(t.min(), t.max(), 50)
            slope = row["slope_m_per_s_per_K"]
            ax.plot(grid, slope * (grid - row["T_m_K"]), color=line[0].get_color(), lw=1)
            ax.axvspan(row["T_m_low_K"], row["T_m_high_K"], color=line[0].get_color(), alpha=0.15)
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set(xlabel="T (K)", ylabel="interface velocity (m/s, + freezing)", title="melting point: v(T_m) = 0")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
