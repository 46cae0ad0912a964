r"""Spectral energy density (SED), phonon lifetimes and thermal conductivity from stored velocities.

Seed: solid-state generalizability paper §2.2 (eqs. 7–10); Thomas et al., PRB 81, 081411 (2010).

**SED** (eq. 7), for wave vector **k** and angular frequency ω:

.. math::

    φ(\mathbf k, ω) = \frac{1}{4π τ_0 N_T} \sum_{b,α} m_b \left|\int_0^{τ_0}
        \sum_{n}^{N_T} \dot u_{α}(n b; t)\, e^{i\mathbf k\cdot\mathbf r_0(n b) - iωt}\,dt\right|^2

with b the atoms of the primitive cell (``basis_index``; one for FCC argon), n the N_T
primitive cells, r₀ each atom's equilibrium site (``lattice_site_A``: its position averaged
over the run; for one basis atom the phase of the site and of its cell differ by a constant,
which |·|² removes) and τ₀ the trajectory length. Units: φ in eV·ps with ω in rad/ps; the axis
is stored as ν = ω/2π in THz. Sum rule (a test): Σ_k ∫ φ dω over ω of both signs is the mean
kinetic energy; ω ≥ 0 is kept, which holds half of it when the k set is symmetric.

**Projections.** With polarisation vectors e(k, s) (harmonic eigenvectors,
:func:`hts_mlff.statics.phonons.harmonic_modes` at −k for the e^{+ik·r} sign of eq. 7) the SED
is resolved per branch s: the Cartesian sum of eq. 7 becomes |Σ_{bα} e*_{bα}(k, s) q_{bα}(k, ω)|²,
and the branches sum to eq. 7. Without them, the branches are the Cartesian components of each
basis atom (exact along the high-symmetry lines of a cubic Bravais crystal, e.g. Γ–X: two
transverse components and one longitudinal).

**Computation.** Lazy, one trajectory at a time: the (time chunk, atom, xyz) blocks of the
stored velocities are projected onto the k set as they are read (a matrix product with the
phases), so only the (k, branch, time) projections are ever held; then an FFT in time. Seeds
(and optionally segments of one trajectory) are averaged.

**Lifetimes** (eq. 8): each (k, branch) peak is fitted with a Lorentzian
φ_max / (1 + ((ω − ω_c)/γ)²) on a window around its maximum; τ = 1/(2γ) (ps, γ in rad/ps).

**Thermal conductivity** (eq. 9): κ_αα = (1/V) Σ_{k,s} C(ω) v_α(k,s)² τ(k,s), reported as
κ = (κ_xx + κ_yy + κ_zz)/3 in W/(m·K), with group velocities (eq. 10) from the harmonic
dispersion. C = k_B per mode (``heat_capacity="classical"``, the statistics of classical MD,
to compare with Green–Kubo) or k_B x² eˣ/(eˣ − 1)², x = ħω/k_BT (``"quantum"``). Eq. 9 as
printed sums C·|v_g|²·τ, three times the trace/3 of a cubic crystal, and writes (eˣ − 1) for
(eˣ − 1)²; the form here is the standard relaxation-time one.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable

import dask.array as da
import numpy as np
import xarray as xr
from ase.data import atomic_masses
from scipy.optimize import OptimizeWarning, curve_fit

from hts_mlff.units import BOLTZMANN_EV_PER_K, EV_PER_AMU_A2_PER_FS2, HBAR_EV_PS

#: Bytes of one block of phase factors (k × atoms) formed at a time.
PHASE_BLOCK_BYTES = 64 * 2**20
#: W/(m·K) per eV/(K·Å·ps).
W_PER_M_K_PER_EV_PER_K_A_PS = 1.602176634e-19 / (1e-10 * 1e-12)


# ----------------------------------------------------------------------------- k sets
def reciprocal_rows(cell_A: np.ndarray) -> np.ndarray:
    """(3, 3) reciprocal vectors b_i (rows, rad/Å) with a_i·b_j = 2π δ_ij."""
    return 2 * np.pi * np.linalg.inv(np.asarray(cell_A, dtype=float)).T


def own_cell_kpoints(k_points_A: np.ndarray, reference_cell_A: np.ndarray, cell_A: np.ndarray) -> np.ndarray:
    """The same k (fractions of the reciprocal cell of ``reference_cell_A``) in another cell: seeds
    equilibrated at a pressure end in cells that differ slightly."""
    return (np.asarray(k_points_A) @ np.asarray(reference_cell_A).T / (2 * np.pi)) @ reciprocal_rows(cell_A)


def line_kpoints(supercell_A: np.ndarray, *, end_A: np.ndarray) -> np.ndarray:
    """(n, 3) k points of the supercell on the segment Γ → ``end_A`` (rad/Å), Γ and the end included.

    ``end_A`` must be a multiple of a reciprocal vector of the supercell combination, e.g. X =
    (2π/a)(0, 0, 1) of a cubic FCC supercell of N_z cells along z gives N_z + 1 points.
    """
    frac = np.asarray(end_A, dtype=float) @ np.asarray(supercell_A, dtype=float).T / (2 * np.pi)
    steps = np.round(frac)
    if not np.allclose(frac, steps, atol=1e-6):
        raise ValueError(f"the end point {end_A} is not commensurate with the supercell")
    n = int(np.gcd.reduce(np.abs(steps).astype(int)))
    return np.outer(np.arange(n + 1) / max(n, 1), end_A)


def grid_kpoints(supercell_A: np.ndarray, primitive_A: np.ndarray) -> np.ndarray:
    """(N_T, 3) every distinct k of the supercell modulo the primitive reciprocal lattice (rad/Å),
    each folded into the first Brillouin zone; N_T = number of primitive cells.

    With the supercell S = M·P (rows, M integer), k = m·b_S is equivalent to zero exactly when
    m ∈ M ℤ³, so one representative of each class lies in the box spanned by M's columns.
    """
    supercell = np.asarray(supercell_A, dtype=float)
    primitive = np.asarray(primitive_A, dtype=float)
    matrix = supercell @ np.linalg.inv(primitive)
    if not np.allclose(matrix, np.round(matrix), atol=1e-6):
        raise ValueError("the supercell is not an integer multiple of the primitive cell")
    matrix = np.round(matrix).astype(int)
    n_cells = abs(round(np.linalg.det(matrix)))
    lo = np.minimum(matrix, 0).sum(axis=1)
    hi = np.maximum(matrix, 0).sum(axis=1)
    m = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij"), -1).reshape(-1, 3)
    classes = np.linalg.solve(matrix.astype(float), m.T).T  # M⁻¹ m: integer exactly for k ≡ 0
    keys = np.round((classes - np.floor(classes + 1e-9)) * n_cells).astype(np.int64) % n_cells
    _, first = np.unique(keys, axis=0, return_index=True)
    if len(first) != n_cells:
        raise ValueError(f"found {len(first)} distinct k points for {n_cells} primitive cells")
    k = m[np.sort(first)] @ reciprocal_rows(supercell)
    return fold_to_first_zone(k, reciprocal_rows(primitive))


def fold_to_first_zone(k_A: np.ndarray, reciprocal: np.ndarray) -> np.ndarray:
    """Shift each k by the reciprocal lattice vector that makes it shortest (first zone)."""
    shifts = np.array(list(itertools.product((-2, -1, 0, 1, 2), repeat=3)), dtype=float) @ reciprocal
    candidates = k_A[:, None, :] - shifts[None, :, :]
    best = np.argmin((candidates**2).sum(-1), axis=1)
    return candidates[np.arange(len(k_A)), best]


# ----------------------------------------------------------------------------- SED
def project_block(
    block: np.ndarray, *, phases: list[np.ndarray], members: list[np.ndarray], weights: np.ndarray, n_k: int
) -> np.ndarray:
    """(t, atoms, 3) velocities → (n_basis, t, n_k, 3) complex Σ_j √m_j v_j e^{ik·r_j}.

    The block's axes keep their order (time stays axis 1 after the new basis axis, atoms become
    k), so a store chunked in time maps block to block."""
    v = np.nan_to_num(np.asarray(block, dtype=float)) * weights[None, :, None]
    t = v.shape[0]
    out = np.empty((len(members), t, n_k, 3), dtype=complex)
    for b, (idx, phase) in enumerate(zip(members, phases, strict=True)):
        flat = v[:, idx, :].transpose(1, 0, 2).reshape(len(idx), t * 3)
        out[b] = (phase @ flat).reshape(n_k, t, 3).transpose(1, 0, 2)
    return out


def _phase_blocks(k_A: np.ndarray, sites: np.ndarray) -> np.ndarray:
    return np.exp(1j * (k_A @ sites.T))  # (n_k, n_atoms)


def trajectory_projection(
    velocities: xr.DataArray, sites_A: np.ndarray, basis: np.ndarray, masses_amu: np.ndarray, k_A: np.ndarray
) -> np.ndarray:
    """(n_basis, n_k, n_t, 3) mass-weighted projections of one trajectory, read chunk by chunk.

    ``velocities`` (velocity_time_fs, atom, xyz) Å/fs, dask-backed or not; atoms with basis
    index −1 (padding) are skipped.
    """
    data = velocities.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(max(1, 2**24 // max(1, data[0].size)), -1, -1))
    data = data.rechunk({1: -1, 2: -1})
    valid = basis >= 0
    members = [np.flatnonzero(valid & (basis == b)) for b in range(int(basis[valid].max()) + 1)]
    n_k = len(k_A)
    weights = np.sqrt(np.where(valid, masses_amu, 0.0))
    parts = []
    per_k = max(1, PHASE_BLOCK_BYTES // (16 * max(1, int(valid.sum()))))
    for lo in range(0, n_k, per_k):
        k_block = k_A[lo : lo + per_k]
        phases = [_phase_blocks(k_block, sites_A[idx]) for idx in members]
        projected = data.map_blocks(
            project_block,
            phases=phases,
            members=members,
            weights=weights,
            n_k=len(k_block),
            dtype=complex,
            chunks=(len(members), data.chunks[0], len(k_block), 3),
            new_axis=[0],
            drop_axis=[],
        )
        # Local threads: the phase blocks (up to PHASE_BLOCK_BYTES) stay in this process.
        parts.append(projected.compute(scheduler="threads").transpose(0, 2, 1, 3))
    return np.concatenate(parts, axis=1)


def _power(q: np.ndarray, *, dt_fs: float, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """(…, n_t) complex → (…, n_ω≥0) segment-averaged |Δt·FFT|²/τ₀ (amu·Å²/fs · fs), and ν in THz."""
    n_t = q.shape[-1] // n_segments
    segments = q[..., : n_t * n_segments].reshape(*q.shape[:-1], n_segments, n_t)
    spectrum = np.fft.fft(segments, axis=-1) * dt_fs
    power = (np.abs(spectrum) ** 2).mean(axis=-2) / (n_t * dt_fs)
    nu_THz = np.fft.fftfreq(n_t, d=dt_fs) * 1000.0
    keep = nu_THz >= 0
    return power[..., keep], nu_THz[keep]


def record_length_ps(n_frames: int, *, dt_fs: float, n_segments: int = 1) -> float:
    """Length (ps) of each segment the SED's spectra come from."""
    return (n_frames // n_segments) * dt_fs * 1e-3


def spectral_energy_density(
    ds: xr.Dataset,
    k_points_A: np.ndarray,
    *,
    polarizations: np.ndarray | None = None,
    n_segments: int = 1,
    traj: Iterable[int] | None = None,
) -> xr.DataArray:
    """φ(k, branch, ω) per trajectory (eq. 7), in eV·ps.

    Args:
        ds: campaign dataset with ``velocities`` (``save_velocities_every_samples``),
            ``lattice_site_A``, ``basis_index`` and ``atomic_numbers`` (``analyses: [sed]``).
        k_points_A: (n_k, 3) wave vectors, rad/Å (:func:`line_kpoints`, :func:`grid_kpoints`), for
            the cell (``final_cell``) of the first trajectory computed; the others use the same
            k in fractions of their own reciprocal cell.
        polarizations: (n_k, 3·n_basis, n_branch) complex vectors to project on (see module
            docstring); None: Cartesian components of each basis atom.
        n_segments: average the spectra of this many equal segments of each trajectory
            (smoother, coarser in ω).
        traj: positions along ``traj`` to compute (default: all).

    Returns:
        DataArray (traj, k, branch, frequency_THz) with coordinates ``kx_per_A``, ``ky_per_A``,
        ``kz_per_A`` (rad/Å) along k.
    """
    k_A = np.atleast_2d(np.asarray(k_points_A, dtype=float))
    time_fs = np.asarray(ds["velocity_time_fs"].values, dtype=float)
    dt_fs = float(time_fs[1] - time_fs[0])
    positions = list(range(ds.sizes["traj"])) if traj is None else list(traj)
    cells = np.asarray(ds["final_cell"].values, dtype=float)[positions] if "final_cell" in ds else None
    # k is given for the first trajectory's cell; each gets the same k in its own reciprocal cell.
    spectra = []
    for n, i in enumerate(positions):
        one = ds.isel(traj=i)
        k_own = k_A if cells is None else own_cell_kpoints(k_A, cells[0], cells[n])
        basis = np.asarray(one["basis_index"].values)
        numbers = np.asarray(one["atomic_numbers"].values)
        masses = np.where(basis >= 0, atomic_masses[np.clip(numbers, 0, None)], 0.0)
        q = trajectory_projection(
            one["velocities"].transpose("velocity_time_fs", "atom", "xyz"),
            np.asarray(one["lattice_site_A"].values, dtype=float),
            basis,
            masses,
            k_own,
        )  # (n_basis, n_k, n_t, 3)
        n_basis = q.shape[0]
        n_cells = int((basis >= 0).sum()) // n_basis
        by_dof = q.transpose(1, 0, 3, 2).reshape(len(k_A), 3 * n_basis, -1)  # (n_k, 3·n_basis, n_t)
        if polarizations is not None:
            by_dof = np.einsum("kds,kdt->kst", np.conj(polarizations), by_dof)
        power, nu_THz = _power(by_dof, dt_fs=dt_fs, n_segments=n_segments)
        spectra.append(power * EV_PER_AMU_A2_PER_FS2 / (4 * np.pi * n_cells) * 1e-3)  # eV·fs → eV·ps
    out = xr.DataArray(
        np.stack(spectra),
        dims=("traj", "k", "branch", "frequency_THz"),
        coords={"frequency_THz": nu_THz, **{f"k{c}_per_A": ("k", k_A[:, i]) for i, c in enumerate("xyz")}},
        attrs={
            "long_name": "spectral energy density φ(k, ω)",
            "units": "eV·ps",
            "omega": "2π·frequency_THz rad/ps",
            "record_ps": record_length_ps(len(time_fs), dt_fs=dt_fs, n_segments=n_segments),
        },
    )
    return out.assign_coords(ds.isel(traj=list(positions))["traj"].coords)


# ----------------------------------------------------------------------------- Lorentzian fits
def lorentzian(omega: np.ndarray, peak: float, centre: float, half_width: float) -> np.ndarray:
    """φ_max / (1 + ((ω − ω_c)/γ)²) (eq. 8)."""
    return peak / (1.0 + ((omega - centre) / half_width) ** 2)


def windowed_lorentzian(
    omega: np.ndarray, peak: float, centre: float, half_width: float, *, record_ps: float
) -> np.ndarray:
    """Eq. 8 as a record of length T sees it: the mean periodogram of a mode whose correlation
    decays as e^{−γ|t|}, i.e. the Lorentzian convolved with the record's Fejér kernel,

        φ_max · γ · Re[1/s − (1 − e^{−sT})/(s² T)],  s = γ + i(ω − ω_c),

    which is eq. 8 when γT ≫ 1 and the record's own line shape (sinc²) when γ → 0, so a
    lifetime comparable with the record is not read as the record's resolution.
    """
    s = half_width + 1j * (np.asarray(omega) - centre)
    x = s * record_ps
    small = np.abs(x) < 1e-4
    safe = np.where(small, 1.0, s)
    exact = 1.0 / safe - (1.0 - np.exp(-np.where(small, 1.0, x))) / (safe * safe * record_ps)
    series = record_ps / 2 - s * record_ps**2 / 6
    return peak * half_width * np.where(small, series, exact).real


def fit_peak(
    omega: np.ndarray,
    phi: np.ndarray,
    *,
    guess: float | None = None,
    window_widths: float = 8.0,
    record_ps: float | None = None,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit one peak; returns (φ_max, ω_c, γ) and their standard errors (NaN if it fails).

    The fit window is ``window_widths`` half-widths either side of the peak, at least five bins,
    so neighbouring branches outside it do not pull the fit. A periodogram is noisy (its
    standard deviation is its mean), so a half-width read off the raw spectrum is not trusted
    for the window: the first estimate comes from a lightly smoothed spectrum (the maximum
    nearest ``guess`` within ±25 % when a guess is given), then the window is re-centred on
    and re-sized from each fit, and the last two fits are weighted with σ ∝ the fitted curve.
    With ``record_ps`` (the length of the record the spectrum came from) the model is
    :func:`windowed_lorentzian`, else :func:`lorentzian`.

    ``start``: (φ_max, ω_c, γ) of an earlier fit of a similar spectrum (e.g. the full seed mean
    when refitting leave-one-out means): the first estimate and the unweighted fit are skipped.
    """
    nan = np.full(3, np.nan)
    if not np.isfinite(phi).all() or phi.max() <= 0:
        return nan, nan
    model = _peak_model(record_ps)
    d_omega = float(omega[1] - omega[0])
    if start is not None and np.all(np.isfinite(start)) and start[0] > 0 and start[2] > 0:
        params, weighted = np.asarray(start, dtype=float), True
    else:
        params, weighted = _first_estimate(omega, phi, guess=guess, d_omega=d_omega), False
    errors = nan
    for _ in range(2 if weighted else 3):
        span = max(window_widths * params[2], 4.0 * d_omega)
        window = np.abs(omega - params[1]) <= span
        x, y = omega[window], phi[window]
        fitted = _log_fit(model, x, y, params, weighted=weighted)
        if fitted is None or abs(fitted[0][1] - params[1]) > span:
            # a line about one bin wide leaves Levenberg–Marquardt free to wander: bound it
            fitted = _bounded_fit(model, x, y, params, span=span, d_omega=d_omega, weighted=weighted)
        if fitted is None:
            break
        (params, errors), weighted = fitted, True
    return (params, errors) if np.isfinite(errors).any() else (nan, nan)


def _first_estimate(omega: np.ndarray, phi: np.ndarray, *, guess: float | None, d_omega: float) -> np.ndarray:
    """(φ_max, ω_c, γ) read off the spectrum smoothed over five bins: the highest point (near
    ``guess`` when given) and the half width at half maximum."""
    smooth = np.convolve(phi, np.ones(5) / 5, mode="same")
    search = np.ones_like(omega, dtype=bool)
    if guess is not None and guess > 0:
        search = np.abs(omega - guess) <= 0.25 * guess + 2 * d_omega
        if not search.any():
            search[:] = True
    top = int(np.flatnonzero(search)[np.argmax(smooth[search])])
    half = smooth[top] / 2
    left = top
    while left > 0 and smooth[left] > half:
        left -= 1
    right = top
    while right < len(smooth) - 1 and smooth[right] > half:
        right += 1
    return np.array([smooth[top], omega[top], max(0.5 * (omega[right] - omega[left]), d_omega)])


PeakModel = Callable[..., np.ndarray]


def _peak_model(record_ps: float | None) -> PeakModel:
    if record_ps is None:
        return lorentzian

    def model(w: np.ndarray, peak: float, centre: float, half_width: float) -> np.ndarray:
        return windowed_lorentzian(w, peak, centre, half_width, record_ps=record_ps)

    return model


def _log_fit(
    model: PeakModel, x: np.ndarray, y: np.ndarray, start: np.ndarray, *, weighted: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Levenberg–Marquardt in (ln φ_max, ω_c, ln γ), which keeps φ_max and γ positive without
    bounds (MINPACK: ~5× faster than a bounded trust-region fit). Weighted: σ ∝ the model at
    ``start`` (a periodogram's noise is proportional to its mean). None if the fit fails."""

    def in_logs(w: np.ndarray, log_peak: float, centre: float, log_width: float) -> np.ndarray:
        return model(w, np.exp(log_peak), centre, np.exp(log_width))

    p0 = (np.log(start[0]), start[1], np.log(start[2]))
    sigma = model(x, *start) + 1e-3 * start[0] if weighted else None
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):  # trial steps may overflow exp
            warnings.simplefilter("ignore", OptimizeWarning)
            q, cov = curve_fit(in_logs, x, y, p0=p0, sigma=sigma, method="lm", maxfev=2000)
    except (RuntimeError, ValueError, FloatingPointError):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        params = np.array([np.exp(q[0]), q[1], np.exp(q[2])])
        errors = np.sqrt(np.clip(np.diag(cov), 0, None)) * np.array([params[0], 1.0, params[2]])
    if not np.isfinite(params).all():
        return None
    return params, errors  # γ may underflow to ~0 (a line narrower than the record): kept, flagged later


def _bounded_fit(
    model: PeakModel, x: np.ndarray, y: np.ndarray, start: np.ndarray, *, span: float, d_omega: float, weighted: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Trust-region fit with φ_max ≥ 0, ω_c within ``span`` of the start and γ ≥ 10⁻⁴ dω."""
    lower = np.array([0.0, start[1] - span, 1e-4 * d_omega])
    upper = np.array([np.inf, start[1] + span, np.inf])
    p0 = np.clip(start, lower * (1 + 1e-9) + 1e-300, upper)
    sigma = model(x, *p0) + 1e-3 * p0[0] if weighted else None
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", OptimizeWarning)
            params, cov = curve_fit(model, x, y, p0=p0, sigma=sigma, bounds=(lower, upper), maxfev=2000)
    except (RuntimeError, ValueError):
        return None
    return params, np.sqrt(np.clip(np.diag(cov), 0, None))


def phonon_lifetimes(
    sed: xr.DataArray,
    *,
    guesses_THz: np.ndarray | None = None,
    record_ps: float | None = None,
    start: xr.Dataset | None = None,
) -> xr.Dataset:
    """Lorentzian fit of every (k, branch) of a seed-averaged SED (dims k, branch, frequency_THz).

    Args:
        guesses_THz: (n_k, n_branch) expected peak frequencies (e.g. harmonic), or None.
        record_ps: length of the records behind the spectrum (default: the SED's ``record_ps``
            attribute); the fit then models the record's finite resolution
            (:func:`windowed_lorentzian`). Lifetimes longer than the record are flagged
            (``resolved`` False): their values are lower bounds at best.
        start: fits of a similar spectrum (a previous result of this function) to start from
            (same windows, one weighted fit per mode: how leave-one-seed-out refits stay cheap).

    Returns:
        Dataset (k, branch): ``peak_THz``, ``half_width_rad_per_ps`` (γ), ``lifetime_ps``
        (τ = 1/2γ), each with ``…_err`` (standard errors of the fit), and ``peak_eV_ps``.
    """
    omega = 2 * np.pi * np.asarray(sed["frequency_THz"].values)
    record_ps = sed.attrs.get("record_ps") if record_ps is None else record_ps
    values = np.asarray(sed.transpose("k", "branch", "frequency_THz").values, dtype=float)
    n_k, n_b = values.shape[:2]
    params = np.full((n_k, n_b, 3), np.nan)
    errors = np.full((n_k, n_b, 3), np.nan)
    starts = None
    if start is not None:
        starts = np.stack(
            [
                start["peak_eV_ps"].values,
                2 * np.pi * start["peak_THz"].values,
                start["half_width_rad_per_ps"].values,
            ],
            axis=-1,
        )
    for k in range(n_k):
        for b in range(n_b):
            guess = None if guesses_THz is None else 2 * np.pi * float(guesses_THz[k, b])
            params[k, b], errors[k, b] = fit_peak(
                omega,
                values[k, b],
                guess=guess,
                record_ps=record_ps,
                start=None if starts is None else starts[k, b],
            )
    gamma, gamma_err = params[..., 2], errors[..., 2]
    with np.errstate(divide="ignore", over="ignore"):  # γ → 0: an infinite (unresolved) lifetime
        lifetime, lifetime_err = 1.0 / (2.0 * gamma), gamma_err / (2.0 * gamma**2)
    dims = ("k", "branch")
    coords = {name: c for name, c in sed.coords.items() if set(c.dims) <= {"k", "branch"}}
    return xr.Dataset(
        {
            "peak_eV_ps": (dims, params[..., 0]),
            "peak_THz": (dims, params[..., 1] / (2 * np.pi), {"units": "THz"}),
            "peak_THz_err": (dims, errors[..., 1] / (2 * np.pi)),
            "half_width_rad_per_ps": (dims, gamma, {"units": "rad/ps"}),
            "half_width_rad_per_ps_err": (dims, gamma_err),
            "lifetime_ps": (dims, lifetime, {"units": "ps", "long_name": "phonon lifetime τ = 1/(2γ)"}),
            "lifetime_ps_err": (dims, lifetime_err),
            "resolved": (dims, (lifetime < (record_ps or np.inf)) & np.isfinite(gamma)),
        },
        coords=coords,
        attrs={"record_ps": float(record_ps) if record_ps is not None else np.nan},
    )


# ----------------------------------------------------------------------------- κ (eq. 9)
def mode_heat_capacity_eV_per_K(frequency_THz: np.ndarray, *, temperature_K: float, kind: str) -> np.ndarray:
    """Heat capacity of one mode, eV/K: k_B (classical) or k_B x² eˣ/(eˣ − 1)², x = ħω/k_BT (quantum)."""
    if kind == "classical":
        return np.full(np.shape(frequency_THz), BOLTZMANN_EV_PER_K)
    if kind != "quantum":
        raise ValueError(f"heat_capacity must be 'classical' or 'quantum', not {kind!r}")
    x = HBAR_EV_PS * 2 * np.pi * np.abs(np.asarray(frequency_THz, dtype=float)) / (BOLTZMANN_EV_PER_K * temperature_K)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        c = x * x * np.exp(x) / np.expm1(x) ** 2
    return BOLTZMANN_EV_PER_K * np.where(x > 1e-8, np.nan_to_num(c), 1.0)


def sed_thermal_conductivity(
    lifetimes: xr.Dataset,
    group_velocity_A_per_ps: np.ndarray,
    *,
    volume_A3: float,
    temperature_K: float,
    heat_capacity: str = "classical",
    frequency_THz: np.ndarray | None = None,
) -> xr.Dataset:
    """κ from mode lifetimes (eq. 9): κ_αα = (1/V) Σ C v_α² τ; κ = trace/3, W/(m·K).

    Args:
        lifetimes: from :func:`phonon_lifetimes` over the full k grid of the cell (Γ's
            acoustic modes and failed fits contribute nothing).
        group_velocity_A_per_ps: (n_k, n_branch, 3), e.g. from the harmonic dispersion.
        volume_A3: the simulation cell's volume (the k grid is that of this cell).
        frequency_THz: mode frequencies for the quantum C (default: the SED peaks).

    Returns:
        Dataset with ``kappa_W_per_mK``, ``kappa_tensor_W_per_mK`` (diagonal, xyz), the number
        of modes used and per-mode contributions ``mode_kappa_W_per_mK`` (k, branch). Modes whose
        lifetime exceeds the record (``resolved`` False) are left out and counted
        (``n_unresolved``); ``kappa_unresolved_floor_W_per_mK`` is what they would add with τ
        equal to the record: when it is not small against κ, run longer.
    """
    tau = np.asarray(lifetimes["lifetime_ps"].values, dtype=float)
    nu = np.asarray(lifetimes["peak_THz"].values if frequency_THz is None else frequency_THz, dtype=float)
    c = mode_heat_capacity_eV_per_K(nu, temperature_K=temperature_K, kind=heat_capacity)
    v2 = np.asarray(group_velocity_A_per_ps, dtype=float) ** 2
    fitted = np.isfinite(tau) & (tau > 0) & np.isfinite(v2).all(-1) & (nu > 1e-3)
    resolved = np.asarray(lifetimes["resolved"].values, dtype=bool) if "resolved" in lifetimes else fitted
    used = fitted & resolved
    scale = W_PER_M_K_PER_EV_PER_K_A_PS / volume_A3
    per_mode = np.where(used[..., None], c[..., None] * v2 * np.where(used, tau, 0.0)[..., None], 0.0) * scale
    diagonal = per_mode.sum(axis=(0, 1))
    # What the modes longer-lived than the record would add with τ set to the record (a floor).
    unresolved = fitted & ~resolved
    record = float(lifetimes.attrs.get("record_ps", np.nan))
    floor = (c[..., None] * v2)[unresolved].sum(0) * record * scale if unresolved.any() else np.zeros(3)
    return xr.Dataset(
        {
            "kappa_W_per_mK": ((), float(diagonal.mean()), {"units": "W/(m·K)", "heat_capacity": heat_capacity}),
            "kappa_tensor_W_per_mK": (("xyz",), diagonal),
            "mode_kappa_W_per_mK": (("k", "branch"), per_mode.mean(-1)),
            "n_modes": ((), int(used.sum())),
            "n_unresolved": ((), int(unresolved.sum())),
            "kappa_unresolved_floor_W_per_mK": ((), float(np.mean(floor))),
        }
    )


def relaxation_time_running_kappa(modes: xr.Dataset, lag_fs: np.ndarray) -> xr.DataArray:
    """The running κ(t) the relaxation-time picture predicts from the modes' lifetimes:

    κ_RTA(t) = Σ_modes κ_mode (1 − e^{−t/τ_mode}),

    whose t → ∞ limit is eq. 9 and which is set beside the Green–Kubo running integral of the
    same state point: in that picture the heat-current autocorrelation is Σ_modes of decaying
    exponentials, so where Green–Kubo's κ(t) rises faster (short times) or longer (long times)
    the single-mode form misses part of the current.

    Args:
        modes: ``mode_kappa_W_per_mK`` and ``lifetime_ps`` over (k, branch) (modes without a
            lifetime count nothing), e.g. :attr:`hts_mlff.thermal.SedStudy.modes` of one point.
        lag_fs: (n_lag,) integration times, fs.

    Returns:
        (lag_fs,) κ_RTA(t) in W/(m·K).
    """
    tau_ps = np.asarray(modes["lifetime_ps"].values, dtype=float).ravel()
    weight = np.asarray(modes["mode_kappa_W_per_mK"].values, dtype=float).ravel()
    used = np.isfinite(tau_ps) & (tau_ps > 0) & np.isfinite(weight)
    t_ps = np.asarray(lag_fs, dtype=float)[:, None] / 1000.0
    kappa = (weight[used] * -np.expm1(-t_ps / tau_ps[used])).sum(axis=1)
    return xr.DataArray(
        kappa,
        dims=("lag_fs",),
        coords={"lag_fs": np.asarray(lag_fs, dtype=float)},
        attrs={"long_name": "running κ of the relaxation-time picture", "units": "W/(m·K)"},
    )
