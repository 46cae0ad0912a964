"""Cost of the solid–liquid interface observer per MD step: the same LJ slab with and without it.

    python benchmarks/interface_overhead.py [--repeat 4 4 16] [--replicas 2] [--steps 600]

One process, interleaved rounds; NVT of an argon slab (thermo observer always on), the
per-slab order parameter sampled every 1, 10 and 100 steps. Prints ms per step and the overhead
of the interface observer relative to the run without it (target < 10 %).
"""

from __future__ import annotations

import argparse
import time

import torch
from ase.build import bulk

from hts_mlff.engine.md import MDProtocol, run_md
from hts_mlff.engine.observers import ThermoObserver
from hts_mlff.engine.observers.interface import InterfaceObserver
from hts_mlff.engine.state import state_from_atoms
from hts_mlff.forcefields import LennardJones


def seconds_per_step(
    repeat: tuple[int, int, int], n_replicas: int, steps: int, *, every: int, interface: bool
) -> float:
    atoms = bulk("Ar", "fcc", a=5.4, cubic=True).repeat(repeat)
    state = state_from_atoms([atoms] * n_replicas, device=torch.device("cpu"), dtype=torch.float64)
    protocol = MDProtocol(timestep_fs=10.78, production_steps=steps, sample_every_steps=every, ensemble="nvt")
    observers = [ThermoObserver()]
    if interface:
        observers.append(InterfaceObserver([repeat] * n_replicas, n_slabs=repeat[2]))
    started = time.perf_counter()
    run_md(
        state,
        LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5),
        protocol=protocol,
        temperature_K=torch.full((n_replicas,), 70.0),
        pressure_bar=torch.zeros(n_replicas),
        keys=list(range(n_replicas)),
        observers=observers,
    )
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, nargs=3, default=[4, 4, 16])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    repeat = tuple(args.repeat)
    n_atoms = 4 * repeat[0] * repeat[1] * repeat[2]
    print(f"{args.replicas} × {n_atoms} atoms, {args.steps} steps, {torch.get_num_threads()} threads")
    for every in (1, 10, 100):
        base, tracked = [], []
        for _ in range(args.rounds):
            base.append(seconds_per_step(repeat, args.replicas, args.steps, every=every, interface=False))
            tracked.append(seconds_per_step(repeat, args.replicas, args.steps, every=every, interface=True))
        b, t = min(base), min(tracked)
        print(
            f"sample every {every:3d} steps: {1e3 * b:7.2f} ms/step without, {1e3 * t:7.2f} ms/step with "
            f"the interface observer → overhead {100 * (t / b - 1):5.1f} %"
        )


if __name__ == "__main__":
    main()
