"""Bad campaign files are caught at validate, each with file, line and field, in one round."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hts_mlff.cli import app
from hts_mlff.spec import CampaignError, parse_campaign
from tests.spec.test_load import GOOD

# GOOD's lines: 6 element, 7 lattice_A, 8 repeat, 12 timestep_fs, 13 production_steps, 15 temperature_K


def _problems(text: str, tmp_path=None) -> list:
    with pytest.raises(CampaignError) as info:
        parse_campaign(text, file="c.yaml", base_dir=tmp_path)
    return [p for p in info.value.problems if not p.warning]


def _one(text: str, tmp_path=None):
    problems = _problems(text, tmp_path)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "words"),
    [
        ("element: Ar", "element: Xx", 6, "systems.ar.element", "unknown element 'Xx'"),
        ("lattice_A: 5.3", "lattice_A: 0.8", 4, "systems.ar", "denser than any solid"),
        ("lattice_A: 5.3", "number_density_per_A3: 0", 7, "systems.ar.number_density_per_A3", "greater than 0"),
        ("repeat: [2, 2, 2]", "repeat: [1000, 1000, 1000]", 8, "systems.ar.repeat", "4,000,000,000 atoms"),
        ("production_steps: 100", "production_steps: true", 13, "protocol.production_steps", "valid integer"),
        ("timestep_fs: 10", "timestep_fs: .inf", 12, "protocol.timestep_fs", "finite number"),
        ("repeat: [2, 2, 2]", "repeat: [2, 2.5, 2]", 8, "systems.ar.repeat[1]", "valid integer"),
        ("temperature_K: [50, 60]", "temperature_K: [100, 100]", 15, "sweep.temperature_K", "more than once"),
        ("repeat: [2, 2, 2]", "repeat: [2, 2, 2]\n    vacancies: [3, 32]", 9, "systems.ar.vacancies", "[32]"),
        ("name: t", "name: t\nname: u", 2, "name", "lines 1 and 2"),
        ("temperature_K: [50, 60]", "temperature_K: &t [50, *t]", 15, "sweep.temperature_K[1]", "contains itself"),
    ],
)
def test_each_mistake_is_located(old, new, line, path, words):
    assert old in GOOD
    problem = _one(GOOD.replace(old, new, 1))
    assert (problem.file, problem.line, problem.path) == ("c.yaml", line, path), problem
    assert words in problem.message, problem.message


def test_an_alias_bomb_is_refused_without_expanding_it():
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10⁹ leaves
    problem = _one(GOOD + "\n".join(levels) + "\n")
    assert "aliases expand to more than" in problem.message


def test_a_structure_file_without_a_periodic_cell_is_refused_at_validate(tmp_path):
    (tmp_path / "molecule.xyz").write_text("2\n\nAr 0 0 0\nAr 3.8 0 0\n")
    text = GOOD.replace(
        "  ar:\n    kind: fcc\n    element: Ar\n    lattice_A: 5.3\n    repeat: [2, 2, 2]",
        "  ar:\n    kind: file\n    path: molecule.xyz",
    )
    problem = _one(text, tmp_path)
    assert (problem.line, problem.path) == (6, "systems.ar.path")
    assert "not a fully periodic cell" in problem.message


def test_a_store_that_cannot_be_created_is_refused_at_validate(tmp_path):
    (tmp_path / "afile").write_text("")
    problem = _one(GOOD.replace("store: t.zarr", "store: afile/t.zarr"), tmp_path)
    assert (problem.line, problem.path) == (2, "store") and "is a file" in problem.message


def test_type_errors_and_cross_section_errors_come_in_one_round():
    text = GOOD.replace("production_steps: 100", "production_steps: many").replace("element: Ar", "element: Xx")
    text = text.replace("temperature_K: [50, 60]", "temperature_K: [50, 60]\n  forcefield: [lj, nope]")
    problems = _problems(text)
    assert [p.path for p in problems] == ["systems.ar.element", "protocol.production_steps", "sweep.forcefield[1]"]


def test_validate_and_plan_exit_2_without_a_traceback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("temperature_K: [50, 60]", "temperature_K: [100, 100]"))
    for command in ("validate", "plan", "run"):
        result = CliRunner().invoke(app, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert "sweep.temperature_K" in result.output and "Traceback" not in result.output


def test_a_huge_sweep_is_a_warning_with_its_size():
    many = ", ".join(map(str, range(1001)))
    text = GOOD.replace("temperature_K: [50, 60]", f"temperature_K: [50, 60]\n  seed: [{many}]\n  window: [{many}]")
    _, warnings = parse_campaign(text, file="c.yaml")
    (warning,) = warnings
    assert (warning.line, warning.path) == (14, "sweep") and "2,004,002 tasks" in warning.message


def test_adaptive_sampling_needs_vacancy_tracking():
    problem = _one(GOOD + "adaptive: {target_barrier_interval_eV: 0.005}\n")
    assert (problem.path, problem.line) == ("adaptive", 16) and "'vacancy' in analyses" in problem.message


def test_a_refilling_pack_with_a_temperature_ramp_is_refused_at_its_field():
    text = GOOD.replace("production_steps: 100", "production_steps: 100\n  final_temperature_K: 80")
    text += "execution:\n  tasks_per_slot: 3\n"
    problem = _one(text)
    assert (problem.file, problem.path) == ("c.yaml", "execution.tasks_per_slot"), problem
    assert problem.line == 18 and "ramp the temperature" in problem.message, problem
    spec, _ = parse_campaign(GOOD + "execution:\n  tasks_per_slot: 3\n", file="c.yaml", base_dir=None)
    assert spec.execution.tasks_per_slot == 3
