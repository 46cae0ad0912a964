"""Analyses of a finished store: ``vacancy``, ``thermal``, ``xpcs``, ``melting`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hts_mlff.cli.common import (
    AllowCode,
    StorePath,
    TrustedCampaign,
    _print_frame,
    _store_with_spec,
    app,
    console,
    err_console,
)


@app.command()
def vacancy(
    store: StorePath,
    campaign: TrustedCampaign = None,
    allow_code: AllowCode = False,
    reference: Annotated[
        str | None, typer.Option("--reference", "-r", help="Reference force field (drawn in black).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for CSV tables and figures.")] = None,
    system: Annotated[
        str | None,
        typer.Option(help="System to analyse (SED: required when the store holds several; Green–Kubo: default all)."),
    ] = None,
    min_dwell: Annotated[int, typer.Option(help="Samples a vacancy must stay on a new site to count a jump.")] = 1,
    estimator: Annotated[str, typer.Option(help="mle (first jumps, censoring-aware) or all (every jump).")] = "mle",
    debye: Annotated[bool, typer.Option(help="Compare ν₀ with ν_D from each force field's force constants.")] = True,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples (bootstrap intervals beside the exact Poisson ones).")
    ] = 1000,
) -> None:
    """Vacancy jump rates per (force field, T, P) over windows, and their Arrhenius fits (E_b, ν₀).

    (A typer command: its parameters are the command-line options.)
    """
    from hts_mlff.analysis.vacancy import jump_rates, plot_rate_arrhenius, plot_survival, rate_arrhenius, window_jumps
    from hts_mlff.store.layout import StoreError

    if estimator not in ("mle", "all"):
        err_console.print(f"[red]error[/red]: --estimator {estimator!r}: use mle or all")
        raise typer.Exit(2)
    rate, events = (
        ("rate_mle_per_ps", "n_windows_with_jump") if estimator == "mle" else ("rate_all_jumps_per_ps", "n_jumps")
    )
    try:
        ds, spec, systems, base = _store_with_spec(store, system=system, campaign=campaign, allow_code=allow_code)
        if system is None and len(systems) > 1:
            raise ValueError(f"the store holds several systems {systems}: pick one with --system")
        system = system or systems[0]
        if reference is not None and reference not in spec.forcefields:
            raise ValueError(
                f"--reference {reference!r} is not a force field of this campaign ({sorted(spec.forcefields)})"
            )
        one = ds.sel(system=system) if "system" in ds.indexes["traj"].names and len(systems) > 1 else ds
        windows = window_jumps(one, min_dwell_samples=min_dwell).compute()
        rates = jump_rates(windows, n_bootstrap=bootstrap)
        debye_THz = None
        if debye:
            from hts_mlff.statics.barrier_sweep import campaign_debye_frequencies

            pressures = [float(p) for p in rates["pressure_bar"].values]
            debye_THz = campaign_debye_frequencies(spec, system, base_dir=base, pressures_bar=pressures)
            debye_THz = debye_THz.sel(forcefield=list(rates["forcefield"].values))
        fits = rate_arrhenius(rates, rate=rate, events=events, debye_frequency_THz=debye_THz)
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    columns = [rate, "rate_low_per_ps", "rate_high_per_ps", "rate_survival_fit_per_ps", "n_windows", events]
    columns += ["n_windows_disordered"] if "n_windows_disordered" in rates else []
    if estimator == "all":
        columns[1:3] = ["rate_all_low_per_ps", "rate_all_high_per_ps"]
    _print_frame(rates[list(dict.fromkeys(columns))].to_dataframe(), title=f"{store.name}: vacancy jump rates (1/ps)")
    fit_frame = fits.to_dataframe()
    by_quantity = fit_frame.T.rename_axis("quantity")
    by_quantity.columns = [
        " @ ".join(f"{v:g} bar" if isinstance(v, float) else str(v) for v in c) for c in by_quantity.columns
    ]
    _print_frame(
        by_quantity,
        title=f"Arrhenius r = ν₀ exp(−E_b/k_B T) ({estimator}; activation energy E_b in eV, prefactor ν₀ in THz)",
    )
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        written = [output / "vacancy-rates.csv", output / "vacancy-arrhenius.csv"]
        rates.to_dataframe().to_csv(written[0])
        fit_frame.to_csv(written[1])
        written.append(
            plot_rate_arrhenius(rates, fits, str(output / "vacancy-arrhenius.png"), rate=rate, reference=reference)
        )
        for pressure in rates["pressure_bar"].values:
            written.append(
                plot_survival(
                    windows, rates, str(output / f"vacancy-survival-{pressure:g}bar.png"), pressure_bar=float(pressure)
                )
            )
        for path in written:
            console.print(f"wrote {path}")


@app.command()
def thermal(
    store: StorePath,
    campaign: TrustedCampaign = None,
    allow_code: AllowCode = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for CSV tables and figures.")] = None,
    system: Annotated[
        str | None,
        typer.Option(help="System to analyse (SED: required when the store holds several; Green–Kubo: default all)."),
    ] = None,
    harmonic: Annotated[
        str | None,
        typer.Option(help="Force field for polarisations and group velocities (default: each point's own)."),
    ] = None,
    kappa: Annotated[bool, typer.Option(help="κ from SED lifetimes on the cell's full k grid.")] = True,
    heat_capacity: Annotated[str, typer.Option(help="classical (k_B per mode) or quantum.")] = "classical",
    segments: Annotated[int, typer.Option(help="Average the spectra of this many segments per trajectory.")] = 1,
    cutoff_fs: Annotated[
        float | None, typer.Option(help="Green–Kubo integration cut-off (default: first zero of the HCACF).")
    ] = None,
    green_kubo_store: Annotated[
        Path | None,
        typer.Option(
            help="Store of a heat-flux campaign on the same cells: set its running κ(t) beside the one the SED "
            "modes' lifetimes predict (relaxation-time picture)."
        ),
    ] = None,
    modes: Annotated[
        bool,
        typer.Option(
            help="Green–Kubo κ resolved on the harmonic normal modes: the phonon-gas current, its modes alone and "
            "their correlations (needs heat_flux, sed, and positions and velocities saved at the same samples)."
        ),
    ] = False,
) -> None:
    """SED maps, phonon lifetimes and κ (SED and Green–Kubo) per (force field, T, P)."""
    from hts_mlff.analysis.sed import relaxation_time_running_kappa
    from hts_mlff.analysis.thermal_report import (
        kappa_table,
        modal_table,
        plot_kappa,
        plot_lifetimes,
        plot_modal_running,
        plot_running_kappa,
        plot_running_kappa_rta,
        plot_sed_map,
        running_kappa_comparison,
    )
    from hts_mlff.store.layout import StoreError
    from hts_mlff.thermal import green_kubo_study, modal_heat_study, sed_study

    if heat_capacity not in ("classical", "quantum"):
        err_console.print(f"[red]error[/red]: --heat-capacity {heat_capacity!r}: use classical or quantum")
        raise typer.Exit(2)
    study = green_kubo = modal = None
    try:
        ds, spec, systems, base = _store_with_spec(store, system=system, campaign=campaign, allow_code=allow_code)
        if harmonic is not None and harmonic not in spec.forcefields:
            known = sorted(spec.forcefields)
            raise ValueError(f"--harmonic {harmonic!r} is not a force field of this campaign ({known})")
        if "velocities" not in ds and "heat_current_eV_A_per_fs" not in ds:
            raise ValueError(
                "the store has neither velocities (analyses: [sed]) nor a heat current (analyses: [heat_flux])"
            )
        if "velocities" in ds:
            if system is None and len(systems) > 1:
                raise ValueError(f"the store holds several systems {systems}: pick one with --system")
            study = sed_study(
                ds,
                spec,
                system=system or systems[0],
                base_dir=base,
                harmonic=harmonic,
                kappa=kappa,
                heat_capacity=heat_capacity,
                n_segments=segments,
            )
        if "heat_current_eV_A_per_fs" in ds:
            green_kubo = green_kubo_study(ds, cutoff_fs=cutoff_fs, system=system)
        elif green_kubo_store is not None:
            other, _, _, _ = _store_with_spec(green_kubo_store, system=None, allow_code=False)
            green_kubo = green_kubo_study(other, cutoff_fs=cutoff_fs, system=system)
        if green_kubo_store is not None and (study is None or not study.modes):
            raise ValueError("--green-kubo-store compares with SED κ: the store needs velocities (analyses: [sed])")
        if modes:
            if system is None and len(systems) > 1:
                raise ValueError(f"the store holds several systems {systems}: pick one with --system")
            modal = modal_heat_study(
                ds, spec, system=system or systems[0], base_dir=base, harmonic=harmonic, cutoff_fs=cutoff_fs
            )
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    for note in study.notes if study is not None else []:
        err_console.print(f"[yellow]{note}[/yellow]")
    table = kappa_table(study.kappa if study is not None else None, green_kubo.kappa if green_kubo else None)
    if not table.empty:
        _print_frame(table, title=f"{store.name}: thermal conductivity ({heat_capacity} C for SED)")
    rta = {}
    if study is not None and green_kubo is not None and study.modes:
        lags = green_kubo.running["lag_fs"].values
        sed_system = study.kappa["system"].values[0]
        rta = {(sed_system, *key): relaxation_time_running_kappa(m, lags) for key, m in study.modes.items()}
        comparison = running_kappa_comparison(green_kubo.running, rta)
        if comparison.empty:
            err_console.print(
                "[yellow]no Green–Kubo state point matches the SED ones (system, force field, T, P)[/yellow]"
            )
        else:
            _print_frame(
                comparison.set_index(["system", "forcefield", "temperature_K", "pressure_bar", "t_ps"]),
                title="running κ(t): Green–Kubo against the relaxation-time picture of the SED modes",
            )
    if modal is not None:
        _print_frame(
            modal_table(modal[0]),
            title="Green–Kubo κ on the harmonic modes: phonon gas = modes alone + between modes (95 % intervals)",
        )
    if study is not None:
        line = study.lifetimes_line
        summary = line[["peak_THz", "harmonic_THz", "lifetime_ps"]].median(["k", "branch"]).to_dataframe()
        summary["resolved fraction"] = line["resolved"].mean(["k", "branch"]).to_series()
        _print_frame(summary, title="Γ–X: median SED peak, harmonic frequency and lifetime")
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        written = []
        if not table.empty:
            table.to_csv(output / "kappa.csv")
            written += [output / "kappa.csv", plot_kappa(table, output / "kappa.png")]
        if green_kubo is not None:
            written.append(plot_running_kappa(green_kubo.running, green_kubo.kappa, output / "running-kappa.png"))
        if rta:
            comparison.to_csv(output / "running-kappa-rta.csv")
            written += [
                output / "running-kappa-rta.csv",
                plot_running_kappa_rta(green_kubo.running, rta, output / "running-kappa-rta.png"),
            ]
        if modal is not None:
            modal_table(modal[0]).to_csv(output / "modal-kappa.csv")
            modal[1].reset_index("point").to_dataframe().to_csv(output / "modal-running-kappa.csv")
            written += [
                output / "modal-kappa.csv",
                output / "modal-running-kappa.csv",
                plot_modal_running(modal[1], modal[0], output / "modal-running-kappa.png"),
            ]
        if study is not None:
            study.lifetimes_line.reset_index("point").to_dataframe().to_csv(output / "lifetimes-gamma-x.csv")
            written += [
                output / "lifetimes-gamma-x.csv",
                plot_sed_map(study.sed_line, study.lifetimes_line, output / "sed-gamma-x.png"),
                plot_lifetimes(study.lifetimes_line, output / "lifetimes.png"),
            ]
        for path in written:
            console.print(f"wrote {path}")


@app.command()
def xpcs(
    store: StorePath,
    q: Annotated[float, typer.Option("--q", help="Centre of the main q shell, Å⁻¹ (the seeds': 1.844).")] = 1.844,
    width: Annotated[float, typer.Option(help="Width of every q shell, Å⁻¹ (the seeds': 0.058).")] = 0.058,
    q_grid: Annotated[
        str, typer.Option(help="Shell centres of the dispersion Γ(q), Å⁻¹, comma-separated.")
    ] = "0.6,0.8,1.0,1.2,1.4,1.6,1.844,2.0,2.2,2.5,3.0",
    max_lag_ps: Annotated[float | None, typer.Option(help="Longest lag (default: half the run).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for CSV tables and figures.")] = None,
) -> None:
    """Computational XPCS per (force field, system, T, P): g₂(q, τ), Γ and β, optical contrast vs
    pulse width with the correlation time, and the dispersion Γ(q), Γ_s(q) against D q²."""
    from hts_mlff.liquid_dynamics import plot_xpcs, xpcs_study
    from hts_mlff.store.layout import StoreError
    from hts_mlff.store.reader import open_campaign

    try:
        grid = [float(v) for v in q_grid.split(",") if v.strip()]
        ds = open_campaign(store)
        if "positions" not in ds:
            raise ValueError("the store saved no positions (protocol.save_positions_every_samples)")
        study = xpcs_study(
            ds,
            q_per_A=q,
            width_per_A=width,
            q_grid_per_A=grid,
            max_lag_fs=None if max_lag_ps is None else max_lag_ps * 1e3,
        )
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    fits = study.fits.to_dataframe()
    fits = fits[
        ["gamma_per_ps", "gamma_err_per_ps", "beta_0", "correlation_time_fs", "correlation_time_err_fs", "n_seeds"]
    ]
    _print_frame(fits, title=f"{store.name}: g₂ at q = {q:g} ± {width / 2:g} Å⁻¹ (errors: jackknife over seeds)")
    dispersion = study.dispersion.to_dataframe()
    _print_frame(dispersion, title="dispersion: Γ(q) of g₂, Γ_s(q) of F_s, and D⟨q²⟩ from the MSD (1/ps)")
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        fits.to_csv(output / "xpcs-fits.csv")
        dispersion.to_csv(output / "xpcs-dispersion.csv")
        study.g2.reset_index("group").to_dataframe().to_csv(output / "xpcs-g2.csv")
        study.contrast.reset_index("group").to_dataframe().to_csv(output / "xpcs-contrast.csv")
        for path in [output / f"xpcs-{n}.csv" for n in ("fits", "dispersion", "g2", "contrast")] + plot_xpcs(
            study, str(output)
        ):
            console.print(f"wrote {path}")


@app.command()
def conductor(
    store: StorePath,
    mobile: Annotated[str, typer.Option(help="Mobile ion (chemical symbol), e.g. Li.")],
    reference: Annotated[
        str | None,
        typer.Option("--reference", "-r", help="The campaign's reference force field (default: its first one)."),
    ] = None,
    charge: Annotated[float, typer.Option(help="Formal charge number of the mobile ion (Nernst–Einstein).")] = 1.0,
    windows: Annotated[int, typer.Option(help="Time windows of the RDF stability criterion.")] = 4,
    threshold: Annotated[float, typer.Option(help="RDF MAE above the reference's noise floor that fails.")] = 0.02,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for CSV tables and figures.")] = None,
) -> None:
    """Ionic conductor per (force field, system, T, P): tracer D of every species, collective D_σ and
    the Haven ratio, σ(T) by Nernst–Einstein, σ(300 K) from an Arrhenius fit, and structural
    stability over time windows by partial-RDF MAE against the reference."""
    from hts_mlff.ionic_conductor import conductor_study, plot_conductor
    from hts_mlff.store.layout import StoreError
    from hts_mlff.store.reader import open_campaign

    try:
        ds = open_campaign(store)
        reference = reference or next(iter(dict.fromkeys(ds.indexes["traj"].get_level_values("forcefield"))))
        study = conductor_study(
            ds, reference=reference, mobile=mobile, charge_number=charge, n_windows=windows, mae_threshold=threshold
        )
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    columns = [c for c in study.state_points.columns if not c.endswith(("_low", "_high"))]
    _print_frame(study.state_points[columns], title=f"{store.name}: {mobile} conductor per state point (reference "
                 f"{reference}; intervals in the CSV)")  # fmt: skip
    _print_frame(study.arrhenius, title="Arrhenius fit of σT over every trajectory, σ extrapolated (95 % intervals)")
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        tables = {
            "conductor-state-points.csv": study.state_points,
            "conductor-arrhenius.csv": study.arrhenius,
            "conductor-trajectories.csv": study.per_trajectory,
        }
        for name, frame in tables.items():
            frame.to_csv(output / name)
            console.print(f"wrote {output / name}")
        for path in plot_conductor(study, str(output)):
            console.print(f"wrote {path}")


@app.command()
def melting(
    store: StorePath,
    threshold: Annotated[float, typer.Option(help="ψ above which a slab counts as crystalline.")] = 0.1,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for CSV tables and figures.")] = None,
    solid: Annotated[
        Path | None, typer.Option(help="Store of the bulk crystal at (T_m, P), same Lennard-Jones force field.")
    ] = None,
    liquid: Annotated[Path | None, typer.Option(help="Store of the bulk liquid at (T_m, P).")] = None,
) -> None:
    """Melting point by the interface method: interface velocity per trajectory and T_m (v = 0) per
    force field, system and pressure, from a store run with analyses: [interface]. With --solid
    and --liquid (bulk runs of each phase at T_m): T_m of the full Lennard-Jones potential by
    the first-order truncation correction."""
    import numpy as np

    from hts_mlff.analysis.melting import (
        interface_velocity,
        melting_point,
        plot_interface,
        plot_melting_point,
        solid_length,
    )
    from hts_mlff.store.layout import StoreError
    from hts_mlff.store.reader import open_campaign

    if (solid is None) != (liquid is None):
        err_console.print("[red]error[/red]: --solid and --liquid go together (one store per bulk phase)")
        raise typer.Exit(1)
    try:
        ds = open_campaign(store)
        done = ds.isel(traj=np.flatnonzero(ds["status"].to_numpy() == "done"))
        if done.sizes["traj"] == 0:
            raise ValueError("no finished trajectory in the store")
        lengths = solid_length(done, threshold=threshold).compute()
        velocity = interface_velocity(lengths)
        table = melting_point(velocity)
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    per_t = table.attrs["per_temperature"].set_index([*table.index.names, "temperature_K"])
    _print_frame(per_t, title=f"{store.name}: interface velocity (m/s, + freezing), mean ± s.e. over seeds")
    _print_frame(table, title="melting point: v(T_m) = 0 (weighted linear fit, 95 % interval)")
    corrected = None
    if solid is not None and liquid is not None:
        try:
            corrected = _truncation_table(ds, table, solid=solid, liquid=liquid)
        except (StoreError, ValueError) as exc:
            err_console.print(f"[red]error[/red]: truncation correction: {exc}")
            raise typer.Exit(1) from None
        shown = ["T_m_K", "latent_heat_eV", "delta_u_solid_eV", "delta_u_liquid_eV", "shift_K", "T_m_full_K"]
        shown += ["T_m_full_low_K", "T_m_full_high_K", "kT_m_over_eps", "kT_m_full_over_eps"]
        _print_frame(
            corrected[shown], title="T_m of the full potential: first-order truncation correction (95 % interval)"
        )
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        per_t.to_csv(output / "interface-velocity.csv")
        table.to_csv(output / "melting-point.csv")
        written = [output / "interface-velocity.csv", output / "melting-point.csv"]
        if corrected is not None:
            corrected.to_csv(output / "melting-point-full-potential.csv")
            written.append(output / "melting-point-full-potential.csv")
        written.append(plot_interface(lengths, velocity, str(output / "interface-position.png")))
        written.append(plot_melting_point(velocity, table, str(output / "melting-point.png")))
        for path in written:
            console.print(f"wrote {path}")


def _truncation_table(ds, table, *, solid: Path, liquid: Path):
    """One row per T_m of a Lennard-Jones force field: its full-potential value (see
    :mod:`hts_mlff.analysis.truncation`); the phase stores must use the same potential."""
    import numpy as np
    import pandas as pd

    from hts_mlff.analysis.truncation import lennard_jones_parameters, phase_properties, truncation_correction
    from hts_mlff.store.reader import open_campaign
    from hts_mlff.units import BOLTZMANN_EV_PER_K

    phases = {"solid": open_campaign(solid), "liquid": open_campaign(liquid)}
    rows = []
    for key, row in table.iterrows():
        labels = dict(zip(table.index.names, key if isinstance(key, tuple) else (key,), strict=True))
        name = labels["forcefield"]
        model = lennard_jones_parameters(ds, name)
        properties = {}
        for phase, phase_ds in phases.items():
            if lennard_jones_parameters(phase_ds, name) != model:
                raise ValueError(f"the {phase} store's {name!r} is not the melting store's potential")
            props = phase_properties(phase_ds, forcefield=name)
            pressures = np.asarray(props.indexes["traj"].get_level_values("pressure_bar"), dtype=float)
            props = props.isel(traj=np.flatnonzero(np.isclose(pressures, labels["pressure_bar"])))
            if props.sizes["traj"] == 0:
                raise ValueError(f"the {phase} store has no {name!r} run at {labels['pressure_bar']:g} bar")
            temperatures = np.asarray(props.indexes["traj"].get_level_values("temperature_K"), dtype=float)
            if np.isfinite(row["T_m_K"]) and np.abs(temperatures - row["T_m_K"]).max() > 0.05 * row["T_m_K"]:
                err_console.print(
                    f"[yellow]warning[/yellow]: the {phase} runs at {sorted(set(temperatures))} K are more than "
                    f"5 % from T_m = {row['T_m_K']:.1f} K; the first-order correction wants them at T_m"
                )
            properties[phase] = props
        if not np.isfinite(row["T_m_K"]):
            continue
        result = truncation_correction(
            properties["solid"],
            properties["liquid"],
            melting_point_K=float(row["T_m_K"]),
            melting_point_err_K=float(row["T_m_err_K"]),
        )
        k_over_epsilon = BOLTZMANN_EV_PER_K / float(model["epsilon_eV"])
        rows.append(
            labels
            | result.to_dict()
            | {
                "kT_m_over_eps": row["T_m_K"] * k_over_epsilon,
                "kT_m_full_over_eps": result["T_m_full_K"] * k_over_epsilon,
            }
        )
    if not rows:
        raise ValueError("no melting point to correct")
    return pd.DataFrame(rows).set_index(list(table.index.names))


@app.command()
def report(
    store: StorePath,
    reference: Annotated[
        str | None,
        typer.Option("--reference", "-r", help="The campaign's reference force field (default: its first one)."),
    ] = None,
    campaign: TrustedCampaign = None,
    allow_code: AllowCode = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for index.html (one self-contained page), CSV tables, figures."),
    ] = None,
    mobile: Annotated[str | None, typer.Option(help="Mobile species (symbol) for D and σ; default all atoms.")] = None,
    charge: Annotated[float, typer.Option(help="Charge number of the mobile species.")] = 1.0,
    violation: Annotated[bool, typer.Option(help="Re-evaluate the reference on stored frames (EV, FV).")] = True,
    rdf_bins: Annotated[int, typer.Option(help="Bins of g(r) over 0–10 Å.")] = 200,
) -> None:
    """Per force field: fraction stable, survival, WF, JSD, RDF MAE, EV, FV, D, σ(300 K); with -o, one
    HTML page of everything the store holds (also vacancy rates and Green–Kubo κ)."""
    from ase.data import atomic_numbers

    from hts_mlff.analysis.summary import plot_summary_heatmap, summarize
    from hts_mlff.forcefields.registry import build_forcefield
    from hts_mlff.store.layout import StoreError

    try:
        ds, spec, _, base = _store_with_spec(store, system=None, campaign=campaign, allow_code=allow_code)
        reference = reference or next(iter(dict.fromkeys(ds.indexes["traj"].get_level_values("forcefield"))))
        if reference not in spec.forcefields:
            raise ValueError(f"{reference!r} is not a force field of this campaign ({sorted(spec.forcefields)})")
        if mobile is not None and mobile not in atomic_numbers:
            raise ValueError(f"--mobile {mobile!r}: not a chemical symbol")
        reference_ff = None
        if violation and "forces" in ds:
            reference_ff = build_forcefield(spec.forcefields[reference], base_dir=base)
        summary = summarize(
            ds,
            reference=reference,
            reference_forcefield=reference_ff,
            mobile=None if mobile is None else atomic_numbers[mobile],
            charge=charge,
            n_bins=rdf_bins,
        )
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    by_metric = summary.per_forcefield.T.rename_axis("metric")
    _print_frame(by_metric, title=f"{store.name}: summary per force field (reference {reference})")
    if summary.diffusion is not None:
        _print_frame(summary.diffusion, title="diffusion (mean ± s.e.m. over trajectories)")
    if output is not None:
        for path in summary.write(output):
            console.print(f"wrote {path}")
        figure = plot_summary_heatmap(summary.per_forcefield, str(Path(output) / "summary.png"))
        console.print(f"wrote {figure}")
        if summary.diffusion is not None and "sigma_S_per_cm" in summary.diffusion:
            for figure in _arrhenius_figures(summary.diffusion, Path(output)):
                console.print(f"wrote {figure}")
        from hts_mlff.report import build_report

        page = build_report(
            store,
            output=output,
            reference=reference,
            reference_forcefield=reference_ff,
            mobile=None if mobile is None else atomic_numbers[mobile],
            charge=charge,
            rdf_bins=rdf_bins,
            summary=summary,
            spec=spec,
            base_dir=base,
        )
        console.print(f"wrote {page}")


def _arrhenius_figures(table, folder: Path) -> list[str]:
    """σ(T) with its Arrhenius fit and the 300 K extrapolation, one figure per force field."""
    import xarray as xr

    from hts_mlff.analysis.arrhenius import arrhenius_fit, plot_arrhenius

    written = []
    for ff in table.index.get_level_values("forcefield").unique():
        series = table.xs(ff, level="forcefield")["sigma_S_per_cm"]
        values = xr.DataArray(series.to_numpy(), dims="temperature_K", coords={"temperature_K": series.index})
        fit = arrhenius_fit(values, times_temperature=True)
        written.append(plot_arrhenius(values, fit, str(folder / f"arrhenius-{ff}.png")))
    return written
