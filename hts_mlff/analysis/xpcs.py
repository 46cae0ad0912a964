r"""Computational XPCS: speckle intensity correlations g₂(q, τ), decay rates Γ(q), optical contrast.

Seed: transferability paper §3.3 and appendix A.3 (eq. 12–22). From the density modes of one
q shell (:func:`hts_mlff.analysis.scattering.density_modes`), each allowed vector is a detector
pixel with intensity I(q, t) = |ρ_q(t)|²/N (eq. 13).

- **g₂ for ideal pulses** (eq. 17): g₂(q, τ) = ⟨I(q, t) I(q, t + τ)⟩_t / ⟨I(q, t)⟩_t², per pixel,
  then averaged over the pixels of the shell.
- **Finite pulses** (eq. 18–19): I_Δ(q, t) = (1/n) Σ_{k<n} I(q, t + k δt), a pulse of width
  Δ_τ = n δt (δt: the stored frame interval; the 1/Δ normalisation cancels in g₂ and β);
  g₂ as above with I_Δ.
- **Estimator.** ⟨I(t)I(t + τ)⟩ is normalised by the means over the same origins, t ∈ [0, T − τ)
  and t + τ ∈ [τ, T) (the symmetric normalisation of multi-tau correlators). A finite run still
  biases g₂ low by about Var(Ī)/Ī² ≈ 2τ_c/T (the scatter of the sample mean of a signal with
  correlation time τ_c), the same at every lag, so the fit has a free baseline.
- **Decay rate** (eq. 15–16): g₂ = b + β exp(−2Γτ) in the long-time regime (b → 1 for a long
  run). The fit (least squares) runs over the lags from the first where
  (g₂ − 1)/(g₂(0) − 1) ≤ ``upper`` (default 0.5: leaves out the short-time ballistic and caging
  decay) to the longest lag computed, so the tail fixes the baseline; it starts from a straight
  line through ln(g₂ − 1) above ``lower`` (0.05).
- **Optical contrast** (eq. 20): β_Δ(q) = (⟨I_Δ²⟩_q − ⟨I_Δ⟩_q²)/⟨I_Δ⟩_q² over the pixels of the
  shell at each time, averaged over time; β₀ = g₂(q, 0) − 1 (eq. 22) is its time-domain twin
  (equal for an ergodic, isotropic system). The **correlation time** is the pulse width where
  β_Δ falls to half its value for the shortest pulse (linear interpolation; seeds' Table 2).

For a Gaussian field (many independent scatterers) I is exponentially distributed, so
β₀ = 1, and a decay F(τ) = exp(−Γτ) gives g₂ = 1 + exp(−2Γτ) and
β_Δ = 2(e^{−x} + x − 1)/x² with x = 2ΓΔ_τ (tested).

Units: lags and pulse widths in fs, Γ in 1/fs (``gamma_per_ps`` in 1/ps), q in Å⁻¹.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hts_mlff.analysis.scattering import _max_lag, _with_traj_index, autocorrelation


def _pixel_intensities(modes: xr.Dataset, k: int) -> np.ndarray:
    """(T, m) I(q, t) of trajectory ``k``: its valid pixels, its frames with every pixel finite."""
    rho = modes["rho"].isel(traj=k).to_numpy()
    rho = rho[:, np.isfinite(modes["q_norm"].isel(traj=k).to_numpy())]
    rho = rho[np.isfinite(rho).all(axis=1)]
    return np.abs(rho) ** 2 / float(modes["n_atoms"].isel(traj=k))


def pulse_average(intensity: np.ndarray, n_frames: int) -> np.ndarray:
    """I_Δ(t): the mean of ``n_frames`` consecutive frames (eq. 18 over Δ_τ), (T − n + 1, …)."""
    if n_frames < 1:
        raise ValueError("a pulse spans at least one frame")
    if n_frames == 1:
        return intensity
    csum = np.cumsum(np.concatenate([np.zeros((1, *intensity.shape[1:])), intensity]), axis=0)
    return (csum[n_frames:] - csum[:-n_frames]) / n_frames


def g2(modes: xr.Dataset, *, pulse_frames: int = 1, max_lag_fs: float | None = None) -> xr.DataArray:
    """g₂(q, τ) of every trajectory (eq. 17; eq. 19 with ``pulse_frames`` > 1), averaged over pixels.

    Returns:
        (traj, lag_fs) DataArray; attributes: the shell and the pulse width in fs.
    """
    times = modes["position_time_fs"].to_numpy()
    max_lag = _max_lag(times, max_lag_fs)
    out = np.full((modes.sizes["traj"], max_lag), np.nan)
    for k in range(modes.sizes["traj"]):
        intensity = pulse_average(_pixel_intensities(modes, k), pulse_frames)
        if len(intensity) < 2 or intensity.shape[1] == 0:
            continue
        lags = min(max_lag, len(intensity))
        corr = autocorrelation(intensity, max_lag=lags).real  # ⟨I(t+τ) I(t)⟩_t per pixel
        # symmetric normalisation: the means over the same origins t and t + τ as the product
        n_t = len(intensity)
        csum = np.concatenate([np.zeros((1, intensity.shape[1])), np.cumsum(intensity, axis=0)])
        counts = (n_t - np.arange(lags))[:, None]
        early = csum[n_t - np.arange(lags)] / counts  # mean over t in [0, T − τ)
        late = (csum[n_t] - csum[np.arange(lags)]) / counts  # mean over t in [τ, T)
        out[k, :lags] = (corr / (early * late)).mean(axis=1)
    dt = float(times[1] - times[0]) if len(times) > 1 else 0.0
    result = xr.DataArray(
        out,
        dims=("traj", "lag_fs"),
        coords={"lag_fs": times[:max_lag] - times[0]},
        attrs={**modes.attrs, "pulse_width_fs": pulse_frames * dt, "long_name": "g2"},
        name="g2",
    )
    return _with_traj_index(result.to_dataset(), modes)["g2"]


def fit_decay_rate(
    g2_curve: xr.DataArray, *, window: tuple[float, float] = (0.05, 0.5), baseline: bool = True
) -> xr.Dataset:
    """Γ, β and the baseline b of g₂ = b + β exp(−2Γτ) per trajectory (the rule in the module doc).

    Args:
        window: (lower, upper): the fit starts at the first lag where (g₂ − 1)/(g₂(0) − 1) ≤
            upper; its first guess is a line through ln(g₂ − 1) down to lower.
        baseline: fit b (else b = 1 and only the lags down to ``lower`` are used).

    Returns:
        Dataset (traj): ``gamma_per_fs``, ``gamma_per_ps``, ``beta``, ``baseline``, ``beta_0``
        (= g₂(0) − 1), ``fit_start_fs``, ``fit_stop_fs``; NaN where fewer than 4 lags fit.
    """
    from scipy.optimize import curve_fit

    lo, hi = window
    if not 0 < lo < hi <= 1:
        raise ValueError(f"window {window}: need 0 < lower < upper ≤ 1")
    lag = g2_curve["lag_fs"].to_numpy()
    values = np.atleast_2d(g2_curve.to_numpy())
    n = values.shape[0]
    gamma, beta, base, start, stop = (np.full(n, np.nan) for _ in range(5))
    beta0 = values[:, 0] - 1.0
    for k in range(n):
        g = values[k] - 1.0
        finite = np.isfinite(g)
        if not finite[0] or g[0] <= 0:
            continue
        ratio = g / g[0]
        below = np.flatnonzero(~(ratio > lo) & finite)
        end = below[0] if below.size else int(finite.sum())
        first = np.flatnonzero(ratio[:end] <= hi)
        if first.size < 2:
            continue
        guess = slice(first[0], end)
        slope, intercept = np.polyfit(lag[guess], np.log(g[guess]), 1)
        p0 = (-slope / 2.0, np.exp(intercept))
        if not baseline:
            gamma[k], beta[k], base[k] = p0[0], p0[1], 1.0
            start[k], stop[k] = lag[guess][0], lag[guess][-1]
            continue
        used = np.arange(first[0], len(g))[finite[first[0] :]]
        if used.size < 4:
            continue
        try:
            (rate, amplitude, offset), _ = curve_fit(
                lambda t, r, a, b: b + a * np.exp(-2.0 * r * t), lag[used], g[used], p0=(*p0, 0.0), maxfev=5000
            )
        except RuntimeError:
            continue
        gamma[k], beta[k], base[k] = rate, amplitude, 1.0 + offset
        start[k], stop[k] = lag[used[0]], lag[used[-1]]
    dims = ("traj",)
    out = xr.Dataset(
        {
            "gamma_per_fs": (dims, gamma, {"units": "1/fs"}),
            "gamma_per_ps": (dims, gamma * 1e3, {"units": "1/ps"}),
            "beta": (dims, beta),
            "baseline": (dims, base),
            "beta_0": (dims, beta0),
            "fit_start_fs": (dims, start),
            "fit_stop_fs": (dims, stop),
        },
        attrs={"window": list(window), **{k: v for k, v in g2_curve.attrs.items() if k != "long_name"}},
    )
    if "traj" in g2_curve.coords:
        out = out.assign_coords(g2_curve["traj"].coords)
    return out


def decay_rate_of_self_part(fs: xr.DataArray, *, window: tuple[float, float] = (0.05, 0.5)) -> xr.Dataset:
    """Γ_s of F_s(q, τ) = exp(−Γ_s τ) (the self part; → D q² at small q), same window rule.

    F_s² behaves as g₂ − 1 with β = 1 and no normalisation bias, so the baseline-free fit of
    :func:`fit_decay_rate` applies to 1 + F_s² over the lags where F_s lies in ``window``.
    """
    return fit_decay_rate(1.0 + fs.clip(min=0.0) ** 2, window=(window[0] ** 2, window[1] ** 2), baseline=False)


def optical_contrast(modes: xr.Dataset, *, pulse_frames: list[int] | np.ndarray) -> xr.DataArray:
    """β_Δ(q) of every trajectory for pulses of the given numbers of frames (eq. 20).

    Returns:
        (traj, pulse_width_fs) DataArray.
    """
    times = modes["position_time_fs"].to_numpy()
    dt = float(times[1] - times[0]) if len(times) > 1 else 0.0
    frames = np.asarray(pulse_frames, dtype=int)
    out = np.full((modes.sizes["traj"], len(frames)), np.nan)
    for k in range(modes.sizes["traj"]):
        intensity = _pixel_intensities(modes, k)
        if intensity.shape[1] < 2:
            continue
        for j, n in enumerate(frames):
            if n > len(intensity):
                continue
            pulsed = pulse_average(intensity, int(n))
            mean = pulsed.mean(axis=1)
            out[k, j] = float(np.mean(pulsed.var(axis=1) / mean**2))
    result = xr.DataArray(
        out,
        dims=("traj", "pulse_width_fs"),
        coords={"pulse_width_fs": frames * dt},
        attrs={**modes.attrs, "long_name": "optical contrast"},
        name="beta_delta",
    )
    return _with_traj_index(result.to_dataset(), modes)["beta_delta"]


def correlation_time(contrast: xr.DataArray) -> xr.DataArray:
    """Pulse width (fs) where β_Δ falls to half its value at the shortest pulse, per trajectory
    (linear interpolation; NaN if it never does)."""
    widths = contrast["pulse_width_fs"].to_numpy()
    values = np.atleast_2d(contrast.to_numpy())
    out = np.full(values.shape[0], np.nan)
    for k, beta in enumerate(values):
        if not np.isfinite(beta[0]):
            continue
        half = beta[0] / 2
        below = np.flatnonzero(beta <= half)
        if below.size == 0 or below[0] == 0:
            continue
        j = below[0]
        x0, x1, y0, y1 = widths[j - 1], widths[j], beta[j - 1], beta[j]
        out[k] = x0 + (half - y0) * (x1 - x0) / (y1 - y0)
    result = xr.DataArray(out, dims=("traj",), attrs={"units": "fs", "long_name": "correlation time"})
    if "traj" in contrast.coords:
        result = result.assign_coords(contrast["traj"].coords)
    return result


def contrast_of_exponential_decay(
    pulse_width_fs: np.ndarray, *, gamma_per_fs: float, beta_0: float = 1.0
) -> np.ndarray:
    """β_Δ of a field decaying as exp(−Γτ): β₀ · 2(e^{−x} + x − 1)/x², x = 2Γ Δ_τ."""
    x = 2.0 * gamma_per_fs * np.asarray(pulse_width_fs, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(x > 1e-8, 2.0 * (np.exp(-x) + x - 1.0) / np.where(x > 1e-8, x, 1.0) ** 2, 1.0 - x / 3.0)
    return beta_0 * value
