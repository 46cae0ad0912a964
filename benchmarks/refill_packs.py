"""A stability sweep where half the replicas fail early: frozen slots against packs that refill.

N tasks (default 128) of 256-atom LJ argon, Langevin 100 K, float64, 400 steps each (40 of
equilibration, a sample and guard check every 40); every other task starts with two atoms 0.9 Å
apart, so the guard freezes it at its first check, its step 40 (10 % of its steps). With the
memory of 32 replicas, the tasks run as

* ``packs``: N/32 packs of 32 replicas one after the other, failed replicas frozen for the
  rest of their pack (compiled path: a frozen replica's rows are neither rebuilt nor walked);
* ``refill``: one 32-replica pack with ``tasks_per_slot`` N/32 — a failed or finished task's slot
  takes the next task at the next start step (a multiple of 40), until all N are done;
* ``packs`` on the torch path (the engine before the kernels: frozen replicas still computed).

Wall seconds, fresh process per run, median of interleaved rounds.

    python benchmarks/refill_packs.py [--rounds 3] [--tasks 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

LATTICE_A = (4 / 0.02148) ** (1 / 3)
STEPS = 400
SLOTS = 32


def _systems(n_tasks: int) -> list:
    from ase.build import bulk

    systems = []
    for k in range(n_tasks):
        atoms = bulk("Ar", "fcc", a=LATTICE_A, cubic=True).repeat((4, 4, 4))
        atoms.rattle(0.05, seed=k)
        systems.append(atoms)
    return systems


def measure(case: str, *, n_tasks: int) -> dict[str, float]:
    import numpy as np
    import torch

    from hts_mlff.engine import MDProtocol, run_md
    from hts_mlff.engine.refill import Refill, ReplicaStart
    from hts_mlff.engine.state import state_from_atoms
    from hts_mlff.forcefields import LennardJones

    systems = _systems(n_tasks)
    for k in range(1, n_tasks, 2):
        systems[k].positions[1] = systems[k].positions[0] + [0.9, 0.0, 0.0]
    lj = LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5)
    protocol = MDProtocol(
        timestep_fs=10.78, equilibration_steps=40, production_steps=STEPS - 40, sample_every_steps=40, ensemble="nvt"
    )
    cpu, f64 = torch.device("cpu"), torch.float64

    def pack(tasks: list[int], *, slots: int) -> np.ndarray:
        refill = None
        if slots < len(tasks):

            def load(index: int) -> ReplicaStart:
                atoms = systems[tasks[index]]
                return ReplicaStart(
                    positions_A=torch.as_tensor(atoms.positions, dtype=f64),
                    cell_A=torch.as_tensor(np.asarray(atoms.cell), dtype=f64),
                )

            refill = Refill(temperature_K=[100.0] * len(tasks), pressure_bar=[0.0] * len(tasks), keys=tasks, load=load)
        result = run_md(
            state_from_atoms([systems[k] for k in tasks[:slots]], device=cpu, dtype=f64),
            lj,
            protocol=protocol,
            temperature_K=torch.full((slots,), 100.0, dtype=f64),
            pressure_bar=torch.zeros(slots, dtype=f64),
            keys=tasks[:slots],
            refill=refill,
        )
        return result["failure_step"]

    t0 = time.perf_counter()
    every = list(range(n_tasks))
    if case == "refill":
        failures = pack(every, slots=SLOTS)
    else:
        failures = np.concatenate([pack(every[k : k + SLOTS], slots=SLOTS) for k in range(0, n_tasks, SLOTS)])
    wall = time.perf_counter() - t0
    assert len(failures) == n_tasks and int((failures >= 0).sum()) == n_tasks // 2, failures
    return {"wall_s": wall}


CASES = (("warp", "packs"), ("warp", "refill"), ("torch", "packs"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=128, help="a multiple of 32")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, n_tasks=args.tasks)))
        return
    threads = os.environ.get("OMP_NUM_THREADS", "1")
    print(f"{args.tasks} tasks x 256-atom LJ through {SLOTS} replicas, half failing at their step 40 of {STEPS}, "
          f"{threads} thread(s); wall s, median of {args.rounds} rounds")  # fmt: skip
    times: dict[tuple[str, str], list[float]] = {case: [] for case in CASES}
    for _ in range(args.rounds):
        for kernels, case in CASES:
            env = dict(os.environ, HTS_MLFF_KERNELS=kernels, OMP_NUM_THREADS=threads)
            out = subprocess.run(
                [sys.executable, __file__, "--worker", case, "--tasks", str(args.tasks)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            times[kernels, case].append(json.loads(out.stdout.strip().splitlines()[-1])["wall_s"])
    median = {key: statistics.median(values) for key, values in times.items()}
    for (kernels, case), wall in median.items():
        print(f"{kernels:>6} {case:>7}: {wall:7.2f} s")
    refill = median["warp", "refill"]
    print(f"refill / packs of {SLOTS} (compiled path): {refill / median['warp', 'packs']:.2f}")
    print(f"refill / packs of {SLOTS} (torch path, the engine before): {refill / median['torch', 'packs']:.2f}")


if __name__ == "__main__":
    main()
