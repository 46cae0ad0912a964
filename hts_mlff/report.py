"""One self-contained HTML page per campaign store: ``hts-mlff report STORE -o DIR`` → ``DIR/index.html``.

The page holds what the store supports, each section only when its data are there:

* **Campaign** — status counts (done / failed / missing / damaged), provenance (created,
  host, package versions, spec hash) and, at the end, the campaign text itself;
* **Stability and structure per force field** — the summary table of
  :func:`hts_mlff.analysis.summary.summarize` (fraction stable, survival, WF, JSD, RDF MAE,
  EV/FV, σ(300 K) with its interval), the heatmap, g(r) of every force field overlaid, D(T);
* **Ionic conductor** (``mobile`` given, several species, positions) —
  :func:`hts_mlff.ionic_conductor.conductor_study`: per-species D, Haven ratio, σ(T), σ(300 K),
  partial-RDF stability over time windows, with their figures;
* **Vacancy jumps** (stores with ``vacancy_site``) — rates per state point with intervals,
  Arrhenius E_b and ν₀ with intervals, the Arrhenius and survival figures;
* **SED** (stores with velocities and lattice sites, when the campaign is given) — κ from
  lifetimes, the SED map on Γ–X and the lifetimes;
* **Thermal conductivity** (stores with a heat current) — Green–Kubo κ with its interval and
  the running κ(t).

Figures are inline SVG written by matplotlib (text as paths): the page needs no network, no
JavaScript library and no font; SVG stays sharp at any zoom (click a figure to widen it), and
the numbers behind every figure are in the tables next to it, which is what hovering would
show. A few lines of script only widen figures on click and record, when the page has
loaded, how many figures have a rendered size (``data-rendered`` on ``body``; a test reads it
in headless Chromium). Every figure is also written to ``DIR/figures/*.svg``.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from hts_mlff.ionic_conductor import species_of
from hts_mlff.store.integrity import quick_check
from hts_mlff.store.layout import CampaignStore
from hts_mlff.store.reader import open_campaign, status_table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure.plot { display: inline-block; margin: 0.5em; width: 47%; cursor: zoom-in; vertical-align: top; }
figure.plot.zoom { width: 98%; cursor: zoom-out; }
figure.plot svg { width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
.scroll { overflow-x: auto; max-width: 100%; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.note { color: #8a5a00; }
"""

SCRIPT = """
document.querySelectorAll("figure.plot").forEach(f => f.addEventListener("click", () => f.classList.toggle("zoom")));
window.addEventListener("load", () => {
  const figures = document.querySelectorAll("figure.plot");
  let rendered = 0;
  figures.forEach((f, i) => {
    const svg = f.querySelector("svg");
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    if (box.width > 10 && box.height > 10) { rendered += 1; } else { console.error("figure " + i + " did not render"); }
  });
  document.body.dataset.figures = figures.length;
  document.body.dataset.rendered = rendered;
});
"""


@dataclass
class Section:
    """A titled part of the page: HTML fragments in order."""

    title: str
    parts: list[str] = field(default_factory=list)


@dataclass
class Report:
    """The page being built, and where its figures go."""

    folder: Path
    sections: list[Section] = field(default_factory=list)
    n_figures: int = 0

    def figure(self, section: Section, plot: Callable[[str], Any], *, name: str, caption: str) -> None:
        """Run ``plot(path)`` (one of the package's ``plot_*`` functions) into an SVG file and
        inline it; a plot that fails becomes a note in the page, not a broken page."""
        path = self.folder / "figures" / f"{name}.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            plot(str(path))
            svg = path.read_text()
        except Exception as exc:  # one figure must not cost the rest of the report
            section.parts.append(note(f"figure {name!r} could not be drawn: {type(exc).__name__}: {exc}"))
            return
        svg = re.sub(r"^<\?xml[^>]*>\s*(<!DOCTYPE[^>]*>)?\s*", "", svg, flags=re.S)
        section.parts.append(
            f'<figure class="plot" id="fig-{name}">{svg}<figcaption>{html.escape(caption)}</figcaption></figure>'
        )
        self.n_figures += 1

    def write(self, *, title: str) -> Path:
        body = []
        for section in self.sections:
            body.append(f"<h2>{html.escape(section.title)}</h2>")
            body.extend(section.parts)
        page = (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}"
            f"<script>{SCRIPT}</script></body></html>"
        )
        path = self.folder / "index.html"
        path.write_text(page)
        return path


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def table(frame: pd.DataFrame, *, caption: str = "") -> str:
    """A pandas table as HTML (numbers to 4 significant digits)."""
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    out = f'<div class="scroll">{shown.to_html(border=0, escape=True)}</div>'
    return (f"<p>{html.escape(caption)}</p>" if caption else "") + out


def build_report(
    store: str | Path,
    *,
    output: str | Path,
    reference: str | None = None,
    reference_forcefield: Any = None,
    mobile: int | None = None,
    charge: float = 1.0,
    rdf_bins: int = 200,
    n_bootstrap: int = 300,
    summary: Any = None,
    spec: Any = None,
    base_dir: Path | None = None,
) -> Path:
    """Write ``output/index.html`` for a campaign store (see the module docstring).

    Args:
        reference: the reference force field (default: the campaign's first one).
        reference_forcefield: the reference as an object for EV/FV (None: left out).
        mobile, charge: mobile species (atomic number) and its charge for D and σ.
        n_bootstrap: resamples for the vacancy rate intervals.
        summary: a :class:`~hts_mlff.analysis.summary.CampaignSummary` already computed
            (else computed here).
        spec, base_dir: the campaign (and its folder) for what needs its force fields: the
            harmonic modes behind the SED section (stores with velocities and lattice sites).

    Returns:
        The path of the page.
    """
    started = time.perf_counter()
    store = Path(store)
    report = Report(Path(output))
    report.folder.mkdir(parents=True, exist_ok=True)
    ds = open_campaign(store)
    attrs = CampaignStore(store).attrs()
    forcefields = list(dict.fromkeys(ds.indexes["traj"].get_level_values("forcefield")))
    reference = reference or forcefields[0]
    overview = Section("Campaign")
    report.sections.append(overview)
    _overview(overview, store=store, attrs=attrs)
    if "positions" in ds or "kinetic_temperature_K" in ds:
        _stability(report, ds, reference=reference, reference_forcefield=reference_forcefield,
                   mobile=mobile, charge=charge, rdf_bins=rdf_bins, summary=summary)  # fmt: skip
    if mobile is not None and "positions" in ds and len(species_of(ds)) > 1:
        _conductor(report, ds, reference=reference, mobile=mobile, charge=charge)
    if "vacancy_site" in ds:
        _vacancy(report, ds, n_bootstrap=n_bootstrap)
    if "velocities" in ds and "lattice_site_A" in ds and spec is not None:
        _sed(report, ds, spec=spec, base_dir=base_dir or Path.cwd())
    if "heat_current_eV_A_per_fs" in ds:
        _green_kubo(report, ds)
    text = Section("Campaign file and provenance")
    text.parts.append(f"<pre>{html.escape(str(attrs.get('campaign_text', '')))}</pre>")
    versions = attrs.get("versions", {})
    provenance = {
        "spec hash": attrs.get("spec_hash", ""),
        "created": attrs.get("created", ""),
        "host": attrs.get("host", ""),
        **{f"version of {k}": v for k, v in versions.items()},
    }
    text.parts.append(table(pd.DataFrame({"value": provenance}).rename_axis("")))
    text.parts.append(f"<p>Report written in {time.perf_counter() - started:.1f} s.</p>")
    report.sections.append(text)
    return report.write(title=f"{attrs.get('campaign', store.name)} — hts_mlff report")


def _overview(section: Section, *, store: Path, attrs: dict[str, Any]) -> None:
    campaign_store = CampaignStore(store)
    integrity = quick_check(campaign_store)
    tables = status_table(store, integrity=integrity)
    totals = next(iter(tables.values())).sum()
    section.parts.append(
        f"<p>Store <code>{html.escape(str(store))}</code>: "
        + ", ".join(f"{int(totals[k])} {k}" for k in totals.index)
        + " trajectories.</p>"
    )
    if integrity.damaged_tasks:
        section.parts.append(note(f"{len(integrity.damaged_tasks)} damaged trajectories: run the campaign again"))
    for axis, frame in tables.items():
        if len(frame) > 1:
            section.parts.append(table(frame, caption=f"by {axis}"))


def _stability(report: Report, ds: xr.Dataset, *, reference: str, reference_forcefield: Any,
               mobile: int | None, charge: float, rdf_bins: int, summary: Any) -> None:  # fmt: skip
    from hts_mlff.analysis.arrhenius import arrhenius_fit, plot_arrhenius
    from hts_mlff.analysis.summary import plot_summary_heatmap, summarize

    section = Section(f"Stability and structure per force field (reference {reference})")
    report.sections.append(section)
    summary = summary or summarize(
        ds, reference=reference, reference_forcefield=reference_forcefield, mobile=mobile, charge=charge,
        n_bins=rdf_bins,
    )  # fmt: skip
    section.parts.append(table(summary.per_forcefield))
    report.figure(
        section,
        lambda path: plot_summary_heatmap(summary.per_forcefield, path),
        name="summary-heatmap",
        caption="Each metric scaled by its largest value over the force fields.",
    )
    if summary.rdf_by_forcefield is not None:
        report.figure(
            section,
            lambda path: plot_rdf_overlay(summary.rdf_by_forcefield, path, reference=reference),
            name="rdf-overlay",
            caption="g(r) averaged over each force field's trajectories (all state points).",
        )
    if summary.diffusion is not None:
        section.parts.append(table(summary.diffusion, caption="Diffusion per temperature (mean ± s.e.m.)"))
        if "sigma_S_per_cm" in summary.diffusion:
            for ff in summary.diffusion.index.get_level_values("forcefield").unique():
                series = summary.diffusion.xs(ff, level="forcefield")["sigma_S_per_cm"]
                values = xr.DataArray(series.to_numpy(), dims="temperature_K", coords={"temperature_K": series.index})
                fit = arrhenius_fit(values, times_temperature=True)
                report.figure(
                    section,
                    lambda path, values=values, fit=fit: plot_arrhenius(values, fit, path),
                    name=f"sigma-arrhenius-{ff}",
                    caption=f"σ(T) of {ff} with its Arrhenius fit and the 300 K extrapolation.",
                )


def _conductor(report: Report, ds: xr.Dataset, *, reference: str, mobile: int, charge: float) -> None:
    from ase.data import chemical_symbols

    from hts_mlff.ionic_conductor import (
        conductor_study,
        plot_partial_rdfs,
        plot_rdf_mae_windows,
        plot_sigma_arrhenius,
    )

    symbol = chemical_symbols[mobile]
    section = Section(f"Ionic conductor: {symbol} (reference {reference})")
    report.sections.append(section)
    study = conductor_study(ds, reference=reference, mobile=symbol, charge_number=charge)
    section.parts.append(
        table(study.state_points, caption="Per state point: tracer D of every species (mean and 95 % interval over "
              "seeds), collective D_σ and Haven ratio (jackknife error), σ by Nernst–Einstein, RDF stability")
    )  # fmt: skip
    section.parts.append(table(study.arrhenius, caption="Arrhenius fit of σT over the diffusive trajectories"))
    for name, plot, caption in (
        ("conductor-arrhenius", plot_sigma_arrhenius, "σ(T) per trajectory, the fit and σ(300 K) with its interval."),
        ("conductor-partial-rdf", plot_partial_rdfs, "Partial g_ab(r) per state point (reference solid)."),
        ("conductor-rdf-mae", plot_rdf_mae_windows, "RDF MAE against the reference per time window."),
    ):
        report.figure(section, lambda path, plot=plot: plot(study, path), name=name, caption=caption)


def _vacancy(report: Report, ds: xr.Dataset, *, n_bootstrap: int) -> None:
    from hts_mlff.analysis.vacancy import jump_rates, plot_rate_arrhenius, plot_survival, rate_arrhenius, window_jumps

    section = Section("Vacancy jumps")
    report.sections.append(section)
    windows = window_jumps(ds).compute()
    rates = jump_rates(windows, n_bootstrap=n_bootstrap)
    fits = rate_arrhenius(rates, rate="rate_mle_per_ps", events="n_windows_with_jump")
    columns = [c for c in ("rate_mle_per_ps", "rate_low_per_ps", "rate_high_per_ps", "n_windows") if c in rates]
    section.parts.append(table(rates[columns].to_dataframe(), caption="Jump rates (1/ps) with 95 % intervals"))
    section.parts.append(table(fits.to_dataframe(), caption="Arrhenius fits: E_b (eV), ν₀ (THz) with intervals"))
    report.figure(
        section,
        lambda path: plot_rate_arrhenius(rates, fits, path, rate="rate_mle_per_ps"),
        name="vacancy-arrhenius",
        caption="ln r vs 1/T per force field and pressure.",
    )
    for pressure in rates["pressure_bar"].values:
        report.figure(
            section,
            lambda path, p=float(pressure): plot_survival(windows, rates, path, pressure_bar=p),
            name=f"vacancy-survival-{float(pressure):g}bar",
            caption=f"Fraction of windows without a jump vs time, {float(pressure):g} bar.",
        )


def _sed(report: Report, ds: xr.Dataset, *, spec: Any, base_dir: Path) -> None:
    from hts_mlff.analysis.thermal_report import plot_lifetimes, plot_sed_map
    from hts_mlff.thermal import sed_study

    section = Section("Spectral energy density, lifetimes and κ (SED)")
    report.sections.append(section)
    for system in sorted(set(ds["system"].values.tolist())):
        one = ds.sel(system=system) if len(set(ds["system"].values.tolist())) > 1 else ds
        try:
            study = sed_study(one, spec, system=system, base_dir=base_dir)
        except Exception as exc:  # a section that cannot be computed is a note, the page still comes
            section.parts.append(note(f"{system}: SED not computed ({type(exc).__name__}: {exc})"))
            continue
        section.parts.extend(note(line) for line in study.notes)
        section.parts.append(table(study.kappa.to_dataframe(), caption=f"{system}: κ from SED lifetimes (W/m·K)"))
        report.figure(
            section,
            lambda path, study=study: plot_sed_map(study.sed_line, study.lifetimes_line, path),
            name=f"sed-gamma-x-{system}",
            caption=f"{system}: SED along Γ–X with the harmonic bands.",
        )
        report.figure(
            section,
            lambda path, study=study: plot_lifetimes(study.lifetimes_line, path),
            name=f"lifetimes-{system}",
            caption=f"{system}: phonon lifetimes vs frequency.",
        )


def _green_kubo(report: Report, ds: xr.Dataset) -> None:
    from hts_mlff.analysis.thermal_report import plot_running_kappa
    from hts_mlff.thermal import green_kubo_study

    section = Section("Thermal conductivity (Green–Kubo)")
    report.sections.append(section)
    study = green_kubo_study(ds)
    section.parts.append(table(study.kappa.to_dataframe(), caption="κ (W/m·K) with the interval over seeds"))
    report.figure(
        section,
        lambda path: plot_running_kappa(study.running, study.kappa, path),
        name="running-kappa",
        caption="Running κ(t) and the cut-off.",
    )


def plot_rdf_overlay(g: xr.DataArray, path: str, *, reference: str | None = None) -> str:
    """g(r) of every force field on one axis (the reference in black)."""
    from hts_mlff.analysis.phonon_report import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for ff in g["forcefield"].values:
        style = {"color": "black", "lw": 2.0} if ff == reference else {"lw": 1.2}
        ax.plot(g["r_A"], g.sel(forcefield=ff), label=str(ff), **style)
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.legend()
    return save_figure(fig, path)
