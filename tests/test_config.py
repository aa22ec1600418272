"""Bad configurations fail before any work, naming the key."""

from __future__ import annotations

import logging

import pytest

from config.schema import load_pretrain_config
from models.config import ConfigError
from models.registry import REFERENCE_ONLY_ARCH_KEYS, build_model
from tests.conftest import FIXTURES, tiny_arch
from utils.safe_load import safe_torch_load


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


# ---------------------------------------------------------------- the training config


def test_reference_trainer_config_loads_with_ignored_key_warnings(caplog):
    raw = safe_torch_load(FIXTURES / "ref_trainer_sudoku.pth")["config"]
    with caplog.at_level(logging.WARNING):
        config = load_pretrain_config(raw)
    assert config.arch["hidden_size"] == 32 and config.global_batch_size == 8
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "ignoring keys only the reference's trainer uses" in warnings[0]
    for key in ("train_epochs_per_iter", "target_q_update_every", "heavy_metrics_log_interval", "retain_graph"):
        assert key in warnings[0]


@pytest.mark.parametrize(("change", "message"), [
    ({"arch": {"hiden_size": 64}}, "arch.hiden_size: unknown key for eqr@EqRModel; did you mean hidden_size?"),
    ({"arch": {"noise_scale": "abc"}}, "arch.noise_scale: Input should be a valid number"),
    ({"arch": {"loss": {"name": "losses@ACTLossHead", "loss_type": "mse"}}},
     "arch.loss.loss_type: Input should be 'stablemax_cross_entropy'"),
    ({"arch": {"loss": {"nme": "x"}}}, "arch.loss.nme: unknown key; did you mean name?"),
    ({"lrr": 0.1}, "lrr: unknown key; did you mean lr?"),
    ({"dataset": {"data_pth": "x"}}, "dataset.data_pth: unknown key; did you mean data_path?"),
    ({"gradient_accumulation_steps": 2}, "gradient_accumulation_steps: 2 is not supported"),
])
def test_training_config_errors_name_the_key(change, message):
    raw = safe_torch_load(FIXTURES / "ref_trainer_sudoku.pth")["config"]
    config = {**raw, **{k: v for k, v in change.items() if k not in ("arch", "dataset")}}
    config["arch"] = {**raw["arch"], **change.get("arch", {})}
    config["dataset"] = {**raw["dataset"], **change.get("dataset", {})}
    with pytest.raises(ConfigError) as err:
        load_pretrain_config(config)
    assert message in str(err.value)


def test_trm_config_refuses_eqr_only_keys():
    raw = safe_torch_load(FIXTURES / "ref_trainer_sudoku.pth")["config"]
    arch = {**raw["arch"], "name": "trm@TRMModel"}
    with pytest.raises(ConfigError, match=r"arch\.H_init_std: unknown key for trm@TRMModel"):
        load_pretrain_config({**raw, "arch": arch})


def test_the_arch_section_keeps_the_reference_layout_and_resolves_once_with_the_dataset():
    """Read at load (keys and values), dumped as written, resolved into the class's config with the data fields;
    the checks between keys (here: heads dividing the hidden size) wait for that."""
    raw = safe_torch_load(FIXTURES / "ref_trainer_sudoku.pth")["config"]
    config = load_pretrain_config(raw)
    kept = {k: v for k, v in raw["arch"].items() if k not in REFERENCE_ONLY_ARCH_KEYS}
    assert config.model_dump()["arch"] == kept
    arch = config.arch.resolve({"seq_len": 81, "vocab_size": 11, "num_puzzle_identifiers": 1, "batch_size": 8})
    assert type(arch).__name__ == "EqRConfig" and (arch.seq_len, arch.hidden_size) == (81, 32)
    odd = load_pretrain_config({**raw, "arch": {**raw["arch"], "num_heads": 3}})
    with pytest.raises(ConfigError, match=r"arch\.num_heads: hidden_size 32 is not divisible by num_heads 3"):
        odd.arch.resolve({"seq_len": 81, "vocab_size": 11})
