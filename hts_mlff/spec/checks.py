"""Checks of a campaign across its sections, run by ``validate`` before anything is planned.

Each check reports through ``add(location, message, warning=False)``; the loader turns the
location (a field path as written in YAML) into file:line. Sections that failed their own
type checks arrive as None and are skipped, so type errors and these checks are reported in
one round.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from ase.data import atomic_masses, atomic_numbers

from hts_mlff.spec.model import kind_names

Add = Callable[..., None]

#: A replica larger than this is refused: its state, neighbour list and stored frames would
#: need tens of GB (≈ 1–2 kB per atom before any stored frame).
MAX_ATOMS_PER_REPLICA = 5_000_000
#: Atoms per Å³ above which a crystal is unphysical (the densest elements hold ≈ 0.18).
MAX_NUMBER_DENSITY_PER_A3 = 0.5
#: Below this a "crystal" is a dilute gas (argon's liquid holds ≈ 0.021).
MIN_NUMBER_DENSITY_PER_A3 = 1e-3


def campaign_checks(spec: Any, *, base_dir: Path, add: Add) -> None:
    """Every cross-section check of ``spec`` (a Campaign, or a namespace of its well-typed
    sections with None for the others)."""
    systems, forcefields, sweep = spec.systems, spec.forcefields, spec.sweep
    if sweep is not None:
        _check_sweep(sweep, systems=systems, forcefields=forcefields, add=add)
    if systems is not None:
        for name, system in systems.items():
            _check_system(name, system, forcefields=forcefields, base_dir=base_dir, add=add)
    if forcefields is not None:
        _check_forcefields(forcefields, base_dir=base_dir, add=add)
    if forcefields is not None and systems is not None:
        _check_charges(systems, forcefields, base_dir=base_dir, add=add)
    if systems is not None:
        _check_formulas(systems, base_dir=base_dir, add=add)
    if spec.analyses is not None and forcefields is not None:
        _check_analyses(spec, add=add)
    if spec.store is not None:
        _check_store_path(base_dir / spec.store, add=add)
    if spec.protocol is not None and systems is not None:
        _check_timestep(spec.protocol.timestep_fs, systems=systems, add=add)
    if sweep is not None and systems is not None and forcefields is not None:
        _check_task_count(spec, add=add)
    if spec.execution is not None and spec.execution.tasks_per_slot > 1 and spec.protocol is not None:
        _check_refill(spec.protocol, add=add)
    if getattr(spec, "adaptive", None) is not None and spec.analyses is not None and "vacancy" not in spec.analyses:
        add(("adaptive",), "adaptive sampling adds vacancy windows: it needs 'vacancy' in analyses")


def _check_refill(protocol: Any, *, add: Add) -> None:
    """A slot that takes a new task mid-pack needs a schedule that is a function of the task's own
    step (the engine's :func:`hts_mlff.engine.refill.refill_problem`, in the campaign's words)."""
    where = ("execution", "tasks_per_slot")
    equilibration = protocol.equilibration_ensemble or ("npt" if protocol.ensemble == "npt" else "nvt")
    if protocol.equilibration_steps > 0 and equilibration != protocol.ensemble:
        add(
            where,
            f"packs that refill need one ensemble throughout; this protocol equilibrates in {equilibration} before "
            f"{protocol.ensemble} production (set tasks_per_slot: 1, or one ensemble for both)",
        )
    if protocol.melt_half is not None:
        add(where, "packs that refill cannot run a two-phase preparation (protocol.melt_half): set tasks_per_slot: 1")
    if protocol.final_temperature_K is not None:
        add(
            where,
            "packs that refill cannot ramp the temperature (protocol.final_temperature_K): set tasks_per_slot: 1",
        )


#: Above this many tasks, planning and the task manifest become slow and large: say so.
MANY_TASKS = 1_000_000


def _check_task_count(spec: Any, *, add: Add) -> None:
    zipped = {axis for group in spec.sweep.zip for axis in group}
    n = 1
    for group in spec.sweep.zip:
        n *= len(axis_values(spec, group[0]))
    for axis in ("forcefield", "system", "temperature_K", "pressure_bar", "seed", "window"):
        if axis not in zipped:
            n *= len(axis_values(spec, axis))
    if n > MANY_TASKS:
        add(
            ("sweep",),
            f"{n:,} tasks: planning takes minutes, the task manifest holds ~100 B per task "
            f"(~{n * 100 / 2**20:,.0f} MiB) and the coordinator's memory grows with it; consider several campaigns",
            warning=True,
        )


def axis_values(spec: Any, axis: str) -> list[Any]:
    """The values of a sweep axis (force fields and systems default to all)."""
    value = getattr(spec.sweep, axis)
    if value is None:
        return list(spec.forcefields if axis == "forcefield" else spec.systems)
    return list(value)


def _check_sweep(sweep: Any, *, systems: Any, forcefields: Any, add: Add) -> None:
    for axis, names, known in (("forcefield", sweep.forcefield, forcefields), ("system", sweep.system, systems)):
        if known is None:
            continue
        for i, name in enumerate(names or []):
            if name not in known:
                hint = difflib.get_close_matches(name, list(known), n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                add(("sweep", axis, i), f"unknown {axis} {name!r}; defined: {sorted(known)}{extra}")
    for axis in ("seed", "temperature_K", "pressure_bar", "window", "forcefield", "system"):
        values = getattr(sweep, axis)
        if values is None:
            continue
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
        if repeated:
            add(("sweep", axis), f"values given more than once: {repeated} (each task must be distinct)")
    seen: dict[str, int] = {}
    lengths = {
        "forcefield": len(sweep.forcefield) if sweep.forcefield is not None else len(forcefields or {}),
        "system": len(sweep.system) if sweep.system is not None else len(systems or {}),
    }
    for g, group in enumerate(sweep.zip):
        sizes = {axis: lengths.get(axis, len(getattr(sweep, axis) or [])) for axis in group}
        if len(set(sizes.values())) > 1:
            add(("sweep", "zip", g), f"zipped axes must have equal lengths, got {sizes}")
        for axis in group:
            if axis in seen:
                add(("sweep", "zip", g), f"axis {axis!r} already zipped in group {seen[axis]}")
            seen[axis] = g


def _check_system(name: str, system: Any, *, forcefields: Any, base_dir: Path, add: Add) -> None:
    where = ("systems", name)
    if system.kind == "fcc":
        if system.element not in atomic_numbers or system.element == "X":
            hint = difflib.get_close_matches(system.element, [s for s in atomic_numbers if s != "X"], n=1)
            add(
                (*where, "element"),
                f"unknown element {system.element!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""),
            )
        n_sites = 4 * math.prod(system.repeat)
        _check_size(n_sites, (*where, "repeat"), add=add)
        if isinstance(system.vacancies, list):
            outside = sorted({i for i in system.vacancies if i >= n_sites})
            if outside:
                add(
                    (*where, "vacancies"),
                    f"sites {outside} are outside the crystal's {n_sites} sites (0 … {n_sites - 1})",
                )
            if len(set(system.vacancies)) != len(system.vacancies):
                add((*where, "vacancies"), "a site is listed more than once")
        elif system.vacancies.count >= n_sites:
            add((*where, "vacancies", "count"), f"{system.vacancies.count} vacancies leave no atom of {n_sites}")
        density = _fcc_number_density(system)
        if density is not None and density > MAX_NUMBER_DENSITY_PER_A3:
            add(
                where,
                f"{density:.3g} atoms/Å³ is denser than any solid (≤ {MAX_NUMBER_DENSITY_PER_A3}); check the lattice",
            )
        elif density is not None and density < MIN_NUMBER_DENSITY_PER_A3:
            add(where, f"{density:.3g} atoms/Å³ is a dilute gas, not a crystal; check the lattice", warning=True)
        if forcefields is not None and system.relax_lattice_with not in (None, *forcefields):
            add(
                (*where, "relax_lattice_with"),
                f"{system.relax_lattice_with!r} is not one of the forcefields {sorted(forcefields)}",
            )
        return
    path = base_dir / system.path
    if not path.is_file():
        add((*where, "path"), f"structure file not found: {path}")
        return
    try:
        import ase.io

        atoms = ase.io.read(path, index=system.index, format=system.format)
    except Exception as exc:  # any reader error is the file's problem, reported with its name
        add((*where, "path"), f"{path}: ASE cannot read it ({type(exc).__name__}: {exc})")
        return
    if not atoms.pbc.all() or atoms.cell.volume <= 1e-9:
        add((*where, "path"), f"{path}: not a fully periodic cell with a volume (pbc {atoms.pbc.tolist()})")
        return
    _check_size(len(atoms) * math.prod(system.repeat), (*where, "repeat"), add=add)
    density = len(atoms) / atoms.cell.volume
    if density > MAX_NUMBER_DENSITY_PER_A3:
        add((*where, "path"), f"{density:.3g} atoms/Å³ is denser than any solid; check the cell")


def _check_size(n_atoms: int, where: tuple, *, add: Add) -> None:
    if n_atoms > MAX_ATOMS_PER_REPLICA:
        add(
            where,
            f"{n_atoms:,} atoms per replica: more than the {MAX_ATOMS_PER_REPLICA:,} one worker can hold "
            f"(≈ {n_atoms * 1.5e3 / 2**30:,.0f} GiB before stored frames)",
        )


def _fcc_number_density(system: Any) -> float | None:
    if system.number_density_per_A3 is not None:
        return float(system.number_density_per_A3)
    if system.lattice_A is not None:
        return 4.0 / float(system.lattice_A) ** 3
    if system.element in atomic_numbers:
        mass_g = float(atomic_masses[atomic_numbers[system.element]]) / 6.02214076e23
        return float(system.mass_density_g_per_cm3) / mass_g * 1e-24
    return None


def _check_forcefields(forcefields: dict[str, Any], *, base_dir: Path, add: Add) -> None:
    for name, forcefield in forcefields.items():
        try:
            identity = forcefield.identity_paths()
        except (ImportError, ValueError) as exc:  # a pretrained name the installed package resolves
            add(("forcefields", name, forcefield.identity_files[0]), str(exc).splitlines()[0])
            continue
        for field_path, file in identity.items():
            if not (base_dir / file).is_file():
                field, _, index = field_path.partition("[")
                location = ("forcefields", name, field, *([int(index[:-1])] if index else []))
                add(location, f"{field} not found: {base_dir / file}")
        if forcefield.kind in ("lennard_jones", "buckingham_dsf"):
            for i, pair in enumerate(forcefield.pairs):
                for symbol in pair.species:
                    if symbol not in atomic_numbers or symbol == "X":
                        add(("forcefields", name, "pairs", i, "species"), f"unknown element {symbol!r}")
        if forcefield.kind == "buckingham_dsf":
            for symbol in forcefield.charges_e:
                if symbol not in atomic_numbers or symbol == "X":
                    add(("forcefields", name, "charges_e", symbol), f"unknown element {symbol!r}")


def _check_charges(systems: dict[str, Any], forcefields: dict[str, Any], *, base_dir: Path, add: Add) -> None:
    """Every species of every system has a charge under each charged force field, and Σ q = 0."""
    from collections import Counter

    for name, forcefield in forcefields.items():
        if forcefield.kind != "buckingham_dsf":
            continue
        for system_name, system in systems.items():
            composition = _composition(system, base_dir=base_dir)
            if composition is None:
                continue
            missing = sorted(set(composition) - set(forcefield.charges_e))
            if missing:
                add(("forcefields", name, "charges_e"), f"no charge for {missing}, found in system {system_name!r}")
                continue
            total = sum(forcefield.charges_e[s] * n for s, n in Counter(composition).items())
            if abs(total) > 1e-6:
                message = f"system {system_name!r} would carry a net charge of {total:.6g} e"
                add(("forcefields", name, "charges_e"), message + ": the charges must make it neutral")


def _reduced(counts: dict[str, int]) -> dict[str, int]:
    divisor = math.gcd(*counts.values())
    return {s: n // divisor for s, n in counts.items()}


def _check_formulas(systems: dict[str, Any], *, base_dir: Path, add: Add) -> None:
    """A file system that states its ``formula`` has that stoichiometry (Li2O: Li:O = 2:1)."""
    from ase.formula import Formula

    for name, system in systems.items():
        if getattr(system, "formula", None) is None:
            continue
        try:
            expected = _reduced(Formula(system.formula).count())
        except ValueError as exc:
            add(("systems", name, "formula"), f"not a chemical formula: {exc}")
            continue
        composition = _composition(system, base_dir=base_dir)
        if composition is None:
            continue
        found = _reduced(composition)
        if found != expected:
            text = "".join(f"{s}{n if n > 1 else ''}" for s, n in sorted(found.items()))
            add(("systems", name, "formula"), f"the structure's stoichiometry is {text}, not {system.formula}")


def _composition(system: Any, *, base_dir: Path) -> dict[str, int] | None:
    """Chemical symbol → count of a system (None when it cannot be read here)."""
    from collections import Counter

    if system.kind == "fcc":
        if system.element not in atomic_numbers:
            return None
        n = 4 * math.prod(system.repeat)
        removed = len(system.vacancies) if isinstance(system.vacancies, list) else system.vacancies.count
        return {system.element: n - removed}
    path = base_dir / system.path
    try:
        stat = path.stat()
        symbols = _file_symbols(str(path), stat.st_mtime_ns, stat.st_size, system.index, system.format)
    except Exception:  # reported by the system's own check
        return None
    return {s: n * math.prod(system.repeat) for s, n in Counter(symbols).items()}


@lru_cache(maxsize=32)
def _file_symbols(path: str, mtime_ns: int, size: int, index: int, fmt: str | None) -> tuple[str, ...]:
    """Chemical symbols of a structure file, read once per file version (the charge and the
    formula checks both need them)."""
    import ase.io

    return tuple(ase.io.read(path, index=index, format=fmt).get_chemical_symbols())


#: Unit cells along z below which a solid–liquid system has no room for two phases and two interfaces.
MIN_TWO_PHASE_CELLS_Z = 8


def _check_interface(spec: Any, *, add: Add) -> None:
    index = spec.analyses.index("interface")
    for name, system in (spec.systems or {}).items():
        if system.kind != "fcc":
            add(("systems", name, "kind"), "the interface analysis needs FCC systems (kind: fcc), long along z")
        elif system.repeat[2] < MIN_TWO_PHASE_CELLS_Z:
            add(
                ("systems", name, "repeat"),
                f"repeat {list(system.repeat)}: {system.repeat[2]} cells along z leave no room for two phases and two "
                f"interfaces; use at least {MIN_TWO_PHASE_CELLS_Z} (and 2–4× the lateral repeats)",
            )
    if spec.protocol is not None and spec.protocol.melt_half is None:
        add(("analyses", index), "interface tracking needs a two-phase start: set protocol.melt_half", warning=True)


def _check_analyses(spec: Any, *, add: Add) -> None:
    if "interface" in spec.analyses:
        _check_interface(spec, add=add)
    if "heat_flux" in spec.analyses and spec.sweep is not None:
        index = spec.analyses.index("heat_flux")
        for name in axis_values(spec, "forcefield"):
            forcefield = spec.forcefields.get(name)
            if forcefield is not None and not type(forcefield).heat_current:
                kinds = ", ".join(kind_names(heat_current=True))
                add(
                    ("analyses", index),
                    f"heat_flux needs a per-atom energy partition (pair potentials: {kinds}); "
                    f"forcefield {name!r} is kind {forcefield.kind!r}. Run Green–Kubo in its own campaign, or use "
                    "analyses: [sed] (spectral energy density) for this force field",
                )
    if "sed" in spec.analyses and spec.protocol is not None and spec.protocol.save_velocities_every_samples == 0:
        add(
            ("analyses", spec.analyses.index("sed")),
            "sed needs stored velocities: set protocol.save_velocities_every_samples (e.g. 1)",
        )


def _check_store_path(store: Path, *, add: Add) -> None:
    """The store must be creatable (or be a folder already): say so now, not after a long plan."""
    store = Path(os.path.abspath(store))
    if store.exists():
        if not store.is_dir():
            add(("store",), f"{store} exists and is not a folder")
        elif not os.access(store, os.W_OK):
            add(("store",), f"{store}: no write permission")
        return
    parent = store.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        add(("store",), f"{store}: cannot be created, {parent} is a file")
    elif not os.access(parent, os.W_OK | os.X_OK):
        add(("store",), f"{store}: cannot be created, no write permission in {parent}")


def _check_timestep(timestep_fs: float, *, systems: dict[str, Any], add: Add) -> None:
    """The fastest vibration of the lightest species must be resolved (a warning)."""
    masses = [
        float(atomic_masses[atomic_numbers[s.element]])
        for s in systems.values()
        if s.kind == "fcc" and s.element in atomic_numbers
    ]
    if not masses:
        return
    lightest = min(masses)
    limit_fs = 2.5 * math.sqrt(lightest)  # ≈ 16 fs for Ar, 2.5 fs for H
    if timestep_fs > limit_fs:
        add(
            ("protocol", "timestep_fs"),
            f"{timestep_fs} fs is large for the lightest mass {lightest:.3g} amu "
            f"(suggest ≤ {limit_fs:.2g} fs); trajectories may explode",
            warning=True,
        )


__all__ = ["MAX_ATOMS_PER_REPLICA", "axis_values", "campaign_checks"]
