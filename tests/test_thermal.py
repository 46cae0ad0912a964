"""Finite-temperature lattice dynamics end to end: an LJ crystal campaign (NPT equilibration,
NVE production, stored velocities and heat current) through a real Dask cluster and store,
then SED, lifetimes and κ from the store."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import hts_mlff
from hts_mlff.analysis.sed import relaxation_time_running_kappa
from hts_mlff.analysis.thermal_report import running_kappa_comparison
from hts_mlff.cli import app
from hts_mlff.spec.model import Campaign
from hts_mlff.store.layout import CampaignStore
from hts_mlff.thermal import green_kubo_study, modal_heat_study, sed_study

CAMPAIGN = textwrap.dedent(
    """\
    name: crystal
    store: crystal.zarr
    systems:
      ar:
        kind: fcc
        element: Ar
        lattice_A: 5.30
        repeat: [3, 3, 6]
    forcefields:
      lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5, shift: true}
    protocol:
      ensemble: nve
      equilibration_ensemble: npt
      timestep_fs: 10.78
      equilibration_steps: 600
      production_steps: 1600
      sample_every_steps: 4
      save_velocities_every_samples: 1
      save_positions_every_samples: 1
    analyses: [thermo, sed, heat_flux]
    sweep:
      temperature_K: [5, 30]
      pressure_bar: [137.1]
      seed: [0, 1]
    execution: {device: cpu, dtype: float64, pack_size: 4}
    cluster: {kind: local, n_workers: 1, dashboard_address: ":0"}
    """
)


@pytest.fixture(scope="module")
def crystal_store(tmp_path_factory, dask_client):
    folder = tmp_path_factory.mktemp("thermal")
    path = folder / "crystal.yaml"
    path.write_text(CAMPAIGN)
    loaded = hts_mlff.load_campaign(path)
    hts_mlff.run_campaign(loaded, client=dask_client)
    return loaded.store_path


@pytest.fixture(scope="module")
def study(crystal_store):
    ds = hts_mlff.open_campaign(crystal_store)
    spec = Campaign.model_validate(CampaignStore(crystal_store).attrs()["spec"])
    return ds, sed_study(ds, spec, system="ar", base_dir=crystal_store.parent)


def test_production_is_nve_in_the_cell_npt_equilibration_left(crystal_store):
    ds = hts_mlff.open_campaign(crystal_store)
    volume = ds["volume_A3"].values
    assert np.allclose(volume, volume[:, :1])  # the cell is fixed during production
    assert not np.allclose(volume[0, 0], 3 * 3 * 6 * 5.30**3)  # …but NPT moved it from the start
    energy = ds["total_energy_eV"].values
    drift = np.abs(energy - energy[:, :1]).max(axis=1) / 216
    assert (drift < 2e-5).all()  # eV/atom over 17 ps: NVE, no thermostat


def test_low_temperature_sed_peaks_follow_the_harmonic_dispersion(study):
    _, result = study
    cold = result.lifetimes_line.sel(temperature_K=5.0).squeeze()
    k_ok = slice(2, None)  # k ≥ 2/6 of Γ–X: several periods of every mode in the record
    deviation = np.abs(cold["peak_THz"].isel(k=k_ok) / cold["harmonic_THz"].isel(k=k_ok) - 1)
    assert float(deviation.mean()) < 0.02  # a few per cent, and a record of 17 ps resolves 3 % at X
    assert float(deviation.max()) < 0.06


def test_lifetimes_grow_as_temperature_falls(study):
    _, result = study
    tau = result.lifetimes_line["lifetime_ps"].isel(k=slice(1, None))
    cold = float(tau.sel(temperature_K=5.0).median())
    warm = float(tau.sel(temperature_K=30.0).median())
    assert cold > 2 * warm
    resolved = result.lifetimes_line["resolved"].isel(k=slice(1, None))
    assert float(resolved.sel(temperature_K=30.0).mean()) > float(resolved.sel(temperature_K=5.0).mean())


def test_kappa_from_sed_and_green_kubo_are_finite_and_of_one_order(study):
    ds, result = study
    sed = float(result.kappa["kappa_W_per_mK"].sel(temperature_K=30.0).squeeze())
    green_kubo = green_kubo_study(ds)
    gk = float(green_kubo.kappa["kappa_W_per_mK"].sel(temperature_K=30.0).squeeze())
    assert 0.05 < sed < 5 and 0.05 < gk < 5
    assert 0.2 < sed / gk < 5  # a 324-atom cell and 17-ps records: the same order, not a benchmark
    # the running-κ curve behind the table reaches the tabulated κ at the cut-off
    point = green_kubo.kappa.sel(temperature_K=30.0).squeeze()
    curve = green_kubo.running.isel(point=int(np.flatnonzero(green_kubo.running["temperature_K"].values == 30.0)[0]))
    at_cutoff = curve["kappa_W_per_mK"].sel(lag_fs=float(point["cutoff_fs"]))
    assert float(at_cutoff) == pytest.approx(gk, rel=1e-9)
    # κ split into short- and long-time parts: they add up to the fit, which is close to κ
    # (17-ps records: where the fitted slow time exceeds the fitted lags the split is withheld)
    parts = [float(point[f"kappa_{p}_W_per_mK"]) for p in ("short", "long")]
    assert float(point["tau_short_fs"]) < float(point["tau_long_fs"])
    if float(point["tau_long_fs"]) <= float(point["fit_to_fs"]):
        assert bool(point["split_resolved"])
        assert all(p > 0 for p in parts) and sum(parts) == pytest.approx(float(point["kappa_fit_W_per_mK"]))
        assert sum(parts) == pytest.approx(gk, rel=0.3)
    else:
        assert not bool(point["split_resolved"]) and np.isnan(parts).all()
    # the relaxation-time running κ of the SED modes rises to the SED κ (eq. 9) and is tabulated
    # beside Green–Kubo's
    modes = result.modes[("lj", 30.0, 137.1)]
    rta = relaxation_time_running_kappa(modes, np.array([0.0, 1e3, 1e4, 1e12]))
    assert float(rta[0]) == 0.0 and np.all(np.diff(rta.values) > 0)
    assert float(rta[-1]) == pytest.approx(sed, rel=1e-9)
    lags = green_kubo.running["lag_fs"].values
    table = running_kappa_comparison(
        green_kubo.running, {("ar", *key): relaxation_time_running_kappa(m, lags) for key, m in result.modes.items()}
    )
    assert set(table["temperature_K"]) == {5.0, 30.0} and (table["t_ps"] <= lags[-1] / 1000).all()
    assert np.allclose(table["GK − RTA"], table["kappa GK"] - table["kappa RTA (SED)"])


def test_thermal_command_writes_tables_and_figures(crystal_store, tmp_path):
    out = tmp_path / "thermal"
    result = CliRunner().invoke(app, ["thermal", str(crystal_store), "-o", str(out), "--no-kappa"])
    assert result.exit_code == 0, result.output
    assert "Γ–X" in result.output
    for name in ("kappa.csv", "running-kappa.png", "sed-gamma-x.png", "lifetimes.png", "lifetimes-gamma-x.csv"):
        assert (out / name).stat().st_size > 0
    bad = CliRunner().invoke(app, ["thermal", str(crystal_store), "--harmonic", "gnn"])
    assert bad.exit_code == 1
    assert "--harmonic 'gnn' is not a force field" in bad.output


def test_the_html_report_holds_the_sed_and_green_kubo_sections(crystal_store, tmp_path):
    out = tmp_path / "page"
    result = CliRunner().invoke(app, ["report", str(crystal_store), "-o", str(out), "--no-violation"])
    assert result.exit_code == 0, result.output
    text = (out / "index.html").read_text()
    assert "<h2>Spectral energy density, lifetimes and κ (SED)" in text and 'id="fig-sed-gamma-x-ar"' in text
    assert "<h2>Thermal conductivity (Green–Kubo)" in text and 'id="fig-running-kappa"' in text


def test_kappa_with_group_velocities_from_the_sed_peaks(study):
    from hts_mlff.thermal import peak_scaled_velocities

    fits = xr.Dataset({"peak_THz": (("k", "branch"), np.array([[1.1, np.nan], [0.0, 2.0]]))})
    harmonic = np.array([[1.0, 1.0], [0.0, 2.5]])
    v = np.ones((2, 2, 3))
    scaled = peak_scaled_velocities(fits, harmonic, v)
    np.testing.assert_allclose(scaled[..., 0], [[1.1, 1.0], [1.0, 0.8]])  # no peak or ω_h = 0: unchanged
    _, result = study
    point = result.kappa.sel(temperature_K=30.0).squeeze()
    harmonic_kappa, peak_kappa = float(point["kappa_W_per_mK"]), float(point["kappa_peak_velocity_W_per_mK"])
    ratio = float(point["median_peak_over_harmonic"])
    assert ratio > 1.0  # at fixed volume the quartic terms stiffen LJ argon as T rises
    assert 0.7 < peak_kappa / (harmonic_kappa * ratio**2) < 1.4  # κ ∝ v²: about the squared shift


def test_green_kubo_on_the_normal_modes(study, crystal_store, tmp_path):
    ds, result = study
    spec = Campaign.model_validate(CampaignStore(crystal_store).attrs()["spec"])
    table, curves = modal_heat_study(ds, spec, system="ar", base_dir=crystal_store.parent)
    cold, warm = (table.sel(temperature_K=t, phonons="harmonic").squeeze() for t in (5.0, 30.0))
    assert sorted(curves["temperature_K"].values) == [5.0, 5.0, 30.0, 30.0] and curves.sizes["lag_fs"] > 100
    # renormalised phonons: the velocity spectra's peaks rise above the harmonic bands with T
    shift = table["median_peak_over_harmonic"].sel(phonons="renormalised").squeeze()
    assert 0.98 < float(shift.sel(temperature_K=5.0)) < float(shift.sel(temperature_K=30.0)) < 1.15
    for point in (cold, warm):
        # the full current's κ at the cut-off is Green–Kubo's own (same HCACF, same cut-off rule)
        gk = green_kubo_study(ds).kappa.sel(temperature_K=float(point["temperature_K"])).squeeze()
        assert float(point["cutoff_fs"]) == pytest.approx(float(gk["cutoff_fs"]), abs=4 * 10.78 * 4)
        parts = {p: float(point[f"kappa_{p}_W_per_mK"]) for p in ("gk", "phonon", "diagonal", "cross", "beyond_phonon")}
        assert parts["phonon"] == pytest.approx(parts["diagonal"] + parts["cross"])
        assert parts["gk"] == pytest.approx(parts["phonon"] + parts["beyond_phonon"])
        assert parts["diagonal"] > 0 and parts["phonon"] > 0
    # the modes' own correlations are the relaxation-time sum: of one order with the SED's (eq. 9)
    sed = float(result.kappa["kappa_W_per_mK"].sel(temperature_K=30.0).squeeze())
    assert 0.3 < float(warm["kappa_energy_rta_W_per_mK"]) / sed < 3
    assert float(cold["kappa_diagonal_W_per_mK"]) > float(warm["kappa_diagonal_W_per_mK"])  # longer lifetimes
    # eq. 9 from Lorentzian fits of the modes' own spectra in the same runs: the SED study's κ
    assert float(warm["kappa_sed_W_per_mK"]) == pytest.approx(sed, rel=0.25)
    out = tmp_path / "modal"
    run = CliRunner().invoke(app, ["thermal", str(crystal_store), "--modes", "--no-kappa", "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert "phonon gas" in run.output and "between modes" in run.output
    for name in ("modal-kappa.csv", "modal-running-kappa.csv", "modal-running-kappa.png"):
        assert (out / name).stat().st_size > 0
