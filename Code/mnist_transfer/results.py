"""The results files: every number a notebook measured, as JSON and CSV under ``Code/results/``.

Notebooks 02-04 write with :func:`save_results`, :func:`save_predictions` and
:func:`save_experiment`; the workbook and the report read back with :func:`load_all`
and nothing else, so a number in them can only come from a run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .data import dataset_fingerprint
from .sweeps import load_sweep
from .writer_study import load_study

# The two fine-tuning experiments, by the name their files carry.
EXPERIMENTS = ("finetune_last_layer", "finetune_n_layers")


class ResultsFileError(RuntimeError):
    """A results file is missing or damaged; the message names the file and the notebook that writes it."""


class MissingResultsError(ResultsFileError, FileNotFoundError):
    """A results file does not exist (yet)."""


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value)} to JSON")


def to_json(payload) -> str:
    """JSON text of ``payload`` (NumPy numbers and arrays included), as the results files are written."""
    return json.dumps(payload, indent=2, default=_json_default)


def save_results(name: str, payload: dict, results_dir: Path = paths.RESULTS_DIR,
                 manifest: Path = paths.MANIFEST) -> Path:
    """Write ``<name>.json`` with the fingerprint of the dataset it was computed on (``dataset_fingerprint``)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    payload = {**payload, "dataset_fingerprint": dataset_fingerprint(manifest)}
    path.write_text(to_json(payload) + "\n", encoding="utf-8")
    return path


class StaleResultsError(ResultsFileError):
    """A results file was computed on another dataset than the one in the split folders now."""


def check_fresh(record: dict, path: Path, manifest: Path = paths.MANIFEST) -> None:
    """Refuse a results record whose dataset fingerprint is not the current dataset's."""
    current = dataset_fingerprint(manifest)
    recorded = record.get("dataset_fingerprint")
    if recorded != current:
        was = f"dataset {recorded[:12]}" if recorded else "a dataset it does not name"
        raise StaleResultsError(
            f"{paths.shown(path)} was computed on {was}, not on the current one ({current[:12]}, from "
            f"{paths.shown(manifest)}): notebook 01 wrote a new dataset since. Run notebook "
            f"{paths.written_by(path)} again (or every notebook from 02 on, in order: "
            "`python run.py pipeline --no-retrain`).")


def _fix(path: Path) -> str:
    notebook = paths.written_by(path)
    return f"run notebook {notebook} again to write it" if notebook else "restore it from git"


def read_json(path: Path) -> dict:
    """A JSON results file; a missing, empty or damaged one is named with the notebook that writes it."""
    path = Path(path)
    if not path.is_file():
        raise MissingResultsError(f"{paths.shown(path)} is missing: {_fix(path)}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsFileError(f"{paths.shown(path)} is damaged (not valid JSON: {err}); {_fix(path)}.") from None


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV results file; a missing, empty or damaged one is named with the notebook that writes it."""
    path = Path(path)
    if not path.is_file():
        raise MissingResultsError(f"{paths.shown(path)} is missing: {_fix(path)}.")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as err:
        raise ResultsFileError(f"{paths.shown(path)} is damaged ({type(err).__name__}: {err}); {_fix(path)}.") from None


def load_results(name: str, results_dir: Path = paths.RESULTS_DIR) -> dict:
    return read_json(results_dir / f"{name}.json")


def save_predictions(name: str, frame: pd.DataFrame, results_dir: Path = paths.RESULTS_DIR) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"predictions_{name}.csv"
    frame.to_csv(path, index=False)
    return path


def load_predictions(name: str, results_dir: Path = paths.RESULTS_DIR) -> pd.DataFrame:
    return read_csv(results_dir / f"predictions_{name}.csv")


def save_experiment(name: str, runs: pd.DataFrame, curves: pd.DataFrame, ranking: pd.DataFrame, chosen,
                    final_history: list[dict], test_record: dict, test_pred: pd.DataFrame,
                    heldout: tuple[dict | None, pd.DataFrame | None] = (None, None), extra: dict | None = None,
                    results_dir: Path = paths.RESULTS_DIR) -> None:
    """Everything a fine-tuning notebook measured, as CSV and JSON under ``Code/results/``.

    ``heldout``: the final model's record and predictions on the sample writer's held-out
    digits (:func:`.heldout.evaluate`), or ``(None, None)`` when the dataset has none.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(results_dir / f"grid_runs_{name}.csv", index=False)
    curves.to_csv(results_dir / f"curves_{name}.csv", index=False)
    ranking.to_csv(results_dir / f"grid_ranking_{name}.csv", index=False)
    save_predictions(f"{name}_own_test", test_pred, results_dir)
    heldout_record, heldout_pred = heldout
    if heldout_pred is not None:
        save_predictions(f"{name}_heldout", heldout_pred, results_dir)
    save_results(name, {
        "chosen": dataclasses.asdict(chosen),
        "chosen_validation": ranking.iloc[0].to_dict(),
        "final_history": final_history,
        "own_test": test_record,
        **({"heldout": heldout_record} if heldout_record is not None else {}),
        **(extra or {}),
    }, results_dir)


def save_after_selection(name: str, table: pd.DataFrame, results_dir: Path = paths.RESULTS_DIR) -> Path:
    """Every configuration scored on the held-out digits after the choice (:func:`.tuning.score_after_selection`)."""
    path = results_dir / f"after_selection_{name}.csv"
    table.to_csv(path, index=False)
    return path


def load_experiment(name: str, results_dir: Path = paths.RESULTS_DIR) -> dict:
    """What :func:`save_experiment` wrote: the JSON's keys plus ``runs``, ``curves``, ``ranking``,
    ``predictions`` (own test) and, where the JSON records a held-out evaluation, ``heldout_predictions`` and
    ``after_selection`` (every configuration scored on it after the choice). A held-out or after-selection
    file beside a JSON without a held-out evaluation belongs to another run and is never read."""
    out = load_results(name, results_dir)
    for table in ("runs", "curves", "ranking"):
        prefix = {"runs": "grid_runs", "curves": "curves", "ranking": "grid_ranking"}[table]
        out[table] = read_csv(results_dir / f"{prefix}_{name}.csv")
    out["predictions"] = load_predictions(f"{name}_own_test", results_dir)
    if out.get("heldout"):  # only files this run's JSON says it wrote: never one left by another dataset
        out["heldout_predictions"] = load_predictions(f"{name}_heldout", results_dir)
        after = results_dir / f"after_selection_{name}.csv"
        if after.is_file():
            out["after_selection"] = read_csv(after)
    return out


def load_all(results_dir: Path = paths.RESULTS_DIR, metrics_file: Path = paths.PRETRAINED_METRICS,
             manifest: Path = paths.MANIFEST) -> dict:
    """Every results file at once: ``pretrained`` (checkpoint JSON), ``baseline`` (its own-test
    predictions under ``predictions``), ``last`` and ``many`` (:func:`load_experiment`), ``manifest``, and
    ``study``, the writer study of notebook 05 (:func:`.writer_study.load_study`; empty before it ran), and
    ``sweep``, its learning-rate and depth sweeps (:func:`.sweeps.load_sweep`; None before it ran)."""
    baseline = load_results("baseline", results_dir)
    check_fresh(baseline, results_dir / "baseline.json", manifest)
    baseline["predictions"] = load_predictions("pretrained_own_test", results_dir)
    if baseline.get("heldout"):
        baseline["heldout_predictions"] = load_predictions("pretrained_heldout", results_dir)
    experiments = {name: load_experiment(name, results_dir) for name in EXPERIMENTS}
    for name, record in experiments.items():
        check_fresh(record, results_dir / f"{name}.json", manifest)
    return {
        "pretrained": read_json(metrics_file),
        "baseline": baseline,
        "last": experiments[EXPERIMENTS[0]],
        "many": experiments[EXPERIMENTS[1]],
        "manifest": read_csv(manifest),
        "study": load_study(results_dir),
        "sweep": load_sweep(results_dir),
    }


def four_evaluations(results: dict) -> list[dict]:
    """The assignment's four accuracies (from :func:`load_all`), each with the configuration it used.

    ``config`` is ``None`` for the pre-trained model (nothing was tuned) and the chosen
    fine-tuning configuration otherwise.
    """
    base, last, many = results["baseline"], results["last"], results["many"]
    rows = [
        ("(1) pre-trained, MNIST test", base["mnist_test"], None),
        ("(2) pre-trained, own test", base["own_test"], None),
        ("(3) fine-tuned last layer, own test", last["own_test"], last["chosen"]),
        (f"(4) fine-tuned last {many['chosen']['n_last']} layers, own test", many["own_test"], many["chosen"]),
    ]
    keys = ("model", "data", "total", "correct", "accuracy", "ci_low", "ci_high")
    return [{"evaluation": name, **{k: record[k] for k in keys}, "config": config} for name, record, config in rows]
