"""Time the stability and full summaries over a synthetic 10⁴-trajectory campaign store, on 2 cores.

The store is laid out by the real code path (campaign → plan → ``prepare_store``) and filled
without MD: 2 force fields × 10 temperatures × 500 seeds = 10⁴ trajectories of 256 argon atoms,
``--snapshots`` stored frames each (FCC positions + Gaussian displacements growing like a
random walk), 5 % of the replicas marked as exploded at a random step. Then, lazily over the
store (dask, threaded):

1. stability summary — per-trajectory failures and centre-of-mass drift, survival curves,
   fraction stable per (force field, T, P);
2. full summary — the above plus g(r) against the reference, WF, JSD, RDF MAE, MSD → D.

    python benchmarks/summary_speed.py [--seeds 500] [--snapshots 6] [--folder /tmp/hts-summary-bench]
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
import time
from pathlib import Path

import dask
import numpy as np

CAMPAIGN = textwrap.dedent(
    """\
    name: summary-bench
    store: summary-bench.zarr
    systems:
      ar256: {{kind: fcc, element: Ar, number_density_per_A3: 0.02148, repeat: [4, 4, 4]}}
    forcefields:
      lj: {{kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}}
      other: {{kind: lennard_jones, epsilon_eV: 0.0095, sigma_A: 3.405, cutoff_A: 8.5}}
    protocol:
      timestep_fs: 10.0
      production_steps: {steps}
      sample_every_steps: 100
      save_positions_every_samples: 1
    sweep:
      temperature_K: [20, 30, 40, 50, 60, 70, 80, 90, 100, 110]
      seed: {seeds}
    execution: {{pack_size: 100}}
    """
)


def build_store(folder: Path, *, n_seeds: int, n_snapshots: int) -> Path:
    from hts_mlff.schedule.runner import pending_jobs, prepare_store
    from hts_mlff.spec.load import load_campaign
    from hts_mlff.store.integrity import record_pack
    from hts_mlff.systems import build_system
    from hts_mlff.tasks import expand

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    path = folder / "summary-bench.yaml"
    path.write_text(CAMPAIGN.format(steps=100 * (n_snapshots - 1), seeds=list(range(n_seeds))))
    loaded = load_campaign(path)
    plan = expand(loaded.spec, base_dir=loaded.base_dir)
    store = prepare_store(loaded, plan)
    atoms = build_system(loaded.spec.systems["ar256"], base_dir=folder)
    base, cell = atoms.positions, atoms.cell.array
    rng = np.random.default_rng(0)
    n_frames = plan.n_frames
    for job in pending_jobs(loaded, plan, store, threads=None):
        n = len(job.tasks)
        temps = np.array([t["temperature_K"] for t in job.tasks])
        amplitude = 0.02 * np.sqrt(temps)[:, None, None, None]
        steps = rng.normal(size=(n, n_snapshots, len(base), 3)) * amplitude
        positions = base[None, None] + np.cumsum(steps, axis=1)
        failure_step = np.where(rng.random(n) < 0.05, rng.integers(1, 100 * (n_snapshots - 1), n), -1)
        for k in np.flatnonzero(failure_step >= 0):
            positions[k, failure_step[k] // 100 + 1 :] = np.nan
        arrays = {
            "positions": positions,
            "cells": np.broadcast_to(cell, (n, n_snapshots, 3, 3)).copy(),
            "atomic_numbers": np.full((n, len(base)), 18, dtype=np.int32),
            "n_atoms": np.full(n, len(base), dtype=np.int32),
            "failure_step": failure_step.astype(np.int64),
            "failure_reason": np.where(failure_step >= 0, 1, 0).astype(np.int8),
            "kinetic_temperature_K": np.repeat(temps[:, None], n_frames, axis=1),
            "volume_A3": np.full((n, n_frames), atoms.get_volume()),
        }
        regions = store.write_pack(slot_start=job.slot_start, arrays=arrays)
        record_pack(store, pack_index=job.pack_index, slot_start=job.slot_start, regions=regions)
        for k, task in enumerate(job.tasks):
            marker = {"task_id": task["task_id"], "pack": job.pack_index, "failure_step": int(failure_step[k])}
            store.mark_done(task["task_id"], marker)
    store.consolidate()
    return store.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--snapshots", type=int, default=6)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/hts-summary-bench"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import hts_mlff
    from hts_mlff.analysis.stability import survival_summary, trajectory_stability
    from hts_mlff.analysis.summary import summarize

    t0 = time.perf_counter()
    path = build_store(args.folder, n_seeds=args.seeds, n_snapshots=args.snapshots)
    print(f"built {path} in {time.perf_counter() - t0:.1f} s")
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        t0 = time.perf_counter()
        ds = hts_mlff.open_campaign(path)
        t_open = time.perf_counter() - t0
        print(f"open_campaign: {t_open:.2f} s ({ds.sizes['traj']} trajectories, lazy)")
        t0 = time.perf_counter()
        stab = trajectory_stability(ds)
        summary = survival_summary(stab)
        t_stab = time.perf_counter() - t0
        print(
            f"stability summary: {t_stab:.2f} s — {summary.sizes['group']} groups, "
            f"fraction stable {float(summary['fraction_stable'].mean()):.3f}"
        )
        t0 = time.perf_counter()
        full = summarize(ds, reference="lj", n_bins=100)
        t_full = time.perf_counter() - t0
        print(f"full summary (g(r), WF, JSD, MAE, MSD → D, stability): {t_full:.1f} s")
        print(full.per_forcefield.T.to_string())


if __name__ == "__main__":
    main()
