"""Campaign specification: typed models, YAML loading with located errors, JSON Schema."""

from hts_mlff.spec.load import CampaignError, LoadedCampaign, Problem, load_campaign, parse_campaign
from hts_mlff.spec.model import FORMAT_VERSION, Campaign

__all__ = [
    "FORMAT_VERSION",
    "Campaign",
    "CampaignError",
    "LoadedCampaign",
    "Problem",
    "load_campaign",
    "parse_campaign",
]
