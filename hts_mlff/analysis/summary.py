"""One summary of a campaign store per force field: stability, structure, dynamics, violations.

Every metric comes from the analyses of this package, applied to what the campaign stored:

- ``fraction_stable``, ``survival_auc`` — :mod:`stability` (always);
- ``wright_factor`` (Wright's R_χ with its square root: < 0.09 is acceptable), ``jsd``
  (EGraFFBench eq. 3 on g(r) itself), ``jsd_shape`` (g(r) normalised to unit sum: shape only),
  ``rdf_mae`` — :mod:`structure`, against the reference force field at the same state point
  (needs positions);
- ``D_cm2_per_s`` per temperature — :mod:`diffusion` (positions);
- ``sigma_300K_S_per_cm`` with its interval — :mod:`conductivity`, Nernst–Einstein and an
  Arrhenius fit over temperature (positions and a ``mobile`` species);
- ``ev_geometric_mean``, ``fv_geometric_mean`` — :mod:`violation`, the reference re-evaluated
  on the stored frames (positions and forces).

Values are means over the force field's completed trajectories (all temperatures, pressures,
systems); the per-temperature diffusion table keeps the temperature axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hts_mlff.analysis.arrhenius import arrhenius_fit
from hts_mlff.analysis.conductivity import nernst_einstein, number_density_per_cm3
from hts_mlff.analysis.diffusion import diffusion_coefficient, msd
from hts_mlff.analysis.stability import survival_summary, trajectory_stability
from hts_mlff.analysis.structure import compare_structure, rdf


@dataclass
class CampaignSummary:
    """Tables of :func:`summarize` (pandas, for printing and CSV) and the per-trajectory data."""

    per_forcefield: pd.DataFrame
    diffusion: pd.DataFrame | None
    per_trajectory: xr.Dataset
    #: (forcefield, r_A) g(r) averaged over each force field's completed trajectories (positions)
    rdf_by_forcefield: xr.DataArray | None = None

    def write(self, folder: str | Path) -> list[Path]:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "summary.csv"]
        self.per_forcefield.to_csv(written[0])
        if self.diffusion is not None:
            written.append(out / "diffusion.csv")
            self.diffusion.to_csv(written[-1])
        return written


def summarize(
    ds: xr.Dataset,
    *,
    reference: str,
    reference_forcefield=None,
    mobile: int | None = None,
    charge: float = 1.0,
    r_max_A: float = 10.0,
    n_bins: int = 200,
) -> CampaignSummary:
    """Summary per force field of an open campaign (see the module docstring).

    Args:
        ds: ``hts_mlff.open_campaign(store)``.
        reference: name of the reference force field in the campaign.
        reference_forcefield: the reference as an object, for the energy/force violations
            (skipped when None or when the campaign saved no forces).
        mobile: atomic number of the mobile ion for D and σ (default: all atoms for D, no σ).
        charge: its charge number z.
        r_max_A, n_bins: g(r) histogram (fewer, wider bins: less noise in short runs).

    Kept as one function (≈ 90 lines): it reads as the list of columns of the summary table,
    each a call to the analysis that computes it.
    """
    forcefields = list(dict.fromkeys(ds.indexes["traj"].get_level_values("forcefield")))
    if reference not in forcefields:
        raise ValueError(f"reference {reference!r} is not a force field of the campaign ({forcefields})")
    per_traj = xr.Dataset()
    structure = rdf_mean = None
    if "positions" in ds:
        g = rdf(ds, r_max_A=r_max_A, n_bins=n_bins).persist()
        structure = compare_structure(g, reference=reference)
        done = xr.DataArray(np.isin(ds["status"].values, ("done", "failed")), dims="traj")
        by_ff = g.where(done).assign_coords(ff=("traj", ds.indexes["traj"].get_level_values("forcefield")))
        rdf_mean = by_ff.drop_vars([c for c in by_ff.coords if "traj" in by_ff[c].dims and c != "ff"]).groupby("ff")
        rdf_mean = rdf_mean.mean("traj").rename(ff="forcefield").compute()
        mask = None if mobile is None else ds["atomic_numbers"] == mobile
        d = diffusion_coefficient(msd(ds["positions"], atom_mask=mask))["D_cm2_per_s"].compute()
        per_traj["D_cm2_per_s"] = ("traj", d.values)
        for name in ("wright_factor", "jsd", "jsd_shape", "rdf_mae"):
            per_traj[name] = ("traj", structure[name].values)
    stability = trajectory_stability(ds, structure=structure).compute()
    for name in ("stable", "time_to_failure_fs"):
        per_traj[name] = ("traj", stability[name].values)
    if reference_forcefield is not None and "forces" in ds:
        from hts_mlff.analysis.violation import violation

        viol = violation(ds, reference_forcefield)
        per_traj["ev_geometric_mean"] = ("traj", viol["ev_geometric_mean"].values)
        per_traj["fv_geometric_mean"] = ("traj", viol["fv_geometric_mean"].values)
    per_traj = per_traj.assign_coords(xr.Coordinates.from_pandas_multiindex(ds.indexes["traj"], "traj"))

    survival = survival_summary(stability, by=("forcefield",))
    auc = dict(
        zip(survival.indexes["group"].get_level_values("forcefield"), survival["survival_auc"].values, strict=True)
    )
    index = ds.indexes["traj"]
    table = pd.DataFrame({name: np.asarray(per_traj[name].values) for name in per_traj.data_vars})
    for level in index.names:
        table[level] = index.get_level_values(level)
    numeric = [c for c in per_traj.data_vars if c not in ("stable", "time_to_failure_fs")]
    rows = []
    for ff in forcefields:
        mine = table[table["forcefield"] == ff]
        row = {"forcefield": ff, "n_trajectories": len(mine), "fraction_stable": float(mine["stable"].mean())}
        row["survival_auc"] = float(auc[ff])
        for name in numeric:
            if name == "D_cm2_per_s":
                continue
            values = mine[name].to_numpy(dtype=float)
            row[name] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
        rows.append(row)
    per_ff = pd.DataFrame(rows).set_index("forcefield")

    diffusion_table = None
    if "D_cm2_per_s" in per_traj:
        grouped = table.groupby(["forcefield", "temperature_K"])["D_cm2_per_s"]
        diffusion_table = pd.DataFrame({"D_cm2_per_s": grouped.mean(), "sem": grouped.sem(), "n": grouped.count()})
        if mobile is not None and "volume_A3" in ds:
            density = number_density_per_cm3(ds, atomic_number=mobile).compute().values
            temps = np.asarray(ds.indexes["traj"].get_level_values("temperature_K"), dtype=float)
            table["sigma_S_per_cm"] = nernst_einstein(
                table["D_cm2_per_s"].to_numpy(), number_density_per_cm3=density, charge=charge, temperature_K=temps
            )
            sigma = table.groupby(["forcefield", "temperature_K"])["sigma_S_per_cm"].mean()
            diffusion_table["sigma_S_per_cm"] = sigma
            for ff in forcefields:
                series = sigma.xs(ff, level="forcefield")
                values = xr.DataArray(
                    series.to_numpy(), dims="temperature_K", coords={"temperature_K": series.index.to_numpy()}
                )
                fit = arrhenius_fit(values, times_temperature=True)
                per_ff.loc[ff, "sigma_300K_S_per_cm"] = float(fit["value_at_K"])
                per_ff.loc[ff, "sigma_300K_low"] = float(fit["value_low"])
                per_ff.loc[ff, "sigma_300K_high"] = float(fit["value_high"])
                per_ff.loc[ff, "activation_energy_eV"] = float(fit["activation_energy_eV"])
    return CampaignSummary(
        per_forcefield=per_ff, diffusion=diffusion_table, per_trajectory=per_traj, rdf_by_forcefield=rdf_mean
    )


def plot_summary_heatmap(summary: pd.DataFrame, path: str) -> str:
    """Metrics × force fields, each metric scaled by its largest value (EGraFFBench Fig. 7 style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = summary.drop(columns=[c for c in summary.columns if c.endswith(("_low", "_high"))], errors="ignore")
    data = data.select_dtypes("number").T
    scale = data.abs().max(axis=1).replace(0, 1.0)
    scaled = data.div(scale, axis=0)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * data.shape[1], 0.9 + 0.45 * data.shape[0]))
    image = ax.imshow(scaled.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(data.shape[1]), data.columns)
    ax.set_yticks(range(data.shape[0]), data.index)
    for (i, j), value in np.ndenumerate(data.to_numpy(dtype=float)):
        ax.text(
            j, i, f"{value:.3g}", ha="center", va="center", color="w" if scaled.iat[i, j] < 0.6 else "k", fontsize=8
        )
    fig.colorbar(image, ax=ax, label="value / largest value of the metric")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
