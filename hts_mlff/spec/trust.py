"""What a campaign file may make this machine run: imported modules and job-script shell lines.

A campaign file is code where it names code: ``kind: ase`` (``calculator``) and
``kind: torchsim`` (``model``) import a ``package.module:attribute`` and call it, and a batch
cluster's ``job_script_prologue`` lines run in a shell on the compute nodes. Nothing of that
runs unless the user said so for this run:

* ``hts-mlff run --allow-code`` (Python: ``run_campaign(..., allow_code=True)``), or
* an allow-list in the user's configuration file (``$HTS_MLFF_CONFIG``, else
  ``$XDG_CONFIG_HOME/hts_mlff/config.yaml``, else ``~/.config/hts_mlff/config.yaml``)::

      allow_imports: [ase.calculators, mypackage.models]   # modules and their submodules
      allow_job_script_prologue: true                      # prologue lines of my own campaigns

Approval is per process and per import path (:func:`approve`); building a force field that
imports an unapproved path raises :class:`CodeNotAllowedError`
(:func:`hts_mlff.forcefields.registry.build_forcefield` asks :func:`require_approved`).
Analyses of a store never approve anything, so a store someone sent you cannot make them
import code: what they need is rebuilt from a campaign file you pass explicitly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from hts_mlff.spec.model import Campaign, JobQueueClusterSpec
from hts_mlff.spec.statics import StaticsSweep

CONFIG_ENV = "HTS_MLFF_CONFIG"

_APPROVED: set[str] = set()


class CodeNotAllowedError(ValueError):
    """A campaign (or a store's spec) names code that this run was not allowed to execute."""


def config_path() -> Path:
    """The user's hts_mlff configuration file (it need not exist)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hts_mlff" / "config.yaml"


def user_config() -> dict[str, Any]:
    """The parsed configuration file ({} when absent); ValueError naming the file when malformed."""
    path = config_path()
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping (e.g. 'allow_imports: [ase.calculators]')")
    allow = data.get("allow_imports", [])
    if not isinstance(allow, list) or not all(isinstance(m, str) and m for m in allow):
        raise ValueError(f"{path}: allow_imports: expected a list of module names")
    if not isinstance(data.get("allow_job_script_prologue", False), bool):
        raise ValueError(f"{path}: allow_job_script_prologue: expected true or false")
    return data


def allowed_by_config(import_path: str) -> bool:
    """True when the module of ``package.module:attribute`` is on the user's allow-list
    (an entry allows that module and every submodule)."""
    module = import_path.partition(":")[0]
    for entry in user_config().get("allow_imports", []):
        if module == entry or module.startswith(entry + "."):
            return True
    return False


def campaign_imports(spec: Campaign | StaticsSweep) -> dict[str, str]:
    """Field path → ``package.module:attribute`` for every import a campaign (or a statics
    sweep file) names."""
    out = {}
    for name, ff in spec.forcefields.items():  # what each kind declares it imports (import_fields)
        out.update({f"forcefields.{name}.{field}": path for field, path in ff.import_paths().items()})
    return out


def campaign_shell_lines(spec: Campaign | StaticsSweep) -> list[str]:
    """The job-script prologue lines the campaign runs on compute nodes."""
    cluster = getattr(spec, "cluster", None)
    return list(cluster.job_script_prologue) if isinstance(cluster, JobQueueClusterSpec) else []


def describe_code(spec: Campaign | StaticsSweep) -> list[str]:
    """One line per piece of code the campaign would run (empty when it names none)."""
    lines = [f"{field} imports {path}" for field, path in campaign_imports(spec).items()]
    lines += [f"cluster.job_script_prologue runs: {line}" for line in campaign_shell_lines(spec)]
    return lines


def approve_campaign(spec: Campaign | StaticsSweep, *, allow_code: bool, source: str) -> list[str]:
    """Approve the campaign's imports for this process, or raise :class:`CodeNotAllowedError`.

    Args:
        allow_code: the user's explicit consent for this run (``--allow-code``).
        source: where the campaign came from (its file), for the message.

    Returns:
        The approved import paths (to hand to workers with the jobs).
    """
    imports = campaign_imports(spec)
    refused = [
        f"{field} imports {path}" for field, path in imports.items() if not (allow_code or allowed_by_config(path))
    ]
    shell = campaign_shell_lines(spec)
    if shell and not (allow_code or user_config().get("allow_job_script_prologue", False)):
        refused += [f"cluster.job_script_prologue runs: {line}" for line in shell]
    if refused:
        raise CodeNotAllowedError(
            f"{source}: this campaign runs code:\n  "
            + "\n  ".join(refused)
            + "\nA campaign file is code where it names code: run it only if you trust it. "
            f"Pass --allow-code (Python: allow_code=True), or allow it in {config_path()} "
            "(allow_imports: [module, …]; allow_job_script_prologue: true)."
        )
    approve(imports.values())
    return sorted(set(imports.values()))


def approve(import_paths: Any) -> None:
    """Mark ``package.module:attribute`` paths as approved in this process."""
    _APPROVED.update(import_paths)


@contextlib.contextmanager
def approved(import_paths: Any) -> Iterator[None]:
    """Approve ``import_paths`` for the block only (e.g. to build an ASE force field in a notebook);
    every approval made inside the block ends with it."""
    before = set(_APPROVED)
    approve(import_paths)
    try:
        yield
    finally:
        _APPROVED.clear()
        _APPROVED.update(before)


def require_approved(import_path: str, *, what: str) -> None:
    """Raise :class:`CodeNotAllowedError` unless ``import_path`` was approved in this process or is on
    the user's allow-list. Called before anything is imported."""
    if import_path in _APPROVED or allowed_by_config(import_path):
        return
    raise CodeNotAllowedError(
        f"{what} would import {import_path!r}, which this process was not allowed to run. "
        "Analyses of a store never import code named in it; pass the campaign file you trust "
        "(--campaign FILE --allow-code), or leave this step out."
    )
