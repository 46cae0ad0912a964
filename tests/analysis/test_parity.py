"""Force parity against stored reference forces, on a case with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import hts_mlff
from hts_mlff.analysis.parity import force_parity, plot_force_parity
from hts_mlff.forcefields import LennardJones
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A


def test_a_force_field_scaled_by_a_known_factor_gives_the_expected_metrics(frames_store, tmp_path):
    ds = hts_mlff.open_campaign(frames_store)
    alpha = 0.05  # LJ forces are linear in ε: predicted = (1 + α) × reference, exactly
    scaled = LennardJones(EPSILON_EV * (1 + alpha), sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    edges = np.linspace(-0.05, 0.05, 1001)
    parity = force_parity(ds, scaled, max_frames_per_system=None, bins_eV_per_A=edges)
    assert list(parity["system"].values) == ["ar107", "ar108"]
    for system, n_atoms in (("ar107", 107), ("ar108", 108)):
        reference = []
        for k in np.flatnonzero(ds.indexes["traj"].get_level_values("system") == system):
            reference.append(ds["forces"].isel(traj=k).values[:, :n_atoms])
        f = np.concatenate(reference).reshape(-1)
        one = parity.sel(system=system)
        assert int(one["n_atoms"]) == n_atoms and int(one["n_frames"]) == 22
        assert float(one["mae_eV_per_A"]) == pytest.approx(alpha * np.mean(np.abs(f)), rel=1e-9)
        assert float(one["rmse_eV_per_A"]) == pytest.approx(alpha * np.sqrt(np.mean(f**2)), rel=1e-9)
        expected_r2 = 1 - alpha**2 * np.sum(f**2) / np.sum((f - f.mean()) ** 2)
        assert float(one["r2"]) == pytest.approx(expected_r2, rel=1e-9)
        assert int(one["error_histogram"].sum()) == f.size  # every error inside ±50 meV/Å
    figure = plot_force_parity(parity, str(tmp_path / "parity.png"))
    assert (tmp_path / "parity.png").stat().st_size > 10_000 and figure.endswith(".png")


def test_the_reference_itself_has_zero_error(frames_store):
    ds = hts_mlff.open_campaign(frames_store)
    same = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    parity = force_parity(ds, same, max_frames_per_system=5)
    assert float(parity["mae_eV_per_A"].max()) < 1e-12
    assert int(parity["n_frames"].max()) == 5


def test_parity_cli_prints_a_table_and_writes_the_figure(frames_store, tmp_path):
    from hts_mlff.cli import app
    from tests.conftest import REPO

    model = REPO / "models" / "model-b-small.pt"
    figure = tmp_path / "p.png"
    result = CliRunner().invoke(app, ["parity", str(frames_store), str(model), "-f", str(figure), "--max-frames", "4"])
    assert result.exit_code == 0, result.output
    assert "ar108" in result.output and figure.exists()
    result = CliRunner().invoke(app, ["parity", str(frames_store), str(tmp_path / "none.pt")])
    assert result.exit_code == 1 and "no such checkpoint" in result.output
