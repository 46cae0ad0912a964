"""What a campaign file may make this machine run: imported modules and job-script shell lines.

A campaign file is code where it names code: ``kind: ase`` (``calculator``) and
``kind: torchsim`` (``model``) import a ``package.module:attribute`` and call it; a model file
that is a pickle (a MACE ``.model``, a NequIP or SevenNet checkpoint: the kinds' ``code_files``)
runs code when it is loaded; and a batch cluster's ``job_script_prologue`` lines run in a shell
on the compute nodes. Nothing of that runs unless the user said so for this run:

* ``hts-mlff run --allow-code`` (Python: ``run_campaign(..., allow_code=True)``), or
* an allow-list in the user's configuration file (``$HTS_MLFF_CONFIG``, else
  ``$XDG_CONFIG_HOME/hts_mlff/config.yaml``, else ``~/.config/hts_mlff/config.yaml``)::

      allow_imports: [ase.calculators, mypackage.models]   # modules and their submodules
      allow_job_script_prologue: true                      # prologue lines of my own campaigns
      allow_model_files:                                   # path: content digest (``validate`` prints it)
        /home/me/models/argon.model: '5d0c…'            # quoted: a digest may look like a number

A model file is approved by its resolved path and its content digest (blake2b-128 of its
bytes), checked again where it is loaded: a file changed after approval is refused.

Approval is per process and per import path (:func:`approve`); building a force field that
imports an unapproved path raises :class:`CodeNotAllowedError`
(:func:`hts_mlff.forcefields.registry.build_forcefield` asks :func:`require_approved`).
Analyses of a store never approve anything, so a store someone sent you cannot make them
import code: what they need is rebuilt from a campaign file you pass explicitly.
"""

from __future__ import annotations

import contextlib
import hashlib
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
    files = data.get("allow_model_files", {})
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ValueError(
            f"{path}: allow_model_files: expected a mapping of model file path to content digest, "
            "the digest quoted (e.g. /models/argon.model: '5d0c…')"
        )
    return data


def file_digest(path: Path) -> str:
    """blake2b-128 hex digest of a file's bytes (what approves a model file)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_approval(path: Path) -> str:
    """The approval token of a model file as it is now: ``file:<resolved path>#<digest>``."""
    resolved = Path(path).expanduser().resolve()
    return f"file:{resolved}#{file_digest(resolved)}"


def file_allowed_by_config(path: Path) -> bool:
    """True when the user's ``allow_model_files`` lists this file with its current digest."""
    resolved = Path(path).expanduser().resolve()
    for entry, digest in user_config().get("allow_model_files", {}).items():
        if Path(entry).expanduser().resolve() == resolved and digest.strip().lower() == file_digest(resolved):
            return True
    return False


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


def campaign_code_files(spec: Campaign | StaticsSweep, *, base_dir: Path) -> dict[str, Path]:
    """Field path → file, for every model file of the campaign whose loading runs code (pickles),
    resolved against ``base_dir`` (the campaign file's folder)."""
    out = {}
    for name, ff in spec.forcefields.items():
        out.update({f"forcefields.{name}.{field}": base_dir / path for field, path in ff.code_paths().items()})
    return out


def _describe_file(path: Path) -> str:
    digest = file_digest(path) if path.is_file() else "missing"
    return f"loads {path} (a pickle: loading it runs code; digest {digest})"


def campaign_shell_lines(spec: Campaign | StaticsSweep) -> list[str]:
    """The job-script prologue lines the campaign runs on compute nodes."""
    cluster = getattr(spec, "cluster", None)
    return list(cluster.job_script_prologue) if isinstance(cluster, JobQueueClusterSpec) else []


def describe_code(spec: Campaign | StaticsSweep, *, base_dir: Path | None = None) -> list[str]:
    """One line per piece of code the campaign would run (empty when it names none); model files
    are resolved against ``base_dir`` (default: the working directory)."""
    lines = [f"{field} imports {path}" for field, path in campaign_imports(spec).items()]
    files = campaign_code_files(spec, base_dir=base_dir or Path.cwd())
    lines += [f"{field} {_describe_file(path)}" for field, path in files.items()]
    lines += [f"cluster.job_script_prologue runs: {line}" for line in campaign_shell_lines(spec)]
    return lines


def approve_campaign(
    spec: Campaign | StaticsSweep, *, allow_code: bool, source: str, base_dir: Path | None = None
) -> list[str]:
    """Approve the campaign's imports and code-running model files for this process, or raise
    :class:`CodeNotAllowedError` (before anything is imported or loaded).

    Args:
        allow_code: the user's explicit consent for this run (``--allow-code``).
        source: where the campaign came from (its file), for the message.
        base_dir: folder the campaign's paths are relative to (default: ``source``'s folder).

    Returns:
        The approvals (import paths, model-file tokens) to hand to workers with the jobs.
    """
    imports = campaign_imports(spec)
    refused = [
        f"{field} imports {path}" for field, path in imports.items() if not (allow_code or allowed_by_config(path))
    ]
    files = campaign_code_files(spec, base_dir=base_dir if base_dir is not None else Path(source).parent)
    tokens = []
    for field, path in files.items():
        if not path.is_file():
            continue  # validation reports a missing file; nothing to load
        if allow_code or file_allowed_by_config(path):
            tokens.append(file_approval(path))
        else:
            refused.append(f"{field} {_describe_file(path)}")
    shell = campaign_shell_lines(spec)
    if shell and not (allow_code or user_config().get("allow_job_script_prologue", False)):
        refused += [f"cluster.job_script_prologue runs: {line}" for line in shell]
    if refused:
        raise CodeNotAllowedError(
            f"{source}: this campaign runs code:\n  "
            + "\n  ".join(refused)
            + "\nA campaign file is code where it names code: run it only if you trust it. "
            f"Pass --allow-code (Python: allow_code=True), or allow it in {config_path()} "
            "(allow_imports: [module, …]; allow_job_script_prologue: true; "
            "allow_model_files: {path: digest})."
        )
    approve([*imports.values(), *tokens])
    return sorted({*imports.values(), *tokens})


def approve(import_paths: Any) -> None:
    """Mark ``package.module:attribute`` paths (and model-file tokens, :func:`file_approval`) as
    approved in this process."""
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


def require_approved_file(path: Path, *, what: str) -> None:
    """Raise :class:`CodeNotAllowedError` unless the model file at ``path``, with its bytes as they
    are now, was approved in this process or is on the user's ``allow_model_files``. Called
    before the file is opened for loading."""
    if file_approval(path) in _APPROVED or file_allowed_by_config(path):
        return
    raise CodeNotAllowedError(
        f"{what} would load {Path(path).resolve()}, a pickle (loading it runs code) that this process "
        "was not allowed to load, or that changed since it was approved. Pass the campaign file you "
        "trust with --allow-code, or add the file and its digest (`hts-mlff validate` prints it) to "
        f"allow_model_files in {config_path()}."
    )
