"""Bad configurations fail before any work, naming the key."""

from __future__ import annotations

import pytest

from models.config import ConfigError
from models.registry import build_model
from tests.conftest import tiny_arch


@pytest.mark.parametrize(
    "overrides,key",
    [
        ({"pos_encodings": "foo"}, "arch.pos_encodings"),
        ({"num_heads": 3}, "arch.num_heads"),
        ({"pos_encodings": "rope2d", "board_height": 3, "board_width": 4}, "arch.board_height"),
        ({"pos_encodings": "rope2d"}, "arch.board_height"),
        ({"hidden_size": 0}, "arch.hidden_size"),
        ({"lambda_": 1.5}, "arch.lambda_"),
        ({"forward_dtype": "float64"}, "arch.forward_dtype"),
        ({"halt_exploration_prob": 2.0}, "arch.halt_exploration_prob"),
    ],
)
def test_invalid_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_model(tiny_arch(**overrides))


def test_missing_key_is_named():
    arch = tiny_arch()
    del arch["seq_len"]
    with pytest.raises(ConfigError, match=r"arch\.seq_len: Field required"):
        build_model(arch)


def test_learned_positions_are_refused_for_eqr_but_accepted_for_trm():
    with pytest.raises(ConfigError, match=r"arch\.pos_encodings"):
        build_model(tiny_arch(pos_encodings="learned"))
    head = build_model(tiny_arch("trm@TRMModel", pos_encodings="learned"))
    assert "model.inner.embed_pos.embedding_weight" in head.state_dict()


def test_extra_reference_keys_are_ignored():
    head = build_model(tiny_arch(causal=False, short_name="EqR", loss={"name": "losses@ACTLossHead"}))
    assert type(head).__name__ == "ACTLossHead"


def test_unknown_architecture_lists_known_names():
    with pytest.raises(ConfigError, match=r"arch\.name: unknown name 'foo@Bar'; known: .*eqr@EqRModel"):
        build_model(tiny_arch("foo@Bar"))
    with pytest.raises(ConfigError, match=r"arch\.loss\.name: .*losses@ACTLossHead"):
        build_model(tiny_arch(loss={"name": "losses@Nope"}))
    with pytest.raises(ValueError, match=r"arch\.loss\.loss_type"):
        build_model(tiny_arch(loss={"name": "losses@ACTLossHead", "loss_type": "mse"}))


@pytest.mark.parametrize(
    "name,cls",
    [
        ("hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1", "HRMModel"),
        ("recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1", "TRMModel"),
        ("transformer@TransformerModel", "TransformerModel"),
    ],
)
def test_upstream_aliases_resolve(name, cls):
    assert type(build_model(tiny_arch(name)).model).__name__ == cls
