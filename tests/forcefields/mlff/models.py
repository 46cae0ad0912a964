"""Small models of each package, built in the test with fixed random weights (no download, no
training): what the adapters must drive exactly as the package's own calculator does."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch

from hts_mlff.forcefields.graph_edges import environment_restored


def write_mace_model(
    path: Path, *, atomic_numbers: tuple[int, ...] = (18,), r_max_A: float = 5.0, seed: int = 0
) -> Path:
    """A two-layer ScaleShiftMACE with random weights, saved as ``mace_run_train`` saves one
    (``torch.save`` of the module: a pickle)."""
    with environment_restored():
        # mace first (not in import order): it lets e3nn 0.4.4 unpickle its constants on import
        modules = importlib.import_module("mace.modules")
        o3 = importlib.import_module("e3nn.o3")

        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            torch.manual_seed(seed)
            block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
            model = modules.ScaleShiftMACE(
                r_max=r_max_A,
                num_bessel=6,
                num_polynomial_cutoff=5,
                max_ell=2,
                interaction_cls=block,
                interaction_cls_first=block,
                num_interactions=2,
                num_elements=len(atomic_numbers),
                hidden_irreps=o3.Irreps("8x0e + 8x1o"),
                MLP_irreps=o3.Irreps("8x0e"),
                gate=torch.nn.functional.silu,
                atomic_energies=np.linspace(-0.1, -0.3, len(atomic_numbers)),
                avg_num_neighbors=12.0,
                atomic_numbers=list(atomic_numbers),
                correlation=2,
                atomic_inter_scale=0.05,
                atomic_inter_shift=0.0,
            )
        finally:
            torch.set_default_dtype(default)
        torch.save(model, path)
    return path
