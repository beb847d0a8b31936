"""``Assignment 4 Results.xlsx``: the four required accuracies first, then the evidence behind them.

Built from :func:`.results.load_all` only (openpyxl through pandas), so every cell comes from a run.
The workbook records a fingerprint of what it wrote; a workbook a person has changed since (a sheet or a
comment added, a cell edited) is moved to ``Code/backups/`` before a new one replaces it, never lost.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
from openpyxl.packaging.custom import StringProperty
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from . import paths, sweeps
from .evaluation import per_class_table
from .results import four_evaluations, load_all
from .writer_study import gains_table, selection_cost_summary, shown_columns

RESULTS_COLUMNS = {
    "evaluation": "Evaluation", "model": "Model", "data": "Evaluated on", "total": "Images", "correct": "Correct",
    "accuracy": "Accuracy", "ci_low": "95% CI low (Wilson)", "ci_high": "95% CI high (Wilson)",
    "config": "Hyperparameters (chosen on validation)",
}
PERCENT_COLUMNS = {"Accuracy", "95% CI low (Wilson)", "95% CI high (Wilson)", "val_acc_mean", "val_acc_std",
                   "val_acc_min", "val_acc_max", "accuracy", "ci_low", "ci_high", "mean gain", "95% CI low",
                   "95% CI high", "median gain", "cost", "chosen_heldout_acc_mean", "chosen_heldout_acc_final_seed",
                   "best_heldout_acc_mean", "tied_heldout_min", "tied_heldout_max", "worst_heldout_acc_mean",
                   "worst_digit_recall"}


def describe_config(config: dict | None, pretrained: dict) -> str:
    """A configuration as a compact table cell: ``"last 2 stages, lr 0.003, batch 16, 20 epochs (Adam)"``."""
    if config is None:
        return f"none: pre-trained on MNIST ({pretrained['epochs']} epochs, seed {pretrained['seed']})"
    text = f"lr {config['lr']:g}, batch {config['batch_size']}, {config['epochs']} epochs"
    if config["n_last"] > 1:
        text = f"last {config['n_last']} stages, " + text
        if config["body_lr_factor"] != 1.0:
            text += f", earlier stages at {config['body_lr_factor']:g}x lr"
    if config["augment"]:
        text += ", affine augmentation"
    return text + " (Adam)"


def workbook_sheets(results: dict) -> dict[str, pd.DataFrame]:
    """Sheet name -> table, in order; the first sheet holds the four required accuracies."""
    base, last, many = results["baseline"], results["last"], results["many"]
    evaluations = pd.DataFrame(four_evaluations(results))
    evaluations["config"] = [describe_config(c, results["pretrained"]) for c in evaluations["config"]]
    n = many["chosen"]["n_last"]
    per_class = per_class_table({
        "Pre-trained, MNIST test": base["mnist_test"],
        "Pre-trained, own test": base["own_test"],
        "Last layer, own test": last["own_test"],
        f"Last {n} layers, own test": many["own_test"],
    }, metrics=("recall",)).reset_index()
    predictions = base["predictions"][["file", "true"]].copy()
    for name, frame in (("pre-trained", base["predictions"]), ("last layer", last["predictions"]),
                        (f"last {n} layers", many["predictions"])):
        predictions[f"{name}: predicted"] = frame["pred"].values
        predictions[f"{name}: confidence"] = frame["confidence"].values
    sheets = {"Results": evaluations.rename(columns=RESULTS_COLUMNS)}
    if base.get("heldout"):
        sheets["Held-out (own)" if base["heldout"].get("whose") == "own" else "Held-out (sample writer)"] = pd.DataFrame([
            {"model": r["model"], "data": r["data"], "total": r["total"], "correct": r["correct"],
             "accuracy": r["accuracy"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
            for r in (base["heldout"], last["heldout"], many["heldout"])
        ]).rename(columns=RESULTS_COLUMNS)
    sheets |= {
        "Tuning last layer": last["ranking"],
        "Tuning last n layers": many["ranking"],
        "Per-class accuracy": per_class,
        "Own test predictions": predictions,
        "Dataset manifest": results["manifest"],
    }
    study = results.get("study") or {}
    if "summary" in study:  # notebook 05: the ten bundled writers, never the student's digits (Excel allows no ':')
        sheets["Writer study - gains"] = gains_table(study["summary"])
        sheets["Writer study - all runs"] = shown_columns(study["study"])
        sheets["Writer study - pre-trained"] = study["writers"]
    if "selection" in study:
        sheets["Writer study - selection cost"] = selection_cost_summary(study["selection"])
    sweep = results.get("sweep")
    if sweep is not None:  # notebook 05's sweeps of the bundled writers (issue 18)
        table = sweeps.lr_table(sweep["runs"])
        sheets["Sweep - learning rate"] = table
        sheets["Sweep - stable ranges"] = sweeps.stable_ranges(table)
        sheets["Sweep - depth"] = sweeps.depth_table(sweep["runs"])
    forgetting = [r for r in (base["mnist_test"], last.get("mnist_test"), many.get("mnist_test")) if r is not None]
    sheets["Forgetting (MNIST test)"] = pd.DataFrame([
        {"model": r["model"], "data": r["data"], "total": r["total"], "correct": r["correct"],
         "accuracy": r["accuracy"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]} for r in forgetting
    ]).rename(columns=RESULTS_COLUMNS)
    return sheets


FINGERPRINT = "mnist_transfer_content_sha256"  # custom document property: what this project wrote


def content_fingerprint(book: openpyxl.Workbook) -> str:
    """sha256 of every sheet name, cell value and cell comment (not of styles or the file's timestamps)."""
    digest = hashlib.sha256()
    for sheet in book.worksheets:
        digest.update(f"\x00sheet {sheet.title}".encode("utf-8"))
        for row in sheet.iter_rows():
            for cell in row:
                if cell.value is not None or cell.comment is not None:
                    comment = cell.comment.text if cell.comment is not None else ""
                    digest.update(f"\x00{cell.coordinate}={cell.value!r}|{comment}".encode("utf-8"))
    return digest.hexdigest()


def _recorded_and_actual(path: Path) -> tuple[str | None, str]:
    book = openpyxl.load_workbook(path)
    recorded = book.custom_doc_props[FINGERPRINT].value if FINGERPRINT in book.custom_doc_props.names else None
    return recorded, content_fingerprint(book)


def write_workbook(path: Path = paths.WORKBOOK, results: dict | None = None,
                   backup_dir: Path = paths.BACKUP_DIR) -> dict:
    """Write the workbook (header row bold and frozen, percentages formatted).

    Returns ``{"path", "backup"}``: ``backup`` is where the previous workbook was moved (shown relative to the
    project) when a person had changed it since this project wrote it, else None.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = path.with_name(f".{path.stem}.new{path.suffix}")
    _write_sheets(new, workbook_sheets(results if results is not None else load_all()))
    book = openpyxl.load_workbook(new)
    written = content_fingerprint(book)
    book.custom_doc_props.append(StringProperty(name=FINGERPRINT, value=written))
    book.save(new)
    backup = None
    try:
        if path.exists():
            recorded, actual = _recorded_and_actual(path)
            if actual != recorded and actual != written:  # changed by hand since it was written (or never ours)
                backup = paths.unique_folder(backup_dir, "workbook")
                shutil.copy2(path, backup / path.name)
        os.replace(new, path)
    except PermissionError:
        new.unlink(missing_ok=True)
        raise PermissionError(f"{paths.shown(path)} cannot be replaced: close it in Excel (or any program that has "
                              "it open), then run this cell again. The workbook on disk was not changed.") from None
    return {"path": path, "backup": paths.shown(backup / path.name) if backup else None}


def _write_sheets(path: Path, sheets: dict[str, pd.DataFrame]) -> None:
    percent = PERCENT_COLUMNS | set(sheets["Per-class accuracy"].columns[1:])
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
            sheet = writer.sheets[name]
            sheet.freeze_panes = "A2"
            for cell in sheet[1]:
                cell.font = Font(bold=True)
                cell.fill = PatternFill("solid", fgColor="DDEBF7")
                cell.alignment = Alignment(wrap_text=True, vertical="top")
            for idx, column in enumerate(frame.columns, start=1):
                letter = get_column_letter(idx)
                width = max([len(str(column))] + [len(str(v)) for v in frame[column].head(200)])
                sheet.column_dimensions[letter].width = min(60, max(9, width + 2))
                if column in percent:  # two decimals on the first sheet: 99.66%, not a rounded 99.7%
                    for cell in sheet[letter][1:]:
                        cell.number_format = "0.0%" if name.startswith("Tuning") or name.startswith("Per-class") else "0.00%"
