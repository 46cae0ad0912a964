"""Campaign store: one Zarr v3 store per campaign, read back as a lazy xarray Dataset."""

from hts_mlff.store.layout import CampaignStore, StoreError
from hts_mlff.store.reader import open_campaign, status_table

__all__ = ["CampaignStore", "StoreError", "open_campaign", "status_table"]
