"""`evaluate.py` end to end on the released-layout fixture, and its one-line errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import evaluate
from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from dataset.build_sudoku_dataset import SudokuBuildConfig, build_sudoku_dataset

FIXTURES = Path(__file__).parent / "fixtures"
CKPT = FIXTURES / "release_format_sudoku.pth"
RUN = "eqr_fixtures_release_format_sudoku"  # the run label of CKPT: architecture, folder, file stem
NOISY = "eqr_noisy0_noisy_sudoku"  # the noisy copy in the module's temporary folder noisy0


@pytest.fixture(scope="module")
def sudoku(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "sudoku"
    return build_sudoku_dataset(SudokuBuildConfig(output_dir=out, source="generate", subsample_size=1,
                                                  test_subsample_size=6, num_aug=0, seed=0))


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = evaluate.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_end_to_end_release_checkpoint(sudoku, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = _run(
        capsys, f"checkpoint={CKPT}", f"dataset_data_path={sudoku}", f"output_dir={out}",
        "halt_max_steps=[1,3]", "different_init=[1,2]", "convergence_top_k=1", "global_batch_size=4", "tta=2",
    )
    assert code == 0, err
    assert f"| {RUN} | eqr@EqRModel | 3 | 2 | 2 |" in stdout
    for depth in (1, 3):
        for breadth in (1, 2):
            stem = out / f"eval_{RUN}_sudoku_D{depth}_B{breadth}_tta2_top1"
            record = json.loads(stem.with_suffix(".json").read_text())
            assert record["schema_version"] == 1
            assert record["config"]["halt_max_steps"] == depth and record["config"]["used_ema"] is True
            metrics = record["metrics"]
            assert metrics["num_puzzles"] == 6 and metrics["count"] == 6 * breadth * 2
            assert 0 <= metrics["exact_accuracy"] <= 1 and f"residual_of_{depth}_steps" in metrics
            assert "different_init/pass@1" in metrics  # 2 transforms make breadth >= 2 even at B=1
            with stem.with_suffix(".csv").open() as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == 1 and float(rows[0]["exact_accuracy"]) == metrics["exact_accuracy"]
    sweep = out / f"sweep_{RUN}_sudoku_D1-3_B1-2_tta2_top1"
    for name in ("eval_summary.md", "accuracy_vs_depth.png", "accuracy_vs_residual.png"):
        assert (sweep / name).stat().st_size > 0
    assert (sweep / "eval_summary.md").read_text() in stdout
    with (sweep / "points.csv").open() as handle:
        points = list(csv.DictReader(handle))
    assert [(p["halt_max_steps"], p["different_init"]) for p in points] == [("1", "1"), ("3", "1"), ("1", "2"),
                                                                            ("3", "2")]
    assert all(p["run"] == RUN and p["arch"] == "eqr@EqRModel" and p["dataset_name"] == "sudoku" for p in points)
    assert float(points[3]["exact_accuracy"]) == json.loads(
        (out / f"eval_{RUN}_sudoku_D3_B2_tta2_top1.json").read_text())["metrics"]["exact_accuracy"]
    one = json.loads((out / f"eval_{RUN}_sudoku_D1_B2_tta2_top1.json").read_text())
    three = json.loads((out / f"eval_{RUN}_sudoku_D3_B2_tta2_top1.json").read_text())
    assert one["config"]["pass_wall_s"] == three["config"]["pass_wall_s"]  # one pass served both depths


def test_no_ema_and_no_plots(sudoku, tmp_path, capsys):
    code, _, err = _run(capsys, f"checkpoint={CKPT}", f"dataset_data_path={sudoku}", f"output_dir={tmp_path}",
                        "halt_max_steps=2", "use_ema=false", "plots=false", "max_eval_steps=1",
                        "global_batch_size=2", "elastic=true", "elastic_tol=1e6")
    assert code == 0, err
    record = json.loads((tmp_path / f"eval_{RUN}_sudoku_D2_B1_elastic-tol1e+06_live_first1.json").read_text())
    assert record["config"]["used_ema"] is False and record["metrics"]["num_puzzles"] == 2
    assert "elastic/segments_saved" in record["metrics"]
    assert not list(tmp_path.glob("**/*.png"))
    assert not list(tmp_path.glob("*_trajectories.csv"))


def test_per_trajectory_csv(sudoku, tmp_path, capsys):
    code, _, err = _run(capsys, f"checkpoint={CKPT}", f"dataset_data_path={sudoku}", f"output_dir={tmp_path}",
                        "halt_max_steps=[1,2]", "different_init=2", "convergence_top_k=1", "global_batch_size=4",
                        "per_trajectory=true", "plots=false")
    assert code == 0, err
    for depth in (1, 2):
        metrics = json.loads((tmp_path / f"eval_{RUN}_sudoku_D{depth}_B2_top1.json").read_text())["metrics"]
        with (tmp_path / f"eval_{RUN}_sudoku_D{depth}_B2_top1_trajectories.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["rank", "puzzle", "restart", "exact", "accuracy", "final_residual",
                                 "convergence_score", "steps", "stop"]
        assert len(rows) == 12 and [r["puzzle"] for r in rows] == [str(p) for p in range(6) for _ in range(2)]
        assert sum(float(r["accuracy"]) for r in rows) / 12 == pytest.approx(metrics["accuracy"])
        assert sum(float(r["final_residual"]) for r in rows) / 12 == pytest.approx(metrics["final_residual"],
                                                                                    rel=1e-5)


REF_TRAINER = FIXTURES / "ref_trainer_sudoku.pth"
HRM_RELEASE = FIXTURES / "hrm_release_layout"


def test_end_to_end_reference_trainer_checkpoint(sudoku, tmp_path, capsys):
    """The file the reference's own trainer writes (pickled carry dataclasses) evaluates as it is."""
    code, stdout, err = _run(capsys, f"checkpoint={REF_TRAINER}", f"dataset_data_path={sudoku}",
                             f"output_dir={tmp_path}", "halt_max_steps=[1,2]", "different_init=[1,2]",
                             "convergence_top_k=1", "global_batch_size=4", "plots=false")
    assert code == 0, err
    for depth in (1, 2):
        stem = f"eval_eqr_fixtures_ref_trainer_sudoku_sudoku_D{depth}_B2_top1"
        record = json.loads((tmp_path / f"{stem}.json").read_text())
        assert record["config"]["used_ema"] is True and record["config"]["step"] == 6
        assert record["config"]["arch"] == "eqr@EqRModel" and record["metrics"]["num_puzzles"] == 6
        assert 0 <= record["metrics"]["exact_accuracy"] <= 1
    assert "| eqr_fixtures_ref_trainer_sudoku | eqr@EqRModel | 2 | 2 |" in stdout


def _hrm_release_copy(folder: Path, data_path: Path | None) -> Path:
    shutil.copytree(HRM_RELEASE, folder)
    if data_path is not None:
        config = yaml.safe_load((folder / "all_config.yaml").read_text())
        config["data_path"] = str(data_path)
        (folder / "all_config.yaml").write_text(yaml.safe_dump(config))
    return folder / "checkpoint"


def test_end_to_end_hrm_release_layout(sudoku, tmp_path, capsys):
    """A bare state dict: architecture and (without dataset_data_path) data path from all_config.yaml."""
    checkpoint = _hrm_release_copy(tmp_path / "hrm", sudoku)
    code, stdout, err = _run(capsys, f"checkpoint={checkpoint}", "halt_max_steps=2", "global_batch_size=4",
                             "plots=false")
    assert code == 0, err
    record = json.loads((tmp_path / "hrm" / "eval_hrm_checkpoint_sudoku_D2_B1.json").read_text())
    assert record["config"]["used_ema"] is False and record["config"]["dataset"] == [str(sudoku)]
    assert record["config"]["arch"] == "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1"
    assert record["metrics"]["num_puzzles"] == 6 and "q_halt_precision" in record["metrics"]
    code, _, err = _run(capsys, f"checkpoint={HRM_RELEASE / 'checkpoint'}", f"dataset_data_path={sudoku}",
                        f"output_dir={tmp_path / 'given'}", "halt_max_steps=2", "global_batch_size=4", "plots=false")
    assert code == 0, err
    given = json.loads((tmp_path / "given" / "eval_hrm_release_layout_checkpoint_sudoku_D2_B1.json").read_text())
    assert given["metrics"] == record["metrics"]


def test_hrm_release_layout_without_its_yaml_is_one_line(tmp_path, capsys):
    checkpoint = _hrm_release_copy(tmp_path / "hrm", None)
    (tmp_path / "hrm" / "all_config.yaml").unlink()
    code, _, err = _run(capsys, f"checkpoint={checkpoint}")
    assert code == 2
    assert err.strip() == (f"error: {tmp_path / 'hrm' / 'all_config.yaml'}: missing; checkpoint is a bare state dict "
                           "(HRM/TRM release layout) and takes its architecture from this file")


@pytest.fixture(scope="module")
def noisy_eqr(tmp_path_factory) -> Path:
    """The release fixture with noise injection on (noise_scale 0.05), so runs depend on the noise."""
    raw = torch.load(CKPT, weights_only=False)
    raw["config"]["arch"]["noise_scale"] = 0.05
    path = tmp_path_factory.mktemp("noisy") / "noisy.pth"
    torch.save(raw, path)
    return path


def _metrics(folder: Path, stem: str) -> dict:
    return json.loads((folder / f"{stem}.json").read_text())["metrics"]


def test_init_override_and_param_iter(sudoku, noisy_eqr, tmp_path, capsys):
    common = [f"checkpoint={noisy_eqr}", f"dataset_data_path={sudoku}", "halt_max_steps=2", "global_batch_size=4",
              "plots=false", "reference_files=false"]
    for name in ("a", "b"):
        code, _, err = _run(capsys, *common, f"output_dir={tmp_path / name}", "init_override={noise_scale: 0.0}")
        assert code == 0, err
    code, _, err = _run(capsys, *common, f"output_dir={tmp_path / 'default'}")
    assert code == 0, err
    quiet = _metrics(tmp_path / "a", f"eval_{NOISY}_D2_B1_noise_scale=0.0")
    assert quiet == _metrics(tmp_path / "b", f"eval_{NOISY}_D2_B1_noise_scale=0.0")  # bit-identical repeat
    assert quiet["residual_of_2_steps"] != _metrics(tmp_path / "default", f"eval_{NOISY}_D2_B1")["residual_of_2_steps"]
    record = json.loads((tmp_path / "a" / f"eval_{NOISY}_D2_B1_noise_scale=0.0.json").read_text())
    assert record["config"]["overrides"] == {"noise_scale": 0.0}

    code, stdout, err = _run(capsys, *common, f"output_dir={tmp_path / 'sweep'}", "init_override={noise_scale: 0.0}",
                             "param_iter={lambda_: [0.8, 0.9]}")
    assert code == 0, err
    sweep = {lam: _metrics(tmp_path / "sweep", f"eval_{NOISY}_D2_B1_lambda_={lam}_noise_scale=0.0")
             for lam in (0.8, 0.9)}
    assert sweep[0.8]["residual_of_2_steps"] != sweep[0.9]["residual_of_2_steps"]
    assert "| overrides |" in stdout and "lambda_=0.8_noise_scale=0.0" in stdout


@pytest.mark.parametrize(("option", "expected"), [
    ("init_override={hiden_size: 8}", "init_override.hiden_size: not an architecture key of eqr@EqRModel"),
    ("param_iter={seq_len: [9]}", "param_iter.seq_len: not an architecture key"),
    ("param_iter={lambda_: [0.9, 2.0]}", "arch.lambda_: Input should be less than or equal to 1"),
    ("param_iter={halt_max_steps: [4, 0]}", "param_iter: depths: every value must be >= 1"),
    ("param_iter={split: [train]}", "param_iter.split: cannot be swept"),
    ("param_iter={lamda_: [0.9]}", "param_iter.lamda_: not an architecture key of eqr@EqRModel nor an evaluation "
     "key; did you mean lambda_?"),
    ("save_outputs=[preds,embeddings]", "save_outputs.1: Input should be 'preds'"),
])
def test_override_errors_are_one_line(sudoku, tmp_path, capsys, option, expected):
    code, _, err = _run(capsys, f"checkpoint={CKPT}", f"dataset_data_path={sudoku}", f"output_dir={tmp_path}",
                        option)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("error: ", "config error: ")) and expected in lines[0], err


def test_saved_outputs_reference_files_and_progress(sudoku, tmp_path, capsys):
    fields = "preds,logits,inputs,labels,puzzle_identifiers,q_halt_logits"
    code, _, err = _run(capsys, f"checkpoint={CKPT}", f"dataset_data_path={sudoku}", f"output_dir={tmp_path}",
                        "halt_max_steps=[1,2]", "different_init=2", "global_batch_size=4", "plots=false",
                        f"save_outputs=[{fields}]", "reference_counting=both")
    assert code == 0, err
    assert "evaluating" in err and "/32" in err  # its end: 2 batches x 4 puzzles x 2 restarts x 2 segments

    stem = f"eval_{RUN}_sudoku_D{{}}_B2_refboth_batch4"
    saved = torch.load(tmp_path / f"{stem.format(2)}_outputs.pt", weights_only=True)
    assert set(saved) == set(fields.split(",")) | {"puzzle", "restart"}
    assert saved["logits"].shape == (12, 81, 11) and saved["preds"].shape == (12, 81)
    assert torch.equal(saved["preds"], saved["logits"].argmax(-1).to(saved["preds"].dtype))
    test_inputs = torch.from_numpy(np.load(sudoku / "test" / "all__inputs.npy"))
    assert torch.equal(saved["inputs"], test_inputs.repeat_interleave(2, dim=0).to(saved["inputs"].dtype))
    assert saved["puzzle"].tolist() == [i // 2 for i in range(12)] and saved["restart"].tolist() == [0, 1] * 6
    depth_one = torch.load(tmp_path / f"{stem.format(1)}_outputs.pt", weights_only=True)
    assert not torch.equal(depth_one["logits"], saved["logits"])

    record = json.loads((tmp_path / f"{stem.format(2)}.json").read_text())
    assert record["config"]["reference_counting"] == "both"
    metrics = record["metrics"]
    assert metrics["ref/different_init/total_samples"] == 8 and metrics["different_init/total_samples"] == 6
    # The reference's files hold its own counting (the ref/ values), in its layout (SPEC 5.1).
    folder = tmp_path / "eval_preds" / "step_50000_eval_halt_max_steps-2"
    with (folder / "eval_metrics_step_50000.csv").open() as handle:
        rows = list(csv.reader(handle))
    reference = {k.removeprefix("ref/"): v for k, v in metrics.items() if k.startswith("ref/")}
    assert rows[0] == ["split", "metric", "value"] and len(rows) == 1 + len(reference)
    assert {r[1] for r in rows[1:] if r[0] == "all"} == {k for k in reference if "/" not in k}
    assert {r[1] for r in rows[1:] if r[0] == "global"} == {k for k in reference if "/" in k}
    assert {(r[1], float(r[2])) for r in rows[1:]} == {(k, float(v)) for k, v in reference.items()}
    text = (folder / "eval_metrics_step_50000.json").read_text()
    as_json = json.loads(text)
    assert list(as_json) == ["config", "eval_time_sec", "metrics"] and as_json["eval_time_sec"] > 0
    assert as_json["metrics"]["all/exact_accuracy"] == metrics["ref/exact_accuracy"]
    assert as_json["metrics"]["different_init/total_samples"] == 8  # scalars keep their name
    assert as_json["config"]["different_init"] == 2 and as_json["config"]["param_iter"] == {"halt_max_steps": 2}
    assert not (folder / "eval_config.yaml").exists()


def _junk(path: Path) -> Path:
    path.write_text("not a checkpoint")
    return path


def _unknown_arch_checkpoint(path: Path) -> Path:
    ckpt = torch.load(CKPT, weights_only=False)
    ckpt["config"]["arch"]["name"] = "nope@NopeModel"
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def maze(tmp_path_factory) -> Path:
    return build_maze_dataset(MazeBuildConfig(output_dir=tmp_path_factory.mktemp("m") / "maze", grid_size=6,
                                              train_samples=1, test_samples=2, min_path_length=2,
                                              max_path_length=4))


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda d, t: [f"checkpoint={t / 'missing.pth'}"], "no such checkpoint file"),
        (lambda d, t: [f"checkpoint={_junk(t / 'junk.pth')}"], "not a PyTorch checkpoint"),
        (lambda d, t: [f"checkpoint={_unknown_arch_checkpoint(t / 'u.pth')}"], "arch.name: unknown name 'nope@"),
        (lambda d, t: [f"checkpoint={CKPT}", f"dataset_data_path={d['maze']}"], "dataset_data_path: seq_len 36"),
        (lambda d, t: [f"checkpoint={CKPT}", "halt_max_steps=[0,4]"], "halt_max_steps: every value must be >= 1"),
        (lambda d, t: [f"checkpoint={CKPT}", "different_init=2", "convergence_top_k=3"], "convergence_top_k: 3"),
        (lambda d, t: [f"checkpoint={CKPT}", "bogus=1"], "bogus: unknown key"),
        (lambda d, t: [f"checkpoint={CKPT}", "depth=2"], "depth: unknown key; did you mean depths?"),
        (lambda d, t: [f"checkpoint={CKPT}", "halt_max_steps"], "halt_max_steps: expected key=value"),
        (lambda d, t: [], "checkpoint: missing"),
    ],
)
def test_bad_input_gives_one_line(make_args, expected, sudoku, maze, tmp_path, capsys):
    args = make_args({"sudoku": sudoku, "maze": maze}, tmp_path)
    code, _, err = _run(capsys, *args, f"output_dir={tmp_path}")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("error: ", "config error: ")) and expected in lines[0], err
