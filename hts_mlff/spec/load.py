"""Load and validate a campaign file, reporting every problem at once with file:line.

Each problem names the file, the line, the dotted field path, what was expected and,
for unknown keys, the closest allowed key ("did you mean").
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from hts_mlff.spec.checks import campaign_checks
from hts_mlff.spec.model import Campaign

Loc = tuple[str | int, ...]
M = typing.TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """One problem found in a campaign file."""

    file: str
    line: int
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning" if self.warning else "error"
        where = f"{self.file}:{self.line}"
        return f"{where}: {kind}: {self.path or '<top level>'}: {self.message}"


class CampaignError(ValueError):
    """A campaign file has problems; ``problems`` lists every one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class LoadedCampaign:
    """A validated campaign with where it came from."""

    spec: Campaign
    path: Path
    text: str
    warnings: list[Problem]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def store_path(self) -> Path:
        return (self.base_dir / self.spec.store).resolve()


# ----------------------------------------------------------------------------- YAML with line numbers
#: At most this many YAML nodes, counting each use of an alias again (a few hundred bytes of
#: nested aliases otherwise expand to billions: the "billion laughs" file).
MAX_YAML_NODES = 200_000


def _compose_with_lines(text: str, *, file: str = "<yaml>") -> tuple[Any, dict[Loc, int]]:
    """Parse YAML; return the data and a map from field path to 1-based line.

    Raises :class:`CampaignError` for what YAML itself lets through: a key given twice in one
    mapping (YAML keeps the last one silently), an alias that contains itself, and aliases
    that expand past :data:`MAX_YAML_NODES` nodes.
    """
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[Loc, int] = {}
    problems: list[Problem] = []
    visited = 0
    active: set[int] = set()

    class _TooBigError(Exception):
        pass

    def walk(n: yaml.Node | None, loc: Loc) -> None:
        nonlocal visited
        if n is None:
            return
        visited += 1
        if visited > MAX_YAML_NODES:
            raise _TooBigError
        if id(n) in active:
            problems.append(
                Problem(file, n.start_mark.line + 1, _format_path(loc), "an alias that contains itself (recursive)")
            )
            return
        lines.setdefault(loc, n.start_mark.line + 1)
        active.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key, value in n.value:
                k = yaml.SafeLoader(key.value).construct_scalar(key) if isinstance(key, yaml.ScalarNode) else str(key)
                line = key.start_mark.line + 1
                if k in first:
                    problems.append(
                        Problem(
                            file,
                            line,
                            _format_path((*loc, k)),
                            f"key {k!r} given twice (lines {first[k]} and {line}); YAML would keep the last silently",
                        )
                    )
                first.setdefault(k, line)
                lines[(*loc, k)] = line
                walk(value, (*loc, k))
                lines[(*loc, k, "__value__")] = value.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[(*loc, i)] = item.start_mark.line + 1
                walk(item, (*loc, i))
        active.discard(id(n))

    try:
        walk(node, ())
    except _TooBigError:
        raise CampaignError(
            [Problem(file, 1, "", f"aliases expand to more than {MAX_YAML_NODES:,} YAML nodes (nested aliases?)")]
        ) from None
    if problems:
        raise CampaignError(problems)
    data = yaml.safe_load(text)
    return data, lines


def _line_of(lines: dict[Loc, int], loc: Loc) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


# ----------------------------------------------------------------------------- model introspection
def _unwrap(tp: Any) -> list[Any]:
    """Member types of Optional/Union/Annotated, flattened."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [m for a in get_args(tp) for m in _unwrap(a)]
    return [tp]


def _model_at(loc: Loc, root: type[BaseModel] = Campaign) -> tuple[type[BaseModel] | None, Loc]:
    """Follow a pydantic error location through the models.

    Returns the model owning the last element (for "did you mean") and the location with
    discriminator tags removed (the path as written in YAML).
    """
    current: list[Any] = [root]
    yaml_loc: list[str | int] = []
    owner: type[BaseModel] | None = root
    for part in loc:
        models = [t for t in current if isinstance(t, type) and issubclass(t, BaseModel)]
        nxt: list[Any] = []
        tagged = False
        for t in current:
            origin = get_origin(t)
            if origin in (dict,) and not isinstance(part, int):
                nxt.extend(_unwrap(get_args(t)[1]))
            elif origin in (list, tuple) and isinstance(part, int):
                nxt.extend(_unwrap(get_args(t)[0]))
        for m in models:
            if part in m.model_fields:
                owner = m
                nxt.extend(_unwrap(m.model_fields[part].annotation))
            else:
                kind = m.model_fields.get("kind")
                if kind is not None and part in get_args(kind.annotation):
                    nxt.append(m)
                    tagged = True
        if not tagged:
            yaml_loc.append(part)
        if models and not tagged and not any(part in m.model_fields for m in models):
            owner = models[0]
        current = nxt or current
        if tagged:
            current = [t for t in nxt if isinstance(t, type)]
    return owner, tuple(yaml_loc)


def _allowed_keys(loc: Loc, root: type[BaseModel] = Campaign) -> list[str]:
    owner, _ = _model_at((*loc[:-1], "__probe__"), root)
    if owner is None:
        return []
    return list(owner.model_fields)


def _format_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ----------------------------------------------------------------------------- semantic checks
def _semantic_problems(spec: Any, *, file: str, lines: dict[Loc, int], base_dir: Path) -> list[Problem]:
    """Checks across sections (:mod:`hts_mlff.spec.checks`) as located problems."""
    problems: list[Problem] = []

    def add(loc: Loc, message: str, *, warning: bool = False) -> None:
        problems.append(Problem(file, _line_of(lines, loc), _format_path(loc), message, warning))

    campaign_checks(spec, base_dir=base_dir, add=add)
    return problems


# ----------------------------------------------------------------------------- entry point
def _parse_mapping(text: str, *, model: type[BaseModel], file: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """YAML text → (mapping, field lines); CampaignError when it is not YAML or not a mapping."""
    try:
        data, lines = _compose_with_lines(text, file=file)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise CampaignError([Problem(file, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(data, dict):
        what = {"Campaign": "a campaign file", "TrainingConfig": "a training config"}.get(model.__name__, "the file")
        raise CampaignError([Problem(file, 1, "", f"{what} must be a mapping of sections")])
    return data, lines


def parse_yaml_model(text: str, model: type[M], *, file: str) -> tuple[M, dict[Loc, int]]:
    """Validate YAML text against any of our models; every problem at once, with file:line."""
    data, lines = _parse_mapping(text, model=model, file=file)
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        raise CampaignError(_pydantic_problems(exc, file=file, lines=lines, root=model)) from None


#: Top-level keys that mark the other YAML files of the project, and the command that runs them.
_OTHER_KINDS = (
    ({"crystal", "pressure_bar", "phonons"}, "a phonon-sweep file", "hts-mlff phonons"),
    ({"crystal", "pressure_bar"}, "a barrier-sweep file", "hts-mlff barrier"),
    ({"sources", "output"}, "a training config", "hts-mlff train"),
)


def _refuse_other_file_kinds(text: str, *, file: str) -> None:
    """One clear message instead of a list of unknown keys when the file is not a campaign."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # parse_yaml_model reports it with its line
    if not isinstance(data, dict) or "sweep" in data:
        return
    for keys, what, command in _OTHER_KINDS:
        if keys <= set(data):
            raise CampaignError(
                [Problem(file, 1, "", f"this is {what}, not a campaign: run it with `{command} {file}`")]
            )


def parse_campaign(
    text: str, *, file: str = "<campaign>", base_dir: Path | None = None
) -> tuple[Campaign, list[Problem]]:
    """Validate campaign text; raise :class:`CampaignError` listing every error.

    Type errors and the checks across sections (unknown names, files, sizes, the store path)
    are reported together: the sections that are well typed are checked even when others
    are not.
    """
    base = base_dir or Path.cwd()
    _refuse_other_file_kinds(text, file=file)
    data, lines = _parse_mapping(text, model=Campaign, file=file)
    try:
        spec: Any = Campaign.model_validate(data)
        problems: list[Problem] = []
    except ValidationError as exc:
        problems = _pydantic_problems(exc, file=file, lines=lines, root=Campaign)
        spec = _well_typed_sections(data)
    problems += _semantic_problems(spec, file=file, lines=lines, base_dir=base)
    if any(not p.warning for p in problems):
        raise CampaignError(sorted(problems, key=lambda p: (p.line, p.warning)))
    return spec, problems


def _well_typed_sections(data: dict[str, Any]) -> types.SimpleNamespace:
    """The campaign's sections that validate on their own (None for the others)."""
    sections = {}
    for name, field in Campaign.model_fields.items():
        try:
            value = data[name] if name in data else field.get_default(call_default_factory=True)
            sections[name] = TypeAdapter(field.annotation).validate_python(value)
        except (ValidationError, KeyError, TypeError, ValueError):
            sections[name] = None
    return types.SimpleNamespace(**sections)


def _pydantic_problems(
    exc: ValidationError, *, file: str, lines: dict[Loc, int], root: type[BaseModel] = Campaign
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        _owner, yaml_loc = _model_at(tuple(err["loc"]), root)
        line = _line_of(lines, yaml_loc)
        if err["type"] == "extra_forbidden":
            key = str(yaml_loc[-1])
            allowed = _allowed_keys(tuple(err["loc"]), root)
            hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            message = f"unknown key {key!r}"
            message += f"; did you mean {hint[0]!r}?" if hint else ""
            message += f" (allowed: {', '.join(allowed)})"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            yaml_loc = (*yaml_loc, ctx.get("discriminator", "kind").strip("'"))
            line = lines.get((*yaml_loc, "__value__"), _line_of(lines, yaml_loc))
            message = f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
        elif err["type"] == "literal_error":
            message = f"{err['msg']} (got {err.get('input')!r})"
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
            line = lines.get((*yaml_loc[:-1], yaml_loc[-1], "__value__"), line) if yaml_loc else line
        problems.append(Problem(file, line, _format_path(yaml_loc), message))
    return problems


def load_campaign(path: str | Path) -> LoadedCampaign:
    """Read and validate a campaign YAML file.

    Raises:
        CampaignError: listing every problem with file:line, field path and expectation.
        FileNotFoundError: when ``path`` does not exist.
    """
    p = Path(path).resolve()
    text = p.read_text()
    spec, warnings = parse_campaign(text, file=str(path), base_dir=p.parent)
    return LoadedCampaign(spec=spec, path=p, text=text, warnings=warnings)
