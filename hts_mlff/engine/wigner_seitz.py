"""Wigner–Seitz occupancy of reference lattice sites, for vacancy tracking (solid-state seed §2.3).

Each atom belongs to the cell of its nearest reference site (minimum image in the periodic
cell: robust to thermal vibration as long as atoms stay closer to their own site than to a
neighbouring one). A rigid drift of the crystal is taken out first: the mean displacement of
the atoms from their nearest sites is subtracted and the atoms are assigned again, so a
translation of up to half a neighbour distance does not empty sites. A site whose cell holds
no atom is vacant. With one vacancy the vacant
site is the vacancy's position on the lattice; a jump is a change of that site.
"""

from __future__ import annotations

import numpy as np
import torch


def _nearest_sites(frac_atoms: torch.Tensor, frac_sites: torch.Tensor, cell: torch.Tensor, block_atoms: int):
    """(n,) nearest site of every atom and (n, 3) Cartesian displacements from it (minimum image)."""
    nearest, displacement = [], []
    for lo in range(0, frac_atoms.shape[0], block_atoms):  # (block, m, 3) at a time
        delta = frac_atoms[lo : lo + block_atoms, None, :] - frac_sites[None, :, :]
        cart = (delta - torch.round(delta)) @ cell
        k = torch.argmin((cart * cart).sum(-1), dim=1)
        nearest.append(k)
        displacement.append(cart[torch.arange(len(k), device=cart.device), k])
    return torch.cat(nearest), torch.cat(displacement)


def site_occupancy(
    positions: torch.Tensor, sites: torch.Tensor, cell: torch.Tensor, *, block_atoms: int = 512
) -> torch.Tensor:
    """Number of atoms in the Wigner–Seitz cell of every site.

    Args:
        positions: (n, 3) Å, any periodic image. sites: (m, 3) Å reference sites.
        cell: (3, 3) Å, rows are lattice vectors (the sites' periodic cell).

    Returns:
        (m,) int64 occupancy; atoms with non-finite positions are not counted.
    """
    inverse = torch.linalg.inv(cell)
    good = torch.isfinite(positions).all(dim=1)
    frac_atoms = positions[good] @ inverse  # (n, 3)
    frac_sites = sites @ inverse  # (m, 3)
    if frac_atoms.shape[0] == 0:
        return torch.zeros(sites.shape[0], dtype=torch.int64, device=sites.device)
    _, displacement = _nearest_sites(frac_atoms, frac_sites, cell, block_atoms)
    drift = displacement.mean(dim=0) @ inverse
    nearest, _ = _nearest_sites(frac_atoms - drift, frac_sites, cell, block_atoms)
    return torch.bincount(nearest, minlength=sites.shape[0])


def vacant_site(positions: torch.Tensor, sites: torch.Tensor, cell: torch.Tensor) -> tuple[int, int]:
    """(index of the first empty site or −1, number of empty sites) of one system."""
    empty = torch.nonzero(site_occupancy(positions, sites, cell) == 0).squeeze(1)
    return (int(empty[0]) if len(empty) else -1), len(empty)


def jump_frames(sites: np.ndarray, *, min_dwell_samples: int = 1) -> np.ndarray:
    """Frame indices of the jumps of one (n_frames,) vacancy-site series (−1 entries are skipped).

    A jump is a change of the site between consecutive tracked frames; with
    ``min_dwell_samples`` = d > 1 a new site counts only once the vacancy has stayed there for d
    tracked samples, which drops immediate recrossings of one saddle.
    """
    valid = np.flatnonzero(sites >= 0)
    if len(valid) < 2:
        return np.empty(0, dtype=np.int64)
    s = sites[valid]
    current, events = s[0], []
    for k in range(1, len(s)):
        if s[k] != current:
            stay = s[k : k + min_dwell_samples]
            if len(stay) == min_dwell_samples and (stay == s[k]).all():
                events.append(valid[k])
                current = s[k]
    return np.asarray(events, dtype=np.int64)


def count_jumps(
    vacancy_site: np.ndarray, n_vacant: np.ndarray | None = None, *, min_dwell_samples: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Per replica: number of vacancy jumps and the frame of the first (−1: none).

    The one jump counter of the package: the worker's per-trajectory summary and the windows of
    :mod:`hts_mlff.analysis.vacancy` both call it. Untracked frames (site −1) are skipped.
    With ``n_vacant``, counting stops at the first tracked frame with other than one empty
    site: the crystal has lost its lattice there (cavitation, melting, a Frenkel pair).

    Args:
        vacancy_site, n_vacant: (n_replicas, n_frames) int, as recorded.
        min_dwell_samples: see :func:`jump_frames`.
    Returns:
        (n_replicas,) int32 jump counts, (n_replicas,) int32 first-jump frames.
    """
    sites = np.asarray(vacancy_site).reshape(-1, np.shape(vacancy_site)[-1])
    if n_vacant is not None:
        count = np.asarray(n_vacant).reshape(sites.shape)
        lost = np.cumsum((count != 1) & (count >= 0), axis=1) > 0
        sites = np.where(lost, -1, sites)
    valid = sites >= 0
    if min_dwell_samples <= 1:
        # Forward-fill untracked frames with the last tracked site; a jump is a change of the
        # filled series at a tracked frame.
        columns = np.arange(sites.shape[1])
        last = np.maximum.accumulate(np.where(valid, columns, -1), axis=1)
        filled = np.take_along_axis(sites, np.maximum(last, 0), axis=1)
        change = np.zeros_like(valid)
        change[:, 1:] = (filled[:, 1:] != filled[:, :-1]) & valid[:, 1:] & (last[:, :-1] >= 0)
        counts = change.sum(axis=1)
        first = np.where(change.any(axis=1), np.argmax(change, axis=1), -1)
    else:
        rows = [jump_frames(row, min_dwell_samples=min_dwell_samples) for row in sites]
        counts = np.array([len(r) for r in rows], dtype=np.int64)
        first = np.array([r[0] if len(r) else -1 for r in rows], dtype=np.int64)
    return counts.astype(np.int32), first.astype(np.int32)
