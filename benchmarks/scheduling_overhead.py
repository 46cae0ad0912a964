"""Scheduling overhead through a real local SLURM (dask-jobqueue): submit → first worker,
and the fraction of wall time not spent inside packs, for the quickstart and a 1000-task
campaign. Needs root and Debian's slurmctld, slurmd, slurm-client and munge.

    python benchmarks/scheduling_overhead.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test suite's one-node SLURM helper

import hts_mlff  # noqa: E402
from hts_mlff.schedule.clusters import _warm_up, start_cluster  # noqa: E402
from tests.cluster.local_slurm import LocalSlurm, available  # noqa: E402


def _campaign(folder: Path, *, name: str, seeds: int, temperatures: list[float], steps: int, pack: int) -> Path:
    text = (ROOT / "campaigns" / "quickstart.yaml").read_text()
    text = text.replace("name: quickstart", f"name: {name}").replace("../runs/quickstart.zarr", f"{name}.zarr")
    text = text.replace("temperature_K: [90, 100, 110]", f"temperature_K: {temperatures}")
    text = text.replace("seed: [0, 1, 2, 3]", f"seed: {list(range(seeds))}")
    text = text.replace("equilibration_steps: 200", "equilibration_steps: 0")
    text = text.replace("production_steps: 300", f"production_steps: {steps}")
    text = text.replace("pack_size: 4 ", f"pack_size: {pack} ")
    text = text[: text.index("cluster:")] + (
        "cluster:\n  kind: slurm\n  cores: 1\n  memory: 2GB\n  processes: 1\n  jobs: 2\n"
        f"  walltime: '00:30:00'\n  interface: lo\n  log_directory: {folder / 'logs'}\n"
    )
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def measure(path: Path) -> None:
    loaded = hts_mlff.load_campaign(path)
    t0 = time.perf_counter()
    handle = start_cluster(loaded.spec)
    handle.wait_for_workers(timeout_s=120)
    first_worker_s = time.perf_counter() - t0
    handle.client.wait_for_workers(2, timeout=120)
    tw = time.perf_counter()
    handle.client.run(_warm_up)  # one-time import of torch and the engine on each worker
    warm_up_s = time.perf_counter() - tw
    t1 = time.perf_counter()
    report = hts_mlff.run_campaign(loaded, client=handle.client)
    elapsed = time.perf_counter() - t1
    handle.close()
    busy = sum(p["wall_s"] for p in report.packs)
    n_workers = 2
    overhead = 1.0 - busy / (n_workers * elapsed)
    print(
        f"{loaded.spec.name}: {report.n_tasks} tasks in {len(report.packs)} packs; submit → first worker "
        f"{first_worker_s:.1f} s; worker warm-up {warm_up_s:.1f} s; run {elapsed:.1f} s on {n_workers} workers; "
        f"inside packs {busy:.1f} s; "
        f"scheduling overhead {100 * overhead:.1f} % of worker wall time"
    )


def main() -> None:
    why = available()
    if why:
        raise SystemExit(f"cannot start a local SLURM: {why}")
    folder = Path(tempfile.mkdtemp(prefix="hts-sched-"))
    slurm = LocalSlurm(folder / "slurm").start()
    os.environ["SLURM_CONF"] = str(slurm.conf)
    try:
        measure(_campaign(folder, name="quickstart-slurm", seeds=4, temperatures=[90, 100, 110], steps=300, pack=4))
        measure(
            _campaign(
                folder,
                name="thousand",
                seeds=100,
                temperatures=[80, 90, 100, 110, 120, 130, 140, 150, 160, 170],
                steps=40,
                pack=20,
            )
        )
    finally:
        slurm.stop()


if __name__ == "__main__":
    main()
