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


def jump_summary(vacancy_site: np.ndarray, n_vacant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per replica: number of vacancy jumps and the frame of the first (−1: none).

    A jump is a change of the vacant site between consecutive tracked frames (−1 frames are
    skipped). Counting stops at the first frame with other than one empty site — the crystal has
    lost its lattice there. (Recrossing filters and rates: ``hts_mlff.analysis.vacancy``.)

    Args:
        vacancy_site, n_vacant: (n_replicas, n_frames) int, as recorded.
    Returns:
        (n_replicas,) int32 jump counts, (n_replicas,) int32 first-jump frames.
    """
    n = vacancy_site.shape[0]
    counts = np.zeros(n, dtype=np.int32)
    first = np.full(n, -1, dtype=np.int32)
    for k in range(n):
        last = -1
        for frame, (site, empty) in enumerate(zip(vacancy_site[k], n_vacant[k], strict=True)):
            if site < 0:
                continue
            if empty != 1:
                break
            if last >= 0 and site != last:
                counts[k] += 1
                if first[k] < 0:
                    first[k] = frame
            last = site
    return counts, first
