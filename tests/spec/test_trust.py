"""No code runs from data: a campaign's imports need the user's consent, a store's spec never imports."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hts_mlff.cli import app
from hts_mlff.forcefields.registry import build_forcefield
from hts_mlff.spec import load_campaign
from hts_mlff.spec.model import AseCalculatorSpec, TorchSimSpec
from hts_mlff.spec.trust import CONFIG_ENV, CodeNotAllowedError, approve_campaign, approved, describe_code
from tests.spec.test_load import GOOD

runner = CliRunner()

#: A module that leaves a mark when it is imported (what an attacker's payload would do).
PAYLOAD = textwrap.dedent(
    """\
    from pathlib import Path
    Path({mark!r}).write_text("imported")

    def Calc(**kwargs):
        from ase.calculators.lj import LennardJones
        return LennardJones(**kwargs)
    """
)


@pytest.fixture
def payload(tmp_path, monkeypatch) -> Path:
    """A module ``payload_mod`` on sys.path; returns the file its import would create."""
    mark = tmp_path / "MARK"
    (tmp_path / "payload_mod.py").write_text(PAYLOAD.format(mark=str(mark)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "no-config.yaml"))
    return mark


def _ase_campaign(tmp_path: Path) -> Path:
    text = GOOD.replace(
        "  lj: {kind: lennard_jones, epsilon_eV: 0.0103, sigma_A: 3.4, cutoff_A: 8.5}",
        "  lj: {kind: lennard_jones, epsilon_eV: 0.0103, sigma_A: 3.4, cutoff_A: 8.5}\n"
        "  mine: {kind: ase, calculator: 'payload_mod:Calc', cutoff_A: 8.5}",
    )
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_validate_names_the_code_and_run_refuses_it_without_consent(tmp_path, payload):
    path = _ase_campaign(tmp_path)
    checked = runner.invoke(app, ["validate", str(path)])
    assert checked.exit_code == 0, checked.output
    assert "this campaign runs code" in checked.output and "forcefields.mine.calculator imports payload_mod:Calc" in (
        checked.output
    )
    refused = runner.invoke(app, ["run", "-q", str(path)])
    assert refused.exit_code == 2, refused.output
    assert "--allow-code" in refused.output and "Traceback" not in refused.output
    assert not payload.exists(), "the module was imported"
    assert not (tmp_path / "t.zarr").exists(), "a refused run wrote a store"
    assert not (tmp_path / "t.zarr.lock").exists()


def test_consent_by_flag_or_by_the_users_allow_list(tmp_path, payload, monkeypatch):
    spec = load_campaign(_ase_campaign(tmp_path)).spec
    assert describe_code(spec) == ["forcefields.mine.calculator imports payload_mod:Calc"]
    with pytest.raises(CodeNotAllowedError, match="payload_mod:Calc"):
        approve_campaign(spec, allow_code=False, source="c.yaml")
    config = tmp_path / "config.yaml"
    config.write_text("allow_imports: [payload]\n")  # a prefix of another name is not its package
    monkeypatch.setenv(CONFIG_ENV, str(config))
    with pytest.raises(CodeNotAllowedError):
        approve_campaign(spec, allow_code=False, source="c.yaml")
    config.write_text("allow_imports: [payload_mod]\n")
    with approved([]):
        assert approve_campaign(spec, allow_code=False, source="c.yaml") == ["payload_mod:Calc"]
    config.write_text("allow_imports: payload_mod\n")
    with pytest.raises(ValueError, match="allow_imports: expected a list"):
        approve_campaign(spec, allow_code=False, source="c.yaml")
    assert not payload.exists()
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "none.yaml"))
    with approved([]):  # approvals made in the block end with it
        approve_campaign(spec, allow_code=True, source="c.yaml")
        ff = build_forcefield(spec.forcefields["mine"])
    assert payload.exists() and ff.cutoff_A == 8.5
    with pytest.raises(CodeNotAllowedError):  # the approval ended with the block
        build_forcefield(spec.forcefields["mine"])


def test_building_an_unapproved_force_field_imports_nothing(payload):
    for spec in (
        AseCalculatorSpec(kind="ase", calculator="payload_mod:Calc"),
        TorchSimSpec(kind="torchsim", model="payload_mod:Calc"),
    ):
        with pytest.raises(CodeNotAllowedError, match="never import code named in it"):
            build_forcefield(spec)
    assert not payload.exists()


def test_a_missing_torchsim_is_reported_before_the_model_module_is_imported(payload):
    try:
        import torch_sim  # noqa: F401

        pytest.skip("torch-sim is installed here")
    except ImportError:
        pass
    spec = TorchSimSpec(kind="torchsim", model="payload_mod:Calc")
    with approved([spec.model]), pytest.raises(ImportError, match="torch-sim-atomistic"):
        build_forcefield(spec)
    assert not payload.exists()


def test_analysing_a_received_store_never_imports_code_named_in_it(tmp_path, payload, dask_client):
    import hts_mlff

    campaign = tmp_path / "c.yaml"
    protocol = "production_steps: 40\n  sample_every_steps: 10\n  save_forces_every_samples: 2\n"
    protocol += "  save_positions_every_samples: 2"
    text = GOOD.replace("production_steps: 100", protocol).replace("repeat: [2, 2, 2]", "repeat: [4, 4, 4]")
    campaign.write_text(text + "cluster: {kind: local, dashboard_address: ':0'}\n")
    loaded = hts_mlff.load_campaign(campaign)
    hts_mlff.run_campaign(loaded, client=dask_client)
    store = loaded.store_path
    # Someone edits the store's spec so that its reference force field imports their module.
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["hts_mlff"]["spec"]["forcefields"]["lj"] = {
        "kind": "ase",
        "calculator": "payload_mod:Calc",
        "parameters": {},
        "cutoff_A": 8.5,
    }
    meta_path.write_text(json.dumps(meta))
    result = runner.invoke(app, ["report", str(store), "-r", "lj"])
    assert result.exit_code == 1, result.output
    assert "never import code named in it" in result.output
    assert not payload.exists(), "analysing a store imported code named in it"
    # The user's own campaign file rebuilds the reference instead (no code in it: LJ).
    trusted = runner.invoke(app, ["report", str(store), "-r", "lj", "--campaign", str(campaign)])
    assert trusted.exit_code == 0, trusted.output
    assert not payload.exists()


class _RunsOnLoad:
    """Unpickling this object runs ``os.system`` (what a hostile model file does)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def _mace_campaign(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A campaign naming a MACE model file that, loaded, creates MARK; (campaign, model, mark)."""
    import pickle

    mark = tmp_path / "MARK"
    model = tmp_path / "evil.model"
    model.write_bytes(pickle.dumps(_RunsOnLoad(f"touch {mark}")))
    text = GOOD.replace(
        "  lj: {kind: lennard_jones, epsilon_eV: 0.0103, sigma_A: 3.4, cutoff_A: 8.5}",
        "  lj: {kind: lennard_jones, epsilon_eV: 0.0103, sigma_A: 3.4, cutoff_A: 8.5}\n"
        "  mace: {kind: mace, model: evil.model}",
    )
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path, model, mark


def test_a_pickled_model_that_runs_code_on_load_is_listed_and_refused_without_approval(tmp_path, monkeypatch):
    from hts_mlff.spec.trust import file_digest

    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "no-config.yaml"))
    path, model, mark = _mace_campaign(tmp_path)
    checked = runner.invoke(app, ["validate", str(path)])
    assert checked.exit_code == 0, checked.output
    assert "forcefields.mace.model loads" in checked.output and file_digest(model) in checked.output
    refused = runner.invoke(app, ["run", "-q", str(path)])
    assert refused.exit_code == 2, refused.output
    assert "a pickle" in refused.output and "--allow-code" in refused.output and "Traceback" not in refused.output
    loaded = load_campaign(path)
    with pytest.raises(CodeNotAllowedError, match=r"evil\.model"):
        build_forcefield(loaded.spec.forcefields["mace"], base_dir=tmp_path)
    assert not mark.exists(), "the pickle was loaded"
    assert not (tmp_path / "t.zarr").exists(), "a refused run wrote a store"


def test_a_model_file_is_approved_by_path_and_digest_and_refused_once_it_changes(tmp_path, monkeypatch):
    from hts_mlff.spec.trust import file_approval, file_digest, require_approved_file

    path, model, mark = _mace_campaign(tmp_path)
    spec = load_campaign(path).spec
    config = tmp_path / "config.yaml"
    monkeypatch.setenv(CONFIG_ENV, str(config))
    config.write_text(f"allow_model_files:\n  {model}: '{'0' * 32}'\n")  # the right path, another digest
    with pytest.raises(CodeNotAllowedError, match=r"evil\.model"):
        approve_campaign(spec, allow_code=False, source=str(path))
    config.write_text(f"allow_model_files:\n  {model}: '{file_digest(model)}'\n")
    with approved([]):
        assert approve_campaign(spec, allow_code=False, source=str(path)) == [file_approval(model)]
        require_approved_file(model, what="a mace force field")
        model.write_bytes(model.read_bytes() + b".")  # one byte more after approval
        with pytest.raises(CodeNotAllowedError, match="changed since it was approved"):
            require_approved_file(model, what="a mace force field")
    config.write_text("allow_model_files: [evil.model]\n")
    with pytest.raises(ValueError, match="allow_model_files: expected a mapping"):
        approve_campaign(spec, allow_code=False, source=str(path))
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "none.yaml"))
    with approved([]):  # --allow-code approves the file as it is now
        (token,) = approve_campaign(spec, allow_code=True, source=str(path))
        assert token == file_approval(model) and token.endswith(file_digest(model))
    assert not mark.exists()
