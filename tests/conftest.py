"""Shared fixtures: LJ argon, small batched states, campaign files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ase import Atoms
from ase.build import bulk

from hts_mlff.engine.state import BatchState, state_from_atoms
from hts_mlff.forcefields import LennardJones

EPSILON_EV = 0.010327
SIGMA_A = 3.405
CUTOFF_A = 8.5
LIQUID_LATTICE_A = (4 / 0.02148) ** (1 / 3)  # the seeds' 0.858 amu/Å³

torch.set_num_threads(2)


@pytest.fixture
def lj() -> LennardJones:
    return LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A, shift=True)


def argon(*, a: float = LIQUID_LATTICE_A, repeat: int = 4, rattle: float = 0.0, seed: int = 0, drop: int = 0) -> Atoms:
    atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat(repeat)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    if drop:
        del atoms[list(range(drop))]
    return atoms


def batch(atoms_list: list[Atoms], *, dtype: torch.dtype = torch.float64) -> BatchState:
    return state_from_atoms(atoms_list, device=torch.device("cpu"), dtype=dtype)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
