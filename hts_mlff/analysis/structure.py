r"""Structure: radial distribution functions, S(q), and their distance to a reference.

Seeds: transferability paper A.2 (eq. 8–10), EGraFFBench §4.2.1 (eq. 2–3), GraNNField (RDF
MAE < 0.02 for "stable").

**g(r)** of species pair (a, b), averaged over the stored frames of a trajectory:

.. math::

    g_{ab}(r) = \frac{V}{N_a (N_b - \delta_{ab})}
                \frac{\langle \#\{(i \in a, j \in b, j \ne i): r \le r_{ij} < r + \mathrm dr\} \rangle}
                     {\tfrac{4\pi}{3}[(r+\mathrm dr)^3 - r^3]}

(periodic images included, so r_max may exceed half the box; the N_b − δ_ab makes an ideal
gas give exactly 1).

**S(q)** of one species from g(r) (eq. 10, orientation-averaged):
S(q) = 1 + 4πρ ∫ r² [g(r) − 1] sin(qr)/(qr) W(r) dr, with the Lorch window
W(r) = sin(πr/r_max)/(πr/r_max) damping the truncation ripples (``lorch=False`` to drop it).

**Against a reference** g_ref at the same state point (system, T, P):

- Wright factor (EGraFFBench eq. 2, as printed there): R_χ = Σ_r (g − g_ref)² / Σ_r g_ref²;
- Jensen–Shannon divergence (eq. 3) of g and g_ref normalised to unit sum over the bins,
  natural logarithm (0 ≤ JSD ≤ ln 2);
- RDF MAE = ⟨|g − g_ref|⟩ over the bins; GraNNField calls a structure stable below 0.02.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hts_mlff.engine.neighbors import system_pairs

STABLE_RDF_MAE = 0.02


def _frame_histogram(
    positions: np.ndarray, cell: np.ndarray, numbers: np.ndarray, *, pair: tuple[int, int] | None, edges: np.ndarray
) -> tuple[np.ndarray, float]:
    """(ordered-pair counts per bin, normaliser N_a (N_b − δ_ab) / V) of one frame."""
    good = np.isfinite(positions).all(axis=1) & (numbers > 0)
    positions, numbers = positions[good], numbers[good]
    volume = abs(np.linalg.det(cell))
    i, j, shifts = system_pairs(positions, cell=cell, cutoff_A=float(edges[-1]))
    r = np.linalg.norm(positions[j] - positions[i] + shifts @ cell, axis=1)
    if pair is None:
        weight = np.full(len(r), 2.0)  # both orders of every pair
        n_a = n_b = len(positions)
        same = True
    else:
        a, b = pair
        za, zb = numbers[i], numbers[j]
        weight = ((za == a) & (zb == b)).astype(float) + ((za == b) & (zb == a)).astype(float)
        n_a, n_b = int((numbers == a).sum()), int((numbers == b).sum())
        same = a == b  # then a pair of two a atoms counts twice: (i, j) and (j, i)
    counts, _ = np.histogram(r, bins=edges, weights=weight)
    return counts, n_a * (n_b - (1 if same else 0)) / volume


def rdf(
    ds: xr.Dataset,
    *,
    r_max_A: float = 10.0,
    n_bins: int = 200,
    pair: tuple[int, int] | None = None,
    every_snapshots: int = 1,
) -> xr.DataArray:
    """g(r) per trajectory, averaged over its stored frames (lazy over ``traj``).

    Args:
        ds: a campaign dataset with ``positions``, ``cells`` and ``atomic_numbers``.
        r_max_A, n_bins: histogram range [0, r_max) and bins.
        pair: atomic numbers (a, b) of a partial g_ab; None: all atoms.
        every_snapshots: use every k-th stored frame.

    Returns:
        (traj, r_A) g(r) at the bin centres.
    """
    for name in ("positions", "cells", "atomic_numbers"):
        if name not in ds:
            raise ValueError(f"the dataset has no {name!r}; save positions to compute g(r)")
    edges = np.linspace(0.0, r_max_A, n_bins + 1)
    positions = ds["positions"].isel(position_time_fs=slice(None, None, every_snapshots))
    cells = ds["cells"].isel(position_time_fs=slice(None, None, every_snapshots))

    def one(pos: np.ndarray, cell: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        total = np.zeros(n_bins)
        norm = 0.0
        for k in range(pos.shape[0]):
            if not np.isfinite(cell[k]).all() or not np.isfinite(pos[k]).any():
                continue
            counts, frame_norm = _frame_histogram(pos[k], cell[k], numbers, pair=pair, edges=edges)
            total += counts
            norm += frame_norm
        if norm == 0:
            return np.full(n_bins, np.nan)
        shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
        return total / (norm * shell)

    g = xr.apply_ufunc(
        one,
        positions,
        cells,
        ds["atomic_numbers"],
        input_core_dims=[["position_time_fs", "atom", "xyz"], ["position_time_fs", "cell_vector", "xyz"], ["atom"]],
        output_core_dims=[["r_A"]],
        vectorize=True,
        dask="parallelized",
        output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"r_A": n_bins}},
    )
    g = g.assign_coords(r_A=0.5 * (edges[1:] + edges[:-1]))
    g.attrs = {"long_name": "radial distribution function", "units": "1", "pair": str(pair or "all")}
    return g


def partial_rdfs(
    ds: xr.Dataset,
    *,
    pairs: list[tuple[int, int]],
    n_windows: int = 1,
    r_max_A: float = 10.0,
    n_bins: int = 200,
) -> xr.DataArray:
    """Partial g_ab(r) of several species pairs in consecutive time windows, per trajectory.

    One distance computation per frame serves every pair (the cost of :func:`rdf` once, not
    once per pair and window). Window w holds stored frames [w·m, (w+1)·m) with m = T // n_windows.

    Args:
        ds: a campaign dataset with ``positions``, ``cells`` and ``atomic_numbers``.
        pairs: atomic numbers (a, b) of each partial g_ab.
        n_windows: number of time windows.
        r_max_A, n_bins: histogram range [0, r_max) and bins.

    Returns:
        (traj, time_window, pair, r_A) g_ab(r); ``pair`` labelled "A-B" by chemical symbol.
    """
    from ase.data import chemical_symbols

    for name in ("positions", "cells", "atomic_numbers"):
        if name not in ds:
            raise ValueError(f"the dataset has no {name!r}; save positions to compute g(r)")
    n_t = ds.sizes["position_time_fs"]
    size = n_t // n_windows
    if size < 1:
        raise ValueError(f"{n_t} stored frames cannot make {n_windows} windows")
    edges = np.linspace(0.0, r_max_A, n_bins + 1)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)

    def one(pos: np.ndarray, cell: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        total = np.zeros((n_windows, len(pairs), n_bins))
        norm = np.zeros((n_windows, len(pairs)))
        for k in range(n_windows * size):
            if not np.isfinite(cell[k]).all() or not np.isfinite(pos[k]).any():
                continue
            good = np.isfinite(pos[k]).all(axis=1) & (numbers > 0)
            p, z = pos[k][good], numbers[good]
            i, j, shifts = system_pairs(p, cell=cell[k], cutoff_A=r_max_A)
            r = np.linalg.norm(p[j] - p[i] + shifts @ cell[k], axis=1)
            volume = abs(np.linalg.det(cell[k]))
            for m, (a, b) in enumerate(pairs):
                weight = ((z[i] == a) & (z[j] == b)).astype(float) + ((z[i] == b) & (z[j] == a))
                total[k // size, m] += np.histogram(r, bins=edges, weights=weight)[0]
                n_a, n_b = int((z == a).sum()), int((z == b).sum())
                norm[k // size, m] += n_a * (n_b - (1 if a == b else 0)) / volume
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(norm[..., None] > 0, total / (norm[..., None] * shell), np.nan)

    g = xr.apply_ufunc(
        one,
        ds["positions"],
        ds["cells"],
        ds["atomic_numbers"],
        input_core_dims=[["position_time_fs", "atom", "xyz"], ["position_time_fs", "cell_vector", "xyz"], ["atom"]],
        output_core_dims=[["time_window", "pair", "r_A"]],
        vectorize=True,
        dask="parallelized",
        output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"time_window": n_windows, "pair": len(pairs), "r_A": n_bins}},
    )
    times = ds["position_time_fs"].values
    return g.assign_coords(
        r_A=0.5 * (edges[1:] + edges[:-1]),
        pair=[f"{chemical_symbols[a]}-{chemical_symbols[b]}" for a, b in pairs],
        time_window=np.arange(n_windows),
        window_start_fs=("time_window", times[np.arange(n_windows) * size]),
        window_stop_fs=("time_window", times[np.arange(1, n_windows + 1) * size - 1]),
    ).assign_attrs(long_name="partial radial distribution function", units="1")


def structure_factor(
    g: xr.DataArray, *, number_density_per_A3: float | xr.DataArray, q_per_A: np.ndarray, lorch: bool = True
) -> xr.DataArray:
    """S(q) from g(r) (see the module docstring); (…, q_per_A)."""
    r = g["r_A"].values
    dr = float(r[1] - r[0])
    r_max = float(r[-1] + dr / 2)
    window = np.sinc(r / r_max) if lorch else np.ones_like(r)  # np.sinc(x) = sin(πx)/(πx)
    kernel = np.sinc(np.outer(q_per_A, r) / np.pi)  # sin(qr)/(qr), (n_q, n_r)
    integrand = (g - 1.0) * (r**2 * window * dr)
    q = xr.DataArray(kernel, dims=("q_per_A", "r_A"), coords={"q_per_A": q_per_A, "r_A": r})
    s = 1.0 + 4.0 * np.pi * number_density_per_A3 * xr.dot(integrand, q, dim="r_A")
    s.attrs = {"long_name": "structure factor", "units": "1"}
    return s


def _both_present(g: xr.DataArray, g_ref: xr.DataArray) -> xr.DataArray:
    """True where both curves have data (a replica that failed before its first frame has none)."""
    return g.notnull().any("r_A") & g_ref.notnull().any("r_A")


#: EGraFFBench's acceptance rule for bulk systems: a Wright factor below 9 % (Bauchy 2014).
ACCEPTABLE_WRIGHT_FACTOR = 0.09


def wright_factor(g: xr.DataArray, g_ref: xr.DataArray) -> xr.DataArray:
    """R_χ = [Σ (g − g_ref)² / Σ g_ref²]^½ over r (Wright's factor, EGraFFBench eq. 2 with the
    square root of Grimley, Wright & Sinclair 1990, to which the "< 9 %" rule refers); NaN
    without data. Dimensionless (0.09 is 9 %)."""
    ratio = ((g - g_ref) ** 2).sum("r_A") / (g_ref**2).sum("r_A")
    return np.sqrt(ratio).where(_both_present(g, g_ref))


def _kl(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """Σ a ln(a/b) over r with 0 · ln 0 = 0."""
    safe_a, safe_b = a.where(a > 0, 1.0), b.where(b > 0, 1.0)
    return (a.where(a > 0, 0.0) * np.log(safe_a / safe_b)).sum("r_A")


def jensen_shannon(g: xr.DataArray, g_ref: xr.DataArray) -> xr.DataArray:
    """JSD(g ‖ g_ref) = ½ KL(g ‖ ĝ) + ½ KL(g_ref ‖ ĝ), ĝ = ½(g + g_ref), on g(r) itself over the
    r bins (EGraFFBench eq. 3, natural log): each bin adds a non-negative term, so amplitude
    and density errors count (a g(r) scaled by 1.7 scores > 0). It grows with the number of
    bins; compare values on one binning. The shape-only variant is :func:`jensen_shannon_shape`."""
    m = 0.5 * (g + g_ref)
    return (0.5 * _kl(g, m) + 0.5 * _kl(g_ref, m)).where(_both_present(g, g_ref))


def jensen_shannon_shape(g: xr.DataArray, g_ref: xr.DataArray) -> xr.DataArray:
    """JSD of g and g_ref each normalised to unit sum over the bins (≤ ln 2): shape only, blind
    to a scale factor (a g(r) scaled by 1.7 scores 0); reported as ``jsd_shape``."""
    return jensen_shannon(g / g.sum("r_A"), g_ref / g_ref.sum("r_A"))


def rdf_mae(g: xr.DataArray, g_ref: xr.DataArray) -> xr.DataArray:
    """⟨|g − g_ref|⟩ over r (GraNNField's stability measure; < 0.02 is stable)."""
    return abs(g - g_ref).mean("r_A")


STATE_AXES = ("system", "temperature_K", "pressure_bar")


def reference_rdf(g: xr.DataArray, *, reference: str) -> xr.DataArray:
    """g(r) of the reference force field averaged over its trajectories at each state point,
    aligned to every trajectory of ``g`` (traj, r_A); NaN where the reference has no run."""
    traj = g.indexes["traj"]
    keys = list(zip(*(traj.get_level_values(a) for a in STATE_AXES), strict=True))
    is_ref = np.asarray(traj.get_level_values("forcefield") == reference)
    values = np.asarray(g.values)
    means: dict[tuple, np.ndarray] = {}
    for key in set(keys):
        rows = [k for k, kk in enumerate(keys) if kk == key and is_ref[k]]
        if rows:
            means[key] = np.nanmean(values[rows], axis=0)
    out = np.stack([means.get(key, np.full(values.shape[1], np.nan)) for key in keys])
    return g.copy(data=out)


def compare_structure(g: xr.DataArray, *, reference: str) -> xr.Dataset:
    """Per trajectory: Wright factor, JSD and RDF MAE against the reference at its state point."""
    g = g.compute()
    g_ref = reference_rdf(g, reference=reference)
    mae = rdf_mae(g, g_ref)
    return xr.Dataset(
        {
            "wright_factor": wright_factor(g, g_ref),
            "jsd": jensen_shannon(g, g_ref),
            "jsd_shape": jensen_shannon_shape(g, g_ref),
            "rdf_mae": mae,
            "structure_stable": mae < STABLE_RDF_MAE,
        },
        attrs={"reference": reference, "stable_rdf_mae": STABLE_RDF_MAE},
    )
