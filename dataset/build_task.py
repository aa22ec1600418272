"""Build a dataset of any registered task from its generator (dataset/tasks.py, `Task.generate`).

    python -m dataset.build_task --task NAME --output-dir DIR [--train-samples N] [--test-samples N]

Sudoku and mazes have builders of their own (source CSVs, path-length control); this one serves
every task that only needs `generate(count, rng) -> (inputs, labels)`: one example per puzzle,
one puzzle per group, written atomically with the task recorded in dataset.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.format import SplitArrays, TokenConventions, write_identifiers, write_split  # noqa: E402
from dataset.tasks import TASKS, get_task  # noqa: E402
from utils import cli, plugins  # noqa: E402
from utils.atomic import atomic_output_dir, check_target  # noqa: E402
from utils.validation import ConfigError  # noqa: E402


def build_task_dataset(task_name: str, output_dir: Path | str, train_samples: int, test_samples: int,
                       seed: int = 0, overwrite: bool = False) -> Path:
    """Generate both splits of `task_name` and write the dataset; returns the output directory."""
    task = get_task(task_name)
    if task.generate is None:
        raise ConfigError(f"--task {task_name}: the task has no generator; it has a builder of its own")
    output_dir = Path(output_dir)
    check_target(output_dir, overwrite)
    rng = np.random.default_rng(seed)
    with atomic_output_dir(output_dir, overwrite) as tmp:
        for split, count in (("train", train_samples), ("test", test_samples)):
            inputs, labels = task.generate(count, rng)
            write_split(tmp / split, SplitArrays.one_example_per_puzzle(inputs, labels), vocab_size=task.vocab_size,
                        task=task.name, ids=TokenConventions(ignore_label_id=task.ignore_label_id))
        write_identifiers(tmp)
    print(f"wrote {output_dir}: {task.name}, train {train_samples}, test {test_samples}")
    return output_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help=f"registered: {', '.join(sorted(TASKS))}")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--train-samples", type=int, default=1000)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    cli.add_debug_option(parser)
    args = plugins.parse_arguments(parser, argv)

    def work() -> None:
        plugins.import_plugin_arguments(args.plugin_arguments)
        build_task_dataset(args.task, args.output_dir, args.train_samples, args.test_samples, args.seed,
                           args.overwrite)

    return cli.run_main(work, errors=(ConfigError, FileExistsError, ValueError), debug=args.debug,
                        describe=cli.plain_error_line)


if __name__ == "__main__":
    sys.exit(main())
