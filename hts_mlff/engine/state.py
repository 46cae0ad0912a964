"""Batched state: many periodic systems as one flat set of atoms plus a system index.

Systems of different sizes (N and N−1 atoms) live side by side; per-atom tensors are
concatenated in system order and ``system_idx`` says which system each atom belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class BatchState:
    """Positions, velocities and cells of a pack of replicas.

    Attributes:
        positions: (n_atoms, 3) Cartesian positions in Å, unwrapped (never folded back).
        velocities: (n_atoms, 3) Å/fs.
        masses: (n_atoms,) amu.
        atomic_numbers: (n_atoms,) int64.
        cell: (n_systems, 3, 3) Å, rows are the lattice vectors.
        system_idx: (n_atoms,) int64 system of every atom, non-decreasing.
    """

    positions: torch.Tensor
    velocities: torch.Tensor
    masses: torch.Tensor
    atomic_numbers: torch.Tensor
    cell: torch.Tensor
    system_idx: torch.Tensor

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_systems(self) -> int:
        return int(self.cell.shape[0])

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    @property
    def atoms_per_system(self) -> torch.Tensor:
        """(n_systems,) int64 atom counts."""
        return torch.bincount(self.system_idx, minlength=self.n_systems)

    @property
    def volume(self) -> torch.Tensor:
        """(n_systems,) cell volumes in Å³."""
        return torch.linalg.det(self.cell).abs()

    def system_offsets(self) -> torch.Tensor:
        """(n_systems + 1,) int64 index of each system's first atom, then n_atoms."""
        counts = self.atoms_per_system
        return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])

    def local_atom_index(self) -> torch.Tensor:
        """(n_atoms,) int64 index of every atom inside its own system."""
        offsets = self.system_offsets()
        return torch.arange(self.n_atoms, device=self.device) - offsets[self.system_idx]

    def clone(self) -> BatchState:
        return BatchState(
            positions=self.positions.clone(),
            velocities=self.velocities.clone(),
            masses=self.masses.clone(),
            atomic_numbers=self.atomic_numbers.clone(),
            cell=self.cell.clone(),
            system_idx=self.system_idx.clone(),
        )

    def system_slice(self, system: int) -> slice:
        offsets = self.system_offsets().tolist()
        return slice(offsets[system], offsets[system + 1])


def sum_per_system(values: torch.Tensor, system_idx: torch.Tensor, n_systems: int) -> torch.Tensor:
    """Sum per-atom (or per-pair) values into their systems: (n, ...) → (n_systems, ...)."""
    out = values.new_zeros((n_systems, *values.shape[1:]))
    return out.index_add_(0, system_idx, values)


def max_per_system(values: torch.Tensor, system_idx: torch.Tensor, n_systems: int) -> torch.Tensor:
    """Maximum of per-atom values in each system: (n,) → (n_systems,); −inf where empty."""
    out = values.new_full((n_systems,), -torch.inf)
    return out.scatter_reduce_(0, system_idx, values, reduce="amax", include_self=True)


def state_from_arrays(
    positions: list[np.ndarray],
    *,
    cells: list[np.ndarray],
    atomic_numbers: list[np.ndarray],
    masses: list[np.ndarray],
    device: torch.device,
    dtype: torch.dtype,
) -> BatchState:
    """Stack per-system numpy arrays ((n_i, 3) positions, (3, 3) cells) into one state."""
    counts = [len(p) for p in positions]
    system_idx = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    pos = torch.as_tensor(np.concatenate(positions), dtype=dtype, device=device)
    return BatchState(
        positions=pos,
        velocities=torch.zeros_like(pos),
        masses=torch.as_tensor(np.concatenate(masses), dtype=dtype, device=device),
        atomic_numbers=torch.as_tensor(np.concatenate(atomic_numbers), dtype=torch.int64, device=device),
        cell=torch.as_tensor(np.stack(cells), dtype=dtype, device=device),
        system_idx=system_idx.to(device),
    )


def state_from_atoms(atoms_list: list, *, device: torch.device, dtype: torch.dtype) -> BatchState:
    """Stack ASE ``Atoms`` objects (fully periodic) into one state with zero velocities."""
    return state_from_arrays(
        [a.get_positions() for a in atoms_list],
        cells=[np.array(a.cell) for a in atoms_list],
        atomic_numbers=[a.numbers for a in atoms_list],
        masses=[a.get_masses() for a in atoms_list],
        device=device,
        dtype=dtype,
    )
