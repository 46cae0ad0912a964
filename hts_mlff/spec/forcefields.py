"""Force-field kinds of the campaign file: one spec class per ``kind``, with what each kind
declares about itself (identity files, imports, code files, traits). The build half of each
kind's record is :mod:`hts_mlff.forcefields.kinds`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import Field

from hts_mlff.spec.base import Strict
from hts_mlff.spec.types import Float, PositiveFloat


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
