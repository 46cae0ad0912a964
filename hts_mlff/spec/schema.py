"""JSON Schema of the campaign file, generated from the typed models."""

from __future__ import annotations

import json

from hts_mlff.spec.model import Campaign


def campaign_schema() -> dict:
    schema = Campaign.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hts_mlff campaign"
    return schema


def campaign_schema_text() -> str:
    return json.dumps(campaign_schema(), indent=2, sort_keys=True) + "\n"
