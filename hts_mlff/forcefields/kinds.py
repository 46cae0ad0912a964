"""Force-field kinds: one record per campaign ``kind``, the registry that builds them.

A kind's record has two halves. Its spec class (:mod:`hts_mlff.spec.forcefields`, a
:class:`~hts_mlff.spec.forcefields.ForceFieldKindSpec`, torch-free so ``validate`` stays light)
holds the fields and what the kind declares about itself: the files that define its identity
(their bytes enter every task id), the imports it runs, whether it partitions its energy per
atom (heat current) and whether a store's copy of the spec can be rebuilt without running code.
Its :class:`ForceFieldKind` here adds how the spec becomes a
:class:`~hts_mlff.engine.forcefield.ForceField`.

Adding a kind: its module under ``hts_mlff/forcefields/`` (the force field and its ``build``), its
spec class in :data:`hts_mlff.spec.forcefields.FORCEFIELD_SPECS`, and one :func:`register` line below;
``tests/forcefields/test_kinds.py`` checks that specs and records agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.spec.model import FORCEFIELD_SPECS, ForceFieldKindSpec, kind_name
from hts_mlff.spec.trust import require_approved, require_approved_file


@dataclass(frozen=True)
class ForceFieldKind:
    """The build half of a force-field kind.

    Attributes:
        spec: its spec class (``kind`` literal, fields, declared traits).
        build: ``build(spec, base_dir)`` → the force field (paths relative to ``base_dir``).
            Imports named by the spec's ``import_fields`` are approved before ``build`` runs.
        extra: the optional dependency group that brings the kind's package (None: none needed).
        package: the import name of that package (to tell whether it is installed here).
    """

    spec: type[ForceFieldKindSpec]
    build: Callable[[Any, Path], ForceField]
    extra: str | None = None
    package: str | None = None

    @property
    def name(self) -> str:
        return kind_name(self.spec)

    def installed(self) -> bool:
        """True when the kind's package is importable here (found, not imported)."""
        import importlib.util

        return self.package is None or importlib.util.find_spec(self.package) is not None


KINDS: dict[str, ForceFieldKind] = {}


def register(
    spec: type[ForceFieldKindSpec],
    build: Callable[[Any, Path], ForceField],
    *,
    extra: str | None = None,
    package: str | None = None,
) -> None:
    """Register the build half of the kind whose spec class is ``spec``."""
    kind = ForceFieldKind(spec=spec, build=build, extra=extra, package=package)
    KINDS[kind.name] = kind


def build_forcefield(spec: ForceFieldKindSpec, *, base_dir: Path | None = None) -> ForceField:
    """The force field a campaign's ``forcefields`` entry describes (paths relative to ``base_dir``).

    Kinds that import code (``import_fields``: ``kind: ase``, ``kind: torchsim``) or load model
    files that are pickles (``code_files``: ``kind: mace``) build only when every path (and file,
    by its digest) is approved in this process (:func:`hts_mlff.spec.trust.approve_campaign`) or
    on the user's allow-list, else :class:`hts_mlff.spec.trust.CodeNotAllowedError` is raised
    before anything is imported or loaded.
    """
    kind = KINDS.get(spec.kind)
    if kind is None or not isinstance(spec, kind.spec):
        raise TypeError(f"no force-field kind registered for spec {type(spec).__name__} (kind {spec.kind!r})")
    base = base_dir or Path.cwd()
    for field, path in spec.import_paths().items():
        require_approved(path, what=f"a {spec.kind} force field ({field})")
    for field, path in spec.code_paths().items():
        require_approved_file(base / path, what=f"a {spec.kind} force field ({field})")
    return kind.build(spec, base)


# ----------------------------------------------------------------------------- the kinds shipped here
from hts_mlff.forcefields import builtin_kinds as _builtin  # noqa: E402
from hts_mlff.forcefields.chgnet import build_chgnet  # noqa: E402
from hts_mlff.forcefields.mace import build_mace  # noqa: E402
from hts_mlff.forcefields.nequip import build_nequip  # noqa: E402
from hts_mlff.forcefields.sevennet import build_sevennet  # noqa: E402
from hts_mlff.spec.model import (  # noqa: E402
    AseCalculatorSpec,
    BuckinghamDSFSpec,
    CHGNetSpec,
    GNNSpec,
    LennardJonesSpec,
    MaceSpec,
    NequIPSpec,
    SevenNetSpec,
    TorchSimSpec,
)

register(LennardJonesSpec, _builtin.build_lennard_jones)
register(BuckinghamDSFSpec, _builtin.build_buckingham_dsf)
register(GNNSpec, _builtin.build_gnn)
register(AseCalculatorSpec, _builtin.build_ase)
register(TorchSimSpec, _builtin.build_torchsim, extra="torchsim", package="torch_sim")
register(MaceSpec, build_mace, extra="mace", package="mace")
register(SevenNetSpec, build_sevennet, extra="sevennet", package="sevenn")
register(CHGNetSpec, build_chgnet, extra="chgnet", package="chgnet")
register(NequIPSpec, build_nequip, extra="nequip", package="nequip")

__all__ = ["FORCEFIELD_SPECS", "KINDS", "ForceFieldKind", "build_forcefield", "register"]
