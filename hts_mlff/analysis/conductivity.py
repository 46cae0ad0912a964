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
