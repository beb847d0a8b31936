"""Run the study over every writer (default grids, or the notebooks' with --full); print JSON.

    .venv/bin/python Code/scripts/run_writer_study.py [--full] [--split-seeds 0 1 2] [--writers W01 W05]
        [--selection-writer W01] [--save [FOLDER]]

Prints the wall time, the grids, the per-writer held-out accuracies and the summary (gains with
95% t-intervals across writers, on held-out digits and on the 20-image own test). ``--save`` writes
the tables under Code/results/ (or a folder given) (as notebook 05 does); without it nothing is written.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_transfer import paths, writer_study  # noqa: E402


def _per_writer_json(study) -> dict:
    """``{model: {writer: {"mean", "min", "max", "std"}}}`` of the held-out accuracies."""
    table = writer_study.per_writer(study).round(4)
    return {m: {w: table[m].loc[w].to_dict() for w in table.index} for m in writer_study.MODELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the grids of notebooks 03 and 04")
    parser.add_argument("--split-seeds", type=int, nargs="+", default=list(writer_study.SPLIT_SEEDS))
    parser.add_argument("--writers", nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--selection-writer", default=None, help="also run the selection-cost table for this writer")
    parser.add_argument("--save", nargs="?", const=str(paths.RESULTS_DIR), default=None, metavar="FOLDER",
                        help="write the tables under FOLDER (default Code/results/)")
    args = parser.parse_args()
    grids = writer_study.FULL_GRIDS if args.full else writer_study.DEFAULT_GRIDS
    start = time.perf_counter()
    outputs = writer_study.run_study(writers=args.writers, split_seeds=args.split_seeds, grids=grids,
                                     threads=args.threads)
    report = {"wall_seconds": round(time.perf_counter() - start, 1), "torch_threads_available": torch.get_num_threads(),
              "grids": {k: asdict(g) for k, g in grids.items()}, "split_seeds": args.split_seeds,
              "study_seconds": outputs["seconds"], "per_writer_heldout": _per_writer_json(outputs["study"]),
              "summary": writer_study.study_summary(outputs["study"])}
    if args.selection_writer:
        start = time.perf_counter()
        outputs["selection"] = writer_study.selection_cost(args.selection_writer, args.split_seeds[0], grids=grids,
                                                           threads=args.threads)
        report["selection_seconds"] = round(time.perf_counter() - start, 1)
        report["selection"] = writer_study.selection_cost_summary(outputs["selection"]).to_dict("records")
    if args.save:
        report["written"] = {k: str(v) for k, v in writer_study.save_study(outputs, Path(args.save)).items()}
    print(json.dumps(report, indent=1, default=writer_study._json_default))


if __name__ == "__main__":
    main()
