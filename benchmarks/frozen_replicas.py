"""A stability sweep where half the replicas fail at once: what the frozen half still costs.

64 × 256-atom LJ argon replicas, Langevin 100 K, float64, one pack; in the "half fail" pack,
every other replica starts with two atoms 0.9 Å apart, so the guard freezes it at the first
check. Prints the wall time of both packs (median of interleaved rounds, fresh process each
run) and their ratio, for the compiled path (frozen replicas' rows are neither rebuilt nor
walked) and the torch path (a frozen replica's pairs are still computed).

    python benchmarks/frozen_replicas.py [--rounds 3] [--steps 400]
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


def measure(*, half_fail: bool, steps: int) -> float:
    import torch
    from ase.build import bulk

    from hts_mlff.engine import MDProtocol, run_md
    from hts_mlff.engine.state import state_from_atoms
    from hts_mlff.forcefields import LennardJones

    systems = []
    for k in range(64):
        atoms = bulk("Ar", "fcc", a=LATTICE_A, cubic=True).repeat((4, 4, 4))
        atoms.rattle(0.05, seed=k)
        if half_fail and k % 2:
            atoms.positions[1] = atoms.positions[0] + [0.9, 0.0, 0.0]
        systems.append(atoms)
    lj = LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5)
    state = state_from_atoms(systems, device=torch.device("cpu"), dtype=torch.float64)
    protocol = MDProtocol(timestep_fs=10.78, production_steps=steps, sample_every_steps=steps // 10, ensemble="nvt")
    t0 = time.perf_counter()
    result = run_md(
        state,
        lj,
        protocol=protocol,
        temperature_K=torch.full((64,), 100.0),
        pressure_bar=torch.zeros(64),
        keys=list(range(64)),
    )
    wall = time.perf_counter() - t0
    failed = int((result["failure_step"] >= 0).sum())
    assert failed == (32 if half_fail else 0), failed
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps({"wall_s": measure(half_fail=args.worker == "half", steps=args.steps)}))
        return
    torch_threads = os.environ.get("OMP_NUM_THREADS", "1")
    print(f"64 x 256 LJ, {args.steps} steps, {torch_threads} thread(s); wall seconds, median of {args.rounds} rounds")
    for kernels in ("warp", "torch"):
        times: dict[str, list[float]] = {"all": [], "half": []}
        for _ in range(args.rounds):
            for case in times:
                env = dict(os.environ, HTS_MLFF_KERNELS=kernels, OMP_NUM_THREADS=torch_threads)
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", case, "--steps", str(args.steps)],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                )
                times[case].append(json.loads(out.stdout.strip().splitlines()[-1])["wall_s"])
        full, half = statistics.median(times["all"]), statistics.median(times["half"])
        print(f"{kernels:>6}: all live {full:7.2f} s   half frozen at step 0 {half:7.2f} s   ratio {half / full:.2f}")


if __name__ == "__main__":
    main()
