"""Training configs: the shipped recipes are valid; problems come with file:line."""

from __future__ import annotations

import pytest

from hts_mlff.spec.load import CampaignError, parse_yaml_model
from hts_mlff.spec.training import TrainingConfig
from tests.conftest import REPO

RECIPES = sorted((REPO / "campaigns" / "training").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_training_recipes_are_valid(path):
    config, _ = parse_yaml_model(path.read_text(), TrainingConfig, file=str(path))
    assert config.sources and config.output.startswith("../../models/")


def test_bad_values_are_located():
    text = "name: x\noutput: m.pt\nsources:\n  - store: a.zarr\n    min_temperature_K: 90\n    max_temperature_K: 10\n"
    with pytest.raises(CampaignError, match=r"cfg.yaml:\d+: error: .*min_temperature_K exceeds max_temperature_K"):
        parse_yaml_model(text, TrainingConfig, file="cfg.yaml")
    text = "name: x\noutput: m.pt\nsources: []\noptimisation: {epochs: 0}\n"
    with pytest.raises(CampaignError) as err:
        parse_yaml_model(text, TrainingConfig, file="cfg.yaml")
    assert "cfg.yaml:3: error: sources" in str(err.value) and "cfg.yaml:4: error: optimisation.epochs" in str(err.value)
