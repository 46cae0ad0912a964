"""The README's examples run as a user would run them: Python snippets verbatim as scripts, the
campaign reference's ASE example as a campaign."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

import hts_mlff
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
#: Snippets that read a store only a long campaign writes (run by hand, not here).
NEEDS_A_LONG_CAMPAIGN = ("runs/ar-liquid-diffusion.zarr",)


def _snippet(marker: str) -> str:
    (found,) = [s for s in SNIPPETS if marker in s]
    return found


def _run(code: str, *, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    script = cwd / "snippet.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_every_python_snippet_is_accounted_for():
    tested = ('load_campaign("campaigns/quickstart.yaml")', "LennardJones(epsilon_eV", "phonons.hessian(gnn")
    for snippet in SNIPPETS:
        assert any(t in snippet for t in tested + NEEDS_A_LONG_CAMPAIGN), snippet


@pytest.mark.timeout(400)
def test_the_quickstart_snippet_runs_as_a_script(tmp_path):
    (tmp_path / "campaigns").mkdir()
    shutil.copy(REPO / "campaigns" / "quickstart.yaml", tmp_path / "campaigns")
    result = _run(_snippet('load_campaign("campaigns/quickstart.yaml")'), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "forcefield" in result.stdout and "seed" in result.stdout
    assert set(hts_mlff.open_campaign(tmp_path / "runs" / "quickstart.zarr").status.values) == {"done"}


def test_an_unguarded_script_is_told_what_to_do(tmp_path):
    (tmp_path / "campaigns").mkdir()
    shutil.copy(REPO / "campaigns" / "quickstart.yaml", tmp_path / "campaigns")
    code = _snippet('load_campaign("campaigns/quickstart.yaml")')
    unguarded = "\n".join(line.removeprefix("    ") for line in code.splitlines() if "__name__" not in line)
    result = _run(unguarded, cwd=tmp_path, timeout=200)
    assert result.returncode != 0
    assert 'if __name__ == "__main__":' in result.stderr


def test_the_force_field_snippet_runs_as_a_script(tmp_path):
    shutil.copytree(REPO / "models", tmp_path / "models")
    result = _run(_snippet("LennardJones(epsilon_eV"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.timeout(400)
def test_the_phonon_snippet_runs_as_a_script(tmp_path):
    shutil.copytree(REPO / "models", tmp_path / "models")
    result = _run(_snippet("phonons.hessian(gnn"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_ase_calculator_example_of_the_campaign_reference_runs(tmp_path, dask_client):
    """The README's `kind: ase` block (EMT, no declared range) drives an fcc copper crystal."""
    reference = yaml.safe_load(re.search(r"```yaml\n(name: quickstart.*?)```", README, flags=re.S).group(1))
    emt = reference["forcefields"]["emt"]
    campaign = {
        "name": "emt",
        "store": "emt.zarr",
        "systems": {"cu": {"kind": "fcc", "element": "Cu", "lattice_A": 3.61, "repeat": [3, 3, 3]}},
        "forcefields": {"emt": emt},
        "protocol": {"timestep_fs": 2.0, "equilibration_steps": 10, "production_steps": 20, "sample_every_steps": 10},
        "sweep": {"temperature_K": [300]},
        "cluster": {"kind": "local", "dashboard_address": ":0"},
    }
    path = tmp_path / "emt.yaml"
    path.write_text(yaml.safe_dump(campaign))
    loaded = hts_mlff.load_campaign(path)
    report = hts_mlff.run_campaign(loaded, client=dask_client, allow_code=True)
    assert report.n_run == 1 and report.n_failed == 0 and not report.pack_errors, report.pack_errors
    ds = hts_mlff.open_campaign(loaded.store_path)
    assert ds["kinetic_temperature_K"].notnull().all()
