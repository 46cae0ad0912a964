"""The training-config file of ``hts-mlff train`` as typed models (unknown keys are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from hts_mlff.spec.load import CampaignError, Problem, parse_yaml_model
from hts_mlff.spec.model import Strict
from hts_mlff.spec.types import Float, NonNegativeInt, PositiveFloat, PositiveInt


class FrameSource(Strict):
    """Frames from one campaign store (path relative to the config file)."""

    store: str
    systems: list[str] | None = Field(None, description="Only these systems (default: all).")
    min_temperature_K: Float | None = Field(None, description="Only frames at or above this kinetic temperature.")
    max_temperature_K: Float | None = Field(None, description="Only frames at or below this kinetic temperature.")
    max_frames: PositiveInt | None = Field(None, description="Keep at most this many (drawn with the seed).")


class ModelSpec(Strict):
    """GNN architecture (seeds: h = 128, n = 4, r_c = 7.5 Å)."""

    hidden: PositiveInt = 128
    n_layers: PositiveInt = 4
    cutoff_A: PositiveFloat = 7.5
    n_rbf: PositiveInt = 32
    rbf_width_A: PositiveFloat = 0.25
    aggregation_norm: PositiveFloat = 32.0
    conservative: bool = Field(False, description="Energy head, forces = −∇E (symmetric Hessian).")
    species: list[str] | None = Field(None, description="Chemical symbols (default: those in the frames).")


class LearningRate(Strict):
    """Exponential decay from ``initial`` to ``final`` over all optimiser steps."""

    initial: PositiveFloat = 3e-4
    final: PositiveFloat = 1e-7


class OptimisationSpec(Strict):
    seed: NonNegativeInt = 0
    epochs: PositiveInt = 30
    validation_fraction: Float = Field(0.1, gt=0, lt=1)
    frames_per_batch: PositiveInt = 1
    learning_rate: LearningRate = LearningRate()
    mean_force_penalty: Float = Field(0.01, ge=0, description="λ of the seeds' eq. 5.")
    checkpoint_every_epochs: PositiveInt = 1
    max_validation_frames: PositiveInt | None = Field(None, description="Cap on frames scored after each epoch.")


class TrainingConfig(Strict):
    """A training run: frames from stores → a GNN checkpoint."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    output: str = Field(description="Checkpoint path, relative to the config file.")
    sources: list[FrameSource] = Field(min_length=1)
    init_from: str | None = Field(
        None,
        description="Continue from this GNN checkpoint (relative to the config file): its architecture, "
        "species and force scale, its weights as the start; the optimiser starts afresh.",
    )
    model: ModelSpec = ModelSpec()
    optimisation: OptimisationSpec = OptimisationSpec()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: PositiveInt | None = None

    @model_validator(mode="after")
    def _model_from_checkpoint(self) -> TrainingConfig:
        if self.init_from is not None and "model" in self.model_fields_set:
            raise ValueError("model: the architecture comes from the init_from checkpoint; remove the model section")
        return self

    @model_validator(mode="after")
    def _temperature_ranges(self) -> TrainingConfig:
        for source in self.sources:
            lo, hi = source.min_temperature_K, source.max_temperature_K
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"source {source.store}: min_temperature_K exceeds max_temperature_K")
        return self


def load_training_config(path: str | Path) -> tuple[TrainingConfig, Path, str]:
    """(config, its resolved path, its text); errors name file, line and field."""
    p = Path(path).resolve()
    text = p.read_text()
    config, lines = parse_yaml_model(text, TrainingConfig, file=str(path))
    problems = []
    for k, source in enumerate(config.sources):
        store = (p.parent / source.store).resolve()
        if not store.exists():
            line = lines.get(("sources", k, "store", "__value__"), lines.get(("sources", k), 1))
            problems.append(Problem(str(path), line, f"sources[{k}].store", f"no store at {store}"))
    if config.init_from is not None and not (p.parent / config.init_from).exists():
        line = lines.get(("init_from", "__value__"), lines.get(("init_from",), 1))
        problems.append(
            Problem(str(path), line, "init_from", f"no checkpoint at {(p.parent / config.init_from).resolve()}")
        )
    if problems:
        raise CampaignError(problems)
    return config, p, text
