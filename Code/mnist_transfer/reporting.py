"""Results files, figures, the results workbook and the typeset report.

Notebooks 02-04 write their numbers with :func:`save_results` (JSON) and
:func:`save_predictions` (one CSV row per image); notebook 05 reads them back and builds
``Assignment 4 Results.xlsx`` and ``Assignment 4_Report.pdf`` from nothing else, so a
number in the report can only come from a run.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless by default; notebooks show figures inline anyway
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import paths, stats  # noqa: E402

# --------------------------------------------------------------------------- results files


def save_results(name: str, payload: dict, results_dir: Path = paths.RESULTS_DIR) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return path


def load_results(name: str, results_dir: Path = paths.RESULTS_DIR) -> dict:
    path = results_dir / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the notebook that writes '{name}' first.")
    return json.loads(path.read_text())


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value)} to JSON")


def predictions_frame(files, y_true, probs) -> pd.DataFrame:
    """One row per image: file, true label, predicted label, confidence, correct."""
    probs = np.asarray(probs)
    pred = probs.argmax(1)
    return pd.DataFrame({
        "file": list(files),
        "true": np.asarray(y_true).astype(int),
        "pred": pred.astype(int),
        "confidence": probs.max(1).round(6),
        "correct": (pred == np.asarray(y_true)),
    })


def save_predictions(name: str, frame: pd.DataFrame, results_dir: Path = paths.RESULTS_DIR) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"predictions_{name}.csv"
    frame.to_csv(path, index=False)
    return path


def load_predictions(name: str, results_dir: Path = paths.RESULTS_DIR) -> pd.DataFrame:
    return pd.read_csv(results_dir / f"predictions_{name}.csv")


def evaluation_record(model_name: str, data_name: str, frame: pd.DataFrame, **extra) -> dict:
    """Counts, accuracy and Wilson 95% CI, per-class metrics and the confusion matrix."""
    summary = stats.accuracy_summary(frame["true"], frame["pred"])
    return {
        "model": model_name,
        "data": data_name,
        **summary,
        "per_class": stats.per_class_metrics(frame["true"], frame["pred"]),
        "confusion": stats.confusion_matrix(frame["true"], frame["pred"]).tolist(),
        **extra,
    }


def format_accuracy(record: dict) -> str:
    """``"18/20 = 90.0% (95% CI 69.9-97.2%)"``: the one way accuracies are written everywhere."""
    return (
        f"{record['correct']}/{record['total']} = {100 * record['accuracy']:.1f}% "
        f"(95% CI {100 * record['ci_low']:.1f}-{100 * record['ci_high']:.1f}%)"
    )


# --------------------------------------------------------------------------- figures


def save_figure(fig, name: str, figures_dir: Path = paths.FIGURES_DIR) -> Path:
    """Save as PNG (for the notebook and the report) and PDF (vector); return the PNG path."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    png = figures_dir / f"{name}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(figures_dir / f"{name}.pdf", bbox_inches="tight", metadata={"CreationDate": None})
    return png


def plot_confusion(matrix, title: str, ax=None):
    matrix = np.asarray(matrix)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.8))
    im = ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > matrix.max() / 2 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="images")
    return ax


def plot_gallery(images, frame: pd.DataFrame, title: str, max_images: int = 16):
    """Misclassified images with true label, prediction and confidence."""
    wrong = frame.index[~frame["correct"].astype(bool)].tolist()[:max_images]
    cols = max(1, min(8, len(wrong)))
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.55 * rows + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong):
        ax.imshow(np.asarray(images[i]), cmap="gray", vmin=0, vmax=255)
        r = frame.loc[i]
        ax.set_title(f"true {r.true} → {r.pred}\n{100 * r.confidence:.0f}% sure", fontsize=7)
    if not wrong:
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_curves(curves: pd.DataFrame, config: dict, title: str, axes=None):
    """Train/validation loss and accuracy per epoch for one configuration: mean and range over seeds."""
    sel = curves
    for key in ("n_last", "lr", "batch_size", "augment", "body_lr_factor"):
        sel = sel[sel[key] == config[key]]
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3))
    grouped = sel.groupby("epoch")
    for metric, ax in zip(("loss", "acc"), axes):
        for split, colour in (("train", "tab:blue"), ("val", "tab:orange")):
            col = f"{split}_{metric}"
            mean, low, high = grouped[col].mean(), grouped[col].min(), grouped[col].max()
            ax.plot(mean.index, mean.values, color=colour, label=f"{'training' if split == 'train' else 'validation'}")
            ax.fill_between(mean.index, low.values, high.values, color=colour, alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss" if metric == "loss" else "accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[0].set_title(title, fontsize=9, loc="left")
    return axes


def plot_grid_heatmap(ranking: pd.DataFrame, title: str, index: str = "lr", columns: str = "epochs", ax=None):
    """Mean validation accuracy over seeds, best over the other hyperparameters."""
    table = ranking.pivot_table(index=index, columns=columns, values="val_acc_mean", aggfunc="max")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3))
    im = ax.imshow(table.values * 100, cmap="viridis", aspect="auto", vmin=max(0, np.nanmin(table.values) * 100 - 5),
                   vmax=100)
    for (i, j), v in np.ndenumerate(table.values):
        ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 0.9 else "black")
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{v:g}" for v in table.index])
    ax.set_xlabel(columns.replace("_", " "))
    ax.set_ylabel("learning rate" if index == "lr" else index.replace("_", " "))
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="mean val. accuracy (%)")
    return ax
