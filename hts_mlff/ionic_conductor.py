r"""Ionic-conductor study of a campaign store (GraNNField workflow, seed ``grannfield``).

The ``hts-mlff conductor`` command and the report's ionic-conductor section are thin shells
around :func:`conductor_study`. For every state point (force field, system, T, P) the seeds'
trajectories give:

- **tracer D of every species** (MSD of that species' unwrapped positions in the frame of the
  framework, i.e. the centroid drift of the other species removed:
  :mod:`hts_mlff.analysis.diffusion`), mean over seeds with a Student-t interval;
- **collective (charge) D_σ of the mobile ion** from the seed-averaged collective MSD
  (:func:`hts_mlff.analysis.conductivity.charge_msd`) and the **Haven ratio** H_R = D*/D_σ
  with a leave-one-seed-out jackknife error, over the diffusive trajectories (at least two).
  One trajectory has one collective coordinate, so D_σ needs seeds;
- **σ(T)** by Nernst–Einstein from the tracer D (the seed's σ, H_R = 1) per trajectory, mean
  over seeds with its interval, and σ/H_R beside it (the Haven-corrected conductivity);
- an **Arrhenius fit** σT = A exp(−E_a/k_B T) over every diffusive trajectory's σ (its mobile
  ions' MSD reaches ``min_msd_A2``, about one hop) at its measured temperature of a (force field,
  system, pressure) and **σ(300 K)** extrapolated with its interval
  (:mod:`hts_mlff.analysis.arrhenius`, Student t on the scatter);
- **stability over time windows** (the seed's criterion): the production run is cut into
  ``n_windows`` windows; in each, the partial g_ab(r) of every species pair is compared with the
  reference force field's g_ab(r) at the same state point (its seeds and windows pooled) by
  the mean absolute error over r, averaged over pairs. The reference's own windows measured
  the same way give the sampling-noise floor of that MAE (their worst window, mean over the
  reference's seeds; it shrinks with frames and atoms and is not zero: a short window of the
  reference itself does not meet the pooled curve). A trajectory is stable when no window
  exceeds the floor by ``mae_threshold`` or more (the seed's 0.02, a visually satisfactory
  match). Both the raw MAE and the floor are reported.

σ uses the formal charge number of the mobile ion (``charge_number``, 1 for Li⁺), also when the
force field gives it a partial charge: the current is carried by whole ions.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
import pandas as pd
import xarray as xr
from ase.data import chemical_symbols
from scipy import stats

from hts_mlff.analysis.arrhenius import arrhenius_fit
from hts_mlff.analysis.conductivity import charge_msd, nernst_einstein, number_density_per_cm3
from hts_mlff.analysis.diffusion import diffusion_coefficient, msd
from hts_mlff.analysis.phonon_report import _pyplot, save_figure
from hts_mlff.analysis.structure import STABLE_RDF_MAE, partial_rdfs, rdf_mae
from hts_mlff.units import BOLTZMANN_EV_PER_K

#: Axes of a state point (seeds are its samples).
STATE_POINT_AXES = ("forcefield", "system", "temperature_K", "pressure_bar")


@dataclass
class ConductorStudy:
    """Tables of :func:`conductor_study`.

    Attributes:
        per_trajectory: (traj) ``D_<symbol>_cm2_per_s`` per species, ``sigma_S_per_cm`` (tracer
            Nernst–Einstein) at ``temperature_measured_K`` (mean kinetic temperature), ``rdf_mae_max``
            (worst window) and ``stable`` (no window above the noise floor + threshold);
            trajectories not finished are NaN / False.
        state_points: one row per (force field, system, T, P): tracer D of each species (mean,
            interval), D_σ, Haven ratio ± jackknife error, σ (mean, interval), σ/H_R, n_seeds,
            fraction of stable trajectories.
        arrhenius: one row per (force field, system, P): E_a with interval, σ(300 K) with
            interval, n points.
        windows: (traj, time_window) ``rdf_mae`` (mean over pairs), (traj, time_window, pair)
            ``rdf_mae_pair`` and (traj) ``rdf_mae_floor``; window start/stop times as coords.
        partial_rdf: (group, pair, r_A) partial g_ab(r) per state point, seeds and windows pooled.
    """

    per_trajectory: pd.DataFrame
    state_points: pd.DataFrame
    arrhenius: pd.DataFrame
    windows: xr.Dataset
    partial_rdf: xr.DataArray
    mobile: str
    mae_threshold: float


def species_of(ds: xr.Dataset) -> list[int]:
    """Atomic numbers present in the store (0 marks padding and is left out)."""
    numbers = np.unique(ds["atomic_numbers"].values)
    return [int(z) for z in numbers if z > 0]


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values: Student-t interval of the mean."""
    v = values[np.isfinite(values)]
    n = len(v)
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, np.nan, np.nan, n
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half, n


def conductor_study(
    ds: xr.Dataset,
    *,
    reference: str,
    mobile: str,
    charge_number: float = 1.0,
    n_windows: int = 4,
    mae_threshold: float = STABLE_RDF_MAE,
    r_max_A: float = 8.0,
    n_bins: int = 80,
    min_msd_A2: float = 4.0,
    extrapolate_to_K: float = 300.0,
    confidence: float = 0.95,
) -> ConductorStudy:
    """The ionic-conductor tables of an open campaign store (see the module docstring).

    Args:
        ds: ``hts_mlff.open_campaign(store)`` with saved positions and a NPT/NVT/NVE protocol.
        reference: the reference force field's name in the campaign.
        mobile: chemical symbol of the mobile ion (e.g. "Li").
        charge_number: its formal charge number z (Nernst–Einstein).
        n_windows: time windows of the stability criterion.
        mae_threshold: RDF MAE above the reference's noise floor that marks a window unstable.
        r_max_A, n_bins: partial g(r) histograms (Å; bins of r_max/n_bins).
        min_msd_A2: a trajectory counts as diffusive (and enters the Arrhenius fit) when the
            mobile ion's fitted MSD reaches this at the end of the fit window (4 Å²: about one
            hop); below it the ions only rattle and D measures nothing but noise.
        extrapolate_to_K: temperature of the extrapolated σ.
        confidence: of every interval.
    """
    if "positions" not in ds:
        raise ValueError("the store saved no positions (protocol.save_positions_every_samples)")
    index = ds.indexes["traj"]
    forcefields = list(dict.fromkeys(index.get_level_values("forcefield")))
    if reference not in forcefields:
        raise ValueError(f"reference {reference!r} is not a force field of the campaign ({forcefields})")
    present = species_of(ds)
    if mobile not in chemical_symbols or chemical_symbols.index(mobile) not in present:
        raise ValueError(f"mobile species {mobile!r} is not in the store (species: "
                         f"{[chemical_symbols[z] for z in present]})")  # fmt: skip
    z_mobile = chemical_symbols.index(mobile)
    done = ds["status"].to_numpy() == "done"
    framework = (ds["atomic_numbers"] != z_mobile) & (ds["atomic_numbers"] > 0)
    if not bool(framework.any()):
        raise ValueError(f"every atom is {mobile}: a conductor study needs a framework of other species")
    # displacements in the frame of the framework (the other species): the conduction frame;
    # an all-atom mean would take most of the mobile ions' collective motion out with it
    positions = ds["positions"] - ds["positions"].where(framework).mean("atom", skipna=True)

    per_traj = pd.DataFrame({axis: index.get_level_values(axis) for axis in (*STATE_POINT_AXES, "seed")})
    measured = ds["kinetic_temperature_K"].mean("time_fs") if "kinetic_temperature_K" in ds else None
    per_traj["temperature_measured_K"] = (
        per_traj["temperature_K"].to_numpy(dtype=float) if measured is None else measured.compute().values
    )
    for z in present:
        mask = ds["atomic_numbers"] == z
        fitted = diffusion_coefficient(msd(positions, atom_mask=mask, remove_com_drift=False)).compute()
        per_traj[f"D_{chemical_symbols[z]}_cm2_per_s"] = np.where(done, fitted["D_cm2_per_s"].values, np.nan)
        if z == z_mobile:  # the MSD the fit reaches at the end of its window
            reach = 6.0 * fitted["D_A2_per_fs"].values * fitted["fit_stop_fs"].values
            per_traj["diffusive"] = done & (reach >= min_msd_A2)
    d_mobile = per_traj[f"D_{mobile}_cm2_per_s"].to_numpy()
    per_traj["sigma_S_per_cm"] = nernst_einstein(
        d_mobile,
        number_density_per_cm3=number_density_per_cm3(ds, atomic_number=z_mobile).compute().values,
        charge=charge_number,
        temperature_K=per_traj["temperature_measured_K"].to_numpy(),
    )
    charges = (ds["atomic_numbers"] == z_mobile).astype(float)
    collective = charge_msd(positions, charges=charges, remove_com_drift=False).compute()
    g = partial_rdfs(
        ds, pairs=list(combinations_with_replacement(present, 2)), n_windows=n_windows, r_max_A=r_max_A, n_bins=n_bins
    ).compute()
    g = g.where(xr.DataArray(done, dims="traj"))
    windows = _window_stability(g, reference=reference, done=done)
    per_traj["rdf_mae_max"] = windows["rdf_mae"].max("time_window").values
    per_traj["stable"] = done & stable_trajectories(windows, mae_threshold=mae_threshold)

    rows, partial = [], []
    groups = per_traj.groupby(list(STATE_POINT_AXES), sort=False).indices
    for key, members in groups.items():
        members = np.asarray(members)
        finished = members[done[members]]
        row = dict(zip(STATE_POINT_AXES, key, strict=True))
        row["temperature_measured_K"] = float(np.nanmean(per_traj["temperature_measured_K"].to_numpy()[finished]))
        for z in present:
            name = chemical_symbols[z]
            mean, low, high, _ = _interval(per_traj[f"D_{name}_cm2_per_s"].to_numpy()[members], confidence)
            row.update({f"D_{name}_cm2_per_s": mean, f"D_{name}_low": low, f"D_{name}_high": high})
        row["n_seeds"] = len(finished)
        flowing = members[per_traj["diffusive"].to_numpy()[members]]
        row["n_diffusive"] = len(flowing)
        row.update(_haven(collective.isel(traj=flowing), d_mobile[flowing]))
        mean, low, high, _ = _interval(per_traj["sigma_S_per_cm"].to_numpy()[members], confidence)
        row.update({"sigma_S_per_cm": mean, "sigma_low": low, "sigma_high": high})
        row["sigma_haven_S_per_cm"] = mean / row["haven_ratio"] if row["haven_ratio"] > 0 else np.nan
        row["fraction_stable"] = float(per_traj["stable"].to_numpy()[members].mean())
        row["rdf_mae"] = float(np.nanmean(windows["rdf_mae"].values[finished])) if len(finished) else np.nan
        row["rdf_mae_floor"] = float(np.nanmean(windows["rdf_mae_floor"].values[finished])) if len(finished) else np.nan
        rows.append(row)
        partial.append(g.isel(traj=finished).mean(("traj", "time_window")))
    group_index = pd.MultiIndex.from_tuples(list(groups), names=list(STATE_POINT_AXES))
    return ConductorStudy(
        per_trajectory=per_traj,
        state_points=pd.DataFrame(rows).set_index(list(STATE_POINT_AXES)),
        arrhenius=_arrhenius(per_traj, extrapolate_to_K=extrapolate_to_K, confidence=confidence),
        windows=windows,
        partial_rdf=xr.concat(partial, dim="group").assign_coords(
            xr.Coordinates.from_pandas_multiindex(group_index, "group")
        ),
        mobile=mobile,
        mae_threshold=mae_threshold,
    )


def stable_trajectories(windows: xr.Dataset, *, mae_threshold: float = STABLE_RDF_MAE) -> np.ndarray:
    """(traj,) bool: no window's RDF MAE exceeds the reference's noise floor by ``mae_threshold``."""
    excess = (windows["rdf_mae"] - windows["rdf_mae_floor"]).max("time_window").values
    return np.asarray(excess < mae_threshold)


def _window_stability(g: xr.DataArray, *, reference: str, done: np.ndarray) -> xr.Dataset:
    """RDF MAE of every window against the reference's pooled g_ab at the same state point.

    Args:
        g: (traj, time_window, pair, r_A) partial g(r) (NaN for unfinished trajectories).

    Returns:
        ``rdf_mae_pair`` (traj, time_window, pair), ``rdf_mae`` (traj, time_window) mean over
        pairs, ``rdf_mae_floor`` (traj) the worst-window MAE of the reference's own trajectories
        at that state point, mean over them (sampling noise of the same statistic the
        criterion takes; NaN where the reference has none).
    """
    index = g.indexes["traj"]
    keys = [tuple(index.get_level_values(axis)[k] for axis in STATE_POINT_AXES[1:]) for k in range(g.sizes["traj"])]
    is_reference = np.asarray(index.get_level_values("forcefield")) == reference
    members: dict[tuple, list[int]] = {}
    for k, key in enumerate(keys):
        if is_reference[k] and done[k]:
            members.setdefault(key, []).append(k)
    pooled = {key: g.isel(traj=ks).mean(("traj", "time_window")) for key, ks in members.items()}
    mae_pair = xr.full_like(g.isel(r_A=0, drop=True), np.nan)
    for k, key in enumerate(keys):
        if done[k] and key in pooled:
            mae_pair[k] = rdf_mae(g.isel(traj=k), pooled[key])
    mae = mae_pair.mean("pair")
    floor_of = {key: float(mae.isel(traj=ks).max("time_window").mean()) for key, ks in members.items()}
    floor = xr.DataArray([floor_of.get(key, np.nan) for key in keys], dims="traj")
    return xr.Dataset({"rdf_mae_pair": mae_pair, "rdf_mae": mae, "rdf_mae_floor": floor})


def _haven(collective: xr.DataArray, tracer_D: np.ndarray) -> dict[str, float]:
    """D_σ of the seed-mean collective MSD, H_R = ⟨D*⟩/D_σ and its jackknife error over seeds
    (diffusive trajectories only: without hops there is no collective drift to compare)."""
    n = collective.sizes["traj"]
    if n < 2:
        return {"D_sigma_cm2_per_s": np.nan, "haven_ratio": np.nan, "haven_ratio_err": np.nan}

    def estimate(members: np.ndarray) -> tuple[float, float]:
        d_sigma = float(diffusion_coefficient(collective.isel(traj=members).mean("traj"))["D_cm2_per_s"])
        ratio = float(np.nanmean(tracer_D[members])) / d_sigma if d_sigma > 0 else np.nan
        return d_sigma, ratio

    d_sigma, ratio = estimate(np.arange(n))
    err = np.nan
    if n > 2:
        leave = np.array([estimate(np.delete(np.arange(n), i))[1] for i in range(n)])
        err = float(np.sqrt((n - 1) / n * np.sum((leave - leave.mean()) ** 2)))
    return {"D_sigma_cm2_per_s": d_sigma, "haven_ratio": ratio, "haven_ratio_err": err}


def _arrhenius(per_traj: pd.DataFrame, *, extrapolate_to_K: float, confidence: float) -> pd.DataFrame:
    """σT Arrhenius fit over every diffusive trajectory's σ of each (force field, system, pressure)."""
    rows = []
    for key, part in per_traj.groupby(["forcefield", "system", "pressure_bar"], sort=False):
        part = part[part["diffusive"]]
        values = xr.DataArray(
            part["sigma_S_per_cm"].to_numpy(dtype=float),
            dims="temperature_K",
            coords={"temperature_K": part["temperature_measured_K"].to_numpy(dtype=float)},
        )
        fit = arrhenius_fit(values, times_temperature=True, extrapolate_to_K=extrapolate_to_K, confidence=confidence)
        rows.append(
            {
                **dict(zip(("forcefield", "system", "pressure_bar"), key, strict=True)),
                "activation_energy_eV": float(fit["activation_energy_eV"]),
                "activation_energy_low_eV": float(fit["activation_energy_low_eV"]),
                "activation_energy_high_eV": float(fit["activation_energy_high_eV"]),
                "prefactor_S_K_per_cm": float(fit["prefactor"]),
                f"sigma_{extrapolate_to_K:g}K_S_per_cm": float(fit["value_at_K"]),
                "sigma_low": float(fit["value_low"]),
                "sigma_high": float(fit["value_high"]),
                "n_points": int(fit["n_temperatures"]),
            }
        )
    return pd.DataFrame(rows).set_index(["forcefield", "system", "pressure_bar"])


def plot_conductor(study: ConductorStudy, folder: str) -> list[str]:
    """The three figures of a study as PNG files in ``folder``; returns their paths."""
    written = []
    for name, plot in (
        ("conductor-arrhenius", plot_sigma_arrhenius),
        ("conductor-partial-rdf", plot_partial_rdfs),
        ("conductor-rdf-mae", plot_rdf_mae_windows),
    ):
        written.append(plot(study, f"{folder}/{name}.png"))
    return written


def plot_sigma_arrhenius(study: ConductorStudy, path: str) -> str:
    """σ of every trajectory against 1000/T_measured (hollow: not diffusive, left out of the fit),
    the fitted σT line and σ(300 K) with its interval, one colour per (force field, system)."""
    plt = _pyplot()
    per_traj, fits = study.per_trajectory, study.arrhenius
    extrapolated = next(c for c in fits.columns if c.startswith("sigma_") and c.endswith("K_S_per_cm"))
    t_star = float(extrapolated.split("_")[1].rstrip("K"))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    shown: list[float] = []
    for k, (key, fit) in enumerate(fits.iterrows()):
        color = f"C{k}"
        part = per_traj[(per_traj["forcefield"] == key[0]) & (per_traj["system"] == key[1])]
        inverse = 1000.0 / part["temperature_measured_K"]
        flowing = part["diffusive"].to_numpy(dtype=bool)
        sigma = part["sigma_S_per_cm"].to_numpy()
        ax.semilogy(inverse[flowing], sigma[flowing], "o", color=color, alpha=0.7, label=f"{key[0]} ({key[1]})")
        ax.semilogy(inverse[~flowing], sigma[~flowing], "o", mfc="none", color=color, alpha=0.7)
        shown.extend(sigma[np.isfinite(sigma) & (sigma > 0)])
        if not np.isfinite(fit["activation_energy_eV"]):
            continue
        grid = np.linspace(t_star, part["temperature_measured_K"].max(), 50)
        line = fit["prefactor_S_K_per_cm"] * np.exp(-fit["activation_energy_eV"] / (BOLTZMANN_EV_PER_K * grid)) / grid
        ax.semilogy(1000.0 / grid, line, "-", color=color, lw=1)
        value = fit[extrapolated]
        error = [[value - fit["sigma_low"]], [fit["sigma_high"] - value]]
        ax.errorbar([1000.0 / t_star], [value], yerr=error, fmt="s", color=color, capsize=3)
        shown.append(value)
    if shown:  # an interval of many decades is clipped rather than squashing the data
        ax.set_ylim(min(shown) / 1e2, max(shown) * 1e2)
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(f"σ of {study.mobile} (S/cm), Nernst–Einstein")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_partial_rdfs(study: ConductorStudy, path: str) -> str:
    """Partial g_ab(r) per species pair: every state point, the reference solid, others dashed."""
    plt = _pyplot()
    g = study.partial_rdf
    pairs = list(g["pair"].values)
    fig, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 3.4), squeeze=False)
    index = g.indexes["group"]
    temperatures = sorted(set(index.get_level_values("temperature_K")))
    for m, pair in enumerate(pairs):
        ax = axes[0, m]
        for k in range(g.sizes["group"]):
            forcefield, temperature = (
                index.get_level_values("forcefield")[k],
                index.get_level_values("temperature_K")[k],
            )
            style = "-" if forcefield == index.get_level_values("forcefield")[0] else "--"
            ax.plot(g["r_A"], g.isel(group=k).sel(pair=pair), style, lw=1,
                    color=f"C{temperatures.index(temperature) % 10}",
                    label=f"{forcefield} {temperature:g} K")  # fmt: skip
        ax.set_title(f"g {pair}(r)")
        ax.set_xlabel("r (Å)")
    axes[0, 0].legend(fontsize=6)
    return save_figure(fig, path)


def plot_rdf_mae_windows(study: ConductorStudy, path: str) -> str:
    """RDF MAE against the reference per time window, one line per trajectory."""
    plt = _pyplot()
    mae = study.windows["rdf_mae"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    forcefields = list(dict.fromkeys(mae.indexes["traj"].get_level_values("forcefield")))
    start_ps = mae["window_start_fs"].values / 1e3 if "window_start_fs" in mae.coords else mae["time_window"].values
    labelled = set()
    for k, forcefield in enumerate(mae.indexes["traj"].get_level_values("forcefield")):
        label = None if forcefield in labelled else forcefield
        labelled.add(forcefield)
        color = f"C{forcefields.index(forcefield)}"
        ax.plot(start_ps, mae.isel(traj=k), "-o", ms=3, lw=0.8, color=color, label=label)
    floor = float(np.nanmean(study.windows["rdf_mae_floor"]))
    ax.axhline(floor + study.mae_threshold, color="k", ls=":", lw=1, label="mean noise floor + threshold")
    ax.set_xlabel("window start (ps)")
    ax.set_ylabel("RDF MAE vs reference (mean over pairs)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
