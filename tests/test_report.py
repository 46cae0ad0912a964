"""The HTML report: one self-contained page per store, opened in a real (headless) browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

import hts_mlff
from hts_mlff.cli import app

CAMPAIGN = """\
name: rep
store: rep.zarr
systems:
  ar107: {kind: fcc, element: Ar, lattice_A: 5.3, repeat: [3, 3, 3], vacancies: [13]}
forcefields:
  lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}
  soft: {kind: lennard_jones, epsilon_eV: 0.0095, sigma_A: 3.405, cutoff_A: 8.5}
protocol:
  timestep_fs: 10.0
  equilibration_steps: 20
  production_steps: 80
  sample_every_steps: 10
  save_positions_every_samples: 2
sweep: {temperature_K: [30, 40], seed: [0, 1]}
analyses: [thermo, vacancy]
cluster: {kind: local, dashboard_address: ":0"}
"""


def _browser() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def page(tmp_path_factory, dask_client):
    folder = tmp_path_factory.mktemp("report")
    (folder / "rep.yaml").write_text(CAMPAIGN)
    hts_mlff.run_campaign(hts_mlff.load_campaign(folder / "rep.yaml"), client=dask_client)
    result = CliRunner().invoke(app, ["report", str(folder / "rep.zarr"), "-o", str(folder / "out")])
    assert result.exit_code == 0, result.output
    return folder / "out" / "index.html"


def test_the_page_is_self_contained_and_holds_every_section(page):
    text = page.read_text()
    for title in ("Campaign", "Stability and structure per force field", "Vacancy jumps", "Campaign file"):
        assert f"<h2>{title}" in text
    assert text.count('<figure class="plot"') >= 4  # heatmap, g(r) overlay, Arrhenius, survival
    assert "wright_factor" in text and "rate_mle_per_ps" in text and "name: rep" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "the page must not load anything"
    assert (page.parent / "figures" / "rdf-overlay.svg").is_file()


def test_the_page_renders_in_headless_chromium_without_console_errors(page, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium here (.ci/run installs Debian's chromium where it can)")
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = page.as_uri()
    dom = subprocess.run(
        [*flags, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    figures = int(re.search(r'data-figures="(\d+)"', body).group(1))
    rendered = int(re.search(r'data-rendered="(\d+)"', body).group(1))
    assert figures >= 4 and rendered == figures, body
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "rror" in line], console
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, "--window-size=1280,2400", f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
