"""The campaign file as typed models. Units live in key names; unknown keys are errors.

The JSON Schema in ``schemas/campaign.schema.json`` is generated from these models
(``hts-mlff schema``) and checked in; a test fails when the two drift.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from hts_mlff.spec.base import Strict
from hts_mlff.spec.forcefields import (  # noqa: F401  the campaign's force-field kinds, re-exported
    FORCEFIELD_SPECS,
    AseCalculatorSpec,
    BuckinghamDSFSpec,
    BuckinghamPairSpec,
    CHGNetSpec,
    ForceFieldKindSpec,
    ForceFieldSpec,
    GNNSpec,
    LennardJonesSpec,
    LJPair,
    MaceSpec,
    NequIPSpec,
    SevenNetSpec,
    TorchSimSpec,
    kind_name,
    kind_names,
)
from hts_mlff.spec.types import Float, Int, NonNegativeInt, PositiveFloat, PositiveInt

FORMAT_VERSION = 1

#: The sweep axes of a campaign, in pack-friendly order (force field, system outermost): the
#: ``traj`` MultiIndex of a store, the columns of the task table, the keys of ``sweep``.
SWEEP_AXES: tuple[str, ...] = ("forcefield", "system", "temperature_K", "pressure_bar", "seed", "window")
#: The axes of a thermodynamic state point per force field: analyses pool seeds and windows over them.
STATE_POINT_AXES: tuple[str, ...] = ("forcefield", "temperature_K", "pressure_bar")


# ----------------------------------------------------------------------------- systems
class RandomVacancies(Strict):
    """Remove ``count`` atoms at sites drawn from the replica's own random stream."""

    count: PositiveInt


class FccSystem(Strict):
    """Face-centred cubic crystal: cubic 4-atom cell repeated ``repeat`` times."""

    kind: Literal["fcc"]
    element: str = Field(description="Chemical symbol, e.g. Ar.")
    lattice_A: PositiveFloat | None = Field(None, description="Cubic lattice constant in Å.")
    number_density_per_A3: PositiveFloat | None = Field(None, description="Atoms per Å³ (sets the lattice).")
    mass_density_g_per_cm3: PositiveFloat | None = Field(None, description="g/cm³ (sets the lattice).")
    repeat: tuple[PositiveInt, PositiveInt, PositiveInt] = (4, 4, 4)
    vacancies: list[NonNegativeInt] | RandomVacancies = Field(
        default_factory=list, description="Atom indices to remove, or {count: k} random sites per replica."
    )
    relax_lattice_with: str | None = Field(
        None,
        description="A key of forcefields: the lattice is that force field's T = 0 lattice at each task's "
        "pressure (the given lattice only starts the relaxation), the same for every force field of the sweep.",
    )

    @model_validator(mode="after")
    def _one_lattice_source(self) -> FccSystem:
        given = [self.lattice_A, self.number_density_per_A3, self.mass_density_g_per_cm3]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of lattice_A, number_density_per_A3, mass_density_g_per_cm3")
        return self


class FileSystem(Strict):
    """Any structure file ASE can read (path relative to the campaign file)."""

    kind: Literal["file"]
    path: str
    index: Int = Field(-1, description="Frame of a multi-frame file.")
    format: str | None = Field(None, description="ASE format name when the suffix is ambiguous.")
    repeat: tuple[PositiveInt, PositiveInt, PositiveInt] = (1, 1, 1)
    formula: str | None = Field(
        None, description="Expected stoichiometry, e.g. Li2O: the file's composition must reduce to it."
    )


SystemSpec = Annotated[FccSystem | FileSystem, Field(discriminator="kind")]


# ----------------------------------------------------------------------------- protocol
class GuardSpec(Strict):
    """Bounds beyond which a replica counts as failed and is frozen."""

    max_force_eV_per_A: PositiveFloat = 10.0
    max_step_displacement_A: PositiveFloat = 0.5
    min_pair_distance_A: Float = Field(1.0, ge=0)
    check_every_steps: NonNegativeInt = Field(0, description="0: at every sample.")


class MinimizeSpec(Strict):
    """Optional FIRE relaxation before the dynamics."""

    max_steps: NonNegativeInt = 0
    fmax_eV_per_A: PositiveFloat = 1e-3
    relax_cell: bool = False


class MeltHalfSpec(Strict):
    """Prepare a solid–liquid system: the half of the cell at fractional z ≥ 1/2 is thermostatted
    at ``temperature_K`` (it melts) while the other half stays at the task temperature, for the
    first ``steps`` of equilibration (Langevin, fixed cell). ``fraction`` moves the boundary:
    the atoms at fractional z ≥ 1 − fraction melt; 1 melts the whole cell (a bulk liquid made
    from the crystal, e.g. for the phase properties of the truncation correction)."""

    temperature_K: PositiveFloat = Field(description="Melting temperature of the upper half, e.g. twice T_m.")
    steps: PositiveInt = Field(description="Steps of the two-temperature preparation (part of equilibration_steps).")
    fraction: Float = Field(0.5, gt=0, le=1, description="Fraction of the cell along z that melts (from the top).")


class ProtocolSpec(Strict):
    """One MD protocol for every task of the campaign."""

    ensemble: Literal["nve", "nvt", "npt"] = "nvt"
    equilibration_ensemble: Literal["nvt", "npt"] | None = Field(
        None,
        description="Default: npt when ensemble is npt, else nvt. npt with an nve or nvt production equilibrates "
        "the cell at the task pressure, then production runs in the cell equilibration ended with (SED, Green–Kubo).",
    )
    timestep_fs: PositiveFloat
    equilibration_steps: NonNegativeInt = 0
    production_steps: PositiveInt
    sample_every_steps: PositiveInt = 10
    friction_per_fs: PositiveFloat = Field(0.01, description="Langevin friction γ.")
    barostat_time_constant_fs: PositiveFloat = Field(
        2000.0, description="τ_p of the stochastic cell-rescaling barostat; τ_p·β_true/β should exceed a few ps."
    )
    compressibility_per_bar: PositiveFloat = Field(5e-5, description="β used by the barostat (sets its response only).")
    barostat_axes: Literal["xyz", "z"] = Field(
        "xyz", description="xyz: isotropic; z: only the cell's z length follows P_zz (NP_zT, solid–liquid coexistence)."
    )
    melt_half: MeltHalfSpec | None = Field(
        None, description="Two-phase preparation (melting point by the interface method)."
    )
    initial_temperature_K: Float | None = Field(None, ge=0, description="Default: the task temperature.")
    save_positions_every_samples: NonNegativeInt = Field(0, description="0: never.")
    save_velocities_every_samples: NonNegativeInt = Field(0, description="0: never.")
    save_forces_every_samples: NonNegativeInt = Field(
        0, description="0: never. With save_positions_every_samples, frames for training and force parity."
    )
    final_temperature_K: Float | None = Field(
        None, ge=0, description="Ramp the thermostat linearly from the task temperature to this over production."
    )
    neighbor_skin_A: Float = Field(1.0, ge=0)
    minimize: MinimizeSpec = MinimizeSpec()
    guard: GuardSpec = GuardSpec()

    @model_validator(mode="after")
    def _sampling_divides(self) -> ProtocolSpec:
        if self.sample_every_steps > self.production_steps:
            raise ValueError("sample_every_steps must not exceed production_steps")
        if self.melt_half is not None and self.melt_half.steps > self.equilibration_steps:
            raise ValueError("melt_half.steps must not exceed equilibration_steps (the preparation is part of it)")
        return self


# ----------------------------------------------------------------------------- sweep
AxisName = Literal[SWEEP_AXES]


class SweepSpec(Strict):
    """Axes of the task product. ``zip`` groups axes that advance together."""

    seed: list[NonNegativeInt] = Field(default_factory=lambda: [0], min_length=1)
    temperature_K: list[Annotated[Float, Field(ge=0)]] = Field(min_length=1)
    pressure_bar: list[Float] = Field(default_factory=lambda: [0.0], min_length=1)
    forcefield: list[str] | None = Field(None, description="Default: every force field.")
    system: list[str] | None = Field(None, description="Default: every system.")
    window: list[NonNegativeInt] = Field(default_factory=lambda: [0], min_length=1)
    zip: list[list[AxisName]] = Field(default_factory=list)


# ----------------------------------------------------------------------------- execution / cluster
class ExecutionSpec(Strict):
    """Where and how packs run."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float64", "float32"] = "float64"
    pack_size: PositiveInt | Literal["auto"] = "auto"
    max_atoms_per_pack: PositiveInt = Field(
        32768, description="Memory model: 'auto' packs hold at most this many atoms."
    )
    tasks_per_slot: PositiveInt = Field(
        1,
        description="Packs that refill: a pack holds up to this many tasks per replica it integrates at once; a "
        "replica whose task finishes or fails takes the next pending task (stability sweeps that lose replicas "
        "early, vacancy windows). Each task's trajectory is the same as alone. 1: one task per replica.",
    )
    threads_per_pack: PositiveInt | None = Field(
        None, description="torch intra-op threads; default: the worker's cores."
    )
    checkpoint_every_steps: NonNegativeInt = Field(0, description="0: no mid-pack checkpoints.")


class LocalClusterSpec(Strict):
    """An embedded distributed.LocalCluster (the default)."""

    kind: Literal["local"] = "local"
    n_workers: PositiveInt = 1
    threads_per_worker: PositiveInt = 1
    processes: bool = True
    memory_limit: str = "auto"
    dashboard_address: str = Field(
        "127.0.0.1:8787",
        description="Where the dashboard listens: this machine only by default; ':8787' or '0.0.0.0:8787' opens it "
        "to the network (anyone who reaches it can see the run). A busy port is replaced by a free one.",
    )


_UNSAFE = re.compile(r"[\n\r;`]|\$\(")


def check_shell_safe(value: str) -> str:
    """Refuse text that could smuggle a second command into a job-script line."""
    if _UNSAFE.search(value):
        raise ValueError(f"{value!r} contains a newline, ';', a backtick or '$(', which a job script must not get")
    return value


#: A job-script prologue line (shell code by design, run only with the user's consent:
#: :mod:`hts_mlff.spec.trust`): one line, no ';', backtick or '$('.
SafeStr = Annotated[str, AfterValidator(check_shell_safe)]

#: An environment variable reference ($NAME or ${NAME}): expanded by the job's shell.
_ENV_REF = r"(\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\})"


def _allow_list(pattern: str, what: str) -> Any:
    """A string type that must match ``pattern`` entirely: what may reach a job script."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return Annotated[str, AfterValidator(check)]


#: Fields that reach a job script or the worker's command line accept only these characters
#: (no shell metacharacter: no space, quote, ';', '&', '|', '<', '>', backtick, '$(' or '${…}' other
#: than a plain variable), so nothing in them can start a command.
ConfigName = _allow_list(r"[A-Za-z0-9_.-]+", "a section name of jobqueue.yaml (letters, digits, '_', '.', '-')")
Memory = _allow_list(r"\d+(\.\d+)?\s?([KMGTPkmgtp]i?)?[Bb]?", "a memory size such as '32GB' or '4000MB'")
BatchName = _allow_list(
    r"[A-Za-z0-9_.@+:,=-]+", "a queue or account name (letters, digits and _ . @ + : , = -; no spaces)"
)
Directive = _allow_list(
    r"-[A-Za-z0-9 _.,:=/@%+|&\[\]!*-]*",
    "a batch directive such as '--constraint=a100' or '-l select=1:ncpus=8' (it must start with '-'; no quotes, "
    "'$', ';', '<', '>', backticks or parentheses)",
)
LogDirectory = _allow_list(r"[A-Za-z0-9_.,:/@%+~=-]+", "a directory path (no spaces, quotes or shell characters)")
WorkerPath = _allow_list(
    rf"([A-Za-z0-9_.,:/@%+~=-]|{_ENV_REF})+",
    "a path (no spaces, quotes or shell characters; $VAR and ${VAR} are expanded on the compute node)",
)
Interface = _allow_list(r"[A-Za-z0-9_.:-]+", "a network interface name such as 'ib0'")


class AdaptSpec(Strict):
    """Let Dask start and stop jobs with the load, between these bounds."""

    minimum_jobs: NonNegativeInt = 0
    maximum_jobs: PositiveInt


class JobQueueClusterSpec(Strict):
    """Workers as batch jobs through dask-jobqueue.

    Only what is given here overrides the user's Dask configuration
    (``~/.config/dask/jobqueue.yaml``, section ``jobqueue.<kind>`` or ``config_name``).
    """

    kind: Literal["slurm", "pbs", "sge", "lsf", "htcondor"]
    config_name: ConfigName | None = Field(None, description="Named section of jobqueue.yaml to start from.")
    jobs: PositiveInt | None = Field(None, description="Fixed number of jobs (default 1 unless adapt is set).")
    adapt: AdaptSpec | None = None
    cores: PositiveInt | None = Field(None, description="Cores per job.")
    memory: Memory | None = Field(None, description="Memory per job, e.g. '32GB'.")
    processes: PositiveInt | None = Field(None, description="Worker processes per job (default: one per GPU).")
    walltime: str | None = Field(
        None, pattern=r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$", description="HH:MM:SS or D-HH:MM:SS."
    )
    queue: BatchName | None = None
    account: BatchName | None = None
    gpus_per_job: NonNegativeInt = 0
    gpu_directive: Literal["auto", "gres", "gpus", "ngpus", "lsf", "none"] = Field(
        "auto",
        description="How the job asks for GPUs: gres (--gres=gpu:N), gpus (--gpus=N), ngpus (PBS -l ngpus=N), "
        "lsf (-gpu num=N), none (put it in job_extra_directives); auto: gres on SLURM, ngpus on PBS, lsf on LSF.",
    )
    job_extra_directives: list[Directive] = Field(default_factory=list)
    job_script_prologue: list[SafeStr] = Field(
        default_factory=list,
        description="Shell lines run before the worker: code, run only with --allow-code or allow_job_script_prologue "
        "in the user's config.",
    )
    local_directory: WorkerPath | None = Field(
        None, description="Worker scratch folder on the compute node, e.g. $TMPDIR."
    )
    log_directory: LogDirectory | None = None
    interface: Interface | None = Field(None, description="Network interface of the workers, e.g. ib0.")
    dashboard_address: str | None = Field(
        None,
        description="Where the scheduler's dashboard listens (default: the jobqueue.yaml scheduler-options, else "
        "127.0.0.1:8787, this login node only; reach it by an SSH tunnel).",
    )
    python: WorkerPath | None = Field(
        None, description="Python executable on the compute nodes (a path; wrap a container in a script)."
    )
    worker_lifetime_s: PositiveInt | None = Field(
        None, description="Retire workers after this long (default: from the walltime, leaving a margin)."
    )
    wait_for_workers_s: PositiveFloat | None = Field(
        None, description="Give up if no worker has joined after this long (default: wait for the queue)."
    )

    @model_validator(mode="after")
    def _jobs_or_adapt(self) -> JobQueueClusterSpec:
        if self.jobs is not None and self.adapt is not None:
            raise ValueError("give either jobs (fixed) or adapt (min/max), not both")
        return self


class AddressClusterSpec(Strict):
    """Attach to a running Dask scheduler."""

    kind: Literal["address"]
    address: str = Field(description="Scheduler address, e.g. tcp://10.0.0.5:8786, or a scheduler file path.")


ClusterSpec = Annotated[LocalClusterSpec | JobQueueClusterSpec | AddressClusterSpec, Field(discriminator="kind")]


# ----------------------------------------------------------------------------- campaign
#: thermo: T, energies, P, V at every sample (always on). vacancy: Wigner–Seitz vacancy site at
#: every sample (FCC systems; sites from the perfect supercell). msd: mean squared displacement
#: since production start at every sample (no positions need be stored). heat_flux: heat current
#: J(t) at every sample for Green–Kubo κ (pair potentials). sed: equilibrium lattice sites and the
#: primitive-cell map beside the stored velocities, for the spectral energy density. interface:
#: crystalline order per slab along z at every sample (solid–liquid interface, melting point).
AnalysisName = Literal["thermo", "vacancy", "msd", "heat_flux", "sed", "interface"]


class AdaptiveSpec(Strict):
    """Add vacancy windows where the Arrhenius barrier is least certain, round after round, until
    every force field × pressure has the target interval or a budget is spent."""

    target_barrier_interval_eV: PositiveFloat = Field(
        description="Full width of the 95 % interval of E_b wanted for every force field × pressure."
    )
    windows_per_round: PositiveInt = Field(4, description="Windows added per force field × pressure and round.")
    max_rounds: PositiveInt = 10
    max_atom_steps: PositiveFloat | None = Field(None, description="Stop before a round would exceed this in total.")


class Campaign(Strict):
    """A campaign file."""

    format_version: Literal[1] = FORMAT_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Identifies the campaign's store.")
    store: str = Field(description="Zarr store path, relative to the campaign file.")
    systems: dict[str, SystemSpec] = Field(min_length=1)
    forcefields: dict[str, ForceFieldSpec] = Field(min_length=1)
    protocol: ProtocolSpec
    sweep: SweepSpec
    analyses: list[AnalysisName] = Field(default_factory=lambda: ["thermo"])
    execution: ExecutionSpec = ExecutionSpec()
    cluster: ClusterSpec = LocalClusterSpec()
    adaptive: AdaptiveSpec | None = Field(
        None, description="Vacancy campaigns: add windows where the barrier is least certain (schedule/adaptive.py)."
    )
