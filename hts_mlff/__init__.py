"""hts_mlff: high-throughput screening of machine-learned force fields by batched MD.

Python API::

    import hts_mlff
    campaign = hts_mlff.load_campaign("campaigns/quickstart.yaml")
    hts_mlff.run_campaign(campaign)
    ds = hts_mlff.open_campaign(campaign.store_path)
    ds.kinetic_temperature_K.sel(temperature_K=100).mean("time_fs").compute()
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hts_mlff.spec.load import CampaignError, LoadedCampaign, load_campaign

if TYPE_CHECKING:
    import xarray

    from hts_mlff.schedule.runner import RunReport

__version__ = "0.1.0"
__all__ = ["CampaignError", "LoadedCampaign", "__version__", "load_campaign", "open_campaign", "run_campaign"]


def run_campaign(campaign: LoadedCampaign | str | Path, **kwargs: Any) -> RunReport:
    """Run every task of a campaign not done yet (see :func:`hts_mlff.schedule.runner.run_campaign`)."""
    from hts_mlff.schedule.runner import run_campaign as _run

    loaded = campaign if isinstance(campaign, LoadedCampaign) else load_campaign(campaign)
    return _run(loaded, **kwargs)


def open_campaign(path: str | Path, **kwargs: Any) -> xarray.Dataset:
    """Open a campaign store as a lazy xarray Dataset (see :func:`hts_mlff.store.open_campaign`)."""
    from hts_mlff.store.reader import open_campaign as _open

    return _open(path, **kwargs)
