r"""Melting point of a truncated Lennard-Jones potential carried to the full potential.

A pair potential cut at :math:`r_c` (and shifted, :math:`u_c(r) = u(r) - u(r_c)` inside) leaves
out, per configuration,

.. math::

    \delta U = \sum_{i<j,\ r_{ij}<r_c} u(r_c)\,[\text{shifted}]
             + \sum_{i<j,\ r_c \le r_{ij} < R} u(r_{ij})
             + N\,\frac{8\pi}{3}\rho\,\varepsilon\sigma^3
               \Big[\frac13\Big(\frac{\sigma}{R}\Big)^9 - \Big(\frac{\sigma}{R}\Big)^3\Big],

pairs counted on the configuration up to a reference radius R (default 6σ, or 1.5 r_c when
the cutoff is longer), beyond it a uniform density ρ = N/V (g(r) = 1). At fixed N, P, T the
Gibbs energy of a phase changes to first order by ⟨δU⟩ (∂G/∂λ = ⟨∂U/∂λ⟩ in the NPT ensemble).
With Δg(T) = g_l − g_s crossing zero at T_m with slope −Δs = −Δh/T_m, the coexistence
temperature moves by

.. math::

    \delta T_m = T_m\,\frac{\delta u_l - \delta u_s}{\Delta h_m},
    \qquad \Delta h_m = h_l - h_s,

δu and h per atom, each phase simulated alone at (T_m, P) with the truncated potential
(h = ⟨E_pot + E_kin + P V⟩/N at the imposed pressure). The denser crystal gains more from the
attraction left out, so δT_m > 0 for Lennard-Jones. First order in δu: for a 4σ cut-and-shifted
potential δu is ~3 % of Δh and the second order is below 0.1 % of T_m.

Errors: seeds give the standard errors of δu and h per phase; they are combined with the
error of T_m (the interface fit) by first-order propagation; intervals are ±1.96 σ.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import xarray as xr

from hts_mlff.units import EV_PER_A3_PER_BAR


def lennard_jones_eV(r_A: np.ndarray, *, epsilon_eV: float, sigma_A: float) -> np.ndarray:
    """u(r) = 4ε[(σ/r)¹² − (σ/r)⁶] (eV) at distances ``r_A`` (Å)."""
    s6 = (sigma_A / np.asarray(r_A, dtype=float)) ** 6
    return 4.0 * epsilon_eV * (s6 * s6 - s6)


def uniform_tail_eV(radius_A: float, *, density_per_A3: float, epsilon_eV: float, sigma_A: float) -> float:
    """Energy per atom (eV) of the pairs beyond ``radius_A`` at uniform density (g = 1)."""
    x = sigma_A / radius_A
    return 8.0 * math.pi / 3.0 * density_per_A3 * epsilon_eV * sigma_A**3 * (x**9 / 3.0 - x**3)


def reference_radius_A(*, cutoff_A: float, sigma_A: float) -> float:
    """Default R: 6σ, or 1.5 r_c for longer cutoffs."""
    return max(6.0 * sigma_A, 1.5 * cutoff_A)


def missing_energy_per_atom_eV(
    positions_A: np.ndarray,
    *,
    cell_A: np.ndarray,
    epsilon_eV: float,
    sigma_A: float,
    cutoff_A: float,
    shift: bool,
    radius_A: float | None = None,
) -> float:
    """δU/N (eV) of one periodic configuration: full Lennard-Jones minus the truncated model.

    Args:
        positions_A: (n_atoms, 3) positions (Å), any periodic images.
        cell_A: (3, 3) cell rows (Å).
        epsilon_eV, sigma_A, cutoff_A, shift: the model (cut at ``cutoff_A``; shifted or not).
        radius_A: pairs counted up to here, a uniform tail beyond (default
            :func:`reference_radius_A`); must exceed the cutoff.
    """
    from vesin import NeighborList

    radius = reference_radius_A(cutoff_A=cutoff_A, sigma_A=sigma_A) if radius_A is None else float(radius_A)
    if radius <= cutoff_A:
        raise ValueError(f"reference radius {radius} Å must exceed the cutoff {cutoff_A} Å")
    positions = np.asarray(positions_A, dtype=float)
    cell = np.asarray(cell_A, dtype=float)
    (distances,) = NeighborList(cutoff=radius, full_list=False).compute(
        points=positions, box=cell, periodic=True, quantities="d"
    )
    inside = distances < cutoff_A
    missing = lennard_jones_eV(distances[~inside], epsilon_eV=epsilon_eV, sigma_A=sigma_A).sum()
    if shift:
        missing += inside.sum() * float(lennard_jones_eV(cutoff_A, epsilon_eV=epsilon_eV, sigma_A=sigma_A))
    n_atoms = len(positions)
    density = n_atoms / abs(float(np.linalg.det(cell)))
    tail = uniform_tail_eV(radius, density_per_A3=density, epsilon_eV=epsilon_eV, sigma_A=sigma_A)
    return float(missing / n_atoms + tail)


def lennard_jones_parameters(ds: xr.Dataset, forcefield: str) -> dict[str, float | bool]:
    """ε, σ, cutoff and shift of a store's Lennard-Jones force field (from ``attrs["forcefields_json"]``).

    Raises:
        ValueError: the store does not record its force fields, does not have this one, or it is
            not a Lennard-Jones potential (the correction is written for it).
    """
    if "forcefields_json" not in ds.attrs:
        raise ValueError(f"store of campaign {ds.attrs.get('campaign', '?')!r} does not record its force fields")
    specs = json.loads(ds.attrs["forcefields_json"])
    if forcefield not in specs:
        raise ValueError(
            f"campaign {ds.attrs.get('campaign', '?')!r} has no force field {forcefield!r} (it has {sorted(specs)})"
        )
    spec = specs[forcefield]
    if spec.get("kind") != "lennard_jones":
        raise ValueError(
            f"force field {forcefield!r} is {spec.get('kind')!r}: the truncation correction is for lennard_jones"
        )
    return {key: spec[key] for key in ("epsilon_eV", "sigma_A", "cutoff_A", "shift")}


def phase_properties(ds: xr.Dataset, *, forcefield: str, radius_A: float | None = None) -> xr.Dataset:
    """Per trajectory of one bulk phase: enthalpy, density and missing energy per atom.

    Args:
        ds: a campaign store (:func:`hts_mlff.store.reader.open_campaign`) of finished bulk runs
            with ``analyses: [thermo]``; its ``traj`` index carries the sweep axes.
        forcefield: the force field whose trajectories to use.

    Returns:
        Dataset over ``traj`` (that force field's finished runs): ``enthalpy_eV_per_atom``
        (⟨E_pot + E_kin + P V⟩/N over the production samples, P the imposed pressure),
        ``density_per_A3`` (⟨N/V⟩), ``missing_energy_eV_per_atom`` (δU/N of the final
        configuration, :func:`missing_energy_per_atom_eV`).
    """
    params = lennard_jones_parameters(ds, forcefield)
    index = ds.indexes["traj"]
    keep = np.flatnonzero(
        (np.asarray(index.get_level_values("forcefield")) == forcefield) & (ds["status"].to_numpy() == "done")
    )
    if keep.size == 0:
        raise ValueError(f"campaign {ds.attrs.get('campaign', '?')!r}: no finished trajectory of {forcefield!r}")
    ds = ds.isel(traj=keep)
    for name in ("total_energy_eV", "volume_A3", "final_positions", "final_cell", "n_atoms"):
        if name not in ds:
            raise ValueError(
                f"campaign {ds.attrs.get('campaign', '?')!r} lacks {name!r}: run it with analyses: [thermo]"
            )
    n_atoms = ds["n_atoms"].to_numpy().astype(float)
    pressure = np.asarray(ds.indexes["traj"].get_level_values("pressure_bar"), dtype=float) * EV_PER_A3_PER_BAR
    energy = ds["total_energy_eV"].to_numpy()
    volume = ds["volume_A3"].to_numpy()
    enthalpy = np.nanmean(energy + pressure[:, None] * volume, axis=1) / n_atoms
    density = np.nanmean(n_atoms[:, None] / volume, axis=1)
    positions = ds["final_positions"].to_numpy()
    cells = ds["final_cell"].to_numpy()
    missing = np.array(
        [
            missing_energy_per_atom_eV(positions[k, : int(n_atoms[k])], cell_A=cells[k], radius_A=radius_A, **params)
            for k in range(len(n_atoms))
        ]
    )
    return xr.Dataset(
        {
            "enthalpy_eV_per_atom": ("traj", enthalpy, {"units": "eV"}),
            "density_per_A3": ("traj", density, {"units": "1/Å³"}),
            "missing_energy_eV_per_atom": ("traj", missing, {"units": "eV"}),
        },
        coords=ds["traj"].coords,
        attrs={"forcefield": forcefield, **{k: v for k, v in params.items() if not isinstance(v, bool)}},
    )


def _mean_sem(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    sem = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
    return float(values.mean()), sem


def truncation_correction(
    solid: xr.Dataset, liquid: xr.Dataset, *, melting_point_K: float, melting_point_err_K: float = math.nan
) -> pd.Series:
    """First-order T_m of the full potential from the truncated one (see module doc).

    Args:
        solid, liquid: :func:`phase_properties` of the two bulk phases at (T_m, P).
        melting_point_K, melting_point_err_K: T_m of the truncated potential and its standard error.

    Returns:
        ``delta_u_solid_eV``, ``delta_u_liquid_eV``, ``latent_heat_eV`` (Δh per atom, with
        ``_err``), ``density_solid_per_A3``, ``density_liquid_per_A3``, ``shift_K`` (δT_m),
        ``T_m_full_K``, ``T_m_full_err_K``, ``T_m_full_low_K``, ``T_m_full_high_K`` (95 %).
    """
    du_s, du_s_err = _mean_sem(solid["missing_energy_eV_per_atom"].to_numpy())
    du_l, du_l_err = _mean_sem(liquid["missing_energy_eV_per_atom"].to_numpy())
    h_s, h_s_err = _mean_sem(solid["enthalpy_eV_per_atom"].to_numpy())
    h_l, h_l_err = _mean_sem(liquid["enthalpy_eV_per_atom"].to_numpy())
    latent = h_l - h_s
    if not latent > 0:
        raise ValueError(
            f"the liquid's enthalpy is not above the solid's (Δh = {latent:.4g} eV/atom): "
            "did the liquid crystallise or the crystal melt?"
        )
    difference = du_l - du_s
    shift = melting_point_K * difference / latent
    variance = [
        ((1.0 + shift / melting_point_K) * melting_point_err_K) ** 2,
        (melting_point_K / latent) ** 2 * (du_l_err**2 + du_s_err**2),
        (shift / latent) ** 2 * (h_l_err**2 + h_s_err**2),
    ]
    err = math.sqrt(sum(v for v in variance if math.isfinite(v)))
    full = melting_point_K + shift
    return pd.Series(
        {
            "T_m_K": melting_point_K,
            "delta_u_solid_eV": du_s,
            "delta_u_liquid_eV": du_l,
            "latent_heat_eV": latent,
            "latent_heat_err_eV": math.sqrt(h_l_err**2 + h_s_err**2),
            "density_solid_per_A3": _mean_sem(solid["density_per_A3"].to_numpy())[0],
            "density_liquid_per_A3": _mean_sem(liquid["density_per_A3"].to_numpy())[0],
            "shift_K": shift,
            "T_m_full_K": full,
            "T_m_full_err_K": err,
            "T_m_full_low_K": full - 1.96 * err,
            "T_m_full_high_K": full + 1.96 * err,
        }
    )
