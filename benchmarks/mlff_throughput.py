"""Graph models of other packages in the engine: a pack through one forward against the
package's own ASE calculator driving ASE MD one replica at a time (the seeds' path).

For one model (``--model mace:FILE``, ``nequip:FILE``, ``sevennet:7net-0`` or ``chgnet:0.3.0``),
on ``--replicas`` × Ar108 (FCC argon, a = 5.4 Å; ``--system li2o96``: antifluorite Li2O 96,
the universal models' test), Langevin 50 K, dt 5 fs, in one interleaved run:

* **engine**: ``run_md`` on the whole pack (the engine's neighbour list, one forward per step),
  per step: a run of N steps subtracted from one of 2N (the set-up and first evaluation cancel);
* **ase**: ``ase.md.Langevin`` with the package's calculator on each replica in turn (the
  package's own neighbour list per step), timed on ``--ase-replicas`` of them and scaled;
* **forward**: the model's forward + backward alone on the pack (``forcefield(state)`` on a
  list built once), to give the engine's overhead per step as a fraction of it.

Prints atom-steps per second of each, the engine / ASE ratio and the overhead; rounds
alternate (engine, ase, engine, …) so both see the same machine load.

    python benchmarks/mlff_throughput.py --model sevennet:7net-0 [--replicas 16] [--steps 10]
        [--ase-replicas 2] [--rounds 2] [--device cpu] [--threads 1] [--system ar108|li2o96]

A MACE file: any ``mace_run_train`` model (``tests/forcefields/mlff/models.py`` writes a small
random one: ``python -c "from tests.forcefields.mlff.models import write_mace_model as w;
from pathlib import Path; w(Path('/tmp/ar.model'))"``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

LATTICE_A, TEMPERATURE_K, TIMESTEP_FS, FRICTION_PER_FS = 5.4, 50.0, 5.0, 0.01


SYSTEM = {"name": "ar108"}


def _replicas(n: int):
    """``n`` rattled replicas of the chosen system: Ar108 (FCC, a = 5.4 Å) or Li2O 96
    (antifluorite, a = 4.61 Å, 2 × 2 × 2 conventional cells)."""
    from ase.build import bulk

    out = []
    for k in range(n):
        if SYSTEM["name"] == "li2o96":
            atoms = bulk("OLi2", "fluorite", a=4.61, cubic=True).repeat(2)
        else:
            atoms = bulk("Ar", "fcc", a=LATTICE_A, cubic=True).repeat(3)
        atoms.rattle(0.02, seed=k)
        out.append(atoms)
    return out


def _atoms_per_replica() -> int:
    return 96 if SYSTEM["name"] == "li2o96" else 108


def _forcefield(model: str):
    from hts_mlff.forcefields.kinds import build_forcefield
    from hts_mlff.spec.model import CHGNetSpec, MaceSpec, NequIPSpec, SevenNetSpec
    from hts_mlff.spec.trust import approved, file_approval

    kind, _, name = model.partition(":")
    if kind in ("mace", "nequip"):
        path = Path(name).resolve()
        spec = (MaceSpec if kind == "mace" else NequIPSpec)(kind=kind, model=path.name)
        with approved([file_approval(path)]):
            return build_forcefield(spec, base_dir=path.parent)
    if kind == "sevennet":
        return build_forcefield(SevenNetSpec(kind="sevennet", model=name))
    if kind == "chgnet":
        return build_forcefield(CHGNetSpec(kind="chgnet", model=name))
    raise SystemExit(f"--model: mace:FILE, nequip:FILE, sevennet:NAME or chgnet:NAME, not {model!r}")


def _calculator(model: str, device: str):
    from hts_mlff.forcefields.graph_edges import environment_restored

    kind, _, name = model.partition(":")
    with environment_restored():
        if kind == "mace":
            from mace.calculators import MACECalculator

            return MACECalculator(model_paths=name, device=device, default_dtype="float64")
        if kind == "nequip":
            from nequip.integrations.ase import NequIPCalculator

            return NequIPCalculator._from_saved_model(name, device=device, chemical_species_to_atom_type_map=True)
        if kind == "chgnet":
            from chgnet.model import CHGNet
            from chgnet.model.dynamics import CHGNetCalculator

            return CHGNetCalculator(model=CHGNet.load(model_name=name, verbose=False), use_device=device)
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator(name, device=device)


def engine_rate(ff, *, replicas: int, steps: int, device: torch.device) -> float:
    """Atom-steps per second of the steps alone: runs of ``steps`` and ``2 steps``, differenced
    (the first force evaluation, velocities and the list's first build cancel)."""
    short = _engine_seconds(ff, replicas=replicas, steps=steps, device=device)
    long = _engine_seconds(ff, replicas=replicas, steps=2 * steps, device=device)
    return replicas * _atoms_per_replica() * steps / max(long - short, 1e-9)


def _engine_seconds(ff, *, replicas: int, steps: int, device: torch.device) -> float:
    from hts_mlff.engine import MDProtocol, run_md
    from hts_mlff.engine.state import state_from_atoms

    state = state_from_atoms(_replicas(replicas), device=device, dtype=torch.float64)
    protocol = MDProtocol(
        timestep_fs=TIMESTEP_FS,
        production_steps=steps,
        sample_every_steps=steps,
        ensemble="nvt",
        friction_per_fs=FRICTION_PER_FS,
    )
    temps = torch.full((replicas,), TEMPERATURE_K, dtype=torch.float64)
    started = time.perf_counter()
    run_md(
        state,
        ff,
        protocol=protocol,
        temperature_K=temps,
        pressure_bar=torch.zeros(replicas),
        keys=list(range(replicas)),
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def forward_rate(ff, *, replicas: int, repeats: int, device: torch.device) -> float:
    from hts_mlff.engine.neighbors import PairList
    from hts_mlff.engine.state import state_from_atoms

    state = state_from_atoms(_replicas(replicas), device=device, dtype=torch.float64)
    neighbors = PairList(ff.cutoff_A, skin_A=1.0)
    neighbors.update(state)
    ff(state, neighbors=neighbors)  # warm
    started = time.perf_counter()
    for _ in range(repeats):
        ff(state, neighbors=neighbors, compute_stress=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return replicas * _atoms_per_replica() * repeats / (time.perf_counter() - started)


def ase_rate(calc, *, replicas: int, steps: int) -> float:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    started = time.perf_counter()
    for k, atoms in enumerate(_replicas(replicas)):
        atoms.calc = calc
        MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(k))
        dyn = Langevin(
            atoms,
            TIMESTEP_FS * units.fs,
            temperature_K=TEMPERATURE_K,
            friction=FRICTION_PER_FS / units.fs,
            rng=np.random.default_rng(k),
        )
        dyn.run(steps)
    return replicas * _atoms_per_replica() * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument("--ase-replicas", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--system", choices=["ar108", "li2o96"], default="ar108")
    args = parser.parse_args()
    SYSTEM["name"] = args.system
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ff = _forcefield(args.model)
    calc = _calculator(args.model, args.device)
    engine_rate(ff, replicas=args.replicas, steps=2, device=device)  # warm-up
    rows: dict[str, list[float]] = {"engine": [], "ase": [], "forward": []}
    for _ in range(args.rounds):
        rows["engine"].append(engine_rate(ff, replicas=args.replicas, steps=args.steps, device=device))
        rows["ase"].append(ase_rate(calc, replicas=args.ase_replicas, steps=args.steps))
        rows["forward"].append(forward_rate(ff, replicas=args.replicas, repeats=args.steps, device=device))
    best = {name: max(values) for name, values in rows.items()}
    overhead = best["forward"] / best["engine"] - 1.0
    print(
        json.dumps(
            {
                "model": args.model,
                "device": str(device),
                "threads": args.threads,
                "pack": f"{args.replicas} x {args.system}",
                "atom_steps_per_s": {k: round(v, 1) for k, v in best.items()},
                "engine_over_ase": round(best["engine"] / best["ase"], 3),
                "engine_overhead_vs_forward": round(overhead, 4),
                "rounds": {k: [round(x, 1) for x in v] for k, v in rows.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
