"""Force-field kinds: every spec has its record, and what a kind declares drives task ids,
validation and trust — never its name."""

from __future__ import annotations

import textwrap

import pytest

from hts_mlff.forcefields.kinds import KINDS, build_forcefield
from hts_mlff.spec.model import FORCEFIELD_SPECS, TorchSimSpec, kind_name, kind_names
from hts_mlff.spec.trust import CodeNotAllowedError
from hts_mlff.tasks import forcefield_checksum


def test_every_spec_class_has_its_record_and_every_record_its_spec():
    assert sorted(KINDS) == sorted(kind_name(cls) for cls in FORCEFIELD_SPECS)
    for name, kind in KINDS.items():
        assert kind.name == name and kind.spec in FORCEFIELD_SPECS


def test_the_heat_current_and_data_only_traits_are_the_pair_potentials_and_weights_only_files():
    assert kind_names(heat_current=True) == ["lennard_jones", "buckingham_dsf"]
    assert kind_names(data_only=True) == ["lennard_jones", "buckingham_dsf", "gnn"]


def test_a_models_weights_enter_its_task_id_whatever_the_field_is_called(tmp_path):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"\x00" * 64)
    spec = TorchSimSpec(kind="torchsim", model="mypackage.models:Model", files=["weights.pt"])
    before = forcefield_checksum(spec, base_dir=tmp_path)
    weights.write_bytes(b"\x00" * 63 + b"\x01")  # one byte
    assert forcefield_checksum(spec, base_dir=tmp_path) != before
    # no files: the same id as a spec written before the field existed
    bare = TorchSimSpec(kind="torchsim", model="mypackage.models:Model")
    assert "files" in bare.model_dump() and forcefield_checksum(bare) == forcefield_checksum(bare, base_dir=tmp_path)


def test_a_kind_that_imports_code_is_refused_before_any_import():
    spec = TorchSimSpec(kind="torchsim", model="not_a_module_anyone_has:Model")
    with pytest.raises(CodeNotAllowedError, match="torchsim force field \\(model\\)"):
        build_forcefield(spec)


def test_validate_names_a_missing_weights_file_with_its_line(tmp_path):
    from hts_mlff.spec.load import CampaignError, load_campaign

    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        textwrap.dedent(
            """\
            name: missing-weights
            store: out.zarr
            systems:
              ar: {kind: fcc, element: Ar, lattice_A: 5.3, repeat: [2, 2, 2]}
            forcefields:
              model:
                kind: torchsim
                model: mypackage.models:Model
                files: [weights.pt]
            sweep: {temperature_K: [50.0], seed: [0]}
            protocol: {timestep_fs: 5.0, production_steps: 10, sample_every_steps: 5}
            """
        )
    )
    with pytest.raises(CampaignError, match=r"c\.yaml:9: error: forcefields\.model\.files\[0\]: files not found"):
        load_campaign(campaign)
