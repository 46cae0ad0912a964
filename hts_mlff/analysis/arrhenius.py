r"""Arrhenius fits: the one fit behind vacancy jump rates, diffusion and ionic conductivity.

.. math:: y = A \exp(-E_a / k_B T) \quad\Longleftrightarrow\quad \ln y = \ln A - E_a \cdot \frac{1}{k_B T}

fitted by (weighted) least squares of ln y against 1/(k_B T) over the temperatures of
``temperature_K``; every other dim is fitted on its own (``xr.apply_ufunc``, lazy on dask).
For conductivities the conventional form is σT = A exp(−E_a/k_BT) (``times_temperature``).

Two error models:

- **scatter** (no ``weights``): the residual variance estimates the noise; intervals use
  Student's t with n − 2 degrees of freedom (NaN with two temperatures). Diffusion and
  conductivity from a few seeds per temperature.
- **counts** (``weights`` = number of observed events per temperature): Var ln r̂ ≈ 1/k for a
  Poisson count k, so the weights are known; when the scatter exceeds counting noise (reduced
  χ² > 1) the covariance is scaled by χ²_red (Birge ratio) and t is used, else the normal
  quantile. Vacancy jump rates (seeds §2.3, §3.3).

Outputs (one naming for every caller): ``activation_energy_eV`` with ``…_low_eV``/``…_high_eV``
and ``activation_energy_se_eV``; ``prefactor`` (units of y, or y·K with ``times_temperature``)
with ``prefactor_low``/``prefactor_high``; ``value_at_K`` (y itself at ``extrapolate_to_K``) with
``value_low``/``value_high``; ``n_temperatures`` used; ``reduced_chi2``. Temperatures where y is
not positive and finite (or has no events) carry no information on ln y and are left out.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from hts_mlff.units import BOLTZMANN_EV_PER_K

ARRHENIUS_OUTPUTS = (
    "activation_energy_eV",
    "activation_energy_low_eV",
    "activation_energy_high_eV",
    "activation_energy_se_eV",
    "prefactor",
    "prefactor_low",
    "prefactor_high",
    "value_at_K",
    "value_low",
    "value_high",
    "n_temperatures",
    "reduced_chi2",
)


def _fit(
    y: np.ndarray,
    weights: np.ndarray,
    temperature_K: np.ndarray,
    *,
    counts: bool,
    extrapolate_to_K: float,
    confidence: float,
    times_temperature: bool,
) -> np.ndarray:
    """One fit: (n_T,) values, weights and temperatures → (len(ARRHENIUS_OUTPUTS),)."""
    good = np.isfinite(y) & (y > 0) & np.isfinite(weights) & (weights > 0)
    n = int(good.sum())
    out = np.full(len(ARRHENIUS_OUTPUTS), np.nan)
    out[10] = n
    if n < 2:
        return out
    t = temperature_K[good]
    x = 1.0 / (BOLTZMANN_EV_PER_K * t)  # 1/eV
    target = np.log(y[good] * (t if times_temperature else 1.0))
    w = weights[good]
    design = np.stack([np.ones(n), -x], axis=1)
    covariance = np.linalg.inv(design.T @ (w[:, None] * design))
    log_a, energy = covariance @ (design.T @ (w * target))
    residual = target - design @ np.array([log_a, energy])
    chi2_red = float(w @ residual**2 / (n - 2)) if n > 2 else np.nan
    if not counts:
        covariance = covariance * chi2_red  # NaN with two points: no interval
        quantile = stats.t.ppf(0.5 + confidence / 2, n - 2) if n > 2 else np.nan
    elif n > 2 and chi2_red > 1.0:  # scatter beyond counting noise: widen (Birge ratio)
        covariance = covariance * chi2_red
        quantile = stats.t.ppf(0.5 + confidence / 2, n - 2)
    else:
        quantile = stats.norm.ppf(0.5 + confidence / 2)
    se_log_a, se_energy = np.sqrt(np.diag(covariance))
    star = np.array([1.0, -1.0 / (BOLTZMANN_EV_PER_K * extrapolate_to_K)])
    predicted = star @ np.array([log_a, energy])
    half = quantile * np.sqrt(star @ covariance @ star)
    back = 1.0 / extrapolate_to_K if times_temperature else 1.0
    out[:10] = [
        energy,
        energy - quantile * se_energy,
        energy + quantile * se_energy,
        se_energy,
        np.exp(log_a),
        np.exp(log_a - quantile * se_log_a),
        np.exp(log_a + quantile * se_log_a),
        np.exp(predicted) * back,
        np.exp(predicted - half) * back,
        np.exp(predicted + half) * back,
    ]
    out[11] = chi2_red
    return out


def apply_fit(fit: object, *arrays: xr.DataArray, dim: str, kwargs: dict) -> xr.Dataset:
    """Run a one-group fit function ``fit(*1-D arrays along dim, **kwargs) → (len(ARRHENIUS_OUTPUTS),)``
    over every other dim (lazy on dask) and name its outputs."""
    fitted = xr.apply_ufunc(
        fit,
        *arrays,
        input_core_dims=[[dim]] * len(arrays),
        output_core_dims=[["arrhenius"]],
        kwargs=kwargs,
        vectorize=True,
        dask="parallelized",
        output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"arrhenius": len(ARRHENIUS_OUTPUTS)}},
    )
    out = xr.Dataset({name: fitted.isel(arrhenius=k, drop=True) for k, name in enumerate(ARRHENIUS_OUTPUTS)})
    for name in ARRHENIUS_OUTPUTS[:4]:
        out[name].attrs["units"] = "eV"
    return out


def arrhenius_fit(
    values: xr.DataArray,
    *,
    weights: xr.DataArray | None = None,
    dim: str = "temperature_K",
    extrapolate_to_K: float = 300.0,
    confidence: float = 0.95,
    times_temperature: bool = False,
) -> xr.Dataset:
    """Fit ln(values [· T]) against 1/(k_B T) along ``dim``; see the module docstring.

    Args:
        values: positive quantity (rate, D, σ) with a ``dim`` coordinate in K.
        weights: events per point (the counts error model); None: the scatter model.
        extrapolate_to_K: T* of ``value_at_K``. confidence: of every interval.
        times_temperature: fit σT instead of σ (``prefactor`` then in units of σ·K).
    """
    temperature = values[dim].astype(float)
    w = xr.ones_like(values, dtype=float) if weights is None else weights.astype(float)
    kwargs = {"counts": weights is not None, "extrapolate_to_K": extrapolate_to_K, "confidence": confidence}
    out = apply_fit(_fit, values, w, temperature, dim=dim, kwargs={**kwargs, "times_temperature": times_temperature})
    out.attrs = {
        "extrapolate_to_K": extrapolate_to_K,
        "confidence": confidence,
        "fitted": "value × T" if times_temperature else "value",
        "error_model": "scatter" if weights is None else "counts",
    }
    return out


def arrhenius_line(fit: xr.Dataset, temperature_K: np.ndarray) -> np.ndarray:
    """The fitted y(T) (divided by T again for a σT fit) on a grid of temperatures."""
    energy, prefactor = float(fit["activation_energy_eV"]), float(fit["prefactor"])
    line = prefactor * np.exp(-energy / (BOLTZMANN_EV_PER_K * temperature_K))
    return line / temperature_K if fit.attrs.get("fitted") == "value × T" else line


def plot_arrhenius(values: xr.DataArray, fit: xr.Dataset, path: str, *, label: str = "σ (S/cm)") -> str:
    """ln(value) against 1000/T with the fitted line and the extrapolated point with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    t = values["temperature_K"].values.astype(float)
    ax.semilogy(1000.0 / t, values.values, "o", label="simulated")
    t_star = fit.attrs["extrapolate_to_K"]
    grid = np.linspace(min(t.min(), t_star), t.max(), 50)
    energy = float(fit["activation_energy_eV"])
    ax.semilogy(1000.0 / grid, arrhenius_line(fit, grid), "-", label=f"Arrhenius, Ea = {energy:.3f} eV")
    low, high, value = float(fit["value_low"]), float(fit["value_high"]), float(fit["value_at_K"])
    ax.errorbar([1000.0 / t_star], [value], yerr=[[value - low], [high - value]], fmt="s", label=f"{t_star:g} K")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(label)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
