r"""Vacancy jumps and jump rates from the Wigner–Seitz vacancy site recorded at every sample.

Seeds: solid-state generalizability paper §2.3, §3.3 (vacancy jump rates from many short
windows; Arrhenius fits).

**Jumps.** A jump is a change of the vacant site. With ``min_dwell_samples`` = d > 1 a new
site counts only once the vacancy has stayed there for d samples, which drops immediate
recrossings (the vacancy "rattling" back and forth across one saddle within a vibration).

**Windows.** Every trajectory (seed × window) is an independent observation of length T_obs
(its last tracked sample; a replica frozen by the guard stops there). Per group
(force field, T, P):

- survival χ(t) = fraction of windows with no jump by t, and the rate from the fit
  χ(t) = exp(−r t) (least squares of ln χ over the points with χ ≥ 0.05);
- maximum likelihood for exponential waiting times with censoring (windows without a jump
  contribute their whole length as exposure):
  r̂ = (number of windows with a jump) / Σ_w min(t_first, T_obs);
- the Poisson estimate from every jump, r̂_all = Σ jumps / Σ T_obs (uses later jumps too;
  assumes the vacancy forgets its history at each jump);
- 95 % intervals: exact Poisson (Garwood) intervals from the count and the exposure
  (:mod:`hts_mlff.analysis.poisson`), which stay informative with 0–5 events (zero events
  give [0, 3.69/exposure], not [0, 0]); the bootstrap over windows (resampling whole windows)
  is kept beside them as ``rate_bootstrap_low/high_per_ps`` for the rich regime;
- the exposures (``exposure_mle_ps``: Σ min(t_first, T_obs); ``exposure_all_ps``: Σ T_obs), so
  that :func:`rate_arrhenius` fits counts over exposures by Poisson likelihood, with the
  temperatures without any jump included.

The rate's relative error falls as 1/√(number of jumps): to halve the CI, observe four times
as many jumps — more windows or longer ones. Windows much shorter than 1/r mostly censor.
Units: times in fs, rates in 1/ps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from hts_mlff.analysis.arrhenius import arrhenius_fit, arrhenius_line
from hts_mlff.analysis.poisson import poisson_arrhenius_fit, poisson_interval
from hts_mlff.engine.wigner_seitz import count_jumps, jump_frames
from hts_mlff.spec.model import STATE_POINT_AXES as GROUP_AXES


def jump_events(sites: np.ndarray, time_fs: np.ndarray, *, min_dwell_samples: int = 1) -> np.ndarray:
    """Times (fs) of the jumps of one vacancy-site series (−1 entries are ignored)."""
    return np.asarray(time_fs, dtype=float)[jump_frames(sites, min_dwell_samples=min_dwell_samples)]


def _window_kernel(sites: np.ndarray, time_fs: np.ndarray, min_dwell_samples: int) -> np.ndarray:
    """(..., n_samples) vacancy sites → (..., 3): n_jumps, first_jump_fs, observed_fs (one block)."""
    flat = sites.reshape(-1, sites.shape[-1])
    out = np.full((len(flat), 3), np.nan)
    valid = flat >= 0
    tracked = valid.any(axis=1)
    counts, first_frame = count_jumps(flat, min_dwell_samples=min_dwell_samples)
    out[:, 0] = counts
    first_valid = np.argmax(valid, axis=1)
    last_valid = flat.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
    start = time_fs[first_valid]
    out[:, 1] = np.where(first_frame >= 0, time_fs[np.maximum(first_frame, 0)], np.nan) - start
    out[:, 2] = np.where(tracked, time_fs[last_valid] - start, np.nan)
    return out.reshape(*sites.shape[:-1], 3)


def window_jumps(ds: xr.Dataset, *, min_dwell_samples: int = 1) -> xr.Dataset:
    """Per trajectory: ``n_jumps``, ``first_jump_fs`` (NaN: none), ``observed_fs`` (tracked length)
    and ``disordered`` (1 where a sample had ≠ 1 empty site: the window is cut before it).

    Lazy: on a dask-backed store each chunk of trajectories is reduced on its own (the
    (traj, sample) site array is never loaded whole); xarray in, xarray out.
    """
    if "vacancy_site" not in ds:
        raise ValueError("the campaign did not track vacancies: add 'vacancy' to its analyses")
    sites = ds["vacancy_site"]
    sample_dim = sites.dims[-1]
    disordered = None
    if "n_vacant" in ds:
        # One vacancy in, one out: a sample with another count of empty sites means the crystal
        # lost its lattice (cavitation, melting, a Frenkel pair); the window ends before it.
        bad = (ds["n_vacant"] != 1) & (ds["n_vacant"] >= 0)
        after_bad = bad.cumsum(sample_dim) > 0
        disordered = after_bad.any(sample_dim)
        sites = sites.where(~after_bad, -1)
    time = np.asarray(ds["time_fs"].values, dtype=float)
    per_window = xr.apply_ufunc(
        _window_kernel,
        sites,
        input_core_dims=[[sample_dim]],
        output_core_dims=[["quantity"]],
        kwargs={"time_fs": time, "min_dwell_samples": min_dwell_samples},
        dask="parallelized",
        output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"quantity": 3}},
    )
    out = xr.Dataset(
        {
            "n_jumps": per_window.isel(quantity=0, drop=True),
            "first_jump_fs": per_window.isel(quantity=1, drop=True),
            "observed_fs": per_window.isel(quantity=2, drop=True),
        }
    )
    out["first_jump_fs"].attrs["units"] = "fs"
    out["observed_fs"].attrs["units"] = "fs"
    flag = xr.zeros_like(out["n_jumps"]) if disordered is None else disordered.astype(float).variable
    out["disordered"] = (out["n_jumps"].dims, flag.data)
    return out


def rate_estimates(
    first_jump_fs: np.ndarray,
    observed_fs: np.ndarray,
    n_jumps: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Rates (1/ps) of one group of windows with exact Poisson intervals, bootstrap intervals and
    exposures (see the module docstring)."""
    good = np.isfinite(observed_fs) & (observed_fs > 0)
    first, obs, jumps = first_jump_fs[good], observed_fs[good], n_jumps[good]
    if len(obs) == 0:
        return {"rate_mle_per_ps": np.nan, "rate_low_per_ps": np.nan, "rate_high_per_ps": np.nan}

    def mle(f: np.ndarray, o: np.ndarray) -> float:
        events = np.isfinite(f)
        exposure = np.where(events, f, o).sum()
        return events.sum() / exposure * 1000.0 if exposure > 0 else np.nan

    def poisson(j: np.ndarray, o: np.ndarray) -> float:
        return j.sum() / o.sum() * 1000.0

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(obs), size=(n_bootstrap, len(obs)))
    boot = np.array([mle(first[p], obs[p]) for p in picks])
    tail = 100 * (1 - confidence) / 2
    events = float(np.isfinite(first).sum())
    exposure_mle_ps = float(np.where(np.isfinite(first), first, obs).sum()) / 1000.0
    exposure_all_ps = float(obs.sum()) / 1000.0
    low, high = poisson_interval(events, exposure_mle_ps, confidence=confidence)
    low_all, high_all = poisson_interval(float(jumps.sum()), exposure_all_ps, confidence=confidence)
    return {
        "rate_mle_per_ps": mle(first, obs),
        "rate_low_per_ps": float(low),
        "rate_high_per_ps": float(high),
        "rate_bootstrap_low_per_ps": float(np.nanpercentile(boot, tail)),
        "rate_bootstrap_high_per_ps": float(np.nanpercentile(boot, 100 - tail)),
        "rate_all_jumps_per_ps": poisson(jumps, obs),
        "rate_all_low_per_ps": float(low_all),
        "rate_all_high_per_ps": float(high_all),
        "exposure_mle_ps": exposure_mle_ps,
        "exposure_all_ps": exposure_all_ps,
        "rate_survival_fit_per_ps": survival_fit_rate(first, obs),
        "n_windows": float(len(obs)),
        "n_windows_with_jump": float(np.isfinite(first).sum()),
        "n_jumps": float(jumps.sum()),
    }


def survival_curve(first_jump_fs: np.ndarray, observed_fs: np.ndarray, times_fs: np.ndarray) -> np.ndarray:
    """χ(t): among windows still observed at t, the fraction without a jump by t (product-limit)."""
    chi = np.ones(len(times_fs))
    event_times = np.sort(first_jump_fs[np.isfinite(first_jump_fs)])
    survival = 1.0
    for t_event in event_times:
        at_risk = np.sum(np.where(np.isfinite(first_jump_fs), first_jump_fs, observed_fs) >= t_event)
        survival *= 1.0 - 1.0 / max(at_risk, 1)
        chi[times_fs >= t_event] = survival
    return chi


def survival_fit_rate(first_jump_fs: np.ndarray, observed_fs: np.ndarray, *, min_survival: float = 0.05) -> float:
    """Rate (1/ps) from a least-squares fit of ln χ(t) = −r t through the origin."""
    events = np.sort(first_jump_fs[np.isfinite(first_jump_fs)])
    if len(events) < 2:
        return np.nan
    chi = survival_curve(first_jump_fs, observed_fs, events)
    keep = chi >= min_survival
    t, y = events[keep], np.log(chi[keep])
    if len(t) < 2:
        return np.nan
    return float(-(t @ y) / (t @ t) * 1000.0)


def jump_rates(windows: xr.Dataset, *, by: tuple[str, ...] = GROUP_AXES, n_bootstrap: int = 1000) -> xr.Dataset:
    """Rate estimates per group of ``by`` values (an xarray Dataset over those dims)."""
    names = ["first_jump_fs", "observed_fs", "n_jumps"] + (["disordered"] if "disordered" in windows else [])
    frame = pd.DataFrame({name: np.asarray(windows[name].values) for name in names})
    for name in by:
        frame[name] = np.asarray(windows[name].values)
    rows = []
    for key, group in frame.groupby(list(by)):
        values = rate_estimates(
            group["first_jump_fs"].to_numpy(),
            group["observed_fs"].to_numpy(),
            group["n_jumps"].to_numpy(),
            n_bootstrap=n_bootstrap,
        )
        if "disordered" in group:
            values["n_windows_disordered"] = float(group["disordered"].sum())
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)), **values})
    return xr.Dataset.from_dataframe(pd.DataFrame(rows).set_index(list(by)))


# ----------------------------------------------------------------------------- Arrhenius
def rate_arrhenius(
    rates: xr.Dataset,
    *,
    rate: str = "rate_mle_per_ps",
    events: str = "n_windows_with_jump",
    confidence: float = 0.95,
    debye_frequency_THz: xr.DataArray | float | None = None,
    method: str = "poisson",
) -> xr.Dataset:
    r"""Fit r = ν₀ exp(−E_b / k_B T) over ``temperature_K`` for every other coordinate.

    ``method="poisson"`` (default): the counts (``events``) over their exposures by Poisson
    likelihood with profile-likelihood intervals (:func:`hts_mlff.analysis.poisson.poisson_arrhenius_fit`);
    temperatures without a jump take part. ``method="least_squares"``:
    :func:`hts_mlff.analysis.arrhenius.arrhenius_fit` of ln r weighted by the counts (temperatures
    without a jump left out). ``events`` names the count that matches ``rate``:
    ``n_windows_with_jump`` for the MLE, ``n_jumps`` for the all-jumps rate.

    Returns, per (forcefield, pressure_bar, …), the Arrhenius outputs: ``activation_energy_eV``
    (the barrier E_b) with its interval, ``prefactor`` (ν₀ in 1/ps = THz) with its interval,
    ``n_temperatures``, ``reduced_chi2``; with ``debye_frequency_THz`` also
    ``prefactor_over_debye``. Works on dask-backed input (xarray in, xarray out).
    """
    exposure = "exposure_mle_ps" if events == "n_windows_with_jump" else "exposure_all_ps"
    if method == "poisson" and exposure in rates:
        out = poisson_arrhenius_fit(rates[events], rates[exposure], confidence=confidence)
    elif method in ("poisson", "least_squares"):
        out = arrhenius_fit(rates[rate], weights=rates[events], confidence=confidence)
    else:
        raise ValueError(f"method {method!r}: use poisson or least_squares")
    for name in ("prefactor", "prefactor_low", "prefactor_high"):
        out[name].attrs["units"] = "THz"
    if debye_frequency_THz is not None:
        out["debye_frequency_THz"] = debye_frequency_THz
        out["prefactor_over_debye"] = out["prefactor"] / out["debye_frequency_THz"]
    out.attrs.update(rate=rate, events=events)
    return out


def plot_rate_arrhenius(
    rates: xr.Dataset,
    fits: xr.Dataset,
    path: str,
    *,
    rate: str = "rate_mle_per_ps",
    reference: str | None = None,
) -> str:
    """ln r against 1000/T, every force field overlaid (the reference in black), bootstrap
    error bars, fitted lines labelled with E_b and ν₀ (and ν_D when known); one panel per pressure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low_name, high_name = (
        ("rate_low_per_ps", "rate_high_per_ps")
        if rate == "rate_mle_per_ps"
        else ("rate_all_low_per_ps", "rate_all_high_per_ps")
    )
    pressures = rates["pressure_bar"].values
    fig, axes = plt.subplots(1, len(pressures), figsize=(5.5 * len(pressures), 4.5), squeeze=False)
    names = list(rates["forcefield"].values)
    if reference in names:
        names.remove(reference)
        names.insert(0, reference)
    for ax, pressure in zip(axes[0], pressures, strict=True):
        for k, ff in enumerate(names):
            one = rates.sel(forcefield=ff, pressure_bar=pressure)
            fit = fits.sel(forcefield=ff, pressure_bar=pressure)
            color = "k" if ff == reference else f"C{k}"
            t = one["temperature_K"].values.astype(float)
            r = one[rate].values
            shown = np.isfinite(r) & (r > 0)
            low = np.clip(r - one[low_name].values, 0, None)
            high = np.clip(one[high_name].values - r, 0, None)
            ax.errorbar(1000 / t[shown], r[shown], yerr=[low[shown], high[shown]], fmt="o", color=color, capsize=3)
            barrier, nu0 = float(fit["activation_energy_eV"]), float(fit["prefactor"])
            label = f"{ff}: E_b = {barrier * 1e3:.1f} meV, ν₀ = {nu0:.3g} THz"
            if "debye_frequency_THz" in fit:
                label += f" (ν_D {float(fit['debye_frequency_THz']):.2g})"
            if np.isfinite(barrier):
                grid = np.linspace(t.min(), t.max(), 50)
                ax.plot(1000 / grid, arrhenius_line(fit, grid), "-", color=color, label=label)
            else:
                ax.plot([], [], "o", color=color, label=f"{ff}: too few temperatures with jumps")
        ax.set_yscale("log")
        ax.set_xlabel("1000 / T (1/K)")
        ax.set_ylabel("vacancy jump rate r (1/ps)")
        ax.set_title(f"p = {pressure:g} bar")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def plot_survival(windows: xr.Dataset, rates: xr.Dataset, path: str, *, pressure_bar: float | None = None) -> str:
    """χ(t) (product-limit, censoring-aware) per temperature with exp(−r t) of the MLE rate;
    one panel per force field (seeds Fig. 5a)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.DataFrame({name: np.asarray(windows[name].values) for name in ("first_jump_fs", "observed_fs")})
    for name in GROUP_AXES:
        table[name] = np.asarray(windows[name].values)
    if pressure_bar is None:
        pressure_bar = float(table["pressure_bar"].iloc[0])
    table = table[table["pressure_bar"] == pressure_bar]
    forcefields = sorted(table["forcefield"].unique())
    fig, axes = plt.subplots(1, len(forcefields), figsize=(5 * len(forcefields), 4), squeeze=False, sharey=True)
    for ax, ff in zip(axes[0], forcefields, strict=True):
        for k, (temperature, group) in enumerate(table[table["forcefield"] == ff].groupby("temperature_K")):
            first, observed = group["first_jump_fs"].to_numpy(), group["observed_fs"].to_numpy()
            grid = np.linspace(0, np.nanmax(observed), 200)
            ax.step(
                grid / 1000,
                survival_curve(first, observed, grid),
                where="post",
                color=f"C{k}",
                label=f"{temperature:g} K",
            )
            r = float(rates["rate_mle_per_ps"].sel(forcefield=ff, temperature_K=temperature, pressure_bar=pressure_bar))
            if np.isfinite(r):
                ax.plot(grid / 1000, np.exp(-r * grid / 1000), "--", color=f"C{k}", lw=0.8)
        ax.set_title(f"{ff}, p = {pressure_bar:g} bar")
        ax.set_xlabel("t (ps)")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("χ(t): windows without a jump")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
