"""Every shipped campaign and training config is valid."""

from __future__ import annotations

import pytest

from hts_mlff.spec.load import load_campaign, parse_yaml_model
from hts_mlff.spec.training import TrainingConfig
from tests.conftest import REPO

FILES = sorted((REPO / "campaigns").glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_shipped_file_is_valid(path):
    if path.name.startswith("train-model"):
        config, _ = parse_yaml_model(path.read_text(), TrainingConfig, file=str(path))
        assert config.sources
    else:
        assert load_campaign(path).spec.name
