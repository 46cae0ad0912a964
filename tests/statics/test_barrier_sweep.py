"""Barrier sweeps: vacancy-hop barrier vs pressure, saved per point, resumed, reported."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from hts_mlff.cli import app
from hts_mlff.spec.barrier import BarrierConfig, load_barrier_config
from hts_mlff.spec.load import CampaignError, parse_yaml_model
from hts_mlff.statics.barrier_sweep import part_path, run_barrier_sweep
from tests.conftest import REPO

CONFIG = """\
name: t
output: out
crystal: {element: Ar, repeat: [3, 3, 3], guess_lattice_A: 5.3}
forcefields:
  lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.4, cutoff_A: 8.5}
pressure_bar: [0, -2000]
string: {n_images: 7}
device: cpu
"""


def write_config(tmp_path, text: str = CONFIG):
    path = tmp_path / "b.yaml"
    path.write_text(text)
    return path


def test_sweep_gives_barrier_vs_pressure_and_resumes(tmp_path):
    config, path = load_barrier_config(write_config(tmp_path))
    seen = []
    ds = run_barrier_sweep(config, base_dir=path.parent, on_point=lambda *a: seen.append((a[0], a[1], a[3])))
    assert seen == [("lj", 0.0, False), ("lj", -2000.0, False)]
    assert ds["barrier_eV"].dims == ("forcefield", "pressure_bar")
    barrier = ds["barrier_eV"].sel(forcefield="lj")
    assert float(barrier.sel(pressure_bar=-2000.0)) < float(barrier.sel(pressure_bar=0.0))  # tension lowers it
    np.testing.assert_allclose(ds["barrier_eV"], ds["barrier_energy_eV"], rtol=0.01)
    assert bool(ds["converged"].all())
    assert ds["lattice_A"].sel(pressure_bar=-2000.0) > ds["lattice_A"].sel(pressure_bar=0.0)
    # A rerun reuses both points; a changed string setting recomputes them.
    seen.clear()
    run_barrier_sweep(config, base_dir=path.parent, on_point=lambda *a: seen.append(a[3]))
    assert seen == [True, True]
    changed = config.model_copy(update={"string": config.string.model_copy(update={"n_images": 9})})
    seen.clear()
    again = run_barrier_sweep(changed, base_dir=path.parent, on_point=lambda *a: seen.append(a[3]))
    assert seen == [False, False] and again.sizes["image"] == 9


def test_a_killed_sweep_keeps_finished_points(tmp_path):
    config, path = load_barrier_config(write_config(tmp_path))

    def stop_after_first(forcefield, pressure_bar, ds, reused):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_barrier_sweep(config, base_dir=path.parent, on_point=stop_after_first)
    output = path.parent / "out"
    assert part_path(output, "lj", 0.0).exists() and not part_path(output, "lj", -2000.0).exists()
    seen = []
    run_barrier_sweep(config, base_dir=path.parent, on_point=lambda *a: seen.append(a[3]))
    assert seen == [True, False]


def test_cli_writes_table_dataset_and_figures(tmp_path):
    path = write_config(tmp_path)
    result = CliRunner().invoke(app, ["barrier", str(path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert (out / "barriers.zarr").is_dir()
    assert (out / "barrier-profiles.png").stat().st_size > 0 and (out / "barrier-vs-pressure.png").stat().st_size > 0
    assert "E_b" in result.output


def test_bad_config_is_located(tmp_path):
    text = CONFIG + "lattice_from: gnn\n"
    text = text.replace("repeat: [3, 3, 3]", "repeat: [3, 3, 3], target_site: 500")
    with pytest.raises(CampaignError) as err:
        parse_yaml_model(text, BarrierConfig, file="b.yaml")
    message = str(err.value)
    assert "b.yaml:3: error: crystal" in message and "target_site 500 out of range" in message
    assert "b.yaml:9: error: lattice_from: " in message and "'gnn' is not one of the forcefields ['lj']" in message
    missing = CONFIG.replace("lj: {kind", "gnn: {kind: gnn, checkpoint: nowhere.pt}\n  lj: {kind")
    with pytest.raises(CampaignError, match=r"b.yaml:5: error: forcefields.gnn.checkpoint: no file"):
        load_barrier_config(write_config(tmp_path, missing))
    result = CliRunner().invoke(app, ["barrier", str(write_config(tmp_path, missing))])
    assert result.exit_code == 2 and "nothing was computed" in result.output


def test_shipped_string_campaign_is_valid():
    config, _ = load_barrier_config(REPO / "campaigns" / "ar-vacancy-string.yaml")
    assert config.lattice_from == "lj" and -2500.0 in config.pressure_bar
