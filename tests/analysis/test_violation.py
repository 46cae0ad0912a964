"""Energy and force violation: zero against itself, known values for a scaled force field."""

from __future__ import annotations

import numpy as np
import pytest

import hts_mlff
from hts_mlff.analysis.violation import violation
from hts_mlff.forcefields import LennardJones
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A


def test_the_reference_against_itself_has_no_violation(frames_store):
    ds = hts_mlff.open_campaign(frames_store)
    out = violation(ds, LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A))
    assert out["force_violation"].max() < 1e-12 and out["energy_violation"].max() < 1e-20
    assert (out["ev_geometric_mean"] < 1e-10).all() and (out["fv_geometric_mean"] < 1e-10).all()


def test_a_scaled_force_field_gives_the_expected_violations(frames_store):
    ds = hts_mlff.open_campaign(frames_store)
    c = 1.1  # the "reference" has ε × c: E_ref = c Ê and F_ref = c F̂ exactly (the shift scales too)
    out = violation(ds, LennardJones(EPSILON_EV * c, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A))
    np.testing.assert_allclose(out["force_violation"].values, (c - 1) / (c + 1), rtol=1e-9)
    np.testing.assert_allclose(out["energy_violation"].values, (c - 1) ** 2 / (c**2 + 1), rtol=1e-9)
    assert float(out["fv_geometric_mean"].mean()) == pytest.approx((c - 1) / (c + 1), rel=1e-9)
