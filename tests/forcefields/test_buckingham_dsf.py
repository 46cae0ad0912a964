"""Buckingham + damped-shifted-force Coulomb: Madelung energy, −∇E, stress, batching, a literal sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase.build import bulk

from hts_mlff.forcefields.buckingham_dsf import BuckinghamDSF, BuckinghamPair
from hts_mlff.units import COULOMB_EV_A
from tests.conftest import batch

NA, CL = 11, 17
#: Rock-salt Madelung constant (nearest-neighbour distance convention).
MADELUNG_ROCKSALT = 1.747565
#: NaCl Buckingham parameters of the Catlow-type rigid-ion model (eV, Å, eV·Å⁶) — test values only.
PAIRS = [
    BuckinghamPair(NA, CL, a_eV=1170.0, rho_A=0.3063, c_eV_A6=0.0),
    BuckinghamPair(CL, CL, a_eV=1227.2, rho_A=0.3214, c_eV_A6=29.06),
]


def _nacl(a: float = 5.64, repeat: int = 4, rattle: float = 0.0, seed: int = 0):
    atoms = bulk("NaCl", "rocksalt", a=a, cubic=True).repeat(repeat)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


def _field(**kwargs) -> BuckinghamDSF:
    return BuckinghamDSF({NA: 1.0, CL: -1.0}, pairs=kwargs.pop("pairs", PAIRS), **kwargs)


@pytest.mark.parametrize(("repeat", "cutoff", "alpha"), [(4, 10.0, 0.3), (5, 12.0, 0.25), (6, 15.0, 0.2)])
def test_coulomb_energy_of_rock_salt_is_the_madelung_energy(repeat, cutoff, alpha):
    """With α r_c = 3 the DSF sum meets the Madelung energy to 1e-4; with α r_c = 2, ~1 % off."""
    atoms = _nacl(repeat=repeat)
    madelung = -MADELUNG_ROCKSALT * COULOMB_EV_A / (5.64 / 2)
    energy = float(_field(pairs=[], cutoff_A=cutoff, alpha_per_A=alpha)(batch([atoms])).energy[0])
    assert energy / (len(atoms) / 2) == pytest.approx(madelung, rel=1e-4)
    weak = float(_field(pairs=[], cutoff_A=cutoff, alpha_per_A=2.0 / cutoff)(batch([atoms])).energy[0])
    assert 2e-3 < abs(weak / (len(atoms) / 2) / madelung - 1) < 2e-2


def test_forces_are_minus_the_gradient_and_the_stress_the_strain_derivative():
    atoms = _nacl(repeat=3, rattle=0.08, seed=1)
    ff = _field(cutoff_A=8.0, alpha_per_A=0.25)
    out = ff(batch([atoms]))
    forces = out.forces.numpy()
    h = 1e-5
    for atom, axis in [(0, 0), (7, 1), (30, 2), (53, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        numeric = -(float(ff(batch([plus])).energy[0]) - float(ff(batch([minus])).energy[0])) / (2 * h)
        assert forces[atom, axis] == pytest.approx(numeric, abs=1e-6)
    for a, b in [(0, 0), (1, 2)]:
        strain = np.eye(3)
        strain[a, b] += h / 2
        strain[b, a] += h / 2
        energies = []
        for sign in (1, -1):
            s = np.eye(3) + sign * (strain - np.eye(3))
            deformed = atoms.copy()
            deformed.set_cell(atoms.cell @ s, scale_atoms=True)
            energies.append(float(ff(batch([deformed])).energy[0]))
        numeric = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
        assert float(out.stress[0, a, b]) == pytest.approx(numeric, abs=1e-7)


def test_energy_and_force_vanish_smoothly_at_the_cutoff():
    ff = _field(pairs=[], cutoff_A=9.0, alpha_per_A=0.2)
    from ase import Atoms

    def pair(r: float) -> tuple[float, float]:
        atoms = Atoms([NA, CL], positions=[[0, 0, 0], [r, 0, 0]], cell=np.eye(3) * 40.0, pbc=True)
        out = ff(batch([atoms]))
        self_energy = -2 * COULOMB_EV_A * (math.erfc(0.2 * 9.0) / 18.0 + 0.2 / math.sqrt(math.pi))
        return float(out.energy[0]) - self_energy, float(out.forces[1, 0])

    for r in (8.999, 8.9999):
        energy, force = pair(r)
        assert abs(energy) < 1e-6 and abs(force) < 1e-3
    assert pair(9.001) == pytest.approx((0.0, 0.0), abs=1e-12)


def test_batched_replicas_equal_single_ones():
    systems = [_nacl(repeat=2, rattle=0.05, seed=s) for s in range(3)]
    ff = _field(cutoff_A=7.0)
    together = ff(batch(systems))
    for k, atoms in enumerate(systems):
        alone = ff(batch([atoms]))
        torch.testing.assert_close(together.energy[k], alone.energy[0], rtol=0, atol=1e-10)
        n = len(atoms)
        torch.testing.assert_close(together.forces[k * n : (k + 1) * n], alone.forces, rtol=0, atol=1e-10)


def test_a_literal_sum_over_images_gives_the_same_energy_and_forces():
    atoms = _nacl(repeat=2, rattle=0.1, seed=4)
    rc, alpha = 6.5, 0.3
    ff = _field(cutoff_A=rc, alpha_per_A=alpha)
    out = ff(batch([atoms]))
    pos, cell, z = atoms.positions, np.asarray(atoms.cell), atoms.numbers
    q = np.where(z == NA, 1.0, -1.0)
    params = {(NA, CL): PAIRS[0], (CL, NA): PAIRS[0], (CL, CL): PAIRS[1]}
    shift_force = math.erfc(alpha * rc) / rc**2 + 2 * alpha / math.sqrt(math.pi) * math.exp(-((alpha * rc) ** 2)) / rc
    energy, forces = 0.0, np.zeros_like(pos)
    images = [np.array([i, j, k]) @ cell for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3)]
    for i in range(len(pos)):
        energy -= COULOMB_EV_A * q[i] ** 2 * (math.erfc(alpha * rc) / (2 * rc) + alpha / math.sqrt(math.pi))
        for j in range(len(pos)):
            for shift in images:
                d = pos[j] + shift - pos[i]
                r = float(np.linalg.norm(d))
                if r == 0.0 or r >= rc:
                    continue
                qq = COULOMB_EV_A * q[i] * q[j]
                e = qq * (math.erfc(alpha * r) / r - math.erfc(alpha * rc) / rc + shift_force * (r - rc))
                f = qq * (
                    math.erfc(alpha * r) / r**2
                    + 2 * alpha / math.sqrt(math.pi) * math.exp(-((alpha * r) ** 2)) / r
                    - shift_force
                )
                p = params.get((int(z[i]), int(z[j])))
                if p is not None:
                    e += p.a_eV * math.exp(-r / p.rho_A) - p.c_eV_A6 / r**6
                    e -= p.a_eV * math.exp(-rc / p.rho_A) - p.c_eV_A6 / rc**6
                    f += p.a_eV / p.rho_A * math.exp(-r / p.rho_A) - 6 * p.c_eV_A6 / r**7
                energy += 0.5 * e  # each pair is met twice
                forces[i] -= f * d / r
    assert float(out.energy[0]) == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(out.forces.numpy(), forces, atol=1e-9)


def test_a_charged_system_and_an_unknown_species_are_refused():
    from ase import Atoms

    ff = _field()
    charged = Atoms([NA, NA, CL], positions=[[0, 0, 0], [3, 0, 0], [0, 3, 0]], cell=np.eye(3) * 20, pbc=True)
    with pytest.raises(ValueError, match="net charge of 1"):
        ff(batch([charged]))
    unknown = Atoms([NA, 9], positions=[[0, 0, 0], [3, 0, 0]], cell=np.eye(3) * 20, pbc=True)
    with pytest.raises(ValueError, match=r"no charge given for atomic numbers \[9\]"):
        ff(batch([unknown]))


CAMPAIGN = """\
name: nacl
store: nacl.zarr
systems:
  nacl64:
    kind: file
    path: nacl.extxyz
forcefields:
  rigid_ion:
    kind: buckingham_dsf
    charges_e: {{Na: 1.0, Cl: {chlorine}}}
    pairs:
      - {{species: [Na, Cl], a_eV: 1170.0, rho_A: 0.3063}}
      - {{species: [Cl, Cl], a_eV: 1227.2, rho_A: 0.3214, c_eV_A6: 29.06}}
    cutoff_A: 5.5
    alpha_per_A: 0.55
protocol:
  ensemble: nve
  equilibration_ensemble: nvt
  timestep_fs: 1.0
  equilibration_steps: 200
  production_steps: 1000
  sample_every_steps: 50
sweep:
  temperature_K: [600]
  seed: [0]
execution:
  dtype: float64
  pack_size: 1
cluster:
  kind: local
  dashboard_address: ":0"
"""


def test_a_rock_salt_campaign_conserves_energy_and_a_charged_one_is_refused(tmp_path, dask_client):
    from ase.io import write

    import hts_mlff
    from hts_mlff.spec.load import CampaignError

    write(tmp_path / "nacl.extxyz", _nacl(repeat=2))
    (tmp_path / "bad.yaml").write_text(CAMPAIGN.format(chlorine=-0.9))
    with pytest.raises(CampaignError, match=r"net charge of 3\.2 e"):
        hts_mlff.load_campaign(tmp_path / "bad.yaml")
    (tmp_path / "nacl.yaml").write_text(CAMPAIGN.format(chlorine=-1.0))
    hts_mlff.run_campaign(hts_mlff.load_campaign(tmp_path / "nacl.yaml"), client=dask_client)
    ds = hts_mlff.open_campaign(tmp_path / "nacl.zarr")
    assert ds["status"].values.tolist() == ["done"]
    total = ds["total_energy_eV"].values[0]
    temperature = float(ds["kinetic_temperature_K"].mean())
    assert 300 < temperature < 900  # a hot crystal, not an explosion
    assert np.ptp(total) / 64 < 2e-4  # eV per atom over 1 ps of NVE


def test_a_stated_formula_is_checked_against_the_structure_file(tmp_path):
    """The shipped Li2O cell validates as Li2O; the same file declared Li3O fails at validate,
    naming the field and the stoichiometry found."""
    import shutil

    import hts_mlff
    from hts_mlff.spec.load import CampaignError
    from tests.conftest import REPO

    shutil.copy(REPO / "campaigns" / "structures" / "li2o-conventional.extxyz", tmp_path / "li2o.extxyz")
    text = (REPO / "campaigns" / "ionic-conductor-small.yaml").read_text()
    text = text.replace("structures/li2o-conventional.extxyz", "li2o.extxyz").replace("../models/", f"{REPO}/models/")
    (tmp_path / "good.yaml").write_text(text)
    spec = hts_mlff.load_campaign(tmp_path / "good.yaml")
    assert spec.spec.systems["li2o-96"].formula == "Li2O"
    (tmp_path / "bad.yaml").write_text(text.replace("formula: Li2O", "formula: Li3O"))
    with pytest.raises(CampaignError, match=r"bad\.yaml:\d+: error: systems\.li2o-96\.formula: .*Li2O, not Li3O"):
        hts_mlff.load_campaign(tmp_path / "bad.yaml")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("half_rows", [True, False])
def test_kernel_rows_match_the_torch_path(dtype, half_rows):
    """The compiled pair function (Warp) against the torch pair terms: two sheared, rattled
    crystals with a vacancy pair removed (still neutral), shifted short range and DSF Coulomb."""
    from hts_mlff.engine.kernels import kernels_enabled
    from hts_mlff.engine.neighbors import PairList, RowList

    if not kernels_enabled(torch.device("cpu")):
        pytest.skip("warp-lang not installed")
    systems = []
    for seed in range(2):
        atoms = _nacl(repeat=3, rattle=0.08, seed=seed)
        cell = np.array(atoms.cell)
        cell[1] += 0.1 * cell[0]
        atoms.set_cell(cell, scale_atoms=True)
        if seed:
            del atoms[[0, 1]]  # a Schottky pair: one Na, one Cl
        systems.append(atoms)
    state = batch(systems, dtype=dtype)
    ff = _field(cutoff_A=7.5, alpha_per_A=0.4)
    pairs = PairList(ff.cutoff_A, skin_A=1.0)
    pairs.update(state)
    reference = ff(state, neighbors=pairs)
    rows = RowList(ff.cutoff_A, skin_A=1.0, half_rows=half_rows)
    rows.update(state)
    out = ff(state, neighbors=rows)
    assert out.min_pair_distance_A is not None  # the kernel pass ran
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=5e-5, atol=5e-4)
    torch.testing.assert_close(out.energy, reference.energy, **tol)
    torch.testing.assert_close(out.forces, reference.forces, **tol)
    torch.testing.assert_close(out.stress, reference.stress, **tol)


def test_heat_current_from_the_kernels_partition_includes_the_self_energy():
    from hts_mlff.engine.kernels import kernels_enabled
    from hts_mlff.engine.neighbors import PairList, RowList

    if not kernels_enabled(torch.device("cpu")):
        pytest.skip("warp-lang not installed")
    state = batch([_nacl(repeat=3, rattle=0.08, seed=4)])
    state.velocities = 0.01 * torch.randn(
        state.n_atoms, 3, generator=torch.Generator().manual_seed(1), dtype=state.dtype
    )
    ff = _field(cutoff_A=7.5, alpha_per_A=0.4)
    pairs = PairList(ff.cutoff_A, skin_A=1.0)
    pairs.update(state)
    reference = ff.heat_current(state, neighbors=pairs)
    rows = RowList(ff.cutoff_A, skin_A=1.0, half_rows=True)
    rows.update(state)
    out = ff(state, neighbors=rows, compute_stress=True)
    torch.testing.assert_close(ff.heat_current(state, output=out), reference, rtol=1e-10, atol=1e-12)
