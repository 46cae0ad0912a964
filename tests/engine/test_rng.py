"""Counter-based per-replica random numbers."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from hts_mlff.engine.rng import ReplicaRandom, Stream, replica_key


def _draw(keys, n, *, step=3, stream=Stream.LANGEVIN):
    r = ReplicaRandom(keys, device=torch.device("cpu"))
    es = torch.arange(len(keys)).repeat_interleave(n)
    el = torch.arange(n).repeat(len(keys))
    return r.normal(stream, step, element_system=es, element_local=el, dtype=torch.float64).view(len(keys), n)


def test_gaussian_moments_and_shape():
    x = _draw([replica_key("c", "t")], 400_000)[0].numpy()
    assert abs(x.mean()) < 0.01
    assert abs(x.var() - 1) < 0.01
    assert abs(stats.kurtosis(x)) < 0.05
    assert stats.kstest(x[:20000], "norm").pvalue > 1e-3


def test_a_replica_draws_the_same_numbers_wherever_it_sits():
    k = replica_key("c", "task")
    alone = _draw([k], 1000)[0]
    among = _draw([11, k, 22], 1000)[1]
    assert torch.equal(alone, among)


def test_streams_steps_and_keys_are_independent():
    base = _draw([1], 50_000)[0].numpy()
    for other in (_draw([2], 50_000)[0], _draw([1], 50_000, step=4)[0], _draw([1], 50_000, stream=Stream.BAROSTAT)[0]):
        assert abs(np.corrcoef(base, other.numpy())[0, 1]) < 0.02


def test_the_kernels_stream_bits_are_the_stream_base():
    """The numpy draw of the per-replica hash the kernels read equals the torch one, bit for bit,
    for refilled slots (a later start, so a negative own step before it) and steps past 2³²."""
    random = ReplicaRandom([123, 2**63 + 5, 77, 2**40], device=torch.device("cpu"))
    random.assign(2, key=999, start_step=17)
    for step in (0, 1, 17, 2**33 + 5, 123_456_789):
        base = random.stream_base(Stream.LANGEVIN, step)
        expected = torch.where(base >= 2**31, base - 2**32, base).to(torch.int32)
        assert torch.equal(random.stream_base_bits(Stream.LANGEVIN, step), expected)
