"""Recurrence, random initialisation, noise injection, halting and the reset contract."""

from __future__ import annotations

import math

import pytest
import torch

from models.registry import build_model
from tests.conftest import ScriptedInner, latent_shape, tiny_arch


def make_batch(arch: dict, size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, arch["vocab_size"], (size, arch["seq_len"]), generator=g, dtype=torch.int32)
    return {
        "inputs": inputs,
        "labels": torch.randint(0, arch["vocab_size"], (size, arch["seq_len"]), generator=g, dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(size, dtype=torch.int32),
    }


def test_random_init_draws_are_truncated_iid_with_requested_std():
    torch.manual_seed(0)
    arch = tiny_arch(hidden_size=64, seq_len=64, H_init_std=0.5, L_init_std=1.0)
    model = build_model(arch).model
    halted = torch.ones(8, dtype=torch.bool)
    z = torch.zeros(latent_shape(model, 8))
    z_H, z_L = model.inner.reset(halted, {"z_H": z, "z_L": z}).values()
    assert z_H.std().item() == pytest.approx(0.5, rel=0.02)
    assert z_L.std().item() == pytest.approx(1.0, rel=0.02)
    assert z_L.abs().max().item() <= 2 * 1.1369 + 1e-5
    # Independent per sample, token and channel: no two rows, tokens or channels coincide,
    # and their correlation is at noise level.
    flat = z_L.reshape(8, -1)
    corr = torch.corrcoef(flat)
    assert (corr - torch.eye(8)).abs().max() < 0.05
    tokens = z_L[0]
    assert (torch.corrcoef(tokens) - torch.eye(64)).abs().max() < 0.5
    assert not torch.equal(z_L[0, 0], z_L[0, 1]) and not torch.equal(z_L[0], z_L[1])
    # z_H and z_L are drawn separately.
    assert torch.corrcoef(torch.stack([z_H.flatten(), z_L.flatten()]))[0, 1].abs() < 0.02


def test_reset_touches_only_halted_rows_and_replaces_their_data():
    arch = tiny_arch()
    model = build_model(arch).model.eval()
    first, second = make_batch(arch, seed=1), make_batch(arch, seed=2)
    carry = model.initial_carry(first)
    carry, _ = model(carry, first)
    assert torch.equal(carry.current_data["inputs"], first["inputs"])
    carry.halted = torch.tensor([True, False, True, False])
    before = carry
    after, _ = model(carry, second)
    for row in range(4):
        source = second if before.halted[row] else first
        assert torch.equal(after.current_data["inputs"][row], source["inputs"][row])
    assert after.steps.tolist() == [1, 2, 1, 2]
    # Continuing rows start from their carry: replaying them alone gives the same latents.
    latents = model.inner({k: v[1:2] for k, v in before.latents.items()},
                          {k: v[1:2] for k, v in after.current_data.items()}).latents
    torch.testing.assert_close(after.latents["z_H"][1:2], latents["z_H"])


def test_trm_reset_writes_fixed_init_vectors():
    model = build_model(tiny_arch("trm@TRMModel")).model
    z = torch.randn(latent_shape(model, 3))
    z_H, z_L = model.inner.reset(torch.tensor([True, False, True]), {"z_H": z, "z_L": z}).values()
    assert torch.equal(z_H[0, 5], model.inner.H_init) and torch.equal(z_L[2, 0], model.inner.L_init)
    assert torch.equal(z_H[1], z[1])


def test_noise_injection_on_and_off():
    arch = tiny_arch(noise_scale=0.0)
    model = build_model(arch).model.eval()
    batch = make_batch(arch)
    z = {"z_H": torch.randn(latent_shape(model, 4))}
    z["z_L"] = z["z_H"]
    a = model.inner(z, batch).latents["z_H"]
    b = model.inner(z, batch).latents["z_H"]
    assert torch.equal(a, b), "noise_scale 0 must be deterministic"
    noisy = build_model({**arch, "noise_scale": 0.01}).model.eval()
    noisy.load_state_dict(model.state_dict())
    c, d = noisy.inner(z, batch).latents["z_H"], noisy.inner(z, batch).latents["z_H"]
    assert not torch.equal(c, d)
    assert 1e-4 < (c - a).abs().mean().item() < 0.2


def test_eqr_with_lambda_one_and_no_noise_equals_trm_update():
    arch = tiny_arch(lambda_=1.0)
    eqr = build_model(arch).model.eval()
    trm = build_model({**arch, "name": "trm@TRMModel"}).model.eval()
    trm.load_state_dict({**trm.state_dict(), **eqr.state_dict()})
    batch = make_batch(arch)
    z = torch.randn(latent_shape(eqr, 4))
    z = {"z_H": z, "z_L": z}
    torch.testing.assert_close(eqr.inner(z, batch).logits, trm.inner(z, batch).logits, rtol=0, atol=0)


def test_damped_segment_matches_a_hand_unrolled_recurrence():
    """One EqR segment against SPEC's recurrence written out with an undamped TRM's blocks (same weights)."""
    lam, H, L = 0.3, 2, 3
    arch = tiny_arch(lambda_=lam, H_cycles=H, L_cycles=L)
    eqr = build_model(arch).model.eval()
    trm = build_model({k: v for k, v in arch.items() if k != "lambda_"} | {"name": "trm@TRMModel"}).model.eval()
    trm.load_state_dict(eqr.state_dict(), strict=False)
    batch = make_batch(arch)
    z_H0, z_L0 = torch.randn(latent_shape(eqr, 4)), torch.randn(latent_shape(eqr, 4))
    with torch.no_grad():
        x = trm.inner.input_embeddings(batch["inputs"], None)
        cos_sin, blocks = trm.inner.cos_sin(), trm.inner.L_level  # Blocks(h + u)
        z_H, z_L = z_H0, z_L0
        for _ in range(H):
            for _ in range(L):
                z_L = (1 - lam) * z_L + lam * blocks(z_L, z_H + x, cos_sin)
            z_H = (1 - lam) * z_H + lam * blocks(z_H, z_L, cos_sin)
        segment = eqr.inner({"z_H": z_H0, "z_L": z_L0}, batch)
        got_H, got_L, logits = segment.latents["z_H"], segment.latents["z_L"], segment.logits
    torch.testing.assert_close(got_H, z_H)
    torch.testing.assert_close(got_L, z_L)
    torch.testing.assert_close(logits, trm.inner.lm_head(z_H))
    undamped = trm.inner({"z_H": z_H0, "z_L": z_L0}, batch).latents["z_H"]
    assert not torch.allclose(got_H, undamped)  # the damping changes the answer


def test_eval_halts_only_at_max_steps():
    arch = tiny_arch(halt_max_steps=3)
    model = build_model(arch).model.eval()
    with torch.no_grad():
        model.inner.q_head.bias.fill_(10.0)  # halt signal fires everywhere
    batch = make_batch(arch)
    carry = model.initial_carry(batch)
    halted = []
    for _ in range(3):
        carry, _ = model(carry, batch)
        halted.append(carry.halted.all().item())
    assert halted == [False, False, True]


def test_training_halts_on_signal_after_exploration_minimum():
    """With the halt signal always on, a row continues at step s only if it explores this
    segment (prob p) and draws a minimum above s (min uniform in 2..max, redrawn per segment)."""
    torch.manual_seed(0)
    p, max_steps, rows = 0.5, 8, 4096
    arch = tiny_arch(halt_max_steps=max_steps, halt_exploration_prob=p, seq_len=4, hidden_size=16)
    model = build_model(arch).model.train()
    with torch.no_grad():
        model.inner.q_head.bias.fill_(10.0)
    batch = make_batch(arch, size=rows)
    carry = model.initial_carry(batch)
    running = torch.ones(rows, dtype=torch.bool)
    for step in range(1, max_steps + 1):
        carry, _ = model(carry, batch)
        survived = (running & ~carry.halted).sum().item() / running.sum().item()
        expected = p if step == 1 else p * (max_steps - step) / (max_steps - 1)
        if running.sum() > 300:  # enough rows for a +-0.04 check
            assert survived == pytest.approx(expected, abs=0.04), f"step {step}"
        running &= ~carry.halted
        carry.halted = torch.zeros_like(carry.halted)  # keep rows running to observe later halts
        if not running.any():
            break
    assert not running.any()


def test_training_without_halt_signal_runs_to_max_steps():
    arch = tiny_arch(halt_max_steps=3, halt_exploration_prob=0.0)
    model = build_model(arch).model.train()
    batch = make_batch(arch)
    carry = model.initial_carry(batch)
    history = []
    for _ in range(3):
        carry, _ = model(carry, batch)
        history.append(carry.halted.tolist())
    assert history == [[False] * 4, [False] * 4, [True] * 4]


# q_halt of row r at its segment s (since its last reset) is Q_HALT[r][s - 1]; q_continue is -q_halt.
Q_HALT = torch.tensor([[-3.0, -1.0, -2.0], [-3.0, 0.5, 2.0], [1.0, -1.5, 0.0]])


class ScriptedQ(ScriptedInner):
    """Known q values per row and segment, so the Q-learning targets can be worked out by hand."""

    def outputs(self, step, batch):
        row = batch["inputs"][:, 0].long()
        return torch.zeros(len(row), batch["inputs"].shape[1], 3), Q_HALT[row, step.long() - 1]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize("name", ["trm@TRMModel", "hrm@HRMModel"])
def test_q_learning_target_from_extra_segment(name):
    """Hand-computed targets at halt_max_steps 2: sigmoid of the next segment's max(q_halt, q_continue),
    or of its q_halt alone at the last step; row 2 halts on its signal at once and restarts."""
    model = build_model(tiny_arch(name, no_ACT_continue=False, halt_max_steps=2, H_layers=1)).model.train()
    model.inner = ScriptedQ()
    batch = {"inputs": torch.arange(3, dtype=torch.int32).view(3, 1).expand(3, 16).contiguous(),
             "labels": torch.zeros(3, 16, dtype=torch.int32), "puzzle_identifiers": torch.zeros(3, dtype=torch.int32)}
    carry, out = model(model.initial_carry(batch), batch)
    torch.testing.assert_close(out["target_q_continue"], torch.tensor([_sigmoid(1.0), _sigmoid(0.5), _sigmoid(1.5)]))
    assert carry.halted.tolist() == [False, False, True] and carry.steps.tolist() == [1, 1, 1]
    carry, out = model(carry, batch)
    torch.testing.assert_close(out["target_q_continue"], torch.tensor([_sigmoid(-2.0), _sigmoid(2.0), _sigmoid(1.5)]))
    assert carry.halted.tolist() == [True, True, True] and carry.steps.tolist() == [2, 2, 1]


def test_eqr_and_no_act_continue_emit_no_target():
    for arch in (tiny_arch(), tiny_arch("trm@TRMModel", no_ACT_continue=True)):
        model = build_model(arch).model.train()
        batch = make_batch(arch)
        _, out = model(model.initial_carry(batch), batch)
        assert "target_q_continue" not in out
        assert ("q_continue_logits" in out) == (arch["name"] == "trm@TRMModel")  # EqR reads output 0 only


@pytest.mark.parametrize("name", ["eqr@EqRModel", "trm@TRMModel", "hrm@HRMModel", "transformer@TransformerModel"])
def test_bfloat16_forward_and_backward_on_cpu(name):
    arch = tiny_arch(name, forward_dtype="bfloat16", H_layers=1)
    head = build_model(arch).train()
    batch = make_batch(arch)
    carry, loss, metrics, _, _ = head(head.initial_carry(batch), batch)
    assert carry.latents["z_H"].dtype == torch.bfloat16
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_one_step_gradient_only_reaches_last_recursion():
    """Gradients flow through the final recursion only, so no graph spans the no-grad cycles."""
    arch = tiny_arch(H_cycles=3)
    model = build_model(arch).model.train()
    batch = make_batch(arch)
    z = torch.randn(latent_shape(model, 4), requires_grad=True)
    latents, logits, _, _ = model.inner({"z_H": z, "z_L": z}, batch)
    assert not latents["z_H"].requires_grad
    logits.sum().backward()
    assert z.grad is None


def test_hrm_puzzle_embedding_positions():
    arch = tiny_arch("hrm@HRMModel", H_layers=1, puzzle_emb_ndim=40, num_puzzle_identifiers=5)
    model = build_model(arch).model
    assert latent_shape(model, 2) == (2, 16 + 2, 32)  # ceil(40 / 32) = 2 puzzle positions
    batch = make_batch(arch, size=2)
    carry, out = model(model.initial_carry(batch), batch)
    assert out["logits"].shape == (2, 16, 7)
    assert carry.latents["z_H"].shape == (2, 18, 32)
    assert model.inner.puzzle_emb.weights.abs().sum() == 0  # initialised to zero


def test_transformer_baseline_single_segment_contract():
    arch = tiny_arch("transformer@TransformerModel", L_layers=3)
    del arch["halt_max_steps"]
    model = build_model(arch).model.eval()
    assert model.config.halt_max_steps == 1
    assert len(model.inner.L_level.layers) == 3
    batch = make_batch(arch)
    carry, out = model(model.initial_carry(batch), batch)
    assert carry.halted.all() and out["logits"].shape == (4, 16, 7)


@pytest.mark.parametrize("name", ["eqr@EqRModel", "trm@TRMModel", "hrm@HRMModel", "transformer@TransformerModel"])
def test_gradient_checkpointing_recomputes_the_blocks_with_gradients(name, monkeypatch):
    """Each block call of the grad-enabled recursion runs once more in backward; the gradients are unchanged."""
    from models.blocks import ReasoningBlock

    count = [0]
    original = ReasoningBlock.forward

    def counting_forward(self, *args, **kwargs):  # calls through: counts every run, recomputations included
        count[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ReasoningBlock, "forward", counting_forward)
    arch = tiny_arch(name, L_layers=2, H_layers=1)
    grads, calls = [], []
    for enabled in (False, True):
        torch.manual_seed(0)
        head = build_model(arch)
        head.model.enable_gradient_checkpointing(enabled)
        batch = make_batch(arch)
        head.train()
        count[0] = 0
        torch.manual_seed(1)
        _, loss, *_ = head(carry=head.initial_carry(batch), batch=batch)
        forward = count[0]
        loss.backward()
        calls.append((forward, count[0] - forward))
        grads.append({n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None})
    cfg = build_model(arch).model.config
    with_grad = {"eqr@EqRModel": (cfg.L_cycles + 1) * cfg.L_layers, "trm@TRMModel": (cfg.L_cycles + 1) * cfg.L_layers,
                 "hrm@HRMModel": cfg.L_layers + cfg.H_layers, "transformer@TransformerModel": cfg.L_layers}[name]
    assert calls[0][1] == 0 and calls[1] == (calls[0][0], with_grad)
    for key, value in grads[0].items():
        torch.testing.assert_close(grads[1][key], value, rtol=1e-6, atol=1e-7)
