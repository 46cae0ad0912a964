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
- 95 % confidence intervals by bootstrap over windows (resampling whole windows).

The rate's relative error falls as 1/√(number of jumps): to halve the CI, observe four times
as many jumps — more windows or longer ones. Windows much shorter than 1/r mostly censor.
Units: times in fs, rates in 1/ps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

GROUP_AXES = ("forcefield", "temperature_K", "pressure_bar")


def jump_events(sites: np.ndarray, time_fs: np.ndarray, *, min_dwell_samples: int = 1) -> np.ndarray:
    """Times (fs) of the jumps of one vacancy-site series (−1 entries are ignored)."""
    valid = np.flatnonzero(sites >= 0)
    if len(valid) < 2:
        return np.empty(0)
    s, t = sites[valid], time_fs[valid]
    current = s[0]
    events = []
    k = 1
    while k < len(s):
        if s[k] != current:
            stay = s[k : k + min_dwell_samples]
            if len(stay) == min_dwell_samples and (stay == s[k]).all():
                events.append(t[k])
                current = s[k]
        k += 1
    return np.asarray(events, dtype=float)


def window_jumps(ds: xr.Dataset, *, min_dwell_samples: int = 1) -> xr.Dataset:
    """Per trajectory: ``n_jumps``, ``first_jump_fs`` (NaN: none) and ``observed_fs`` (tracked length)."""
    if "vacancy_site" not in ds:
        raise ValueError("the campaign did not track vacancies: add 'vacancy' to its analyses")
    time = ds["time_fs"].values
    sites = np.asarray(ds["vacancy_site"].values)
    n = sites.shape[0]
    n_jumps = np.zeros(n, dtype=np.int64)
    first = np.full(n, np.nan)
    observed = np.zeros(n)
    for k in range(n):
        valid = np.flatnonzero(sites[k] >= 0)
        if len(valid) == 0:
            observed[k] = np.nan
            continue
        observed[k] = time[valid[-1]] - time[valid[0]]
        events = jump_events(sites[k], time, min_dwell_samples=min_dwell_samples) - time[valid[0]]
        n_jumps[k] = len(events)
        if len(events):
            first[k] = events[0]
    out = xr.Dataset(
        {"n_jumps": ("traj", n_jumps), "first_jump_fs": ("traj", first), "observed_fs": ("traj", observed)}
    )
    return out.assign_coords(xr.Coordinates.from_pandas_multiindex(ds.indexes["traj"], "traj"))


def rate_estimates(
    first_jump_fs: np.ndarray,
    observed_fs: np.ndarray,
    n_jumps: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Rates (1/ps) of one group of windows with bootstrap intervals (see the module docstring)."""
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
    boot_all = np.array([poisson(jumps[p], obs[p]) for p in picks])
    tail = 100 * (1 - confidence) / 2
    return {
        "rate_mle_per_ps": mle(first, obs),
        "rate_low_per_ps": float(np.nanpercentile(boot, tail)),
        "rate_high_per_ps": float(np.nanpercentile(boot, 100 - tail)),
        "rate_all_jumps_per_ps": poisson(jumps, obs),
        "rate_all_low_per_ps": float(np.nanpercentile(boot_all, tail)),
        "rate_all_high_per_ps": float(np.nanpercentile(boot_all, 100 - tail)),
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
    frame = pd.DataFrame(
        {name: np.asarray(windows[name].values) for name in ("first_jump_fs", "observed_fs", "n_jumps")}
    )
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
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)), **values})
    return xr.Dataset.from_dataframe(pd.DataFrame(rows).set_index(list(by)))
