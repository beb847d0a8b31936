"""Figures: every plot of the notebooks and the report, drawn from tensors and results tables.

Each function draws on a new figure (or on the ``ax`` it is given) and returns it;
:func:`save_figure` writes PNG and PDF under ``Code/figures/``. Nothing here chooses a
matplotlib backend: notebooks show figures inline, scripts and tests use whatever
``MPLBACKEND`` says.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from . import data, paths
from .dataset_writing import HELDOUT, SPLIT_COUNTS
from .tuning import rows_of
from .writer_study import per_writer


def save_figure(fig, name: str, figures_dir: Path = paths.FIGURES_DIR) -> Path:
    """Save as PNG (for the notebook and the report) and PDF (vector); return the PNG path."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    png = figures_dir / f"{name}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(figures_dir / f"{name}.pdf", bbox_inches="tight", metadata={"CreationDate": None})
    return png


def remove_figures(prefix: str, figures_dir: Path = paths.FIGURES_DIR) -> list[Path]:
    """Delete every saved figure (PNG and PDF) whose name starts with ``prefix``, so none of an earlier
    dataset stays beside the new one's (e.g. the sample's annotated sheet when the new digits are a folder)."""
    gone = sorted(p for p in figures_dir.glob(f"{prefix}*") if p.suffix in (".png", ".pdf"))
    for path in gone:
        path.unlink()
    return gone


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
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, label="images")
    bar.locator = matplotlib.ticker.MaxNLocator(integer=True)
    bar.update_ticks()
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


HEATMAP_FLOOR = 80  # every tuning heatmap shares one colour scale, 80-100% (lower values take the darkest colour)


def plot_grid_heatmap(ranking: pd.DataFrame, title: str, index: str = "lr", columns: str = "epochs", ax=None):
    """Mean validation accuracy over seeds, best over the other hyperparameters (one colour scale for all)."""
    table = ranking.pivot_table(index=index, columns=columns, values="val_acc_mean", aggfunc="max")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3))
    im = ax.imshow(table.values * 100, cmap="viridis", aspect="auto", vmin=HEATMAP_FLOOR, vmax=100)
    for (i, j), v in np.ndenumerate(table.values):
        ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 0.9 else "black")
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{v:g}" for v in table.index])
    ax.set_xlabel(columns.replace("_", " "))
    ax.set_ylabel("learning rate" if index == "lr" else index.replace("_", " "))
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="mean val. accuracy (%)")
    return ax


def plot_filters_and_responses(model, image, label: int | None = None):
    """The stem's 5x5 filters (top) and their ReLU responses to one own digit (bottom)."""
    weights = model.stem[0].weight.detach().cpu()[:, 0]  # [32, 5, 5]
    with torch.no_grad():
        response = model.stem(data.normalize(torch.as_tensor(image)[None]).to(next(model.parameters()).device))
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


def plot_lr_sensitivity(strategies: dict[str, tuple[pd.DataFrame, int]], ax=None):
    """Mean validation accuracy against learning rate for each strategy (plain runs: no tricks).

    ``strategies`` maps a label to ``(ranking, n_last)``; each point is the best over batch
    size and epochs at that learning rate.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    lowest = 100.0
    for name, (ranking, n_last) in strategies.items():
        plain = rows_of(ranking, {"n_last": n_last, "augment": False, "body_lr_factor": 1.0},
                        ["n_last", "augment", "body_lr_factor"])
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


def plot_pretraining_loss(history: list[dict]):
    """Training loss per epoch of the pre-training run (``metrics["history"]`` of :func:`.training.pretrain`)."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss\n(label-smoothed cross-entropy)")
    ax.set_title("Pre-training on MNIST")
    ax.grid(alpha=0.3)
    return fig


def plot_annotated_sheet(result, figsize=(7, 10)):
    """A processed sheet (:class:`.sheet_reading.SheetResult`) with every detected digit and its label."""
    fig, ax = plt.subplots(figsize=figsize)
    ax.imshow(result.annotated[..., ::-1])
    ax.set_title(f"{result.digits[0].source}: every detected digit with the label it gets")
    ax.set_xlabel("x (pixels, rectified page)")
    ax.set_ylabel("y (pixels, rectified page)")
    return fig


def montage(splits: dict, gap: int = 4) -> tuple[np.ndarray, dict]:
    """One row per digit 0-9: its training, validation and test images (and held-out extras), split by a gap.

    A split with more copies of some digits than of others (the held-out extras) is padded with black to its
    largest count. Returns the uint8 image and where its parts are: ``{"rows": [y centre per digit],
    "splits": {split: x centre}}`` (for tick labels).
    """
    names = [n for n in (*SPLIT_COUNTS, HELDOUT) if n in splits]
    widest = {n: 28 * max(sum(d.label == label for d in splits[n]) for label in range(10)) for n in names}
    rows, centres, x = [], {}, 0
    for label in range(10):
        parts, x = [], 0
        for name in names:
            imgs = [d.image for d in sorted(splits[name], key=lambda d: (d.source, d.row, d.col)) if d.label == label]
            block = np.hstack(imgs) if imgs else np.zeros((28, 0), np.uint8)
            block = np.pad(block, ((0, 0), (0, widest[name] - block.shape[1])))
            centres[name] = x + block.shape[1] / 2
            x += block.shape[1] + gap * 3
            parts += [block, np.full((28, gap * 3), 90, np.uint8)]
        rows.append(np.hstack(parts[:-1]))
        rows.append(np.zeros((gap, rows[-1].shape[1]), np.uint8))
    return np.vstack(rows[:-1]), {"rows": [14 + (28 + gap) * d for d in range(10)], "splits": centres}


def plot_montage(splits: dict, title: str | None = None):
    """The whole dataset (:func:`montage`) with the digits and splits labelled (held-out extras last)."""
    title = title or f"All {sum(len(v) for v in splits.values())} images as saved (28x28, MNIST-style)"
    image, where = montage(splits)
    fig, ax = plt.subplots(figsize=(9, 6))
    ax.imshow(image, cmap="gray")
    ax.set_yticks(where["rows"], [str(d) for d in range(10)])
    ax.set_ylabel("digit")
    ax.set_xticks(list(where["splits"].values()),
                  [f"{name}\n({len(splits[name]) // 10} each)" if name != HELDOUT else f"held-out\n({len(splits[name])} in all)"
                   for name in where["splits"]])
    ax.set_xlabel("split")
    ax.set_title(title)
    return fig


def plot_writers(study: pd.DataFrame, set_name: str = "heldout", ax=None):
    """Per writer: pre-trained -> last layer -> last n accuracy (mean over split seeds, bars = the
    seeds' range), joined by a line per writer. Returns the figure."""
    table = per_writer(study, set_name)
    models = list(table.columns.get_level_values(0).unique())
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6))
    offsets = dict(zip(models, (-0.22, 0.0, 0.22)))
    x = np.arange(len(table))
    for i in x:
        ax.plot(i + np.array(list(offsets.values())), [100 * table[m]["mean"].iloc[i] for m in models],
                color="0.7", lw=1, zorder=1)
    for (model_name, offset), marker in zip(offsets.items(), "osD"):
        mean, low, high = (100 * table[model_name][s].to_numpy() for s in ("mean", "min", "max"))
        yerr = np.clip([mean - low, high - mean], 0, None)  # the mean of equal values can miss them by an ulp
        ax.errorbar(x + offset, mean, yerr=yerr, fmt=marker, ms=5, capsize=2,
                    label=model_name, zorder=2)
    ax.set_xticks(x, table.index)
    ax.set_xlabel("writer")
    ax.set_ylabel(("held-out" if set_name == "heldout" else "writer's test (20)") + " accuracy (%)")
    ax.set_ylim(top=100.5)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{'Held-out digits' if set_name == 'heldout' else 'The 20 test images'} of each bundled writer: mean over split "
                 "seeds (bars: the seeds' range)", fontsize=9)
    return ax.figure


def _depth_label(n_last: int) -> str:
    return "last layer (n = 1)" if n_last == 1 else ("whole network (n = 5)" if n_last == 5 else f"last {n_last} stages")


def plot_lr_sweep(table: pd.DataFrame, ranges: pd.DataFrame | None = None, ax=None):
    """Held-out accuracy against the learning rate, a line per depth (mean over writers), the band the training
    seeds span; a bar under each line marks its rates within 1 point of its best (``ranges``). Returns the figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.0))
    depths = sorted(table.n_last.unique())
    floor = max(0.0, 10 * np.floor(10 * table.seed_low.min()) - 4 * len(depths) - 2)  # room for the bars
    for i, n_last in enumerate(depths):
        t = table[table.n_last == n_last].sort_values("lr")
        line, = ax.plot(t.lr, 100 * t.heldout_acc, marker="o", ms=4, label=_depth_label(n_last))
        ax.fill_between(t.lr, 100 * t.seed_low, 100 * t.seed_high, color=line.get_color(), alpha=0.15, lw=0)
        if ranges is not None:
            r = ranges[ranges.n_last == n_last].iloc[0]
            ax.plot([r.lr_low, r.lr_high], [floor + 2 + 3.5 * i] * 2, color=line.get_color(), lw=4,
                    solid_capstyle="butt", marker="s", ms=4)  # a single rate shows as a square
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (Adam, constant)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(floor, 101)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
    writers = int(table.writers.max())
    ax.set_title(f"Learning-rate sweep, mean over {writers} writers\n(band: the training seeds; bars at the bottom: "
                 "the rates within 1 point of each depth's best)", fontsize=9)
    ax.figure.tight_layout()
    return ax.figure


def plot_depth(depth: pd.DataFrame, ax=None):
    """Held-out and MNIST accuracy against the depth fine-tuned, at each depth's rate chosen on validation,
    with 95% intervals across writers. Returns the figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.4))
    n = depth.n_last.to_numpy()
    for column, low, high, label, marker in (("heldout_acc", "ci_low", "ci_high", "held-out digits", "o"),
                                             ("mnist_acc", "mnist_ci_low", "mnist_ci_high", "MNIST test (2,000 of them)", "s")):
        mean = 100 * depth[column].to_numpy()
        yerr = np.clip([mean - 100 * depth[low].to_numpy(), 100 * depth[high].to_numpy() - mean], 0, None)
        ax.errorbar(n, mean, yerr=np.nan_to_num(yerr), fmt=marker + "-", ms=5, capsize=3, label=label)
    ax.set_xticks(n, [f"{k}\n{depth.lr_chosen_on_val.iloc[i]:g}" for i, k in enumerate(n)])
    ax.set_xlabel("stages fine-tuned (n) / learning rate chosen on validation")
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Depth: mean over {int(depth.writers.max())} writers (bars: 95% interval across writers)",
                 fontsize=9)
    ax.figure.tight_layout()
    return ax.figure


def plot_sweep_curves(curves: pd.DataFrame, writer: str, axes=None):
    """Held-out accuracy after every epoch for one writer: a panel per learning rate, a line per depth."""
    lrs = sorted(curves.lr.unique())
    if axes is None:
        _, axes = plt.subplots(1, len(lrs), figsize=(3.2 * len(lrs), 3.0), sharey=True, squeeze=False)
        axes = axes[0]
    for ax, lr in zip(axes, lrs):
        for n_last, t in curves[curves.lr == lr].groupby("n_last"):
            ax.plot(t.epoch, 100 * t.heldout_acc, marker=".", ms=3, label=_depth_label(n_last))
        ax.set_title(f"{writer}, learning rate {lr:g}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out accuracy (%)")
    axes[0].legend(fontsize=7)
    axes[0].figure.tight_layout()
    return axes[0].figure


def show_picture(picture: np.ndarray, width: float = 10.0):
    """Show a BGR picture (an annotated page, a gallery of digits) at ``width`` inches, without axes."""
    fig = plt.figure(figsize=(width, max(1.5, width * picture.shape[0] / max(1, picture.shape[1]))))
    plt.imshow(picture[..., ::-1] if picture.ndim == 3 else picture, cmap=None if picture.ndim == 3 else "gray")
    plt.axis("off")
    plt.show()
    return fig
