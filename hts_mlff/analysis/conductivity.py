r"""Ionic conductivity by Nernst–Einstein (GraNNField workflow); Arrhenius fits and their
extrapolation to 300 K are :mod:`hts_mlff.analysis.arrhenius`.

.. math::

    \sigma = \frac{n\,(z e)^2 D}{k_B T\,H_R}

with n the number density of the mobile ion (1/cm³), z its charge number, D its tracer
diffusion coefficient (cm²/s) and H_R the Haven ratio (1: uncorrelated ions); σ in S/cm.
"""

from __future__ import annotations

import xarray as xr

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


def charge_msd(positions: xr.DataArray, *, charges: xr.DataArray, remove_com_drift: bool = True) -> xr.DataArray:
    r"""Collective (charge) mean-squared displacement per trajectory, over every time origin.

    .. math::

        \mathrm{MSD}_\sigma(\tau) = \frac{1}{N_\text{ion}}
            \Big\langle \Big| \sum_i z_i\,[\mathbf r_i(t + \tau) - \mathbf r_i(t)] \Big|^2 \Big\rangle_t
        \;\to\; 6 D_\sigma \tau ,

    with z_i the charge numbers of the ions counted (zero for the others) and N_ion their
    number. Without cross-correlations between ions it equals the tracer MSD (times ⟨z²⟩); the
    Haven ratio is H_R = D*/D_σ (:func:`haven_ratio`). A single trajectory gives one collective
    coordinate, so D_σ is far noisier than D*: average over seeds.

    Args:
        positions: (…, position_time_fs, atom, xyz) unwrapped positions, Å.
        charges: (…, atom) charge numbers z_i (0 for atoms not counted; NaN-free).
        remove_com_drift: subtract the mean displacement of all atoms of each frame first.

    Returns:
        (…, lag_fs) MSD_σ in Å².
    """
    import numpy as np

    from hts_mlff.analysis.diffusion import _msd_fft

    data = positions
    if remove_com_drift:
        data = data - data.mean("atom", skipna=True)
    weights = charges.fillna(0.0)
    dipole = (data.fillna(0.0) * weights).sum("atom")  # (…, position_time_fs, xyz)
    n_ion = (weights != 0).sum("atom")
    time = positions["position_time_fs"].values

    def one(block: np.ndarray) -> np.ndarray:
        flat = block.reshape(-1, *block.shape[-2:])
        out = np.stack([_msd_fft(x[:, None, :]) for x in flat]) if flat.shape[0] else np.empty((0, block.shape[-2]))
        return out.reshape(*block.shape[:-2], block.shape[-2])

    result = xr.apply_ufunc(
        one,
        dipole,
        input_core_dims=[["position_time_fs", "xyz"]],
        output_core_dims=[["lag_fs"]],
        dask="parallelized",
        output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"lag_fs": len(time)}},
    )
    result = (result / n_ion).assign_coords(lag_fs=time - time[0])
    result.attrs = {"units": "Å^2", "long_name": "collective (charge) mean-squared displacement per ion"}
    return result


def haven_ratio(tracer_D: xr.DataArray | float, charge_D: xr.DataArray | float) -> xr.DataArray | float:
    """H_R = D*/D_σ: 1 for uncorrelated ions, < 1 when ions move together (concerted hops)."""
    return tracer_D / charge_D
