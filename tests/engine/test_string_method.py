"""The string method on the Müller–Brown surface: its known saddle and barrier."""

from __future__ import annotations

import pytest
import torch

from hts_mlff.engine.string_method import StringRelaxation, reparametrize, string_method

A = torch.tensor([-200.0, -100.0, -170.0, 15.0], dtype=torch.float64)
a = torch.tensor([-1.0, -1.0, -6.5, 0.7], dtype=torch.float64)
b = torch.tensor([0.0, 0.0, 11.0, 0.6], dtype=torch.float64)
c = torch.tensor([-10.0, -10.0, -6.5, 0.7], dtype=torch.float64)
X0 = torch.tensor([1.0, 0.0, -0.5, -1.0], dtype=torch.float64)
Y0 = torch.tensor([0.0, 0.5, 1.5, 1.0], dtype=torch.float64)


def mueller_brown(p: torch.Tensor) -> torch.Tensor:
    dx, dy = p[:, :1] - X0, p[:, 1:] - Y0
    return (A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)).sum(1)


def mb_force(p: torch.Tensor) -> torch.Tensor:
    q = p.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(mueller_brown(q).sum(), q)
    return -grad


def test_string_finds_the_mueller_brown_saddle_and_barrier():
    start = torch.tensor([-0.558, 1.442], dtype=torch.float64)
    end = torch.tensor([0.623, 0.028], dtype=torch.float64)
    result = string_method(
        mb_force, start, end, settings=StringRelaxation(n_images=41, step=2e-4, max_step=0.01, tolerance=0.5)
    )
    assert result.converged
    energy = mueller_brown(result.images)
    top = int(torch.argmax(energy))
    # The highest saddle of the path from A to B: (−0.822, 0.624), E = −40.665; minimum A: −146.700.
    assert result.images[top].tolist() == pytest.approx([-0.822, 0.624], abs=0.03)
    direct = float(energy.max() - mueller_brown(start[None])[0])
    assert direct == pytest.approx(106.03, rel=0.01)
    assert result.barrier == pytest.approx(direct, rel=0.01)  # force integration = energy difference


def test_reparametrization_spaces_images_equally():
    images = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [2.0, 0.0]], dtype=torch.float64)
    out = reparametrize(images)
    torch.testing.assert_close(out[:, 0], torch.tensor([0.0, 2 / 3, 4 / 3, 2.0], dtype=torch.float64))


def test_profile_peak_lies_between_images_and_matches_the_saddle():
    from hts_mlff.engine.string_method import peak_of_profile

    start = torch.tensor([-0.558, 1.442], dtype=torch.float64)
    end = torch.tensor([0.623, 0.028], dtype=torch.float64)
    coarse = string_method(
        mb_force, start, end, settings=StringRelaxation(n_images=31, step=2e-4, max_step=0.01, tolerance=0.5)
    )
    peak = peak_of_profile(coarse)
    assert peak >= coarse.barrier
    assert peak == pytest.approx(106.03, rel=0.01)


def test_atomic_images_are_evaluated_as_one_pack():
    from hts_mlff.engine.string_method import atomic_force_function
    from hts_mlff.forcefields import LennardJones
    from tests.conftest import argon, batch

    lj = LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5)
    atoms = [argon(repeat=3, rattle=0.05, seed=s) for s in range(3)]
    images = torch.stack([torch.as_tensor(a.positions).reshape(-1) for a in atoms])
    forces = atomic_force_function(lj, batch(atoms[:1]))(images)
    for k, a in enumerate(atoms):
        torch.testing.assert_close(forces[k], lj(batch([a])).forces.reshape(-1))
