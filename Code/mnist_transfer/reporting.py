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


def per_class_table(records: dict[str, dict], metrics=("recall", "precision", "f1")) -> pd.DataFrame:
    """One row per digit, a column per (evaluation, metric); recall is the per-class accuracy."""
    return pd.DataFrame(
        {f"{name}: {metric}": [row[metric] for row in record["per_class"]]
         for name, record in records.items() for metric in metrics},
        index=pd.Index(range(10), name="digit"),
    )


def format_accuracy(record: dict) -> str:
    """``"18/20 = 90.0% (95% CI 69.9-97.2%)"``: the one way accuracies are written everywhere.

    Two decimals from 1,000 images on (99.66%, not a rounded-up 99.7%), one below.
    """
    digits = 2 if record["total"] >= 1000 else 1
    return (
        f"{record['correct']}/{record['total']} = {100 * record['accuracy']:.{digits}f}% "
        f"(95% CI {100 * record['ci_low']:.{digits}f}-{100 * record['ci_high']:.{digits}f}%)"
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
    from .training import rows_of

    sel = rows_of(curves, config)
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


def save_experiment(name: str, runs: pd.DataFrame, curves: pd.DataFrame, ranking: pd.DataFrame, chosen,
                    final_history: list[dict], test_record: dict, test_pred: pd.DataFrame, extra: dict | None = None,
                    results_dir: Path = paths.RESULTS_DIR) -> None:
    """Everything a fine-tuning notebook measured, as CSV and JSON under ``Code/results/``."""
    import dataclasses

    results_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(results_dir / f"grid_runs_{name}.csv", index=False)
    curves.to_csv(results_dir / f"curves_{name}.csv", index=False)
    ranking.to_csv(results_dir / f"grid_ranking_{name}.csv", index=False)
    save_predictions(f"{name}_own_test", test_pred, results_dir)
    save_results(name, {
        "chosen": dataclasses.asdict(chosen),
        "chosen_validation": ranking.iloc[0].to_dict(),
        "final_history": final_history,
        "own_test": test_record,
        **(extra or {}),
    }, results_dir)


# --------------------------------------------------------------------------- the four evaluations


def _hyperparameters(chosen: dict) -> str:
    text = f"lr {chosen['lr']:g}, batch {chosen['batch_size']}, {chosen['epochs']} epochs"
    if chosen.get("n_last", 1) > 1:
        text = f"last {chosen['n_last']} stages, " + text
        if chosen.get("body_lr_factor", 1.0) != 1.0:
            text += f", earlier stages at {chosen['body_lr_factor']:g}x lr"
    if chosen.get("augment"):
        text += ", affine augmentation"
    return text + " (Adam)"


def four_evaluations(results_dir: Path = paths.RESULTS_DIR) -> list[dict]:
    """The assignment's four accuracies, read from the results files that notebooks 02-04 wrote."""
    base = load_results("baseline", results_dir)
    last = load_results("finetune_last_layer", results_dir)
    many = load_results("finetune_n_layers", results_dir)
    pre = json.loads(paths.PRETRAINED_METRICS.read_text()) if paths.PRETRAINED_METRICS.exists() else {}
    pre_text = f"none: pre-trained on MNIST ({pre.get('epochs', '?')} epochs, seed {pre.get('seed', '?')})"
    rows = [
        ("(1) pre-trained, MNIST test", base["mnist_test"], pre_text),
        ("(2) pre-trained, own test", base["own_test"], pre_text),
        ("(3) fine-tuned last layer, own test", last["own_test"], _hyperparameters(last["chosen"])),
        (f"(4) fine-tuned last {many['chosen']['n_last']} layers, own test", many["own_test"],
         _hyperparameters(many["chosen"])),
    ]
    return [
        {"evaluation": name, "model": r["model"], "data": r["data"], "images": r["total"], "correct": r["correct"],
         "accuracy": r["accuracy"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "hyperparameters": hp}
        for name, r, hp in rows
    ]


def write_workbook(path: Path = paths.WORKBOOK, results_dir: Path = paths.RESULTS_DIR) -> Path:
    """``Assignment 4 Results.xlsx``: the four evaluations first, then tuning grids, per-class, manifest."""
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    evaluations = pd.DataFrame(four_evaluations(results_dir)).rename(columns={
        "evaluation": "Evaluation", "model": "Model", "data": "Evaluated on", "images": "Images",
        "correct": "Correct", "accuracy": "Accuracy", "ci_low": "95% CI low (Wilson)",
        "ci_high": "95% CI high (Wilson)", "hyperparameters": "Hyperparameters (chosen on validation)"})
    base = load_results("baseline", results_dir)
    last = load_results("finetune_last_layer", results_dir)
    many = load_results("finetune_n_layers", results_dir)
    per_class = per_class_table({
        "Pre-trained, MNIST test": base["mnist_test"],
        "Pre-trained, own test": base["own_test"],
        "Last layer, own test": last["own_test"],
        f"Last {many['chosen']['n_last']} layers, own test": many["own_test"],
    }, metrics=("recall",)).reset_index()
    sheets = {
        "Results": evaluations,
        "Tuning last layer": pd.read_csv(results_dir / "grid_ranking_finetune_last_layer.csv"),
        "Tuning last n layers": pd.read_csv(results_dir / "grid_ranking_finetune_n_layers.csv"),
        "Per-class accuracy": per_class,
        "Own test predictions": _own_test_predictions(results_dir),
        "Dataset manifest": pd.read_csv(paths.MANIFEST),
    }
    percent_columns = {"Accuracy", "95% CI low (Wilson)", "95% CI high (Wilson)", "val_acc_mean", "val_acc_std",
                       "val_acc_min", "val_acc_max"} | set(per_class.columns[1:])
    path.parent.mkdir(parents=True, exist_ok=True)
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
                width = max(len(str(column)), *(len(str(v)) for v in frame[column].head(200))) if len(frame) else len(str(column))
                sheet.column_dimensions[letter].width = min(60, max(9, width + 2))
                if column in percent_columns:  # two decimals on the first sheet: 99.66%, not a rounded 99.7%
                    for cell in sheet[letter][1:]:
                        cell.number_format = "0.00%" if name == "Results" else "0.0%"
    return path


def _own_test_predictions(results_dir: Path) -> pd.DataFrame:
    many = load_results("finetune_n_layers", results_dir)
    frames = {
        "pre-trained": load_predictions("pretrained_own_test", results_dir),
        "last layer": load_predictions("finetune_last_layer_own_test", results_dir),
        f"last {many['chosen']['n_last']} layers": load_predictions("finetune_n_layers_own_test", results_dir),
    }
    first = next(iter(frames.values()))
    out = first[["file", "true"]].copy()
    for name, frame in frames.items():
        out[f"{name}: predicted"] = frame["pred"].values
        out[f"{name}: confidence"] = frame["confidence"].values
    return out


def plot_filters_and_responses(model, image, label: int | None = None):
    """The stem's 5x5 filters (top) and their ReLU responses to one own digit (bottom)."""
    import torch

    from . import data as data_mod

    weights = model.stem[0].weight.detach().cpu()[:, 0]  # [32, 5, 5]
    with torch.no_grad():
        response = model.stem(data_mod.normalize(torch.as_tensor(image)[None]).to(next(model.parameters()).device))
    response = response[0].cpu()
    n = weights.shape[0]
    cols = 16
    rows = 2 * int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows + 1, cols, figsize=(cols * 0.55, (rows + 1) * 0.62))
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(np.asarray(image), cmap="gray")
    axes[0, 0].set_title("input" + (f" ({label})" if label is not None else ""), fontsize=6)
    for i in range(n):
        r, c = divmod(i, cols)
        w = weights[i].numpy()
        axes[1 + r, c].imshow(w, cmap="RdBu_r", vmin=-abs(w).max(), vmax=abs(w).max())
        axes[1 + rows // 2 + r, c].imshow(response[i].numpy(), cmap="magma")
    axes[1, 0].set_title("filters (5x5, red +, blue −)", fontsize=6, loc="left")
    axes[1 + rows // 2, 0].set_title("responses (14x14 after stride 2 and ReLU)", fontsize=6, loc="left")
    fig.suptitle("First layer of the pre-trained CNN", fontsize=9)
    return fig


# --------------------------------------------------------------------------- the report


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def compare_sentence(name_a: str, pred_a: pd.DataFrame, name_b: str, pred_b: pd.DataFrame) -> str:
    """A comparison of two models on the same test images whose wording follows the numbers."""
    mc = stats.mcnemar_exact(pred_a["correct"].astype(bool), pred_b["correct"].astype(bool))
    ka, kb, n = int(pred_a["correct"].sum()), int(pred_b["correct"].sum()), len(pred_a)
    if ka == kb:
        verdict = f"{name_a} and {name_b} get the same {ka}/{n} right"
    else:
        better, worse = (name_a, name_b) if ka > kb else (name_b, name_a)
        verdict = f"{better} gets {abs(ka - kb)} more of the {n} test images right than {worse} ({max(ka, kb)} vs {min(ka, kb)})"
    if mc["a_only"] + mc["b_only"] == 0:
        return verdict[0].upper() + verdict[1:] + "; they disagree on no image, so the test set cannot tell them apart."
    significance = "a difference this small could easily be chance" if mc["p_value"] >= 0.05 else "unlikely to be chance alone"
    verdict = verdict[0].upper() + verdict[1:]
    return (f"{verdict}; they disagree on {mc['a_only'] + mc['b_only']} image(s) (exact McNemar p = {mc['p_value']:.2f}: "
            f"{significance}).")


def report_data(results_dir: Path = paths.RESULTS_DIR) -> dict:
    """Every number and every number-dependent sentence of the report, from the results files."""
    evaluations = four_evaluations(results_dir)
    base = load_results("baseline", results_dir)
    last = load_results("finetune_last_layer", results_dir)
    many = load_results("finetune_n_layers", results_dir)
    pre = json.loads(paths.PRETRAINED_METRICS.read_text())
    manifest = pd.read_csv(paths.MANIFEST)
    rank_last = pd.read_csv(results_dir / "grid_ranking_finetune_last_layer.csv")
    rank_many = pd.read_csv(results_dir / "grid_ranking_finetune_n_layers.csv")
    pred = {
        "pre": load_predictions("pretrained_own_test", results_dir),
        "last": load_predictions("finetune_last_layer_own_test", results_dir),
        "many": load_predictions("finetune_n_layers_own_test", results_dir),
    }
    n = many["chosen"]["n_last"]
    saturated = bool((rank_last.val_acc_mean == 1).all() and (rank_many.val_acc_mean == 1).all())
    perfect_share = {
        "last": float((rank_last.val_acc_mean == 1).mean()),
        "many": float((rank_many.val_acc_mean == 1).mean()),
    }
    wrong_pre = pred["pre"][~pred["pre"]["correct"].astype(bool)]
    val_base = base["own_val"]
    from .model import STAGES, DigitCNN, count_parameters

    return {
        "evaluations": [
            {**e, "accuracy_text": format_accuracy({**e, "total": e["images"]})} for e in evaluations
        ],
        "dataset": {
            "images": int(len(manifest)),
            "per_split": {s: int((manifest.split == s).sum()) for s in ("train", "val", "test")},
            "sources": sorted(manifest.source.unique().tolist()),
        },
        "pretrained": {
            "accuracy": format_accuracy({**base["mnist_test"]}),
            "epochs": pre["epochs"], "seconds": round(pre["train_seconds"]), "seed": pre["seed"],
            "batch_size": pre["batch_size"], "max_lr": pre["max_lr"],
            "params": count_parameters(DigitCNN(widths=tuple(pre["widths"]))),
            "epoch_seconds": pre.get("epoch_seconds_measured", {}),
            "meets_target": pre["test_accuracy"] >= 0.997,
            "resnet_ratio": (pre.get("epoch_seconds_measured", {}).get("ResNet-18 (28x28)", float("nan"))
                             / pre.get("epoch_seconds_measured", {}).get("compact CNN (ours)", float("nan"))),
            "stages": list(STAGES),
        },
        "baseline_val": format_accuracy(val_base),
        "baseline_mistakes": [f"a {r.true} read as {r.pred} ({100 * r.confidence:.0f}% sure)" for r in wrong_pre.itertuples()],
        "grids": {
            "last": {"configs": int(len(rank_last)), "seeds": len(last["seeds"]), "perfect_share": _pct(perfect_share["last"], 0),
                     "lrs": sorted(rank_last.lr.unique().tolist()), "batch_sizes": sorted(rank_last.batch_size.unique().tolist()),
                     "epochs": sorted(rank_last.epochs.unique().tolist())},
            "many": {"configs": int(len(rank_many)), "seeds": len(many["seeds"]), "perfect_share": _pct(perfect_share["many"], 0),
                     "lrs": sorted(rank_many.lr.unique().tolist()), "n_values": sorted(rank_many.n_last.unique().tolist()),
                     "epochs": sorted(rank_many.epochs.unique().tolist())},
            "saturated": saturated,
        },
        "chosen": {"last": _hyperparameters(last["chosen"]), "many": _hyperparameters(many["chosen"]), "n": n},
        "stability": {
            "last": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in last["stability"].items()},
            "many": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in many["stability"].items()},
        },
        "comparisons": {
            "last_vs_pre": compare_sentence("the last-layer model", pred["last"], "the pre-trained model", pred["pre"]),
            "many_vs_pre": compare_sentence(f"the last-{n}-layers model", pred["many"], "the pre-trained model", pred["pre"]),
            "many_vs_last": compare_sentence(f"the last-{n}-layers model", pred["many"], "the last-layer model", pred["last"]),
        },
        "smallest_detectable": _pct(1 / len(pred["pre"]), 0),
        "fit": _fit_statistics([pd.read_csv(results_dir / f"curves_{k}.csv") for k in ("finetune_last_layer", "finetune_n_layers")]),
        "insights": _insights(pred, last["stability"], many["stability"], n),
    }


def _fit_statistics(curves: list[pd.DataFrame]) -> dict:
    """How fast the tuning runs fit the 80 training images: share reaching 100%, median first epoch."""
    keys = ["n_last", "lr", "batch_size", "augment", "body_lr_factor", "seed"]
    firsts = []
    for frame in curves:
        for _, run in frame.groupby(keys):
            hit = run.loc[run.train_acc >= 1.0, "epoch"]
            firsts.append(int(hit.min()) if len(hit) else None)
    reached = [f for f in firsts if f is not None]
    return {"share": _pct(len(reached) / len(firsts), 0), "median_epoch": int(np.median(reached)) if reached else None,
            "runs": len(firsts)}


def _fixed_and_broken(before: pd.DataFrame, after: pd.DataFrame) -> tuple[int, int]:
    b, a = before["correct"].astype(bool).values, after["correct"].astype(bool).values
    return int((~b & a).sum()), int((b & ~a).sum())


def _insights(pred: dict, last: dict, many: dict, n: int) -> list[str]:
    """Sentences whose claims are computed here from the predictions and stability figures."""
    out = []
    wrong = pred["pre"][~pred["pre"]["correct"].astype(bool)]
    if len(wrong):
        digits = sorted(set(wrong["true"].tolist()))
        traits = {1: "the continental 1", 7: "the barred 7"}
        named = " and ".join(traits[k] for k in digits if k in traits)
        out.append(
            f"The pre-trained model misreads {len(wrong)} of {len(pred['pre'])} own test images (true digit(s) "
            f"{', '.join(map(str, digits))})"
            + (f": all of them the writer's idiosyncratic {named}." if set(digits) <= set(traits) else
               (f", among them {named}." if named else "."))
        )
    else:
        out.append("The pre-trained model already reads all own test images correctly, so fine-tuning can only hold level.")
    for key, name in (("last", "the last layer"), ("many", f"the last {n} layers")):
        fixed, broken = _fixed_and_broken(pred["pre"], pred[key])
        out.append(f"Fine-tuning {name} fixes {fixed} of the pre-trained model's test mistakes and breaks {broken} "
                   "test image(s) it had right.")
    calmer = [label for label, a, b in (("spread over seeds", last["seed_std"], many["seed_std"]),
                                        ("curve roughness", last["val_loss_roughness"], many["val_loss_roughness"]))
              if a < b]
    if len(calmer) == 2:
        out.append(f"Training only the classifier is the steadier strategy here (lower spread over seeds and smoother "
                   f"validation curves than the last {n} layers), and it costs a fraction of the compute.")
    elif calmer:
        out.append(f"Training only the classifier is steadier by {calmer[0]} only; by the other measure the two "
                   "strategies are level or reversed.")
    else:
        out.append(f"By spread over seeds and curve roughness, training the last {n} layers is no less steady than "
                   "training the classifier alone on this data.")
    return out


def build_report(pdf: Path = paths.REPORT_PDF, results_dir: Path = paths.RESULTS_DIR,
                 data_file: Path = paths.REPORT_DIR / "report_data.json") -> Path:
    """Typeset ``Assignment 4_Report.pdf`` from ``Code/report/report.typ`` and the results files.

    The numbers reach typst as one JSON document (``sys.inputs.data``); a copy is kept in
    ``data_file`` so a reader can see exactly what the report was built from.
    """
    import typst

    payload = json.dumps(report_data(results_dir), indent=2, default=_json_default)
    Path(data_file).write_text(payload + "\n")
    typst.compile(str(paths.REPORT_DIR / "report.typ"), output=str(pdf), root=str(paths.CODE_DIR),
                  ignore_system_fonts=True, sys_inputs={"data": payload})
    return pdf


def plot_lr_sensitivity(strategies: dict[str, tuple[pd.DataFrame, int]], ax=None):
    """Mean validation accuracy against learning rate for each strategy (plain runs: no tricks).

    ``strategies`` maps a label to ``(ranking, n_last)``; each point is the best over batch
    size and epochs at that learning rate.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    lowest = 100.0
    for name, (ranking, n_last) in strategies.items():
        plain = ranking[(ranking.n_last == n_last) & ~ranking.augment.astype(bool) & (ranking.body_lr_factor == 1.0)]
        best = plain.groupby("lr").val_acc_mean.max()
        ax.plot(best.index, 100 * best.values, marker="o", label=name)
        lowest = min(lowest, 100 * best.min())
    ax.set_ylim(lowest - 5, 100.5)  # accuracy cannot pass 100%
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (Adam)")
    ax.set_ylabel("mean validation accuracy (%)\n(best batch size and epochs)")
    ax.set_title("Sensitivity to the learning rate", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
