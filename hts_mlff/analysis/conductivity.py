r"""Ionic conductivity by Nernst–Einstein and Arrhenius fits with extrapolation (GraNNField workflow).

.. math::

    \sigma = \frac{n\,(z e)^2 D}{k_B T\,H_R}

with n the number density of the mobile ion (1/cm³), z its charge number, D its tracer
diffusion coefficient (cm²/s) and H_R the Haven ratio (1: uncorrelated ions); σ in S/cm.

Arrhenius: ln y = ln A − E_a / (k_B T), fitted by least squares in 1/T over the sampled
temperatures. For conductivities the conventional form is σT = A exp(−E_a/k_BT)
(``times_temperature=True``). Extrapolation to T* (default 300 K) carries a confidence
interval from the fit's covariance and Student's t with n − 2 degrees of freedom.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from hts_mlff.units import BOLTZMANN_EV_PER_K, ELEMENTARY_CHARGE_C


def nernst_einstein(
    D_cm2_per_s: xr.DataArray | float,
    *,
    number_density_per_cm3: xr.DataArray | float,
    charge: float,
    temperature_K: xr.DataArray | float,
    haven_ratio: float = 1.0,
) -> xr.DataArray | float:
    """Ionic conductivity in S/cm (see the module docstring)."""
    kT_J = BOLTZMANN_EV_PER_K * temperature_K * ELEMENTARY_CHARGE_C
    return number_density_per_cm3 * (charge * ELEMENTARY_CHARGE_C) ** 2 * D_cm2_per_s / (kT_J * haven_ratio)


def number_density_per_cm3(ds: xr.Dataset, *, atomic_number: int) -> xr.DataArray:
    """(traj,) number density of one species from a campaign store: count / mean volume."""
    count = (ds["atomic_numbers"] == atomic_number).sum("atom")
    volume_cm3 = ds["volume_A3"].mean("time_fs") * 1e-24
    return (count / volume_cm3).assign_attrs(units="1/cm^3")


def arrhenius_fit(
    values: xr.DataArray,
    *,
    dim: str = "temperature_K",
    extrapolate_to_K: float = 300.0,
    confidence: float = 0.95,
    times_temperature: bool = False,
) -> xr.Dataset:
    """Fit ln(values [· T]) against 1/T along ``dim``; other dims are fitted independently.

    Returns:
        ``activation_energy_eV`` and its standard error, ``prefactor`` (same units as the
        fitted quantity), ``value_at_K`` (of ``values`` itself, i.e. divided by T* again when
        ``times_temperature``) with ``value_low``/``value_high`` of the confidence interval, and
        ``n_points``.
    """
    temperature = values[dim]

    def fit(y: np.ndarray, t: np.ndarray) -> np.ndarray:
        good = np.isfinite(y) & (y > 0)
        t_good, y_good = t[good], y[good]
        n = int(good.sum())
        if n < 2:
            return np.full(7, np.nan)
        x = 1.0 / t_good
        target = np.log(y_good * (t_good if times_temperature else 1.0))
        slope, intercept = np.polyfit(x, target, 1)
        x_star = 1.0 / extrapolate_to_K
        predicted = intercept + slope * x_star
        if n > 2:
            residual = target - (intercept + slope * x)
            s2 = residual @ residual / (n - 2)
            sxx = np.sum((x - x.mean()) ** 2)
            se_slope = np.sqrt(s2 / sxx)
            se_pred = np.sqrt(s2 * (1.0 / n + (x_star - x.mean()) ** 2 / sxx))
            half = stats.t.ppf(0.5 + confidence / 2, n - 2) * se_pred
        else:
            se_slope, half = np.nan, np.nan
        back = 1.0 / extrapolate_to_K if times_temperature else 1.0
        return np.array(
            [
                -slope * BOLTZMANN_EV_PER_K,
                se_slope * BOLTZMANN_EV_PER_K,
                np.exp(intercept),
                np.exp(predicted) * back,
                np.exp(predicted - half) * back,
                np.exp(predicted + half) * back,
                n,
            ]
        )

    fitted = xr.apply_ufunc(
        fit,
        values,
        temperature.astype(float),
        input_core_dims=[[dim], [dim]],
        output_core_dims=[["arrhenius"]],
        vectorize=True,
        dask="parallelized",
        output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"arrhenius": 7}},
    )
    names = [
        "activation_energy_eV",
        "activation_energy_se_eV",
        "prefactor",
        "value_at_K",
        "value_low",
        "value_high",
        "n_points",
    ]
    out = xr.Dataset({name: fitted.isel(arrhenius=k, drop=True) for k, name in enumerate(names)})
    out.attrs = {
        "extrapolate_to_K": extrapolate_to_K,
        "confidence": confidence,
        "fitted": "value × T" if times_temperature else "value",
    }
    return out


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
    ea, a = float(fit["activation_energy_eV"]), float(fit["prefactor"])
    times_t = fit.attrs["fitted"] == "value × T"
    line = a * np.exp(-ea / (BOLTZMANN_EV_PER_K * grid)) / (grid if times_t else 1.0)
    ax.semilogy(1000.0 / grid, line, "-", label=f"Arrhenius, Ea = {ea:.3f} eV")
    low, high = float(fit["value_low"]), float(fit["value_high"])
    value = float(fit["value_at_K"])
    ax.errorbar([1000.0 / t_star], [value], yerr=[[value - low], [high - value]], fmt="s", label=f"{t_star:g} K")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(label)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
