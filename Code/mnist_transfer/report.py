"""The report: the numbers and facts it needs, computed from the results files, and the typst build.

The report's sentences are written in ``Code/report/report.typ``; this module hands typst
one JSON document (:func:`report_data`) of numbers, lists and yes/no facts, never English,
and typesets ``Assignment 4_Report.pdf`` with it (:func:`build_report`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typst

from . import heldout, paths, stats, sweeps
from .data import mnist_count
from .dataset_writing import HELDOUT, SPLIT_COUNTS
from .evaluation import format_accuracy
from .model import STAGES, DigitCNN, count_parameters
from .results import four_evaluations, load_all, to_json
from .tuning import RUN_KEYS, selection_cost
from .writer_study import COMPARISONS, MODELS, selection_cost_summary

# The candidates whose epoch cost notebook 00 measures, by the short names the report uses.
CANDIDATES = {"lenet5": "LeNet-5", "ours": "compact CNN (ours)", "resnet18": "ResNet-18 (28x28)"}
ACCURACY_TARGET = 0.997  # what we aimed for on MNIST test (the report says whether it was met)


def _record(record: dict) -> dict:
    keys = ("correct", "total", "accuracy", "ci_low", "ci_high")
    return {k: record[k] for k in keys}


def _mistakes(predictions: pd.DataFrame) -> list[dict]:
    """The misread images of a predictions table: true digit, predicted digit, confidence."""
    wrong = predictions[~predictions["correct"].astype(bool)]
    return [{"true": int(r.true), "pred": int(r.pred), "confidence": float(r.confidence)} for r in wrong.itertuples()]


def paired_comparison(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Two models' predictions on the same images: how many each gets right, where they differ,
    the exact McNemar p-value, and how many of ``b``'s mistakes ``a`` fixes and how many of ``b``'s
    right answers it breaks (``b`` is the reference, e.g. the pre-trained model)."""
    ok_a, ok_b = a["correct"].astype(bool).to_numpy(), b["correct"].astype(bool).to_numpy()
    test = stats.mcnemar_exact(ok_a, ok_b)
    return {"a_correct": int(ok_a.sum()), "b_correct": int(ok_b.sum()), "total": len(ok_a),
            "a_only": test["a_only"], "b_only": test["b_only"], "p_value": test["p_value"],
            "fixed": int((ok_a & ~ok_b).sum()), "broken": int((~ok_a & ok_b).sum())}


def fit_statistics(curves: list[pd.DataFrame]) -> dict:
    """How fast the tuning runs fit the 80 training images: share of runs reaching 100% training
    accuracy and the median first epoch at which they do."""
    firsts = []
    for frame in curves:
        for _, run in frame.groupby(RUN_KEYS + ["seed"]):
            hit = run.loc[run.train_acc >= 1.0, "epoch"]
            firsts.append(int(hit.min()) if len(hit) else None)
    reached = [f for f in firsts if f is not None]
    return {"runs": len(firsts), "reached": len(reached),
            "median_epoch": int(np.median(reached)) if reached else None}


def steadier(last: dict, many: dict) -> dict:
    """For each stability measure, which strategy has the lower (steadier) value: "last", "many" or
    "tie"; ``None`` for the learning-rate range when a strategy tried a single rate (no measurement)."""
    def lower(a, b):
        return "tie" if np.isclose(a, b, rtol=0, atol=1e-9) else ("last" if a < b else "many")
    out = {"seed_std": lower(last["seed_std"], many["seed_std"]),
           "roughness": lower(last["val_loss_roughness"], many["val_loss_roughness"])}
    single = len(last["lrs_tried"]) < 2 or len(many["lrs_tried"]) < 2
    out["lr_range"] = None if single else lower(last["lr_range"], many["lr_range"])
    return out


def _grid(ranking: pd.DataFrame, seeds: list, chosen: dict) -> dict:
    """A tuning grid's values, how many configurations reach 100% validation accuracy, and whether
    the chosen configuration sits at the top of the grid in learning rate and in epochs."""
    values = {key: sorted(ranking[key].unique().tolist())
              for key in ("n_last", "lr", "batch_size", "epochs", "body_lr_factor")}
    return {"configs": int(len(ranking)), "seeds": len(seeds),
            "perfect": int((ranking.val_acc_mean == 1).sum()), **values,
            "chosen_at_top": {key: chosen[key] == max(values[key]) for key in ("lr", "epochs")}}


def report_data(results: dict | None = None) -> dict:
    """Every number and fact the report states, from :func:`.results.load_all`."""
    results = results if results is not None else load_all()
    pre, base, last, many = results["pretrained"], results["baseline"], results["last"], results["many"]
    manifest = results["manifest"]
    epoch_seconds = pre.get("epoch_seconds_measured", {})
    return {
        "evaluations": [{**e, "text": format_accuracy(e)} for e in four_evaluations(results)],
        "dataset": dataset_data(manifest),
        "pretrained": {
            **_record(base["mnist_test"]), "text": format_accuracy(base["mnist_test"]),
            "epochs": pre["epochs"], "seconds": round(pre["train_seconds"]), "seed": pre["seed"],
            "batch_size": pre["batch_size"], "max_lr": pre["max_lr"], "threads": pre["threads"],
            "device": pre["device"], "params": count_parameters(DigitCNN(widths=tuple(pre["widths"]))),
            "features": pre["widths"][-1], "mnist_train_images": mnist_count("train"),
            "epoch_seconds": {short: epoch_seconds.get(key) for short, key in CANDIDATES.items()},
            "target": ACCURACY_TARGET, "meets_target": pre["test_accuracy"] >= ACCURACY_TARGET,
            "stages": list(STAGES),
        },
        "baseline_val": _record(base["own_val"]),
        "baseline_mistakes": _mistakes(base["predictions"]),
        "mistakes": {"last": _mistakes(last["predictions"]), "many": _mistakes(many["predictions"])},
        "grids": {"last": _grid(last["ranking"], last["seeds"], last["chosen"]),
                  "many": _grid(many["ranking"], many["seeds"], many["chosen"])},
        "chosen": {"last": last["chosen"], "many": many["chosen"]},
        "stability": {"last": last["stability"], "many": many["stability"]},
        "steadier": steadier(last["stability"], many["stability"]),
        "comparisons": {
            "last_vs_pre": paired_comparison(last["predictions"], base["predictions"]),
            "many_vs_pre": paired_comparison(many["predictions"], base["predictions"]),
            "many_vs_last": paired_comparison(many["predictions"], last["predictions"]),
        },
        "fit": fit_statistics([last["curves"], many["curves"]]),
        "heldout": heldout_data(results),
        "after_selection": {key: selection_cost(results[key]["after_selection"]) for key in ("last", "many")
                            if "after_selection" in results[key]} or None,
        "study": study_data(results.get("study")),
        "sweep": sweep_data(results.get("sweep")),
        "forgetting": forgetting_data(results),
        "sample": sample_data(manifest),
    }


def _sheet_names(manifest: pd.DataFrame) -> pd.Series:
    """Each image's sheet (empty for a folder of cut digits); a manifest older than the ``sheet`` column names
    the sheet by its file's stem."""
    if "sheet" in manifest.columns:
        return manifest["sheet"].fillna("").astype(str)
    return manifest.source.map(lambda s: Path(s).stem.replace(" ", "_"))


def sheets_data(manifest: pd.DataFrame) -> list[dict]:
    """The sheets the digits were cut from, each with its file, its rows x columns and whether a row holds one
    digit (``row_is_digit``) or a sequence of digits; the annotated figure notebook 01 saved for it."""
    names = _sheet_names(manifest)
    found = sorted(n for n in names.unique() if n)
    out = []
    for name in found:
        rows = manifest[names == name]
        one_label_per_row = bool((rows.groupby("row").label.nunique() == 1).all())
        out.append({"name": name, "file": str(rows.source.iloc[0]), "rows": int(rows.row.max()),
                    "cols": int(rows.col.max()), "row_is_digit": one_label_per_row and rows.row.max() > 1,
                    "figure": "dataset_annotated_sheet.png" if len(found) == 1 else f"dataset_annotated_sheet_{name}.png"})
    return out


def dataset_data(manifest: pd.DataFrame) -> dict:
    """What the student gave and how it was split: the number of images, ``origin`` ("sheets" or "folder"),
    the sheets (:func:`sheets_data`), images per split, the split per digit (8/2/2 unless chosen otherwise) and
    the held-out extras (copies beyond the split; 0 when every digit has exactly as many as the split takes)."""
    sheets = sheets_data(manifest)
    per_split = {s: int((manifest.split == s).sum()) for s in ("train", "val", "test", HELDOUT)}
    per_digit = manifest.groupby("label").size()
    extras = manifest[manifest.split == HELDOUT].groupby("label").size().reindex(range(10), fill_value=0)
    split = [per_split[s] // 10 for s in SPLIT_COUNTS]
    return {
        "images": int(len(manifest)), "origin": "sheets" if sheets else "folder", "sheets": sheets,
        "per_split": per_split, "split": split, "default_split": split == list(SPLIT_COUNTS.values()),
        "per_digit_min": int(per_digit.min()), "per_digit_max": int(per_digit.max()),
        "heldout": per_split[HELDOUT], "heldout_min": int(extras.min()), "heldout_max": int(extras.max()),
    }


def sample_data(manifest: pd.DataFrame) -> dict | None:
    """Whether the dataset was cut from the shipped sample sheet, and whose handwriting that is
    (``writer`` is ``None`` for a synthetic font sheet); ``None`` for a student's own sheets."""
    if set(manifest.source) != {heldout.SAMPLE_SHEET.name}:
        return None
    found = heldout.sample_writer()
    return {"writer": found[0] if found else None, "on_sheet": len(found[1]) if found else int(len(manifest))}


SHORT = dict(zip(MODELS, ("pre", "last", "many")))  # the study's model names -> the report's keys


def _gain(gain: dict) -> dict:
    worse = sorted(w for w, v in gain["per_writer"].items() if v < 0)
    largest = max(gain["per_writer"], key=lambda w: gain["per_writer"][w])
    return {**{k: gain[k] for k in ("mean", "ci_low", "ci_high", "better", "worse", "equal")}, "worse_writers": worse,
            "sign_p": stats.sign_test(gain["better"], gain["worse"]), "median": float(np.median(list(gain["per_writer"].values()))),
            "largest_writer": largest, "largest": gain["per_writer"][largest]}


def study_data(study: dict | None) -> dict | None:
    """The writer study (notebook 05) in numbers: accuracies and paired gains with their intervals
    across writers on held-out digits and on the 20-image tests, spread over split seeds, the
    writers the pre-trained model reads perfectly or worst, and what selection on 20 images cost."""
    if not study or "summary" not in study:
        return None
    summary, table, writers = study["summary"], study["study"], study["writers"]

    def part(name: str) -> dict:
        s = summary[name]
        return {"accuracy": {SHORT[m]: s["accuracy"][m] for m in MODELS},
                "gains": {f"{SHORT[a]}_vs_{SHORT[b]}": _gain(s["gains"][f"{a} - {b}"]) for a, b in COMPARISONS},
                "seed_std": {SHORT[m]: s["seed_std"][m] for m in MODELS}}

    sizes = table[table.model == MODELS[0]].groupby("writer").heldout_total.first()
    worst = writers.loc[writers.accuracy.idxmin()]
    selection = selection_cost_summary(study["selection"]) if "selection" in study else pd.DataFrame()
    return {
        "writers": summary["heldout"]["writers"], "bundled": int(len(writers)),
        "split_seeds": summary["heldout"]["split_seeds"],
        "grids": {SHORT[k]: v for k, v in (summary.get("grids") or {}).items()},
        "heldout_min": int(sizes.min()), "heldout_max": int(sizes.max()),
        "heldout": part("heldout"), "own_test": part("own_test"),
        "mnist": part("mnist") if "mnist" in summary else None,  # each final model on the MNIST test images
        "mnist_images": int(table.mnist_total.max()) if "mnist_total" in table else None,
        "perfect_writers": sorted(writers.loc[writers.perfect.astype(bool), "writer"]),
        "worst_writer": {"writer": worst.writer, "correct": int(worst.correct), "digits": int(worst.digits),
                         "accuracy": float(worst.accuracy), "worst_digit": int(worst.worst_digit),
                         "worst_digit_recall": float(worst.worst_digit_recall)},
        "selection": {SHORT[r["strategy"]]: {k: r[k] for k in ("writer", "configurations", "tied_on_val", "cost",
                                                              "chosen_heldout_acc_mean", "best_heldout_acc_mean",
                                                              "tied_heldout_min", "tied_heldout_max")}
                      for r in selection.to_dict("records")},
    }


def sweep_data(sweep: dict | None) -> dict | None:
    """The learning-rate and depth sweeps of notebook 05 in numbers (None before they ran): per depth its stable
    range of rates and its worst rate, the held-out and MNIST accuracy at its rate chosen on validation."""
    if not sweep:
        return None
    summary, runs = sweep["summary"], sweep["runs"]
    table = sweeps.lr_table(runs)
    top = table[table.lr == table.lr.max()].set_index("n_last")
    widths = sweeps.writer_ranges(runs).pivot(index="writer", columns="n_last", values="decades")
    return {"writers": len(summary["sweep"]["writers"]), "seeds": len(summary["sweep"]["seeds"]),
            "lrs": summary["sweep"]["lrs"], "runs": summary["runs"], "seconds": summary["seconds"],
            "mnist_images": sweeps.MNIST_IMAGES, "within": summary["within"],
            "heldout_min": int(runs.heldout_total.min()), "heldout_max": int(runs.heldout_total.max()),
            "ranges": {str(r["n_last"]): r for r in summary["stable_ranges"]},
            "depth": {str(r["n_last"]): r for r in sweeps.depth_table(runs).to_dict("records")},
            "range_spread": {str(r["n_last"]): r for r in sweeps.range_spread(runs).to_dict("records")},
            "wider_than_last": {str(n): {"wider": int((widths[n] > widths[1] + 1e-9).sum()),
                                         "narrower": int((widths[n] < widths[1] - 1e-9).sum()),
                                         "same": int(((widths[n] - widths[1]).abs() <= 1e-9).sum())}
                                for n in widths.columns if n != 1},
            "at_top": {str(n): float(top.loc[n, "heldout_acc"]) for n in top.index},
            "mnist_at": {f"{r['n_last']}@{r['lr']:g}": float(r["mnist_acc"]) for r in table.to_dict("records")},
            "late_range": {f"{r['n_last']}@{r['lr']:g}": float(r["late_range"])
                           for r in sweeps.oscillation(runs).to_dict("records")}}


def forgetting_data(results: dict) -> dict:
    """The MNIST test accuracy of the pre-trained model and of this dataset's two final models (None where a
    results file predates the measurement)."""
    records = {"pre": results["baseline"]["mnist_test"], "last": results["last"].get("mnist_test"),
               "many": results["many"].get("mnist_test")}
    return {key: None if r is None else {**_record(r), "text": format_accuracy(r)} for key, r in records.items()}


def heldout_data(results: dict) -> dict | None:
    """The three final models on the held-out digits (``whose``: "own", the student's extras, or "sample", the
    sample writer's other digits), with paired comparisons (``None`` when the dataset has no held-out digits)."""
    base, last, many = results["baseline"], results["last"], results["many"]
    if not base.get("heldout"):
        return None
    pred = {"pre": base["heldout_predictions"], "last": last["heldout_predictions"],
            "many": many["heldout_predictions"]}
    return {
        "writer": base["heldout"].get("writer"), "whose": base["heldout"].get("whose", "sample"),
        **{key: {**_record(record), "text": format_accuracy(record)}
           for key, record in (("pre", base["heldout"]), ("last", last["heldout"]), ("many", many["heldout"]))},
        "comparisons": {
            "last_vs_pre": paired_comparison(pred["last"], pred["pre"]),
            "many_vs_pre": paired_comparison(pred["many"], pred["pre"]),
            "many_vs_last": paired_comparison(pred["many"], pred["last"]),
        },
    }


def build_report(pdf: Path = paths.REPORT_PDF, results: dict | None = None,
                 source: Path = paths.REPORT_DIR / "report.typ",
                 data_file: Path = paths.REPORT_DIR / "report_data.json") -> Path:
    """Typeset ``Assignment 4_Report.pdf`` from ``report.typ`` and :func:`report_data`.

    The numbers reach typst as one JSON document (``sys.inputs.data``); a copy is kept in
    ``data_file`` so a reader can see exactly what the report was built from.
    """
    payload = to_json(report_data(results))
    Path(data_file).write_text(payload + "\n", encoding="utf-8")
    typst.compile(str(source), output=str(pdf), root=str(paths.CODE_DIR),
                  ignore_system_fonts=True, sys_inputs={"data": payload})
    return pdf
