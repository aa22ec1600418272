"""The study's recipes (config/train/*_study.yaml): one budget, the paper's training conditions, the arms'
differences and nothing else."""

from __future__ import annotations

import pytest

from config.compose import compose_pretrain_config

ARMS = ["eqr", "trm", "transformer", "eqr_ri", "eqr_ni"]
BUDGET = {"global_batch_size": 64, "max_steps": 3000, "lr": 1.0e-3, "lr_warmup_steps": 100, "weight_decay": 0.1,
          "ema": True, "ema_rate": 0.99, "seed": 0}


def _config(arm: str):
    return compose_pretrain_config(f"train/{arm}_study", [])


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_has_the_same_budget_and_data(arm):
    config = _config(arm)
    assert {key: getattr(config, key) for key in BUDGET} == BUDGET
    assert config.dataset.data_path == "data/sudoku-rounds"
    arch = config.arch
    assert (arch["hidden_size"], arch["mlp_t"], arch["pos_encodings"], arch["forward_dtype"]) == (64, True, "none",
                                                                                                "float32")


@pytest.mark.parametrize("arm", ["eqr", "trm", "eqr_ri", "eqr_ni"])
def test_recurrent_arms_train_sixteen_segments_with_the_act_head(arm):
    arch = _config(arm).arch
    assert arch["halt_max_steps"] == 16 and arch["halt_exploration_prob"] == 0.1
    assert (arch["H_cycles"], arch["L_cycles"], arch["L_layers"]) == (1, 2, 1)  # limited capacity per segment
    assert arch["loss"]["name"] == "losses@ACTLossHead"


def test_arms_differ_only_in_their_mechanism():
    eqr, ri, ni, trm = (_config(a).arch for a in ("eqr", "eqr_ri", "eqr_ni", "trm"))
    assert eqr["name"] == ri["name"] == ni["name"] == "eqr@EqRModel" and trm["name"] == "trm@TRMModel"
    # EqR: the paper's RI (sigma_H 1, sigma_L 8) and NI (lambda 0.95, beta 0.01)
    assert (eqr["H_init_std"], eqr["L_init_std"], eqr["lambda_"], eqr["noise_scale"]) == (1.0, 8.0, 0.95, 0.01)
    assert (ri["H_init_std"], ri["L_init_std"], ri["lambda_"], ri["noise_scale"]) == (1.0, 8.0, 1.0, 0.0)
    assert (ni["H_init_std"], ni["L_init_std"], ni["lambda_"], ni["noise_scale"]) == (0.0, 0.0, 0.95, 0.01)
    assert {k: v for k, v in eqr.items() if k not in ("H_init_std", "L_init_std", "lambda_", "noise_scale")} == \
        {k: v for k, v in ri.items() if k not in ("H_init_std", "L_init_std", "lambda_", "noise_scale")}
    shared = ("hidden_size", "num_heads", "expansion", "H_cycles", "L_cycles", "L_layers", "halt_max_steps",
              "halt_exploration_prob", "loss")
    assert {k: trm[k] for k in shared} == {k: eqr[k] for k in shared}


def test_feedforward_arm_is_one_pass_of_distinct_blocks():
    arch = _config("transformer").arch
    assert arch["name"] == "transformer@TransformerModel"
    assert arch["halt_max_steps"] == 1 and arch["L_layers"] == 3  # a recurrent segment's 3 block applications
