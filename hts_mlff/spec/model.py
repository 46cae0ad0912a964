"""The campaign file as typed models. Units live in key names; unknown keys are errors.

The JSON Schema in ``schemas/campaign.schema.json`` is generated from these models
(``hts-mlff schema``) and checked in; a test fails when the two drift.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from hts_mlff.spec.types import Float, Int, NonNegativeInt, PositiveFloat, PositiveInt

FORMAT_VERSION = 1

#: The sweep axes of a campaign, in pack-friendly order (force field, system outermost): the
#: ``traj`` MultiIndex of a store, the columns of the task table, the keys of ``sweep``.
SWEEP_AXES: tuple[str, ...] = ("forcefield", "system", "temperature_K", "pressure_bar", "seed", "window")
#: The axes of a thermodynamic state point per force field: analyses pool seeds and windows over them.
STATE_POINT_AXES: tuple[str, ...] = ("forcefield", "temperature_K", "pressure_bar")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


# ----------------------------------------------------------------------------- force fields
class ForceFieldKindSpec(Strict):
    """Base of every force-field kind's spec: besides its fields, what the kind declares about
    itself, read by task ids, validation, trust and the analyses (never by ``kind`` name).

    The build side of the record (how the spec becomes a force field) is registered with it in
    :mod:`hts_mlff.forcefields.kinds`.
    """

    #: Fields naming files (relative to the campaign file; a string or a list of them) whose
    #: bytes define the force field: their digest enters every task id, and ``validate`` checks
    #: that they exist.
    identity_files: ClassVar[tuple[str, ...]] = ()
    #: Fields naming ``package.module:attribute`` paths the kind imports and calls (code: run
    #: only when approved, :mod:`hts_mlff.spec.trust`).
    import_fields: ClassVar[tuple[str, ...]] = ()
    #: Identity-file fields whose loading runs code (pickled models, compiled packages): listed
    #: by ``validate``, loaded by ``run`` only when approved by path and content digest
    #: (:mod:`hts_mlff.spec.trust`).
    code_files: ClassVar[tuple[str, ...]] = ()
    #: The force field partitions its energy into per-atom terms (pair potentials): the heat
    #: current, hence Green–Kubo, is defined.
    heat_current: ClassVar[bool] = False
    #: Rebuildable from the spec stored in a campaign's store without running code named there
    #: (parameters and weights-only checkpoints), so analyses of a store may rebuild it.
    data_only: ClassVar[bool] = False

    def identity_paths(self) -> dict[str, str]:
        """Field path ("checkpoint", "files[1]") → file named, for every identity file."""
        out = {}
        for name in self.identity_files:
            value = getattr(self, name)
            if isinstance(value, str):
                out[name] = value
            else:
                out.update({f"{name}[{i}]": item for i, item in enumerate(value or ())})
        return out

    def import_paths(self) -> dict[str, str]:
        """Field name → ``package.module:attribute`` for every import the spec names."""
        return {name: getattr(self, name) for name in self.import_fields}

    def code_paths(self) -> dict[str, str]:
        """Field path → file, for the identity files whose loading runs code (``code_files``)."""
        return {
            field: path for field, path in self.identity_paths().items() if field.partition("[")[0] in self.code_files
        }


class LJPair(Strict):
    species: tuple[str, str]
    epsilon_eV: Float = Field(ge=0)
    sigma_A: PositiveFloat


class LennardJonesSpec(ForceFieldKindSpec):
    """Lennard-Jones 12-6 pair potential (the seeds' reference for argon)."""

    heat_current: ClassVar[bool] = True
    data_only: ClassVar[bool] = True

    kind: Literal["lennard_jones"]
    epsilon_eV: Float = Field(ge=0)
    sigma_A: PositiveFloat
    cutoff_A: PositiveFloat
    shift: bool = True
    pairs: list[LJPair] = Field(default_factory=list)


class BuckinghamPairSpec(Strict):
    """A exp(−r/ρ) − C/r⁶ between two species (eV, Å, eV·Å⁶)."""

    species: tuple[str, str]
    a_eV: Float = Field(ge=0)
    rho_A: PositiveFloat
    c_eV_A6: Float = Field(0.0, ge=0)


class BuckinghamDSFSpec(ForceFieldKindSpec):
    """Buckingham short range + damped-shifted-force Coulomb (ionic conductors; no Ewald mesh).

    Every species of a system needs a charge and every system must be neutral.
    """

    heat_current: ClassVar[bool] = True
    data_only: ClassVar[bool] = True

    kind: Literal["buckingham_dsf"]
    charges_e: dict[str, Float] = Field(description="Charge (e) per chemical symbol, e.g. {Li: 1.0, O: -2.0}.")
    pairs: list[BuckinghamPairSpec] = Field(default_factory=list)
    cutoff_A: PositiveFloat = 10.0
    alpha_per_A: Float = Field(0.3, gt=0, description="DSF damping α; α·cutoff ≈ 3 keeps energies within 1e-4.")
    shift: bool = Field(True, description="Shift the short-range energy to zero at the cutoff.")


class GNNSpec(ForceFieldKindSpec):
    """The seeds' GNN from a checkpoint written by ``hts-mlff train`` (path relative to the campaign file)."""

    identity_files: ClassVar[tuple[str, ...]] = ("checkpoint",)
    data_only: ClassVar[bool] = True  # weights-only checkpoints

    kind: Literal["gnn"]
    checkpoint: str = Field(description="e.g. ../models/model-b-small.pt")


_IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"


class AseCalculatorSpec(ForceFieldKindSpec):
    """Any ASE Calculator, evaluated one replica at a time (slow but universal)."""

    identity_files: ClassVar[tuple[str, ...]] = ("files",)
    import_fields: ClassVar[tuple[str, ...]] = ("calculator",)

    kind: Literal["ase"]
    calculator: str = Field(pattern=_IMPORT_PATH, description="'package.module:Class' or a factory function.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the calculator.")
    files: list[str] = Field(
        default_factory=list,
        description="Files the calculator reads (weights, potential tables; relative to the campaign file): "
        "their bytes enter the task ids, so results of other weights are never reused.",
    )
    cutoff_A: Float = Field(0.0, ge=0, description="Interaction range (sizes the engine's neighbour list only).")


class TorchSimSpec(ForceFieldKindSpec):
    """A TorchSim ModelInterface model (needs the optional torch-sim-atomistic)."""

    identity_files: ClassVar[tuple[str, ...]] = ("files",)
    import_fields: ClassVar[tuple[str, ...]] = ("model",)

    kind: Literal["torchsim"]
    model: str = Field(pattern=_IMPORT_PATH, description="'package.module:Class' or a factory returning the model.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the model.")
    files: list[str] = Field(
        default_factory=list,
        description="Files the model reads (weights; relative to the campaign file): their bytes enter the "
        "task ids, so results of other weights are never reused.",
    )
    cutoff_A: Float = Field(0.0, ge=0, description="Interaction range (sizes the engine's neighbour list only).")


class MaceSpec(ForceFieldKindSpec):
    """A MACE-family model file written by ``mace_run_train`` (MACE, ScaleShiftMACE, BOTNet),
    evaluated over whole packs on the engine's neighbour list (needs the optional extra ``[mace]``).
    The file is a pickle: ``run`` loads it only with ``--allow-code`` or an allow-list entry."""

    identity_files: ClassVar[tuple[str, ...]] = ("model",)
    code_files: ClassVar[tuple[str, ...]] = ("model",)

    kind: Literal["mace"]
    model: str = Field(description="The .model file (relative to the campaign file), e.g. ../models/mace-ar.model")
    head: str | None = Field(None, description="Head of a multi-head model (default: its first).")
    compute_dtype: Literal["float32", "float64"] | None = Field(
        None, description="Dtype the model computes in (default: the campaign's execution.dtype)."
    )


class SevenNetSpec(ForceFieldKindSpec):
    """A SevenNet model, natively batched on the engine's neighbour list (needs the optional
    extra ``[sevennet]``): a pretrained name shipped in the ``sevenn`` wheel (7net-0, 7net-l3i5,
    7net-mf-0; loads offline) or a checkpoint file of yours (a pickle: code, approved like one).
    It computes in float32 whatever ``execution.dtype`` says (its e3nn kernels are float32)."""

    identity_files: ClassVar[tuple[str, ...]] = ("model",)
    code_files: ClassVar[tuple[str, ...]] = ("model",)

    kind: Literal["sevennet"]
    model: str = Field(
        "7net-0", description="A pretrained name (7net-0, 7net-l3i5, 7net-mf-0) or a checkpoint file (.pth)."
    )
    modal: str | None = Field(None, description="Fidelity of a multi-fidelity model (7net-mf-0: e.g. PBE).")

    def _is_file(self) -> bool:
        from pathlib import PurePath

        return "/" in self.model or PurePath(self.model).suffix in {".pth", ".pt", ".tar", ".ckpt"}

    def identity_paths(self) -> dict[str, str]:
        """The checkpoint file: the user's, or the one the installed ``sevenn`` ships for a
        pretrained name (an absolute path; resolving a name needs the package)."""
        if self._is_file():
            return {"model": self.model}
        from hts_mlff.forcefields.sevennet import pretrained_checkpoint

        return {"model": str(pretrained_checkpoint(self.model))}

    def code_paths(self) -> dict[str, str]:
        """Only a checkpoint of the user's: a shipped one is trusted as the installed package is."""
        return {"model": self.model} if self._is_file() else {}


class NequIPSpec(ForceFieldKindSpec):
    """A NequIP or Allegro model (a ``nequip-package`` ``.nequip.zip`` or a ``.ckpt`` from
    ``nequip-train``), natively batched (needs the optional extra ``[nequip]``). Both files are
    code when loaded: ``run`` loads them only with ``--allow-code`` or an allow-list entry."""

    identity_files: ClassVar[tuple[str, ...]] = ("model",)
    code_files: ClassVar[tuple[str, ...]] = ("model",)

    kind: Literal["nequip"]
    model: str = Field(description="The .nequip.zip package or .ckpt checkpoint (relative to the campaign file).")
    species_to_type: dict[str, str] | None = Field(
        None, description="Chemical symbol → the model's type name, where the type names are not symbols."
    )


class CHGNetSpec(ForceFieldKindSpec):
    """CHGNet, pretrained weights shipped in the ``chgnet`` wheel (load offline), on the engine's
    neighbour list (needs the optional extra ``[chgnet]``). Computes in float32."""

    identity_files: ClassVar[tuple[str, ...]] = ("model",)

    kind: Literal["chgnet"]
    model: Literal["0.3.0", "0.2.0", "r2scan"] = Field("0.3.0", description="The pretrained weights.")

    def identity_paths(self) -> dict[str, str]:
        """The weights file the installed ``chgnet`` ships for this name (found without importing it)."""
        import importlib.util
        from pathlib import Path

        found = importlib.util.find_spec("chgnet")
        if found is None or not found.submodule_search_locations:
            raise ImportError("kind: chgnet needs the package chgnet: pip install 'hts-mlff[chgnet]'")
        files = sorted((Path(found.submodule_search_locations[0]) / "pretrained" / self.model).glob("*.pth.tar"))
        if not files:
            raise ValueError(f"the installed chgnet ships no weights {self.model!r}")
        return {"model": str(files[0])}


#: Every force-field kind's spec (the spec half of each kind's record; the build half is
#: registered in :mod:`hts_mlff.forcefields.kinds`, and a test checks the two agree).
FORCEFIELD_SPECS: tuple[type[ForceFieldKindSpec], ...] = (
    LennardJonesSpec,
    BuckinghamDSFSpec,
    GNNSpec,
    AseCalculatorSpec,
    TorchSimSpec,
    MaceSpec,
    SevenNetSpec,
    CHGNetSpec,
    NequIPSpec,
)

ForceFieldSpec = Annotated[Union[FORCEFIELD_SPECS], Field(discriminator="kind")]  # noqa: UP007


def kind_name(spec_class: type[ForceFieldKindSpec]) -> str:
    """The ``kind`` a spec class parses (its literal)."""
    return get_args(spec_class.model_fields["kind"].annotation)[0]


def kind_names(**traits: bool) -> list[str]:
    """The kinds whose declared traits match, e.g. ``kind_names(heat_current=True)``."""
    return [
        kind_name(cls) for cls in FORCEFIELD_SPECS if all(getattr(cls, key) == value for key, value in traits.items())
    ]


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
