"""Score saved model outputs on an ARC dataset offline, exactly as the ARC evaluator scores an evaluation.

    python scripts/arc_score.py DATA_DIR OUTPUTS [--prefix P] [--round2 OUTPUTS2] [--round2-prefix P2]
        [--aggregated-voting] [--submission-k 2] [--batch-size 16] [--out DIR]

OUTPUTS is either a directory holding inputs.npy, puzzle_identifiers.npy, {P}preds.npy and
{P}q_halt_logits.npy (one row each, blank padding rows allowed; the prefix names another evaluation's
predictions of the same rows, e.g. `--prefix round2_` in tests/fixtures/arc/eval), or evaluate.py's
`<record stem>_outputs.pt` (run with save_outputs=[inputs,puzzle_identifiers,preds,q_halt_logits]).
--round2 scores a second evaluation after the first with the same evaluator, as TRM's training loop does
at its next evaluation; it needs --aggregated-voting (the second keeps the first's votes, TRM's
default), since with fresh voting round 2 is scored alone: pass it as OUTPUTS instead. The fixture's
two rounds: `DATA_DIR DIR --round2 DIR --round2-prefix round2_ --aggregated-voting`.

Rows go to the evaluator in batches of --batch-size (the result does not depend on it). Prints one
`name value` line per metric and writes metrics.json and submission.json (the ARC Prize format) to --out
(default OUTPUTS/arc_score, or <stem>_arc_score beside a .pt file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset import task_evaluator  # noqa: E402
from dataset.arc import evaluator as arc_evaluator  # noqa: E402
from dataset.arc import grid as arc_grid  # noqa: E402
from evaluation import USER_ERRORS  # noqa: E402
from utils import atomic, cli, safe_load  # noqa: E402

FIELDS = arc_evaluator.ArcEvaluator.fields
PREFIXED = ("preds", "q_halt_logits")  # one evaluation's model outputs; inputs and identifiers are the data's
TOKEN_FIELDS = ("inputs", "preds")


class OutputsError(ValueError):
    """A saved-outputs file is missing or malformed; the message names the file."""


def _read_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise OutputsError(f"{path}: missing file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise OutputsError(f"{path}: not a readable .npy file ({' '.join(str(err).split())})") from None


def _read_pt(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    saved = safe_load.safe_torch_load(path)
    if not isinstance(saved, dict):
        raise OutputsError(f"{path}: expected evaluate.py's saved outputs (a dict of tensors)")
    out = {}
    for field in FIELDS:
        value = saved.get(field)
        if not isinstance(value, torch.Tensor):
            raise OutputsError(f"{path}: no {field} tensor (evaluate with save_outputs=[{','.join(FIELDS)}])")
        value = value.to(torch.float64) if value.is_floating_point() else value
        out[field] = (f"{path}: {field}", value.numpy())
    return out


def load_outputs(source: Path, prefix: str) -> dict[str, tuple[str, np.ndarray]]:
    """Each field's array and where it came from (the name an error gives)."""
    if source.suffix == ".pt":
        if prefix:
            raise OutputsError(f"{source}: --prefix applies to a directory of .npy files, not a .pt file")
        return _read_pt(source)
    if not source.is_dir():
        raise OutputsError(f"{source}: no such directory of outputs (or evaluate.py's _outputs.pt file)")
    paths = {f: source / f"{prefix if f in PREFIXED else ''}{f}.npy" for f in FIELDS}
    return {f: (str(path), _read_npy(path)) for f, path in paths.items()}


def check_rows(arrays: dict[str, tuple[str, np.ndarray]], num_identifiers: int, names_path: Path) -> None:
    """Token fields [N, 900] of integers, identifiers and q logits [N], every identifier named."""
    where = {f: name for f, (name, _) in arrays.items()}
    rows = {f: a for f, (_, a) in arrays.items()}
    for field in TOKEN_FIELDS:
        array = rows[field]
        if array.ndim != 2 or array.shape[1] != arc_grid.SEQ_LEN or array.dtype.kind not in "iu":
            raise OutputsError(f"{where[field]}: expected integer token ids of shape [N, {arc_grid.SEQ_LEN}], "
                               f"got {array.dtype} {array.shape}")
    for field, kinds in (("puzzle_identifiers", "iu"), ("q_halt_logits", "iuf")):
        if rows[field].ndim != 1 or rows[field].dtype.kind not in kinds:
            raise OutputsError(f"{where[field]}: expected one {'integer' if kinds == 'iu' else 'number'} per row, "
                               f"got {rows[field].dtype} {rows[field].shape}")
    count = len(rows["inputs"])
    for field in FIELDS:
        if len(rows[field]) != count:
            raise OutputsError(f"{where[field]}: {len(rows[field])} rows, but {where['inputs']} has {count}")
    ids = rows["puzzle_identifiers"]
    outside = np.flatnonzero((ids < 0) | (ids >= num_identifiers))
    if outside.size:
        row = int(outside[0])
        raise OutputsError(f"{where['puzzle_identifiers']}: identifier {int(ids[row])} at row {row} is outside "
                           f"{names_path} ({num_identifiers} names)")


def score(evaluator: arc_evaluator.ArcEvaluator, rounds: list[dict[str, np.ndarray]],
          batch_size: int) -> task_evaluator.TaskResult:
    """Each round is one evaluation (begin, then its rows in batches); the last one's result."""
    for rows in rounds:
        evaluator.begin()
        for start in range(0, len(rows["inputs"]), batch_size):
            evaluator.update({f: a[start:start + batch_size] for f, a in rows.items()})
    result = evaluator.result()
    assert result is not None  # one process is rank 0
    return result


def write_result(result: task_evaluator.TaskResult, out: Path) -> list[Path]:
    files = {"metrics.json": result.metrics, **result.files}
    written = []
    for name, content in files.items():
        with atomic.atomic_file(out / name, "w") as handle:
            json.dump(content, handle, indent=1 if name == "metrics.json" else None)
        written.append(out / name)
    return written


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the ARC dataset (identifiers.json, test_puzzles.json, test/)")
    parser.add_argument("outputs", type=Path, help="a directory of .npy outputs or evaluate.py's _outputs.pt")
    parser.add_argument("--prefix", default="", metavar="P", help="read OUTPUTS' {P}preds.npy and {P}q_halt_logits.npy")
    parser.add_argument("--round2", type=Path, metavar="OUTPUTS2",
                        help="a second evaluation's outputs, scored after the first")
    parser.add_argument("--round2-prefix", default="", metavar="P2", help="--prefix for --round2")
    parser.add_argument("--aggregated-voting", action="store_true",
                        help="keep earlier evaluations' votes (TRM's default); needed by --round2")
    parser.add_argument("--submission-k", type=positive_int, default=2, help="attempts per test input")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="rows per update")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (default OUTPUTS/arc_score)")
    cli.add_debug_option(parser)
    return parser


def _default_out(outputs: Path) -> Path:
    return outputs.with_name(f"{outputs.stem}_arc_score") if outputs.suffix == ".pt" else outputs / "arc_score"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cli.setup_logging(args.debug)

    def work() -> None:
        if args.round2 is not None and not args.aggregated_voting:
            raise OutputsError("--round2: without --aggregated-voting round 2 is scored alone; "
                               "give it as OUTPUTS (with --prefix) instead")
        evaluator = arc_evaluator.ArcEvaluator(args.data_dir, submission_k=args.submission_k,
                                               aggregated_voting=args.aggregated_voting)
        sources = [(args.outputs, args.prefix)] + ([(args.round2, args.round2_prefix)] if args.round2 else [])
        rounds = []
        for source, prefix in sources:
            arrays = load_outputs(source, prefix)
            check_rows(arrays, evaluator.num_identifiers, evaluator.names_path)
            rounds.append({f: a for f, (_, a) in arrays.items()})
        result = score(evaluator, rounds, args.batch_size)
        for name, value in result.metrics.items():
            print(f"{name} {value}")
        out = args.out or _default_out(args.outputs)
        written = write_result(result, out)
        print(f"wrote {', '.join(p.name for p in written)} to {out}")

    return cli.run_main(work, errors=(*USER_ERRORS, OutputsError), debug=args.debug, describe=cli.plain_error_line)


if __name__ == "__main__":
    sys.exit(main())
