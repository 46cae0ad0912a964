"""Analyses: xarray in, xarray out, lazy until computed."""
