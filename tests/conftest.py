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


@pytest.fixture(autouse=True)
def _no_lasting_code_approvals():
    """Approvals of imported code (hts_mlff.spec.trust) last for one test only."""
    from hts_mlff.spec.trust import approved

    with approved([]):
        yield


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


FRAMES_CAMPAIGN = """\
name: frames
store: frames.zarr
systems:
  ar108:
    kind: fcc
    element: Ar
    number_density_per_A3: 0.02148
    repeat: [3, 3, 3]
  ar107:
    kind: fcc
    element: Ar
    number_density_per_A3: 0.02148
    repeat: [3, 3, 3]
    vacancies: [0]
forcefields:
  lj:
    kind: lennard_jones
    epsilon_eV: 0.010327
    sigma_A: 3.405
    cutoff_A: 8.5
protocol:
  ensemble: nvt
  timestep_fs: 10.78
  equilibration_steps: 50
  production_steps: 200
  sample_every_steps: 20
  final_temperature_K: 120
  save_positions_every_samples: 1
  save_forces_every_samples: 1
sweep:
  temperature_K: [40]
  seed: [0, 1]
execution:
  pack_size: 4
  dtype: float64
cluster:
  kind: local
  dashboard_address: ":0"
"""


@pytest.fixture(scope="session")
def frames_store(tmp_path_factory, dask_client) -> Path:
    """A small reference campaign that saved positions, cells and LJ forces (44 frames, 2 systems)."""
    import hts_mlff

    folder = tmp_path_factory.mktemp("frames")
    path = folder / "frames.yaml"
    path.write_text(FRAMES_CAMPAIGN)
    hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)
    return folder / "frames.zarr"
