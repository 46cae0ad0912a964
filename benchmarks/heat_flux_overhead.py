"""Cost of the heat-current observer per MD step: the same LJ crystal pack with and without it.

    python benchmarks/heat_flux_overhead.py [--repeat 6] [--replicas 4] [--steps 600]

One process, interleaved rounds; NVE production of an argon crystal at 40 K (thermo observer
always on), heat current sampled every 1, 2, 5 and 10 steps. Prints ms per step and the
overhead of the heat-flux observer relative to the run without it (target < 15 %).
"""

from __future__ import annotations

import argparse

import torch
from ase.build import bulk
from observer_overhead import print_overheads, seconds_per_lj_step

from hts_mlff.engine.md import MDProtocol
from hts_mlff.engine.observers.heat_flux import HeatFluxObserver


def seconds_per_step(n_replicas: int, repeat: int, steps: int, *, sample_every: int, heat_flux: bool) -> float:
    atoms = bulk("Ar", "fcc", a=5.33, cubic=True).repeat(repeat)
    protocol = MDProtocol(
        timestep_fs=10.78,
        production_steps=steps,
        sample_every_steps=sample_every,
        ensemble="nve",
        equilibration_steps=0,
        initial_temperature_K=40.0,
    )
    extra = [HeatFluxObserver()] if heat_flux else []
    return seconds_per_lj_step(atoms, n_replicas, protocol, temperature_K=40.0, extra_observers=extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=6, help="cubic cells per side (6: 864 atoms)")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n_atoms = 4 * args.repeat**3 * args.replicas
    threads = torch.get_num_threads()
    print(f"{args.replicas} × {4 * args.repeat**3} atoms ({n_atoms}), {args.steps} steps, {threads} threads")
    print_overheads(
        "heat-flux observer",
        (1, 2, 5, 10),
        args.rounds,
        lambda every, on: seconds_per_step(args.replicas, args.repeat, args.steps, sample_every=every, heat_flux=on),
    )


if __name__ == "__main__":
    main()
