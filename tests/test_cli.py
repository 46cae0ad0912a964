"""The command line as a user meets it: exit codes and messages."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hts_mlff.cli import app
from tests.conftest import REPO
from tests.spec.test_load import GOOD

runner = CliRunner()


def test_validate_ok_and_broken(tmp_path):
    assert runner.invoke(app, ["validate", str(REPO / "campaigns" / "quickstart.yaml")]).exit_code == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text(GOOD.replace("  timestep_fs: 10", "  timestep_fs: -1\n  tempreature_K: 3"))
    result = runner.invoke(app, ["validate", str(broken)])
    assert result.exit_code == 2
    assert f"{broken}:12: error: protocol.timestep_fs" in result.output
    assert "did you mean" in result.output
    assert "2 error(s); nothing was run or written" in result.output


def test_missing_campaign_file(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no such campaign file" in result.output


def test_plan_prints_counts_without_writing(tmp_path):
    campaign = tmp_path / "c.yaml"
    campaign.write_text(GOOD.replace("  temperature_K: [50, 60]", "  temperature_K: [50, 60]\n  seed: [0, 1, 2]"))
    result = runner.invoke(app, ["plan", str(campaign)], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    assert rows["tasks (trajectories)"] == "6"  # 2 temperatures × 3 seeds
    assert rows["seed"] == "3: 0, 1, 2" and rows["temperature_K"] == "2: 50.0, 60.0"
    assert float(rows["total atom-steps"]) == 6 * 32 * 100  # 6 tasks × 32 atoms × 100 steps
    assert rows["estimated store size"].endswith("(uncompressed)")
    assert not (tmp_path / "t.zarr").exists()


def test_run_refuses_bad_campaign_and_status_reports(tmp_path, dask_client):
    import hts_mlff
    from tests.schedule.conftest import write_campaign

    path = write_campaign(tmp_path)
    good = path.read_text()
    path.write_text(good.replace("  timestep_fs: 10.0", "  timestep_fs: fast"))
    refused = runner.invoke(app, ["run", "--quiet", str(path)])
    assert refused.exit_code == 2
    line = 1 + next(k for k, text in enumerate(good.splitlines()) if "timestep_fs" in text)
    assert f"{path}:{line}: error: protocol.timestep_fs" in refused.output, refused.output
    assert "nothing was run or written" in refused.output
    assert not (tmp_path / "t.zarr").exists()  # nothing was started or written
    path.write_text(good)
    loaded = hts_mlff.load_campaign(path)
    hts_mlff.run_campaign(loaded, client=dask_client)
    result = runner.invoke(app, ["status", str(loaded.store_path)])
    assert result.exit_code == 0, result.output
    assert "8 done, 0 failed, 0 missing" in result.output
    bad = runner.invoke(app, ["status", str(tmp_path / "nothing.zarr")])
    assert bad.exit_code == 2 and "no such store" in bad.output


def test_detached_run_survives_its_parent_and_finishes(tmp_path):
    import time

    import hts_mlff
    from tests.schedule.conftest import write_campaign

    path = write_campaign(tmp_path, name="d")
    result = runner.invoke(app, ["run", "--detach", str(path)])
    assert result.exit_code == 0, result.output
    assert "pid" in result.output and "t.zarr.log" in result.output
    store = tmp_path / "t.zarr"
    deadline = time.time() + 180
    while time.time() < deadline:
        done = len(list((store / "_hts" / "done").glob("*.json"))) if (store / "_hts" / "done").is_dir() else 0
        if done == 8 and not (tmp_path / "t.zarr.lock").exists():
            break
        time.sleep(0.5)
    ds = hts_mlff.open_campaign(store)
    assert set(ds.status.values) == {"done"}, (tmp_path / "t.zarr.log").read_text()


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    import sys

    import hts_mlff.spec.load
    from hts_mlff.cli import main

    def broken(path):
        raise RuntimeError("boom")

    monkeypatch.setattr(hts_mlff.spec.load, "load_campaign", broken)
    monkeypatch.setattr(sys, "argv", ["hts-mlff", "validate", "c.yaml"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err and "--debug" in err and "Traceback" not in err
    monkeypatch.setattr(sys, "argv", ["hts-mlff", "--debug", "validate", "c.yaml"])
    with pytest.raises(RuntimeError, match="boom"):
        main()


def test_plan_orders_numbers_as_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    sweep = "temperature_K: [100, 110, 90]\n  window: [0, 1, 10, 11, 2]"
    path.write_text(GOOD.replace("temperature_K: [50, 60]", sweep))
    result = runner.invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert "3: 90.0, 100.0, 110.0" in result.output and "5: 0, 1, 2, 10, 11" in result.output


def test_wide_tables_fold_instead_of_cutting_numbers():
    import pandas as pd
    from rich.console import Console

    from hts_mlff.cli import common

    frame = pd.DataFrame(
        {f"a_long_column_name_{k}": [0.000123456 * (k + 1), 123456.789] for k in range(8)},
        index=pd.Index(["lj", "gnn"], name="forcefield"),
    )
    narrow = Console(width=80, record=True)
    original = common.console
    common.console = narrow
    try:
        common._print_frame(frame, title="wide")
    finally:
        common.console = original
    text = narrow.export_text()
    assert "…" not in text  # values fold over lines; none is cut to "0.00…"
    assert "0.0001235" in text and "1.235e+05" in text  # whole values


def test_plan_measure_estimates_the_wall_time_from_measured_rates(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("repeat: [2, 2, 2]", "repeat: [3, 3, 3]"))
    result = runner.invoke(app, ["plan", "--measure", str(path)])
    assert result.exit_code == 0, result.output
    assert "lj × ar:" in result.output and "atom-steps/s per pack" in result.output
    assert "estimated wall time:" in result.output and "measured here on cpu" in result.output
    ase = GOOD.replace("lj: {kind: lennard_jones,", "lj: {kind: ase, calculator: 'ase.calculators.emt:EMT'} #")
    path.write_text(ase)
    refused = runner.invoke(app, ["plan", "--measure", str(path)])
    assert refused.exit_code == 2 and "--allow-code" in refused.output
