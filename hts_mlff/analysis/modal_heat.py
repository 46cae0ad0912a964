r"""Green–Kubo κ resolved on the harmonic normal modes: the phonon-gas heat current.

A crystal's heat current, projected on its harmonic normal modes (k, s), has a part each mode
carries along its own group velocity — the current of a phonon gas,

.. math::

    \mathbf J_{ph}(t) = \sum_{\mathbf k,s} \mathbf v(\mathbf k,s)\, E(\mathbf k,s,t),\qquad
    E(\mathbf k,s,t) = \tfrac12 \left|ω_{\mathbf k s} Q(\mathbf k,s,t) + i\dot Q(\mathbf k,s,t)\right|^2,

    Q(\mathbf k,s,t) = N^{-1/2} \sum_j \sqrt{m_j}\, \mathbf e^*_{b_j}(\mathbf k,s)\cdot
        \mathbf u_j(t)\, e^{-i\mathbf k\cdot\mathbf r_j},

with u_j the displacement of atom j from its lattice site r_j (the crystal's centre-of-mass
shift removed), e the harmonic polarisation of its basis atom b_j, N the number of primitive
cells and ω, v the harmonic frequency and group velocity. E is the energy of the *running* wave
(k, s): for Q = A e^{−iωt} + B e^{+iωt}, ωQ + iQ̇ = 2ωA e^{−iωt}, so E holds the wave that
travels along +k and the one along −k is counted at −k; the energies of all (k, s) add up to
the harmonic energy ½Σ(|Q̇|² + ω²|Q|²), and each has mean k_BT and variance (k_BT)² in a
classical harmonic crystal.

Its Green–Kubo integral splits exactly into the modes' own correlations and those between
modes:

.. math::

    κ_{ph} = \frac{1}{3Vk_BT^2}\int_0^{t_c}\langle\mathbf J_{ph}(0)\cdot\mathbf J_{ph}(t)\rangle dt
      = κ_{diag} + κ_{cross},\qquad
    κ_{diag} = \frac{1}{3Vk_BT^2}\sum_{\mathbf k s} |\mathbf v|^2 \int_0^{t_c}
        \langle δE(0)\,δE(t)\rangle dt .

κ_diag is the single-mode relaxation-time sum (seed eq. 9, classical C = k_B) with each mode's
lifetime the integral of its normalised energy autocorrelation — lifetimes read off energies in
time, independent of the SED's Lorentzian fits in frequency. κ_cross is heat carried by
correlated populations of different modes (the collective, momentum-conserving part a single-mode
relaxation time leaves out). What the full current J carries beyond J_ph — products of two
different modes at one k (their beating decays within a fraction of a picosecond) and
anharmonic terms — is κ_GK − κ_ph.

Mean energies: δE = E − Ē with Ē of each mode pooled over the state point's seeds and scaled
to each seed's temperature (Ē_i = k_B T_i · mean_j E/(k_B T_j)): a mean taken over one
trajectory would bias the integral of the long-lived modes low by ~2τ²/T_record.

Units: E in eV, v in Å/fs, J in eV·Å/fs (the heat-flux observer's), κ in W/(m·K).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import xarray as xr
from ase.data import atomic_masses
from scipy import stats
from scipy.integrate import cumulative_trapezoid, trapezoid

from hts_mlff.analysis.green_kubo import autocorrelation_rows, first_zero_fs, vector_autocorrelation
from hts_mlff.analysis.sed import project_block
from hts_mlff.units import BOLTZMANN_EV_PER_K, EV_PER_AMU_A2_PER_FS2, W_PER_M_K_PER_EV_PER_A_FS_K


def chunk_slices(field: xr.DataArray, dim: str) -> list[slice]:
    """Slices along ``dim`` that follow the store's chunks (each chunk is read once)."""
    sizes = field.chunksizes.get(dim) if field.chunks is not None else None
    sizes = sizes or (field.sizes[dim],)
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def normal_mode_coordinates(
    group: xr.Dataset, k_points_A: np.ndarray, polarizations: np.ndarray, *, dtype: type = np.complex64
) -> tuple[np.ndarray, np.ndarray]:
    """(n_traj, n_k, n_b, n_t) complex64 Q (√amu·Å) and Q̇ (√amu·Å/fs) of a few trajectories.

    ``group``: trajectories (best: those of one chunk of the store's ``traj`` axis, read
    together) with ``positions`` (unwrapped) and ``velocities`` at the same snapshot times,
    ``lattice_site_A``, ``basis_index`` and ``atomic_numbers``. ``k_points_A`` (n_traj, n_k, 3)
    rad/Å, each trajectory's k in its own cell; ``polarizations`` (n_k, 3·n_basis, n_b) harmonic
    eigenvectors at +k in the e^{ik·r} convention of :func:`hts_mlff.statics.phonons.harmonic_modes`.
    Read one time chunk at a time; only the projections are held (``dtype``: single precision by
    default, half the memory; relative rounding ~10⁻⁷).
    """
    if not np.array_equal(group["position_time_fs"].values, group["velocity_time_fs"].values):
        raise ValueError("positions and velocities must be stored at the same samples (same save_*_every_samples)")
    k_all = np.asarray(k_points_A, dtype=float)
    n_traj, n_k = k_all.shape[:2]
    n_t = group.sizes["position_time_fs"]
    n_b = polarizations.shape[-1]
    q = np.empty((2, n_traj, n_k, n_b, n_t), dtype=dtype)
    sites_all = np.asarray(group["lattice_site_A"].values, dtype=float)
    basis_all = np.asarray(group["basis_index"].values)
    numbers_all = np.asarray(group["atomic_numbers"].values)
    setups = []
    for i in range(n_traj):
        basis = basis_all[i]
        masses = np.where(basis >= 0, atomic_masses[np.clip(numbers_all[i], 0, None)], 0.0)
        members = [np.flatnonzero(basis == b) for b in range(int(basis.max()) + 1)]
        phases = [np.exp(-1j * (k_all[i] @ sites_all[i][idx].T)) for idx in members]
        n_cells = int((basis >= 0).sum()) // len(members)
        setups.append((masses, members, phases, n_cells))
    for window in chunk_slices(group["positions"], "position_time_fs"):
        blocks = [
            np.asarray(group[name].isel({dim: window}).values, dtype=float)
            for name, dim in (("positions", "position_time_fs"), ("velocities", "velocity_time_fs"))
        ]
        for i, (masses, members, phases, n_cells) in enumerate(setups):
            displacement = np.nan_to_num(blocks[0][i] - sites_all[i][None])
            displacement -= (masses[None, :, None] * displacement).sum(1, keepdims=True) / masses.sum()
            for f, field in enumerate((displacement, np.nan_to_num(blocks[1][i]))):
                projected = project_block(
                    field, phases=phases, members=members, weights=np.sqrt(masses), n_k=n_k
                )  # (n_basis, t, n_k, 3): Σ √m x e^{−ik·r}
                by_dof = projected.transpose(2, 0, 3, 1).reshape(n_k, 3 * len(members), -1)
                q[f, i, :, :, window] = np.einsum("kds,kdt->kst", np.conj(polarizations), by_dof) / np.sqrt(n_cells)
    return q[0], q[1]


def running_wave_energies(q: np.ndarray, q_dot: np.ndarray, frequencies_THz: np.ndarray) -> np.ndarray:
    """(n_k, n_b, n_t) eV: E = ½|ωQ + iQ̇|² of each running wave (module docstring); ω from
    ``frequencies_THz`` (n_k, n_b). Modes with ω ≤ 0 (acoustic Γ) get NaN."""
    omega = 2e-3 * np.pi * np.asarray(frequencies_THz, dtype=float)  # rad/fs
    energy = 0.5 * np.abs(omega[..., None] * q + 1j * q_dot) ** 2 * EV_PER_AMU_A2_PER_FS2
    energy[omega <= 1e-9] = np.nan
    return energy


def energy_series(q: np.ndarray, q_dot: np.ndarray) -> np.ndarray:
    """(3, …) float32 |Q|², |Q̇|² and Im(Q Q̇*) (amu·Å², amu·Å²/fs², amu·Å²/fs): what a running
    wave's energy at any ω is made of, ½|ωQ + iQ̇|² = ½(ω²|Q|² + |Q̇|² + 2ω Im(Q Q̇*)), so the
    frequencies (harmonic or renormalised) can be chosen after the trajectories are read."""
    return np.stack([np.abs(q) ** 2, np.abs(q_dot) ** 2, (q * np.conj(q_dot)).imag]).astype(np.float32)


def energies_from_series(series: np.ndarray, frequencies_THz: np.ndarray) -> np.ndarray:
    """Running-wave energies (eV, float32) from :func:`energy_series` (3, n_modes, …) at
    ``frequencies_THz`` (n_modes,); modes with ω ≤ 0 get NaN."""
    omega = 2e-3 * np.pi * np.asarray(frequencies_THz, dtype=float)  # rad/fs
    shape = (-1,) + (1,) * (series.ndim - 2)
    w = omega.reshape(shape)
    energy = 0.5 * (w**2 * series[0] + series[1] + 2 * w * series[2]) * EV_PER_AMU_A2_PER_FS2
    energy[omega <= 1e-9] = np.nan
    return energy.astype(np.float32)


def modal_currents(
    energies_eV: Sequence[np.ndarray],
    group_velocity_A_per_fs: np.ndarray,
    temperatures_K: np.ndarray,
    *,
    max_lag: int,
) -> dict[str, np.ndarray]:
    """Phonon-gas currents and the diagonal parts of their autocorrelation.

    Args:
        energies_eV: per seed of one state point, (n_modes, n_t) running-wave energies (an
            (n_traj, n_modes, n_t) array, or a sequence that makes each when indexed, read
            twice); modes with NaN energy are left out.
        group_velocity_A_per_fs: (n_modes, 3).
        temperatures_K: (n_traj,) each seed's mean kinetic temperature (scales the pooled mean).
        max_lag: lags kept.

    Returns:
        ``current`` (n_traj, n_t, 3) J_ph in eV·Å/fs; ``diagonal`` (n_traj, max_lag)
        Σ_modes |v|²/3 ⟨δE(0)δE(t)⟩ in (eV·Å/fs)², the diagonal part of ⟨J_ph(0)·J_ph(t)⟩/3;
        ``mode_acf`` (n_traj, n_modes, max_lag) ⟨δE(0)δE(t)⟩ in eV².
    """
    velocity = np.asarray(group_velocity_A_per_fs, dtype=float)
    n_traj = len(energies_eV)
    thermal = BOLTZMANN_EV_PER_K * np.asarray(temperatures_K, dtype=float)
    pooled, keep = 0.0, True
    for i in range(n_traj):
        one = np.asarray(energies_eV[i], dtype=float)
        keep = keep & np.isfinite(one).all(axis=1)
        pooled = pooled + np.nan_to_num(one.mean(axis=1)) / thermal[i] / n_traj
    n_modes, n_t = one.shape
    weight = (velocity**2).sum(axis=1) / 3.0
    current = np.empty((n_traj, n_t, 3))
    diagonal = np.empty((n_traj, max_lag))
    mode_acf = np.empty((n_traj, n_modes, max_lag), dtype=np.float32)
    for i in range(n_traj):  # one seed at a time: the FFTs of all would not fit
        delta = np.where(keep[:, None], np.asarray(energies_eV[i], dtype=float) - pooled[:, None] * thermal[i], 0.0)
        current[i] = delta.T @ velocity
        acf = autocorrelation_rows(delta, max_lag)
        diagonal[i] = weight @ acf
        mode_acf[i] = acf
    return {"current": current, "diagonal": diagonal, "mode_acf": mode_acf}


def energy_lifetimes_ps(mode_acf: np.ndarray, dt_fs: float) -> np.ndarray:
    """(n_modes,) ps: each mode's normalised seed-mean energy autocorrelation integrated to its
    first zero (NaN for modes left out). ``mode_acf`` (n_traj, n_modes, n_lag) eV²."""
    mean = np.asarray(mode_acf, dtype=float).mean(axis=0)
    lag = np.arange(mean.shape[-1]) * dt_fs
    out = np.full(mean.shape[0], np.nan)
    for m, curve in enumerate(mean):
        if not curve[0] > 0:
            continue
        stop = int(np.searchsorted(lag, first_zero_fs(curve, lag))) + 1
        out[m] = trapezoid(curve[:stop] / curve[0], dx=dt_fs) * 1e-3
    return out


def modal_kappa(
    modal: dict[str, np.ndarray],
    *,
    total_hcacf: np.ndarray,
    total_dt_fs: float,
    modal_dt_fs: float,
    group_velocity_A_per_fs: np.ndarray,
    volumes_A3: np.ndarray,
    temperatures_K: np.ndarray,
    cutoff_fs: float | None = None,
    confidence: float = 0.95,
) -> tuple[dict[str, float], xr.Dataset]:
    """κ_GK, κ_ph, κ_diag, κ_cross and κ_GK − κ_ph of one state point, each per seed at one cut-off.

    Args:
        modal: :func:`modal_currents` of the state point's seeds.
        total_hcacf: (n_traj, n_lag) ⟨J(0)·J(t)⟩/3 of the full heat current, (eV·Å/fs)², lag
            step ``total_dt_fs``.
        cutoff_fs: common upper limit of every integral; None: the first zero of the seed-mean
            full HCACF (the Green–Kubo κ's own cut-off).

    Returns:
        A row (means, Student-t intervals ``…_low``/``…_high`` over seeds — differences are paired
        seed by seed —, the cut-off, the RTA sum with energy lifetimes and its jackknife error) and
        the running curves (lag_fs on the modal time step): seed means of each κ(t).
    """
    scale = W_PER_M_K_PER_EV_PER_A_FS_K / (
        np.asarray(volumes_A3, dtype=float) * BOLTZMANN_EV_PER_K * np.asarray(temperatures_K, dtype=float) ** 2
    )
    n_traj, n_lag = modal["diagonal"].shape
    phonon_hcacf = vector_autocorrelation(modal["current"], n_lag)
    total_lag = np.arange(total_hcacf.shape[1]) * total_dt_fs
    lag = np.arange(n_lag) * modal_dt_fs
    cut = first_zero_fs(total_hcacf.mean(0), total_lag) if cutoff_fs is None else float(cutoff_fs)
    cut = min(cut, float(lag[-1]), float(total_lag[-1]))
    running_total = cumulative_trapezoid(total_hcacf, dx=total_dt_fs, initial=0) * scale[:, None]
    running = {
        "gk": np.stack([np.interp(lag, total_lag, r) for r in running_total]),
        "phonon": cumulative_trapezoid(phonon_hcacf, dx=modal_dt_fs, initial=0) * scale[:, None],
        "diagonal": cumulative_trapezoid(modal["diagonal"], dx=modal_dt_fs, initial=0) * scale[:, None],
    }
    running["cross"] = running["phonon"] - running["diagonal"]
    running["beyond_phonon"] = running["gk"] - running["phonon"]
    at = {name: np.array([np.interp(cut, lag, r) for r in curves]) for name, curves in running.items()}
    factor = float(stats.t.ppf(0.5 + confidence / 2, n_traj - 1)) if n_traj > 1 else np.nan
    row: dict[str, float] = {"cutoff_fs": cut, "n_seeds": float(n_traj)}
    for name, values in at.items():
        mean = float(values.mean())
        half = factor * float(values.std(ddof=1)) / np.sqrt(n_traj) if n_traj > 1 else np.nan
        row.update(
            {f"kappa_{name}_W_per_mK": mean, f"kappa_{name}_low": mean - half, f"kappa_{name}_high": mean + half}
        )
    weight = (np.asarray(group_velocity_A_per_fs, dtype=float) ** 2).sum(axis=1) / 3.0
    kappa_per_tau = float(np.mean(scale)) * (BOLTZMANN_EV_PER_K * float(np.mean(temperatures_K))) ** 2 * 1e3
    tau = energy_lifetimes_ps(modal["mode_acf"], modal_dt_fs)
    row["kappa_energy_rta_W_per_mK"] = kappa_per_tau * float(np.nansum(weight * tau))
    row["kappa_energy_rta_err"] = np.nan
    if n_traj >= 3:
        total = modal["mode_acf"].sum(axis=0, dtype=float)
        leave_out = [
            kappa_per_tau
            * float(
                np.nansum(
                    weight * energy_lifetimes_ps(((total - modal["mode_acf"][i]) / (n_traj - 1))[None], modal_dt_fs)
                )
            )
            for i in range(n_traj)
        ]
        row["kappa_energy_rta_err"] = float(
            np.sqrt((n_traj - 1) / n_traj * np.sum((leave_out - np.mean(leave_out)) ** 2))
        )
    rta, half = row["kappa_energy_rta_W_per_mK"], factor * row["kappa_energy_rta_err"]
    row.update({"kappa_energy_rta_low": rta - half, "kappa_energy_rta_high": rta + half})
    curves = xr.Dataset(
        {f"kappa_{name}_W_per_mK": ("lag_fs", c.mean(0), {"units": "W/(m·K)"}) for name, c in running.items()},
        coords={"lag_fs": lag},
    )
    return row, curves
