"""Scheduling: packs onto a Dask cluster; workers write their own results into the store."""
