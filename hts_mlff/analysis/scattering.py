r"""Scattering from stored positions: allowed q vectors, density modes, F(q, τ) and F_s(q, τ).

Seed: transferability paper appendix A.2–A.3 (eq. 10, 13–14). For a fixed periodic cell
(rows a_i, Å) the allowed wave vectors are q = 2π n·A⁻ᵀ with integer n (Å⁻¹). A **shell**
q ± dq/2 holds the allowed vectors with q − dq/2 ≤ |q| < q + dq/2; of each pair ±q only one is
kept (ρ_−q = ρ_q*, so the pair carries no new information).

- Density mode: ρ_q(t) = Σ_j exp(i q·r_j(t)); the speckle intensity I(q, t) = |ρ_q(t)|²/N
  (eq. 13, I ∝ S(q, t)), whose mean over t and the shell is the static structure factor S(q).
- Collective intermediate scattering function (eq. 14, with the i = j terms):
  f(q, τ) = ⟨ρ_q(t + τ) ρ_q(t)*⟩_t / N, F(q, τ) = f(q, τ)/f(q, 0), averaged over the shell.
- Self part: F_s(q, τ) = ⟨(1/N) Σ_j exp(i q·[r_j(t + τ) − r_j(t)])⟩_t from unwrapped
  positions; for free Brownian particles F_s = exp(−D q² τ), and in the Gaussian approximation
  F_s = exp(−q² MSD(τ)/6), so its long-time decay rate Γ_s(q) → D q² at small q.

Correlations run over every time origin with FFTs (O(T log T) per mode). Density modes are
computed lazily, chunk by chunk of the stored positions (dask); what is kept per trajectory is
(T, n_vectors) complex numbers, never the positions. Positions must come from a fixed cell
(NVT/NVE production); a trajectory whose cell changes is refused.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

#: Atoms per block when summing phases (bounds the (block, n_vectors) temporaries).
_ATOM_BLOCK = 2048


def shell_vectors(
    cell: np.ndarray, *, q_per_A: float, width_per_A: float, max_vectors: int | None = None, seed: int = 0
) -> np.ndarray:
    """(m, 3) allowed q vectors (Å⁻¹) of ``cell`` with |q| in [q − w/2, q + w/2), one of each ±q pair.

    Args:
        cell: (3, 3) Å, rows are the cell vectors.
        max_vectors: keep at most this many, drawn with ``seed`` (sorted by |q|, then index).

    Raises:
        ValueError: the shell holds no allowed vector (named with the cell's smallest |q|).
    """
    cell = np.asarray(cell, dtype=float)
    lo, hi = q_per_A - width_per_A / 2, q_per_A + width_per_A / 2
    if width_per_A <= 0 or lo < 0:
        raise ValueError(f"q shell {q_per_A:g} ± {width_per_A / 2:g} Å⁻¹: need 0 < width ≤ 2q")
    reciprocal = 2 * np.pi * np.linalg.inv(cell).T  # rows b_i with a_i · b_j = 2π δ_ij
    bound = np.ceil(hi * np.linalg.norm(cell, axis=1) / (2 * np.pi)).astype(int)
    grids = np.meshgrid(*(np.arange(-b, b + 1) for b in bound), indexing="ij")
    n = np.stack([g.ravel() for g in grids], axis=1)
    # one of ±n: the first nonzero index positive
    first = np.where(n[:, 0] != 0, n[:, 0], np.where(n[:, 1] != 0, n[:, 1], n[:, 2]))
    n = n[first > 0]
    q = n @ reciprocal
    norm = np.linalg.norm(q, axis=1)
    keep = (norm >= lo) & (norm < hi)
    if not keep.any():
        smallest = float(np.linalg.norm(reciprocal, axis=1).min())
        raise ValueError(
            f"no allowed q vector with |q| in [{lo:.4g}, {hi:.4g}) Å⁻¹ for this cell (its smallest |q| is "
            f"{smallest:.4g} Å⁻¹, allowed |q| are discrete): widen the shell or use a larger cell"
        )
    q, norm, n = q[keep], norm[keep], n[keep]
    order = np.lexsort((n[:, 2], n[:, 1], n[:, 0], np.round(norm, 12)))
    q = q[order]
    if max_vectors is not None and len(q) > max_vectors:
        chosen = np.sort(np.random.default_rng(seed).choice(len(q), max_vectors, replace=False))
        q = q[chosen]
    return q


def _fixed_cells(ds: xr.Dataset) -> np.ndarray:
    """(traj, 3, 3) the cell of every trajectory; ValueError if one changes along its frames."""
    cells = ds["cells"].to_numpy()  # (traj, T, 3, 3), small
    first = np.full((cells.shape[0], 3, 3), np.nan)
    for k in range(cells.shape[0]):
        good = np.isfinite(cells[k]).all(axis=(1, 2))
        if not good.any():
            continue
        ref = cells[k][good][0]
        if np.abs(cells[k][good] - ref).max() > 1e-9 * np.abs(ref).max():
            raise ValueError(
                f"trajectory {k}: the cell changes along the stored frames; scattering needs a fixed cell "
                "(NVT or NVE production)"
            )
        first[k] = ref
    return first


def _modes_block(positions: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Σ_j exp(i q·r_j) for (..., atom, 3) positions and (..., m, 3) vectors → (..., m) complex.

    Atoms with NaN positions (padding) are skipped; a frame without any atom gives NaN.
    """
    lead = positions.shape[:-2]
    out = np.full((*lead, vectors.shape[-2]), np.nan + 0j, dtype=np.complex128)
    pos = positions.reshape(-1, *positions.shape[-2:])
    vec = np.broadcast_to(vectors, (*lead, *vectors.shape[-2:])).reshape(-1, *vectors.shape[-2:])
    flat = out.reshape(-1, vectors.shape[-2])
    for f in range(pos.shape[0]):
        good = np.isfinite(pos[f]).all(axis=1)
        q = vec[f]
        usable = np.isfinite(q).all(axis=1)
        if not good.any():
            continue
        r = pos[f][good]
        total = np.zeros(q.shape[0], dtype=np.complex128)
        for a in range(0, len(r), _ATOM_BLOCK):
            phase = r[a : a + _ATOM_BLOCK] @ np.where(usable[:, None], q, 0.0).T
            total += np.exp(1j * phase).sum(axis=0)
        flat[f] = np.where(usable, total, np.nan)
    return out


def density_modes(
    ds: xr.Dataset, *, q_per_A: float, width_per_A: float, max_vectors: int | None = 128, seed: int = 0
) -> xr.Dataset:
    """ρ_q(t) of every trajectory on its cell's allowed vectors in one shell (lazy over the store).

    Args:
        ds: a campaign dataset with ``positions`` and ``cells`` (fixed cell per trajectory).
        q_per_A, width_per_A: the shell q ± width/2 (Å⁻¹).
        max_vectors: vectors kept per trajectory (drawn with ``seed``; None: all).

    Returns:
        Dataset with ``rho`` (traj, position_time_fs, q_vector) complex (dask-backed when
        ``ds`` is), ``q_vectors`` (traj, q_vector, xyz) Å⁻¹ and ``q_norm`` (traj, q_vector),
        NaN where a trajectory has fewer vectors, and ``n_atoms`` (traj). Attributes: the shell.
    """
    for name in ("positions", "cells"):
        if name not in ds:
            raise ValueError(f"the dataset has no {name!r}; save positions to compute scattering")
    cells = _fixed_cells(ds)
    per_traj = []
    for k in range(cells.shape[0]):
        if not np.isfinite(cells[k]).all():
            per_traj.append(np.zeros((0, 3)))
            continue
        per_traj.append(
            shell_vectors(cells[k], q_per_A=q_per_A, width_per_A=width_per_A, max_vectors=max_vectors, seed=seed)
        )
    m = max(len(v) for v in per_traj)
    vectors = np.full((cells.shape[0], m, 3), np.nan)
    for k, v in enumerate(per_traj):
        vectors[k, : len(v)] = v
    q_vectors = xr.DataArray(vectors, dims=("traj", "q_vector", "xyz"))
    rho = xr.apply_ufunc(
        _modes_block,
        ds["positions"],
        q_vectors,
        input_core_dims=[["atom", "xyz"], ["q_vector", "xyz"]],
        output_core_dims=[["q_vector"]],
        dask="parallelized",
        output_dtypes=[np.complex128],
        dask_gufunc_kwargs={"output_sizes": {"q_vector": m}},
    )
    n_atoms = (
        ds["n_atoms"]
        if "n_atoms" in ds
        else np.isfinite(ds["positions"].isel(position_time_fs=0)).all("xyz").sum("atom")
    )
    out = xr.Dataset(
        {
            "rho": rho,
            "q_vectors": q_vectors.assign_attrs(units="Å⁻¹"),
            "q_norm": (("traj", "q_vector"), np.linalg.norm(vectors, axis=2), {"units": "Å⁻¹"}),
            "n_atoms": n_atoms,
        },
        attrs={"q_per_A": q_per_A, "width_per_A": width_per_A},
    )
    return out.drop_vars("xyz", errors="ignore")


def autocorrelation(x: np.ndarray, *, max_lag: int) -> np.ndarray:
    """⟨x(t + τ) x(t)*⟩_t over every origin, τ = 0 … max_lag − 1, along axis 0 of a (T, …) array."""
    n_t = x.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n_t)))
    spectrum = np.fft.fft(x, n=size, axis=0)
    corr = np.fft.ifft(spectrum.conj() * spectrum, axis=0)[:max_lag]
    counts = (n_t - np.arange(max_lag)).reshape(-1, *([1] * (x.ndim - 1)))
    return corr / counts


def _max_lag(times: np.ndarray, max_lag_fs: float | None) -> int:
    n_t = len(times)
    if max_lag_fs is None:
        return max(n_t // 2, 1)
    dt = float(times[1] - times[0]) if n_t > 1 else 1.0
    return int(min(n_t, np.floor(max_lag_fs / dt) + 1))


def intermediate_scattering(modes: xr.Dataset, *, max_lag_fs: float | None = None) -> xr.Dataset:
    """Collective f(q, τ) and F(q, τ) = f/f(0) of every trajectory, averaged over the shell's vectors.

    Args:
        modes: output of :func:`density_modes` (computed here, trajectory by trajectory).
        max_lag_fs: longest lag (default: half the trajectory).

    Returns:
        Dataset (traj, lag_fs): ``f`` (f(q, 0) is S(q)) and ``F``.
    """
    times = modes["position_time_fs"].to_numpy()
    max_lag = _max_lag(times, max_lag_fs)
    n_traj = modes.sizes["traj"]
    f = np.full((n_traj, max_lag), np.nan)
    for k in range(n_traj):
        rho = modes["rho"].isel(traj=k).to_numpy()
        rho = rho[:, np.isfinite(modes["q_norm"].isel(traj=k).to_numpy())]
        rho = rho[np.isfinite(rho).all(axis=1)]
        if len(rho) < 2 or rho.shape[1] == 0:
            continue
        n = float(modes["n_atoms"].isel(traj=k))
        f[k, : min(max_lag, len(rho))] = (
            autocorrelation(rho, max_lag=min(max_lag, len(rho))).real.mean(axis=1)[:max_lag] / n
        )
    lag = times[:max_lag] - times[0]
    out = xr.Dataset(
        {"f": (("traj", "lag_fs"), f), "F": (("traj", "lag_fs"), f / f[:, :1])},
        coords={"lag_fs": lag},
        attrs=dict(modes.attrs),
    )
    return _with_traj_index(out, modes)


def self_intermediate_scattering(
    ds: xr.Dataset,
    *,
    q_per_A: float,
    width_per_A: float,
    max_vectors: int = 12,
    max_atoms: int | None = 256,
    max_lag_fs: float | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """F_s(q, τ) of every trajectory from its unwrapped positions, averaged over atoms and vectors.

    Args:
        max_vectors: q vectors of the shell used (an isotropic liquid needs few).
        max_atoms: tracked atoms per trajectory (drawn with ``seed``; the seeds track 25–45);
            None: all. Only their positions are read, one trajectory at a time.
        max_lag_fs: longest lag (default: half the trajectory).

    Returns:
        Dataset (traj, lag_fs): ``F_s`` (real part; the imaginary part averages to zero), and
        ``q2_mean_per_A2`` (traj): ⟨|q|²⟩ over the vectors used (allowed |q| are discrete, so
        it differs from the shell centre squared; D⟨q²⟩ is the small-q limit of the decay rate).
    """
    cells = _fixed_cells(ds)
    times = ds["position_time_fs"].to_numpy()
    max_lag = _max_lag(times, max_lag_fs)
    n_traj = ds.sizes["traj"]
    fs = np.full((n_traj, max_lag), np.nan)
    q2 = np.full(n_traj, np.nan)
    rng = np.random.default_rng(seed)
    for k in range(n_traj):
        if not np.isfinite(cells[k]).all():
            continue
        n = int(ds["n_atoms"].isel(traj=k)) if "n_atoms" in ds else ds.sizes["atom"]
        atoms = np.arange(n)
        if max_atoms is not None and n > max_atoms:
            atoms = np.sort(rng.choice(n, max_atoms, replace=False))
        pos = ds["positions"].isel(traj=k, atom=atoms).to_numpy()  # (T, a, 3)
        pos = pos[np.isfinite(pos).all(axis=(1, 2))]
        if len(pos) < 2:
            continue
        vectors = shell_vectors(cells[k], q_per_A=q_per_A, width_per_A=width_per_A, max_vectors=max_vectors, seed=seed)
        lags = min(max_lag, len(pos))
        q2[k] = float(np.mean(np.sum(vectors**2, axis=1)))
        total = np.zeros(lags)
        for q in vectors:
            phases = np.exp(1j * (pos @ q))  # (T, a)
            total += autocorrelation(phases, max_lag=lags).real.mean(axis=1)
        fs[k, :lags] = total / len(vectors)
    out = xr.Dataset(
        {"F_s": (("traj", "lag_fs"), fs), "q2_mean_per_A2": ("traj", q2)},
        coords={"lag_fs": times[:max_lag] - times[0]},
        attrs={"q_per_A": q_per_A, "width_per_A": width_per_A},
    )
    return _with_traj_index(out, ds)


def _with_traj_index(out: xr.Dataset, source: xr.Dataset) -> xr.Dataset:
    """Carry the source's ``traj`` coordinates (the sweep MultiIndex of a campaign) over."""
    if "traj" in source.indexes and hasattr(source.indexes["traj"], "levels"):
        return out.assign_coords(xr.Coordinates.from_pandas_multiindex(source.indexes["traj"], "traj"))
    if "traj" in source.coords:
        return out.assign_coords(traj=source["traj"].values)
    return out
