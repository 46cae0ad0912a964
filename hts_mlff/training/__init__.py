"""Training the GNN force field from campaign stores (``hts-mlff train``)."""

from hts_mlff.training.trainer import TrainingResult, train

__all__ = ["TrainingResult", "train"]
