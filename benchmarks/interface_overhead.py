"""Cost of the solid–liquid interface observer per MD step: the same LJ slab with and without it.

    python benchmarks/interface_overhead.py [--repeat 4 4 16] [--replicas 2] [--steps 600]

One process, interleaved rounds; NVT of an argon slab (thermo observer always on), the
per-slab order parameter sampled every 1, 10 and 100 steps. Prints ms per step and the overhead
of the interface observer relative to the run without it (target < 10 %).
"""

from __future__ import annotations

import argparse

import torch
from ase.build import bulk
from observer_overhead import print_overheads, seconds_per_lj_step

from hts_mlff.engine.md import MDProtocol
from hts_mlff.engine.observers.interface import InterfaceObserver


def seconds_per_step(
    repeat: tuple[int, int, int], n_replicas: int, steps: int, *, every: int, interface: bool
) -> float:
    atoms = bulk("Ar", "fcc", a=5.4, cubic=True).repeat(repeat)
    protocol = MDProtocol(timestep_fs=10.78, production_steps=steps, sample_every_steps=every, ensemble="nvt")
    extra = [InterfaceObserver([repeat] * n_replicas, n_slabs=repeat[2])] if interface else []
    return seconds_per_lj_step(atoms, n_replicas, protocol, temperature_K=70.0, extra_observers=extra)


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
    print_overheads(
        "interface observer",
        (1, 10, 100),
        args.rounds,
        lambda every, on: seconds_per_step(repeat, args.replicas, args.steps, every=every, interface=on),
    )


if __name__ == "__main__":
    main()
