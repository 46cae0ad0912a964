"""A real Dask cluster and small campaign files for the scheduling tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

CAMPAIGN = textwrap.dedent(
    """\
    name: {name}
    store: {store}
    systems:
      ar108:
        kind: fcc
        element: Ar
        lattice_A: 5.71
        repeat: [3, 3, 3]
      ar107:
        kind: fcc
        element: Ar
        lattice_A: 5.71
        repeat: [3, 3, 3]
        vacancies: {{count: 1}}
    forcefields:
      lj:
        kind: lennard_jones
        epsilon_eV: 0.010327
        sigma_A: 3.405
        cutoff_A: 8.5
    protocol:
      ensemble: nvt
      timestep_fs: 10.0
      equilibration_steps: 20
      production_steps: {steps}
      sample_every_steps: 10
      save_positions_every_samples: 2
    sweep:
      temperature_K: [60, 90]
      seed: {seeds}
    execution:
      pack_size: {pack_size}
      dtype: float64
    cluster:
      kind: local
      n_workers: 1
      dashboard_address: ":0"
    """
)


def write_campaign(
    folder: Path, *, name: str = "t", store: str = "t.zarr", steps: int = 60, seeds: str = "[0, 1]", pack_size: int = 3
) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(CAMPAIGN.format(name=name, store=store, steps=steps, seeds=seeds, pack_size=pack_size))
    return path
