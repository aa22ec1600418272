"""W&B mode resolution: never a login prompt; offline runs write locally."""

from __future__ import annotations

import pytest

from training.tracking import Tracker, resolve_wandb_mode
from utils.validation import ConfigError


def test_default_mode_follows_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert resolve_wandb_mode(None) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode(None) == "online"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "y" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.delenv("WANDB_API_KEY")
    assert resolve_wandb_mode(None) == "online"
    assert resolve_wandb_mode("disabled") == "disabled"


def test_offline_run_logs_to_disk_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    tracker = Tracker({"lr": 1e-4}, project="EqR", name="t", entity=None, mode=None, directory=str(tmp_path / "run"),
                      enabled=True)
    assert tracker.mode == "offline" and tracker.run_id
    tracker.log({"train/lm_loss": 1.0}, step=1)
    tracker.finish()
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_disabled_and_non_main_ranks_log_nothing(tmp_path):
    for kwargs in ({"mode": "disabled", "enabled": True}, {"mode": "offline", "enabled": False}):
        tracker = Tracker({}, project="EqR", name="t", entity=None, directory=str(tmp_path), **kwargs)
        assert tracker.run is None and tracker.run_id is None
        tracker.log({"x": 1.0}, step=1)
        tracker.finish()


def test_wandb_mode_environment_is_honoured(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    for env, mode in (("disabled", "disabled"), ("offline", "offline"), ("dryrun", "offline"), ("online", "online")):
        monkeypatch.setenv("WANDB_MODE", env)
        assert resolve_wandb_mode(None) == mode
    assert resolve_wandb_mode("offline") == "offline"  # an explicit wandb_mode wins
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ConfigError, match="WANDB_MODE: 'sometimes'"):
        resolve_wandb_mode(None)
