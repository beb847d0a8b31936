"""The assignment's protocol repeated for every UNIPEN writer and several split seeds (issue 11, items 4-5).

For each writer and split seed (:func:`run_study`):

1. :func:`draw_split`: 12 of each digit are drawn from the writer's digits and split 8/2/2 per digit
   into train / validation / own test (one seeded permutation per digit does both); all the
   writer's other digits are the held-out test (hundreds, disjoint from the 120).
2. The pre-trained model is evaluated on the own test (20) and the held-out digits.
3. "last layer" and "last n layers" are each tuned on the 20 validation images only
   (:func:`select`: every configuration x training seed, ranked by mean validation accuracy,
   ties broken by mean validation loss), then the chosen configuration is trained once
   (seed :data:`FINAL_SEED`) and evaluated once on the own test and the held-out digits.

Default grids (:data:`DEFAULT_GRIDS`), one training run per (configuration without epochs, seed),
epoch counts read off that run (Adam at a constant learning rate, as in :mod:`.tuning`):

* last layer:    n = 1, lr in {3e-3, 1e-2, 3e-2}, batch 16, epochs in {10, 20, 40}, training seeds {0, 1}
* last n layers: n = 2, lr in {3e-4, 1e-3, 3e-3}, batch 16, epochs in {5, 10, 20}, training seeds {0, 1}

over the 10 writers and split seeds {0, 1, 2}: 140-144 s measured on 2 CPU cores that other
processes were also using (the 30 protocols' tables came out identical in both runs).
``full=True`` uses :data:`FULL_GRIDS`, the grids of notebooks 03 and 04 (04's second step over
augmentation and the body learning rate included): about 110 s per writer and split seed.

Speed: the frozen stages of the pre-trained model never change, so their output for all of a
writer's digits is computed once per writer (:func:`writer_digits`) and every run of every split
seed trains only the trainable stages on it (:func:`train_run`, the same arithmetic as
:func:`.training.finetune`). Tiny batches run faster on one thread; :func:`run_study` uses
``threads=1`` and restores the previous setting.

Item 5, :func:`selection_cost`: for one writer and split seed, after selection, every
configuration of the grid is trained again and scored on the held-out digits (reporting only),
to measure what choosing on 20 validation images gives up against the best configuration in the grid.

Nothing here writes English: the tables and dicts hold numbers and labels for the report to use.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import math
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from . import data as data_mod
from . import handwriting, paths, stats, training, tuning
from .model import STAGES, DigitCNN, freeze_all_but_last, load_pretrained
from .training import FinetuneConfig, torch_threads

MODELS = ("pre-trained", "last layer", "last n layers")
STRATEGIES = MODELS[1:]
PER_DIGIT = {"train": 8, "val": 2, "test": 2}  # drawn per digit; the rest of the writer is "heldout"
SPLITS = ("train", "val", "test", "heldout")
FINAL_SEED = 0
SPLIT_SEEDS = (0, 1, 2)
# What notebook 05 trains again by default and compares with the committed study (``STUDY = "full"`` runs it all).
SUBSET = {"writers": ("W01", "W06"), "split_seeds": (0,)}
COUNTS = ("val_correct", "own_test_correct", "heldout_correct", "mnist_correct")
COMPARISONS = (("last layer", "pre-trained"), ("last n layers", "pre-trained"), ("last n layers", "last layer"))
FILES = {
    "study": "writer_study.csv",
    "predictions": "writer_study_predictions.csv.gz",
    "splits": "writer_study_splits.csv.gz",
    "summary": "writer_study_summary.json",
    "selection": "writer_study_selection.csv",
    "writers": "writer_pretrained.csv",
}


@dataclass(frozen=True)
class Grid:
    """One strategy's grid. Step 1 trains every (n, lr, batch) x seed without augmentation at
    body_lr_factor 1; if ``augment_values`` x ``body_lr_factors`` holds more, step 2 tries those
    variants at step 1's best configuration (as notebook 04 does)."""

    n_last_values: tuple[int, ...]
    lrs: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    epoch_values: tuple[int, ...]
    seeds: tuple[int, ...]
    augment_values: tuple[bool, ...] = (False,)
    body_lr_factors: tuple[float, ...] = (1.0,)


DEFAULT_GRIDS = {
    "last layer": Grid((1,), (3e-3, 1e-2, 3e-2), (16,), (10, 20, 40), (0, 1)),
    "last n layers": Grid((2,), (3e-4, 1e-3, 3e-3), (16,), (5, 10, 20), (0, 1)),
}
FULL_GRIDS = {  # notebooks 03 and 04
    "last layer": Grid((1,), (1e-3, 3e-3, 1e-2, 3e-2), (8, 16, 32), (5, 10, 20, 40), (0, 1, 2, 3, 4)),
    "last n layers": Grid((2, 3, 4, 5), (3e-4, 1e-3, 3e-3), (16,), (5, 10, 15, 20), (0, 1, 2, 3, 4),
                          augment_values=(False, True), body_lr_factors=(1.0, 0.1)),
}


# --------------------------------------------------------------------------- a writer's digits


@dataclass
class Digits:
    """Some of one writer's digits: UNIPEN indices, labels, uint8 images, and the frozen prefix's
    output for each ``n_last`` (``features[n]`` is what the last ``n`` stages take as input)."""

    index: np.ndarray
    y: torch.Tensor
    x: torch.Tensor
    features: dict[int, torch.Tensor]

    def __len__(self) -> int:
        return len(self.index)

    def take(self, positions) -> "Digits":
        """The digits at ``positions`` (positions in this object, not UNIPEN indices)."""
        pos = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        return Digits(self.index[pos.numpy()], self.y[pos.to(self.y.device)], self.x[pos],
                      {n: f[pos.to(f.device)] for n, f in self.features.items()})

    def inputs(self, n_last: int, whole: bool = False) -> torch.Tensor:
        """Input of the last ``n_last`` stages, or the normalised images for the whole network."""
        if whole or n_last == len(STAGES):
            return data_mod.normalize(self.x).to(self.y.device)
        return self.features[n_last]


@functools.lru_cache(maxsize=16)
def _rendered(writer: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All of a writer's digits drawn as MNIST-style images (cached; rendering is deterministic)."""
    images, labels, indices = handwriting.writer_images(writer)
    for array in (images, labels, indices):
        array.flags.writeable = False
    return images, labels, indices


@torch.no_grad()
def make_digits(images, labels, indices, pretrained: DigitCNN, n_last_values=(1, 2)) -> Digits:
    """:class:`Digits` of uint8 ``images`` with the frozen prefix's output for each ``n_last`` (computed once)."""
    device = next(pretrained.parameters()).device
    x = torch.as_tensor(np.array(images, dtype=np.uint8))
    normalised = data_mod.normalize(x).to(device)
    features, out, done = {}, normalised, 0  # each stage runs once: the deeper prefixes continue the shallower
    for n in sorted({n for n in n_last_values if n < len(STAGES)}, reverse=True):
        for name in STAGES[done: len(STAGES) - n]:
            out = getattr(pretrained, name).eval()(out)
        features[n], done = out, len(STAGES) - n
    return Digits(np.array(indices, dtype=np.int64), torch.as_tensor(np.array(labels, dtype=np.int64)).to(device),
                  x, features)


def mnist_digits(pretrained: DigitCNN, n_last_values=(1, 2), images: int | None = None) -> Digits:
    """The MNIST test images (all 10,000, or a fixed random draw of ``images``, seed 0) as :func:`make_digits`:
    what fine-tuning costs on the original task."""
    x, y = data_mod.load_mnist("test")
    pick = np.arange(len(y)) if images is None else np.sort(np.random.default_rng(0).permutation(len(y))[:images])
    return make_digits(x[pick].numpy(), y[pick].numpy(), pick, pretrained, n_last_values)


def writer_digits(writer: str, pretrained: DigitCNN, n_last_values=(1, 2)) -> Digits:
    """All of ``writer``'s digits (drawn once per process) as :func:`make_digits`."""
    return make_digits(*_rendered(writer), pretrained, n_last_values)


# --------------------------------------------------------------------------- the split


def split_rng(writer: str, split_seed: int) -> np.random.Generator:
    """The generator of one writer's split: seeded by the split seed and the writer's name."""
    return np.random.default_rng([int(split_seed), zlib.crc32(writer.encode())])


def draw_split(labels, writer: str, split_seed: int, per_digit: dict = PER_DIGIT) -> np.ndarray:
    """The split name of every digit of a writer (aligned with ``labels``).

    For each digit value, one seeded permutation of the writer's examples: the first 8 are
    "train", the next 2 "val", the next 2 "test"; every other digit of the writer is "heldout".
    """
    labels = np.asarray(labels)
    rng = split_rng(writer, split_seed)
    split = np.full(len(labels), "heldout", dtype=object)
    for digit in range(10):
        order = rng.permutation(np.flatnonzero(labels == digit))
        need = sum(per_digit.values())
        if len(order) < need:
            raise ValueError(f"{writer} has {len(order)} examples of {digit}, fewer than {need}")
        start = 0
        for name, count in per_digit.items():
            split[order[start : start + count]] = name
            start += count
    return split


def split_frame(writer: str, split_seed: int, digits: Digits, split: np.ndarray) -> pd.DataFrame:
    """One row per digit of the writer: writer, split_seed, index (UNIPEN), label, split."""
    return pd.DataFrame({"writer": writer, "split_seed": split_seed, "index": digits.index,
                         "label": digits.y.cpu().numpy(), "split": split})


# --------------------------------------------------------------------------- training and selection


@dataclass
class Trained:
    """A fine-tuned network's trainable part (``body``) and how to feed it."""

    body: nn.Module
    n_last: int
    whole: bool  # True: body is the whole network on images (augmentation or n = all stages)
    history: list[dict]
    snapshots: dict[int, dict]  # epoch -> body.state_dict() at that epoch (for the epochs asked)

    @torch.no_grad()
    def predict(self, digits: Digits) -> np.ndarray:
        """Predicted labels of ``digits`` (eval mode)."""
        self.body.eval()
        return self.body(digits.inputs(self.n_last, self.whole)).argmax(1).cpu().numpy()

    def at_epoch(self, epoch: int) -> "Trained":
        """The same run as it was after ``epoch`` epochs (from its snapshots)."""
        body = copy.deepcopy(self.body)
        body.load_state_dict(self.snapshots[epoch])
        return Trained(body, self.n_last, self.whole, self.history[:epoch], {})


def train_run(pretrained: DigitCNN, config: FinetuneConfig, train: Digits, val: Digits | None, seed: int,
              keep_epochs=()) -> Trained:
    """One fine-tuning run, step for step :func:`.training.finetune`, on cached frozen features.

    Only ``train`` and ``val`` are handed in. The frozen stages' output comes from the digits'
    cache instead of being recomputed per run; with augmentation (or every stage trainable) the
    whole network trains on the images, as in ``finetune``. ``keep_epochs``: epochs after which a
    copy of the trainable weights is kept (to score every epoch count of the grid later).
    """
    generator = training.seed_everything(seed)
    model = copy.deepcopy(pretrained)
    trainable = freeze_all_but_last(model, config.n_last)
    optimizer = torch.optim.Adam(training._param_groups(model, config), weight_decay=config.weight_decay)
    whole = config.augment or config.n_last == len(STAGES)
    body = model if whole else nn.Sequential(*[getattr(model, name) for name in trainable])
    x_val = val.inputs(config.n_last, whole) if val is not None else None
    snapshots = {}

    def keep(epoch: int) -> None:
        if epoch in keep_epochs:
            snapshots[epoch] = {k: v.detach().clone() for k, v in body.state_dict().items()}

    history = training.run_epochs(model, body, optimizer, (train.inputs(config.n_last, whole), train.y),
                                  (x_val, val.y if val is not None else None), config, generator, after_epoch=keep)
    body.eval()
    return Trained(body, config.n_last, whole, history, snapshots)


def _variants(grid: Grid) -> list[tuple[bool, float]]:
    """The (augment, body_lr_factor) pairs of step 2 (those other than step 1's (False, 1.0))."""
    return [v for v in itertools.product(grid.augment_values, grid.body_lr_factors) if v != (False, 1.0)]


def grid_runs(pretrained: DigitCNN, train: Digits, val: Digits, combos, grid: Grid) -> pd.DataFrame:
    """Each (n_last, lr, batch, augment, factor) of ``combos`` x ``grid.seeds``, scored on ``val`` only.

    One row per (configuration, epochs, seed), the columns of :func:`.tuning.grid_search`'s runs.
    """
    rows = []
    for (n_last, lr, bs, aug, factor), seed in itertools.product(combos, grid.seeds):
        if n_last == 1 and factor != 1.0:
            continue  # no body to slow down
        config = FinetuneConfig(n_last=n_last, lr=lr, batch_size=bs, epochs=max(grid.epoch_values), augment=aug,
                                body_lr_factor=factor)
        run = train_run(pretrained, config, train, val, seed)
        for row in run.history:
            if row["epoch"] in grid.epoch_values:
                rows.append({"n_last": n_last, "lr": lr, "batch_size": bs, "augment": aug, "body_lr_factor": factor,
                             "seed": seed, "epochs": row["epoch"], "val_acc": row["val_acc"],
                             "val_correct": row["val_correct"], "val_loss": row["val_loss"]})
    return pd.DataFrame(rows)


def rank(runs: pd.DataFrame, val_total: int) -> pd.DataFrame:
    """:func:`.tuning.rank_configurations` on exact counts.

    Ranked by mean validation accuracy, ties broken by mean validation loss. The means are taken
    over correct counts (integers), so two configurations with the same number of correct
    validation images over the seeds tie exactly (float accuracies can differ in the last bit).
    ``val_acc_*`` are then counts / ``val_total``.
    """
    ranking = tuning.rank_configurations(runs.assign(val_acc=runs["val_correct"].astype(float)))
    for column in ("val_acc_mean", "val_acc_std", "val_acc_min", "val_acc_max"):
        ranking[column] = ranking[column] / val_total
    ranking["tied_with_best"] = ranking["val_acc_mean"] == ranking["val_acc_mean"].iloc[0]
    return ranking


def select(pretrained: DigitCNN, train: Digits, val: Digits,
           grid: Grid) -> tuple[FinetuneConfig, pd.DataFrame, pd.DataFrame]:
    """Choose a configuration on ``val`` only: ``(chosen, ranking, runs)``.

    Step 1 over (n, lr, batch); step 2 (if the grid has variants) over augmentation and body
    learning rate at step 1's best, as notebook 04. The chosen one is the top of the ranking of all runs.
    """
    step1 = list(itertools.product(grid.n_last_values, grid.lrs, grid.batch_sizes, [False], [1.0]))
    runs = grid_runs(pretrained, train, val, step1, grid)
    variants = _variants(grid)
    if variants:
        best1 = tuning.best_config(rank(runs, len(val)))
        step2 = [(best1.n_last, best1.lr, best1.batch_size, aug, factor) for aug, factor in variants]
        runs = pd.concat([runs, grid_runs(pretrained, train, val, step2, grid)], ignore_index=True)
    ranking = rank(runs, len(val))
    return tuning.best_config(ranking), ranking, runs


# --------------------------------------------------------------------------- one protocol, the study


def _sets(digits: Digits, split: np.ndarray) -> dict[str, Digits]:
    return {name: digits.take(np.flatnonzero(split == name)) for name in SPLITS}


def _prediction_rows(writer, split_seed, model_name, set_name, digits: Digits, pred) -> pd.DataFrame:
    return pd.DataFrame({"writer": writer, "split_seed": split_seed, "model": model_name, "set": set_name,
                         "index": digits.index, "true": digits.y.cpu().numpy(), "pred": np.asarray(pred)})


def _correct(digits: Digits, pred) -> int:
    return int((np.asarray(pred) == digits.y.cpu().numpy()).sum())


def _pretrained_body(pretrained: DigitCNN) -> Trained:
    """The pre-trained model fed from the cached features of the last stage (no training)."""
    return Trained(pretrained.head, 1, False, [], {})


def run_protocol(pretrained: DigitCNN, digits: Digits, writer: str, split_seed: int, grids: dict[str, Grid],
                 final_seed: int = FINAL_SEED, mnist: Digits | None = None) -> tuple[list[dict], pd.DataFrame, pd.DataFrame]:
    """The assignment for one writer and split seed: ``(study rows, predictions, split table)``; with ``mnist``
    (:func:`mnist_digits`) every final model is also scored on the MNIST test images (``mnist_correct``)."""
    split = draw_split(digits.y.cpu().numpy(), writer, split_seed)
    sets = _sets(digits, split)
    rows, predictions = [], []
    finals = {"pre-trained": (_pretrained_body(pretrained), None, None, 0.0)}
    for strategy, grid in grids.items():
        start = time.perf_counter()
        chosen, ranking, _ = select(pretrained, sets["train"], sets["val"], grid)
        final = train_run(pretrained, chosen, sets["train"], sets["val"], final_seed)
        finals[strategy] = (final, chosen, ranking, time.perf_counter() - start)
    for model_name, (trained, chosen, ranking, seconds) in finals.items():
        row = {"writer": writer, "split_seed": split_seed, "model": model_name,
               "n_last": chosen.n_last if chosen else 0,
               "hyperparameters": json.dumps(asdict(chosen) if chosen else {}, sort_keys=True),
               **{key: getattr(chosen, key) if chosen else np.nan for key in ("lr", "batch_size", "epochs")}}
        for set_name, prefix in (("val", "val"), ("test", "own_test"), ("heldout", "heldout")):
            pred = trained.predict(sets[set_name])
            row[f"{prefix}_correct"], row[f"{prefix}_total"] = _correct(sets[set_name], pred), len(sets[set_name])
            if set_name != "val":
                predictions.append(_prediction_rows(writer, split_seed, model_name, set_name, sets[set_name], pred))
        if mnist is not None:
            row["mnist_correct"], row["mnist_total"] = _correct(mnist, trained.predict(mnist)), len(mnist)
        top = ranking.iloc[0] if ranking is not None else {}
        row.update({"grid_val_acc_mean": top.get("val_acc_mean", np.nan),
                    "grid_val_loss_mean": top.get("val_loss_mean", np.nan),
                    "tied_on_val": int(ranking["tied_with_best"].sum()) if ranking is not None else 0,
                    "configurations": len(ranking) if ranking is not None else 0, "seconds": round(seconds, 3)})
        rows.append(row)
    return rows, pd.concat(predictions, ignore_index=True), split_frame(writer, split_seed, digits, split)


def _n_values(grids: dict[str, Grid]) -> tuple[int, ...]:
    return tuple(sorted({1, *(n for g in grids.values() for n in g.n_last_values)}))


def run_study(writers=None, split_seeds=SPLIT_SEEDS, full: bool = False, grids: dict[str, Grid] | None = None,
              pretrained: DigitCNN | None = None, final_seed: int = FINAL_SEED, threads: int | None = 1,
              progress: bool = True, mnist_images: int | None = None) -> dict:
    """The protocol for every writer x split seed: ``{"study", "predictions", "splits", "seconds", "grids"}``.

    ``grids`` defaults to :data:`DEFAULT_GRIDS` (``full=True``: :data:`FULL_GRIDS`).
    ``study``: one row per writer x split seed x model (counts on validation, own test, held-out;
    the chosen hyperparameters as JSON, and lr, batch_size, epochs; ``n_last`` 0 for the
    pre-trained model; the grid's best mean validation accuracy and how many
    configurations tied with it; ``mnist_correct`` of the 10,000 MNIST test images). ``predictions``: every final model on own test and held-out,
    per image. ``splits``: every digit's split. ``mnist_images``: score on that many of the MNIST test images
    (a fixed draw) instead of all 10,000 (for quick checks).
    """
    grids = grids or (FULL_GRIDS if full else DEFAULT_GRIDS)
    writers = list(writers or handwriting.load_writers().keys())
    pretrained = pretrained if pretrained is not None else load_pretrained("cpu")
    start = time.perf_counter()
    rows, predictions, splits = [], [], []
    with torch_threads(threads):
        jobs = tqdm(list(itertools.product(writers, split_seeds)), desc="writer study", disable=not progress)
        digits, mnist = {}, mnist_digits(pretrained, _n_values(grids), mnist_images)
        for writer, split_seed in jobs:
            if writer not in digits:
                digits = {writer: writer_digits(writer, pretrained, _n_values(grids))}
            r, p, s = run_protocol(pretrained, digits[writer], writer, split_seed, grids, final_seed, mnist)
            rows += r
            predictions.append(p)
            splits.append(s)
    return {"study": pd.DataFrame(rows), "predictions": pd.concat(predictions, ignore_index=True),
            "splits": pd.concat(splits, ignore_index=True), "seconds": round(time.perf_counter() - start, 1),
            "grids": {strategy: asdict(grid) for strategy, grid in grids.items()}}


# --------------------------------------------------------------------------- summary


def accuracy_by_seed(study: pd.DataFrame, set_name: str = "heldout") -> pd.DataFrame:
    """Accuracy of each model per writer and split seed (rows writer x split_seed, a column per model)."""
    prefix = {"heldout": "heldout", "mnist": "mnist"}.get(set_name, "own_test")
    acc = study.assign(acc=study[f"{prefix}_correct"] / study[f"{prefix}_total"])
    return acc.pivot_table(index=["writer", "split_seed"], columns="model", values="acc")[list(MODELS)]


def per_writer(study: pd.DataFrame, set_name: str = "heldout") -> pd.DataFrame:
    """Per writer: each model's accuracy averaged over split seeds, with the seeds' min, max and std."""
    by_seed = accuracy_by_seed(study, set_name).groupby(level="writer")
    table = pd.concat({stat: getattr(by_seed, stat)() for stat in ("mean", "min", "max")}, axis=1)
    table = pd.concat([table, pd.concat({"std": by_seed.std(ddof=1)}, axis=1)], axis=1)
    return table.swaplevel(axis=1).sort_index(axis=1, level=0, sort_remaining=False)[list(MODELS)]


def summarize(study: pd.DataFrame, set_name: str = "heldout") -> dict:
    """Gains with 95% t-intervals across writers (paired), better/worse/equal counts, stability.

    Per writer, accuracies are averaged over split seeds first; a gain ``a - b`` is the mean over
    writers of (a - b), with a Student-t interval over the writers (df = writers - 1). Stability
    of a model: the standard deviation of its accuracy over split seeds, per writer, averaged over
    writers (NaN with one split seed).
    """
    by_seed = accuracy_by_seed(study, set_name)
    means = by_seed.groupby(level="writer").mean()
    out = {"set": set_name, "writers": len(means), "split_seeds": int(by_seed.groupby(level="writer").size().min()),
           "interval": "student_t_95_across_writers",
           "accuracy": {m: stats.mean_interval(means[m], bounds=(0, 1)) for m in MODELS}, "gains": {}, "seed_std": {}}
    for a, b in COMPARISONS:
        diff = means[a] - means[b]
        out["gains"][f"{a} - {b}"] = {**stats.mean_interval(diff), "better": int((diff > 0).sum()),
                                      "worse": int((diff < 0).sum()), "equal": int((diff == 0).sum()),
                                      "per_writer": {w: float(v) for w, v in diff.items()}}
    for m in MODELS:
        out["seed_std"][m] = float(by_seed[m].groupby(level="writer").std(ddof=1).mean())
    return out


# How the study's two evaluation sets are named wherever a person reads them: "own test" is the student's, never a
# bundled writer's 20 test images.
SET_NAMES = {"heldout": "writer's held-out digits", "own_test": "writer's test (20)", "mnist": "MNIST test (10,000)"}


def shown_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The study's table with ``own_test_*`` and ``heldout_*`` columns named for a reader (``writer's test (20)
    correct``), as the workbook shows them."""
    return table.rename(columns=lambda c: next((f"{SET_NAMES[p]} {c[len(p) + 1:]}" for p in SET_NAMES
                                                  if c.startswith(p + "_")), c))


def gains_table(summary: dict) -> pd.DataFrame:
    """The paired gains of :func:`study_summary` as a table: one row per (set, comparison), accuracies as
    fractions, with the writers better / worse / equal and the spread over split seeds of each model."""
    rows = []
    for set_name in [name for name in SET_NAMES if name in summary]:
        for name, g in summary[set_name]["gains"].items():
            rows.append({"evaluated on": SET_NAMES[set_name], "comparison": name, "mean gain": g["mean"], "95% CI low": g["ci_low"],
                         "95% CI high": g["ci_high"], "median gain": float(np.median(list(g["per_writer"].values()))),
                         "writers better": g["better"], "writers worse": g["worse"], "writers equal": g["equal"]})
    return pd.DataFrame(rows)


def seed_spread_table(summary: dict) -> pd.DataFrame:
    """Standard deviation of each model's accuracy over split seeds (averaged over writers), in points."""
    return pd.DataFrame({SET_NAMES[s]: {m: 100 * v for m, v in summary[s]["seed_std"].items()}
                         for s in ("heldout", "own_test")}).rename_axis("std over split seeds (points)")


def study_summary(study: pd.DataFrame) -> dict:
    """:func:`summarize` on the held-out digits and on the 20-image own test."""
    out = {"heldout": summarize(study, "heldout"), "own_test": summarize(study, "test")}
    if "mnist_correct" in study:
        out["mnist"] = summarize(study, "mnist")
    return out


# --------------------------------------------------------------------------- item 5: what selection costs


def selection_cost(writer: str, split_seed: int = 0, full: bool = False, grids: dict[str, Grid] | None = None,
                   pretrained: DigitCNN | None = None, final_seed: int = FINAL_SEED, threads: int | None = 1,
                   progress: bool = True) -> pd.DataFrame:
    """Every configuration of the grid scored on the held-out digits, after selection (reporting only).

    First the selection exactly as in the study (validation only). Then every configuration x
    training seed is trained again and its held-out accuracy at each epoch count recorded. One
    row per strategy x configuration: its validation rank and means, ``tied_with_best`` (same
    mean validation accuracy as the top: the tie was broken by mean validation loss), its mean
    held-out accuracy over the training seeds and at ``final_seed`` (the seed of the final model),
    ``chosen`` and ``best_heldout`` (highest mean held-out accuracy in the grid).
    """
    grids = grids or (FULL_GRIDS if full else DEFAULT_GRIDS)
    pretrained = pretrained if pretrained is not None else load_pretrained("cpu")
    tables = []
    with torch_threads(threads):
        digits = writer_digits(writer, pretrained, _n_values(grids))
        sets = _sets(digits, draw_split(digits.y.cpu().numpy(), writer, split_seed))
        chosen = {s: select(pretrained, sets["train"], sets["val"], g)[:2] for s, g in grids.items()}
        for strategy, (config, ranking) in chosen.items():  # selection is done: held-out from here on
            scores = _heldout_scores(pretrained, sets, ranking, grids[strategy], final_seed, progress)
            table = ranking.merge(scores, on=tuning.CONFIG_COLUMNS)
            table.insert(0, "strategy", strategy)
            table["chosen"] = table["rank"] == 1
            table["best_heldout"] = table["heldout_acc_mean"] == table["heldout_acc_mean"].max()
            tables.append(table)
    out = pd.concat(tables, ignore_index=True)
    out.insert(0, "split_seed", split_seed)
    out.insert(0, "writer", writer)
    return out


def _heldout_scores(pretrained, sets, ranking, grid: Grid, final_seed: int, progress: bool) -> pd.DataFrame:
    """Held-out accuracy of every configuration of ``ranking`` at every epoch count, per training seed."""
    heldout = sets["heldout"]
    runs = ranking.drop_duplicates(tuning.RUN_KEYS)[tuning.RUN_KEYS].to_dict("records")
    seeds = sorted({*grid.seeds, final_seed})
    rows = []
    for run, seed in tqdm(list(itertools.product(runs, seeds)), desc="held-out of every configuration",
                          disable=not progress):
        config = FinetuneConfig(**run, epochs=max(grid.epoch_values))
        trained = train_run(pretrained, config, sets["train"], sets["val"], seed, keep_epochs=grid.epoch_values)
        for epochs in grid.epoch_values:
            correct = _correct(heldout, trained.at_epoch(epochs).predict(heldout))
            rows.append({**run, "epochs": epochs, "seed": seed, "heldout_acc": correct / len(heldout)})
    scores = pd.DataFrame(rows)
    in_grid = scores[scores.seed.isin(grid.seeds)].groupby(tuning.CONFIG_COLUMNS)["heldout_acc"]
    final = scores[scores.seed == final_seed].set_index(tuning.CONFIG_COLUMNS)["heldout_acc"]
    return pd.DataFrame({"heldout_acc_mean": in_grid.mean(), "heldout_acc_min": in_grid.min(),
                         "heldout_acc_max": in_grid.max(), "heldout_acc_final_seed": final}).reset_index()


def selection_cost_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: held-out accuracy of the chosen configuration and of the grid's best, the cost
    (best - chosen, mean over training seeds), how many configurations tied on validation, and
    the range of held-out accuracy among those tied."""
    rows = []
    for (writer, split_seed, strategy), t in table.groupby(["writer", "split_seed", "strategy"], sort=False):
        chosen, tied = t[t.chosen].iloc[0], t[t.tied_with_best]
        rows.append({"writer": writer, "split_seed": split_seed, "strategy": strategy,
                     "configurations": len(t), "tied_on_val": len(tied),
                     "chosen_heldout_acc_mean": chosen.heldout_acc_mean,
                     "chosen_heldout_acc_final_seed": chosen.heldout_acc_final_seed,
                     "best_heldout_acc_mean": t.heldout_acc_mean.max(),
                     "cost": t.heldout_acc_mean.max() - chosen.heldout_acc_mean,
                     "chosen_heldout_rank": int((t.heldout_acc_mean > chosen.heldout_acc_mean).sum()) + 1,
                     "tied_heldout_min": tied.heldout_acc_mean.min(), "tied_heldout_max": tied.heldout_acc_mean.max(),
                     "worst_heldout_acc_mean": t.heldout_acc_mean.min()})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- writers, figures, files


def pretrained_by_writer(writers=None, pretrained: DigitCNN | None = None) -> pd.DataFrame:
    """The pre-trained model on all of each writer's digits: counts, accuracy with a Wilson interval,
    errors, whether it is perfect, and the digit it reads worst (lowest recall)."""
    pretrained = pretrained if pretrained is not None else load_pretrained("cpu")
    rows = []
    for writer in writers or handwriting.load_writers().keys():
        digits = writer_digits(writer, pretrained, (1,))
        true = digits.y.cpu().numpy()
        pred = _pretrained_body(pretrained).predict(digits)
        summary = stats.accuracy_summary(true, pred)
        recall = [r["recall"] for r in stats.per_class_metrics(true, pred)]
        rows.append({"writer": writer, "digits": summary["total"], "correct": summary["correct"],
                     "errors": summary["total"] - summary["correct"], "accuracy": summary["accuracy"],
                     "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
                     "perfect": summary["correct"] == summary["total"],
                     "worst_digit": int(np.argmin(recall)), "worst_digit_recall": float(np.min(recall))})
    return pd.DataFrame(rows)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    raise TypeError(f"cannot write {type(value)} to JSON")


def save_study(outputs: dict, folder: Path = paths.RESULTS_DIR) -> dict[str, Path]:
    """Write whatever of study / predictions / splits / selection / writers is in ``outputs``, and
    the summary of the study, under ``folder``; return the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for key, frame in outputs.items():
        if key in FILES and isinstance(frame, pd.DataFrame):
            written[key] = folder / FILES[key]
            # gzip without a timestamp: the same tables give the same bytes
            gzip = {"method": "gzip", "mtime": 0} if written[key].suffix == ".gz" else None
            frame.to_csv(written[key], index=False, compression=gzip)
    if "study" in outputs:
        written["summary"] = folder / FILES["summary"]
        summary = {**study_summary(outputs["study"]), "seconds": outputs.get("seconds"), "grids": outputs.get("grids")}
        written["summary"].write_text(json.dumps(summary, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return written


def agreement(recomputed: pd.DataFrame, committed: pd.DataFrame, tolerance: int = 2) -> dict:
    """Do rows of the study trained again match the committed study's? Per (writer, split seed, model): the same
    chosen hyperparameters, and every count (validation, test, held-out, MNIST) within ``tolerance`` images."""
    keys = ["writer", "split_seed", "model"]
    counts = [c for c in COUNTS if c in recomputed and c in committed]
    found = recomputed.merge(committed[keys + ["hyperparameters"] + counts], on=keys, suffixes=("", "_committed"))
    same = found.hyperparameters.map(json.loads) == found.hyperparameters_committed.map(json.loads)
    diff = pd.concat([(found[c] - found[f"{c}_committed"]).abs() for c in counts], axis=1).max(axis=1)
    return {"rows": int(len(recomputed)), "found": int(len(found)), "same_choices": int(same.sum()),
            "max_difference": int(diff.max()) if len(found) else None,
            "agree": bool(len(found) == len(recomputed) and same.all() and (diff <= tolerance).all())}


def same_grids(committed: dict, grids: dict[str, Grid]) -> bool:
    """Was the committed study (:func:`load_study`) run with ``grids``?"""
    saved = (committed.get("summary") or {}).get("grids")
    return saved is not None and json.loads(json.dumps({k: asdict(g) for k, g in grids.items()})) == saved


def load_study(folder: Path = paths.RESULTS_DIR) -> dict:
    """The files of :func:`save_study` that exist under ``folder`` (tables as DataFrames, summary as a dict)."""
    folder = Path(folder)
    out = {}
    for key, name in FILES.items():
        path = folder / name
        if not path.exists():
            continue
        try:
            out[key] = json.loads(path.read_text(encoding="utf-8")) if key == "summary" else pd.read_csv(path)
        except (ValueError, EOFError, OSError) as err:  # bad JSON, bad CSV, a truncated .gz
            raise ValueError(f"{paths.shown(path)} is damaged ({type(err).__name__}: {err}); run notebook "
                             "05_writer_study again to write it.") from None
    return out
