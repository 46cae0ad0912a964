r"""Lattice dynamics at T = 0: Hessians, symmetricity, eigenfrequencies, dispersion, DOS.

Seeds: solid-state generalizability paper §2.1 (eqs. 1–5) and §3.1; transferability paper §3.4
and A.4 (eqs. 23–30).

**Hessian.** :math:`\mathcal H_{ij} = \partial^2 U / \partial x_i \partial x_j = -\partial f_i / \partial x_j`
(i, j over the 3N Cartesian degrees of freedom), by central differences of the forces,

.. math:: \mathcal H_{ij} = \frac{f_i(x_j - Δx) - f_i(x_j + Δx)}{2 Δx},

so force-only models (the direct GNN) work. All 6N displaced configurations are evaluated as
packs of displaced replicas (one batched force call per pack, ``max_atoms_per_pack`` atoms at
most), not 6N serial calls. The step Δx is a setting; the default is 10⁻⁴ of the
nearest-neighbour distance (3.8·10⁻⁴ Å in solid argon, the seeds' 10⁻⁴ σ to within 10 %): the
seeds found 3.4·10⁻⁶ Å too small for a float32 model (round-off in the force differences makes
H asymmetric) and 3.4·10⁻⁴ Å right. For force fields whose forces are differentiable torch
functions of the positions (LJ, the conservative GNN), :func:`hessian_autograd` gives the
exact −∂f/∂x by automatic differentiation.

**Symmetricity** (seed eq. 3): with :math:`A_s = (A + A^T)/2`, :math:`A_a = (A - A^T)/2` and
Frobenius norms, :math:`\mathcal S(A) = (\|A_s\| - \|A_a\|)/(\|A_s\| + \|A_a\|) ∈ [-1, 1]`, 1 for
a symmetric matrix (a conservative force field).

**Frequencies.** Eigenvalues λ_n of the symmetrised, mass-weighted Hessian
:math:`D = M^{-1/2} \mathcal H_s M^{-1/2}` give :math:`ν_n = \sqrt{λ_n}/2π` (THz; a negative
λ is reported as −√|λ|/2π, an unstable mode). A periodic cell has three zero (acoustic) modes
at Γ; they are identified as the three eigenvectors closest to rigid translations.

**Dispersion.** From the force constants Φ(0κ; lκ') of a supercell (only the atoms of the
unit cell are displaced; the supercell must be wider than twice the interaction range so every
pair has one minimum image), the dynamical matrix at wave vector q is

.. math:: D_{κα,κ'β}(\mathbf q) = \sum_{l} \frac{Φ_{αβ}(0κ; lκ')}{\sqrt{m_κ m_{κ'}}}\,
          e^{i \mathbf q \cdot (\mathbf r_{lκ'} - \mathbf r_{0κ})},

with the minimum-image vector in the phase; its eigenvalues give the bands ν_b(q).
Units: Hessian and force constants eV/Å², masses amu, frequencies THz (= 1/ps).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase import Atoms

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.state import state_from_atoms
from hts_mlff.engine.string_method import atomic_force_function
from hts_mlff.units import ACCEL_A_PER_FS2_PER_EV_PER_A_AMU

#: THz per √(eV/Å²/amu): ν = √λ / 2π with λ converted to 1/fs², then 1/fs → THz.
THZ_PER_SQRT_EV_PER_A2_AMU = math.sqrt(ACCEL_A_PER_FS2_PER_EV_PER_A_AMU) / (2 * math.pi) * 1000.0


def default_step_A(atoms: Atoms) -> float:
    """10⁻⁴ of the nearest-neighbour distance (Å): the finite-difference step's documented rule."""
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    return 1e-4 * float(distances.min())


def _displaced_forces(
    forcefield: ForceField,
    atoms: Atoms,
    displaced_atoms: np.ndarray,
    *,
    step_A: float,
    dtype: torch.dtype,
    device: torch.device | str,
    max_atoms_per_pack: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Forces (n_displaced, 3, 2, N, 3) eV/Å: atom a displaced along α by +Δx (index 0) and −Δx (1),
    and the realised 2Δx (n_displaced, 3) Å: the difference of the two displaced coordinates as
    the force field sees them (in float32 a position of 16 Å carries ~10⁻⁶ Å of round-off, which
    would otherwise enter the denominator as an error of ~0.3 % at Δx = 3·10⁻⁴ Å).

    The 6·n_displaced configurations run as packs of displaced replicas of ``atoms``, at most
    ``max_atoms_per_pack`` atoms per pack (the last pack is padded with copies, so every pack
    has the same size and the neighbour list is reused).
    """
    n = len(atoms)
    template = state_from_atoms([atoms], device=torch.device(device), dtype=dtype)
    reference = template.positions.detach().reshape(1, 3 * n).to(torch.float64)
    columns = (3 * np.asarray(displaced_atoms)[:, None] + np.arange(3)).reshape(-1)  # dof index per (a, α)
    n_configs = 2 * len(columns)
    images = reference.repeat(n_configs, 1)
    rows = torch.arange(n_configs)
    signs = torch.tensor([step_A, -step_A], dtype=torch.float64).repeat(len(columns))
    dof = torch.as_tensor(columns).repeat_interleave(2)
    images[rows, dof] += signs
    images = images.to(dtype=dtype)
    moved = images[rows, dof].double().reshape(-1, 2)
    realised = (moved[:, 0] - moved[:, 1]).numpy().reshape(len(displaced_atoms), 3)
    per_pack = max(1, min(n_configs, max_atoms_per_pack // max(n, 1)))
    force = atomic_force_function(forcefield, template, skin_A=0.1)
    out = np.empty((n_configs, 3 * n))
    for lo in range(0, n_configs, per_pack):
        chunk = images[lo : lo + per_pack]
        size = len(chunk)
        if size < per_pack:  # pad with copies of the last configuration
            chunk = torch.cat([chunk, chunk[-1:].expand(per_pack - size, -1)])
        forces = force(chunk.to(device=template.device))
        out[lo : lo + size] = forces[:size].detach().cpu().double().numpy()
    return out.reshape(len(displaced_atoms), 3, 2, n, 3), realised


def hessian(
    forcefield: ForceField,
    atoms: Atoms,
    *,
    step_A: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    max_atoms_per_pack: int = 32768,
) -> np.ndarray:
    """(3N, 3N) Hessian in eV/Å² by central differences of the forces (not symmetrised).

    Row i, column j: −∂f_i/∂x_j, dof index 3·atom + axis. ``step_A`` default:
    :func:`default_step_A`. Every displaced configuration is one replica of a batched pack.
    """
    step = default_step_A(atoms) if step_A is None else float(step_A)
    n = len(atoms)
    forces, realised = _displaced_forces(
        forcefield,
        atoms,
        np.arange(n),
        step_A=step,
        dtype=dtype,
        device=device,
        max_atoms_per_pack=max_atoms_per_pack,
    )
    # column (a, α) = (f(x − Δ) − f(x + Δ)) / 2Δ, flattened over (atom, axis)
    columns = (forces[:, :, 1] - forces[:, :, 0]).reshape(3 * n, 3 * n) / realised.reshape(3 * n, 1)
    return columns.T.copy()


def hessian_autograd(forcefield: ForceField, atoms: Atoms, *, device: torch.device | str = "cpu") -> np.ndarray:
    """(3N, 3N) exact −∂f/∂x in eV/Å² by automatic differentiation of the forces (float64).

    Needs forces that are differentiable torch functions of the positions (LJ, the
    conservative GNN); for a conservative force field this is the Hessian of its energy.
    """
    state = state_from_atoms([atoms], device=torch.device(device), dtype=torch.float64)
    positions = state.positions.detach().clone().requires_grad_(True)
    state.positions = positions
    forces = forcefield.forward(state, compute_stress=False).forces.reshape(-1)
    rows = []
    for i in range(forces.shape[0]):
        (grad,) = torch.autograd.grad(forces[i], positions, retain_graph=i + 1 < forces.shape[0])
        rows.append(-grad.reshape(-1))
    return torch.stack(rows).detach().cpu().numpy()


def symmetricity(matrix: np.ndarray) -> float:
    """S(A) = (‖A_s‖ − ‖A_a‖)/(‖A_s‖ + ‖A_a‖) with Frobenius norms (seed eq. 3); 1: symmetric."""
    a = np.asarray(matrix, dtype=float)
    sym = np.linalg.norm((a + a.T) / 2)
    anti = np.linalg.norm((a - a.T) / 2)
    return float((sym - anti) / (sym + anti)) if sym + anti > 0 else 1.0


def _signed_frequencies_THz(eigenvalues: np.ndarray) -> np.ndarray:
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * THZ_PER_SQRT_EV_PER_A2_AMU


def mass_weighted(matrix: np.ndarray, masses_amu: np.ndarray) -> np.ndarray:
    """M^{-1/2} A_s M^{-1/2} of the symmetrised (3N, 3N) ``matrix`` (eV/Å²/amu)."""
    a = np.asarray(matrix, dtype=float)
    inv_sqrt = 1.0 / np.sqrt(np.repeat(np.asarray(masses_amu, dtype=float), 3))
    return (a + a.T) / 2 * inv_sqrt[:, None] * inv_sqrt[None, :]


def normal_modes(matrix: np.ndarray, masses_amu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenfrequencies (3N,) THz ascending, eigenvectors (3N, 3N) in columns, and the indices
    (3,) of the three acoustic modes (the eigenvectors with the largest weight on rigid
    translations of the mass-weighted coordinates)."""
    dynamical = mass_weighted(matrix, masses_amu)
    values, vectors = np.linalg.eigh(dynamical)
    sqrt_m = np.sqrt(np.repeat(np.asarray(masses_amu, dtype=float), 3))
    translations = np.zeros((3, len(sqrt_m)))
    for axis in range(3):
        translations[axis, axis::3] = sqrt_m[axis::3]
    translations /= np.linalg.norm(translations, axis=1, keepdims=True)
    overlap = ((translations @ vectors) ** 2).sum(axis=0)
    acoustic = np.sort(np.argsort(overlap)[-3:])
    return _signed_frequencies_THz(values), vectors, acoustic


def force_constants(
    forcefield: ForceField,
    unit_cell: Atoms,
    *,
    supercell: tuple[int, int, int],
    step_A: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, Atoms]:
    """Force constants Φ (n_basis, 3, N_super, 3) eV/Å² of the unit cell's atoms in a supercell.

    Φ[κ, α, j, β] = −∂f_{jβ}/∂x_{κα}: only the n_basis atoms of ``unit_cell`` (the first atoms
    of the supercell) are displaced, 6·n_basis configurations in one pack. Returns Φ and the
    supercell (``unit_cell.repeat(supercell)``).
    """
    big = unit_cell.repeat(supercell)
    step = default_step_A(big) if step_A is None else float(step_A)
    forces, realised = _displaced_forces(
        forcefield,
        big,
        np.arange(len(unit_cell)),
        step_A=step,
        dtype=dtype,
        device=device,
        max_atoms_per_pack=32768,
    )
    return (forces[:, :, 1] - forces[:, :, 0]) / realised[:, :, None, None], big


def dynamical_matrices(
    constants: np.ndarray, supercell_atoms: Atoms, unit_cell: Atoms, q_points_frac: np.ndarray
) -> np.ndarray:
    """(n_q, 3·n_basis, 3·n_basis) complex D(q) in eV/Å²/amu, symmetrised (Hermitian).

    ``q_points_frac`` (n_q, 3): fractions of the reciprocal vectors of ``unit_cell``'s cell.
    """
    n_basis = len(unit_cell)
    masses = unit_cell.get_masses()
    reciprocal = 2 * np.pi * np.linalg.inv(np.asarray(unit_cell.cell)).T  # rows b_i, a_i·b_j = 2π δ_ij
    q_cart = np.atleast_2d(np.asarray(q_points_frac, dtype=float)) @ reciprocal
    basis_of = np.arange(len(supercell_atoms)) % n_basis  # ASE's repeat keeps the basis order per copy
    out = np.zeros((len(q_cart), 3 * n_basis, 3 * n_basis), dtype=complex)
    for kappa in range(n_basis):
        vectors = supercell_atoms.get_distances(kappa, np.arange(len(supercell_atoms)), mic=True, vector=True)
        phases = np.exp(1j * q_cart @ vectors.T)  # (n_q, N_super)
        for k_prime in range(n_basis):
            members = basis_of == k_prime
            block = constants[kappa][:, members, :]  # (3, n_members, 3)
            weight = 1.0 / np.sqrt(masses[kappa] * masses[k_prime])
            out[:, 3 * kappa : 3 * kappa + 3, 3 * k_prime : 3 * k_prime + 3] = (
                np.einsum("qm,amb->qab", phases[:, members], block) * weight
            )
    return (out + np.conj(np.transpose(out, (0, 2, 1)))) / 2


def frequencies_THz(
    forcefield: ForceField,
    atoms: Atoms,
    q_points_frac: np.ndarray,
    *,
    supercell: tuple[int, int, int] | None = None,
    step_A: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Phonon bands (n_q, 3·n_atoms) in THz, sorted per q, of the crystal whose unit cell is ``atoms``.

    Args:
        q_points_frac: (n_q, 3) wave vectors in fractions of the reciprocal vectors of ``atoms``' cell.
        supercell: repetitions for the force constants; default the smallest one wider than
            twice the force field's cutoff in every direction (every pair one minimum image).
    """
    if supercell is None:
        supercell = minimal_supercell(atoms, range_A=forcefield.cutoff_A)
    constants, big = force_constants(forcefield, atoms, supercell=supercell, step_A=step_A, dtype=dtype, device=device)
    matrices = dynamical_matrices(constants, big, atoms, q_points_frac)
    return _signed_frequencies_THz(np.linalg.eigvalsh(matrices))


def harmonic_modes(
    constants: np.ndarray,
    supercell_atoms: Atoms,
    unit_cell: Atoms,
    k_points_A: np.ndarray,
    *,
    dk_per_A: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Harmonic modes at Cartesian wave vectors, for SED projections and κ.

    Args:
        constants, supercell_atoms, unit_cell: as from :func:`force_constants`.
        k_points_A: (n_k, 3) wave vectors in rad/Å (Cartesian, any zone: D(k) is periodic).
        dk_per_A: step of the central differences for the group velocities.

    Returns:
        frequencies (n_k, n_b) THz sorted per k; eigenvectors (n_k, 3·n_basis, n_b) complex,
        column b the polarisation of band b (phase convention exp(i k·r) of each atom, the
        SED's); group velocities (n_k, n_b, 3) Å/ps, v = ∂ω/∂k of the sorted bands (at a
        degeneracy: the mean slope of the degenerate set's sorted bands).
    """
    k = np.atleast_2d(np.asarray(k_points_A, dtype=float))
    to_frac = np.asarray(unit_cell.cell).T / (2 * np.pi)  # k_cart @ (a_i)ᵀ / 2π
    values, vectors = np.linalg.eigh(dynamical_matrices(constants, supercell_atoms, unit_cell, k @ to_frac))
    frequencies = _signed_frequencies_THz(values)
    velocities = np.zeros((*frequencies.shape, 3))
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = dk_per_A
        plus = _signed_frequencies_THz(
            np.linalg.eigvalsh(dynamical_matrices(constants, supercell_atoms, unit_cell, (k + step) @ to_frac))
        )
        minus = _signed_frequencies_THz(
            np.linalg.eigvalsh(dynamical_matrices(constants, supercell_atoms, unit_cell, (k - step) @ to_frac))
        )
        velocities[..., axis] = 2 * np.pi * (plus - minus) / (2 * dk_per_A)  # rad/ps per rad/Å = Å/ps
    return frequencies, vectors, velocities


def minimal_supercell(atoms: Atoms, *, range_A: float) -> tuple[int, int, int]:
    """Smallest repetition of ``atoms``' cell whose widths all exceed 2·``range_A``."""
    cell = np.asarray(atoms.cell)
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[b], cell[c])) for b, c in ((1, 2), (2, 0), (0, 1))]
    return tuple(math.floor(2.0 * range_A / w) + 1 for w in widths)


def density_of_states(
    frequencies: np.ndarray, *, bins_THz: np.ndarray, smearing_THz: float | None = None
) -> np.ndarray:
    """Normalised phonon DOS g(ν) (1/THz) on the bin centres of ``bins_THz`` (edges): a histogram,
    or with ``smearing_THz`` a sum of Gaussians of that width. Acoustic zero modes count as ν ≈ 0."""
    nu = np.asarray(frequencies, dtype=float).ravel()
    if smearing_THz is None:
        counts, _ = np.histogram(nu, bins=bins_THz)
        return counts / (len(nu) * np.diff(bins_THz))
    centres = 0.5 * (bins_THz[1:] + bins_THz[:-1])
    kernel = np.exp(-0.5 * ((centres[:, None] - nu[None, :]) / smearing_THz) ** 2)
    return kernel.sum(axis=1) / (len(nu) * smearing_THz * math.sqrt(2 * math.pi))
