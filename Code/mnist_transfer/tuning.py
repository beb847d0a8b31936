"""Choosing fine-tuning hyperparameters on the validation set only.

:func:`grid_search` trains every configuration x seed on the 80 training images and scores
it on the 20 validation images; :func:`rank_configurations` averages over seeds and ranks;
:func:`best_config` is the winner; :func:`stability` measures how steady it is. The grids
themselves (learning rates, batch sizes, epochs, n) are the parameters cells of notebooks
03 and 04. No function here takes a test set.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from tqdm import tqdm

from .model import DigitCNN
from .training import FinetuneConfig, finetune

# The columns that identify one configuration in the ranking (this order is the CSV's).
CONFIG_COLUMNS = ["n_last", "lr", "batch_size", "epochs", "augment", "body_lr_factor"]
# One training run is a configuration without its epoch count (epochs are read off one run) ...
RUN_KEYS = [c for c in CONFIG_COLUMNS if c != "epochs"]


def grid_search(
    pretrained: DigitCNN,
    train: dict,
    val: dict,
    n_last_values: list[int],
    lrs: list[float],
    batch_sizes: list[int],
    epoch_values: list[int],
    seeds: list[int],
    augment_values: list[bool] = (False,),
    body_lr_factors: list[float] = (1.0,),
    progress: bool = True,
    skip: list[tuple[bool, float]] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every configuration x seed trained on ``train`` and scored on ``val``: no test set here.

    Returns ``(runs, curves)``: one row per (configuration, epochs, seed) with its
    validation accuracy and loss, and the per-epoch curves of every run. Epoch counts are
    read off one run of ``max(epoch_values)`` epochs (constant learning rate).
    """
    combos = [
        c for c in itertools.product(n_last_values, lrs, batch_sizes, augment_values, body_lr_factors, seeds)
        if not (c[0] == 1 and c[4] != 1.0)  # a body learning rate means nothing when only the head trains
        and (c[3], c[4]) not in skip  # (augment, body_lr_factor) variants the caller already has
    ]
    rows, curves = [], []
    for n_last, lr, bs, aug, factor, seed in tqdm(combos, desc="grid search", disable=not progress, mininterval=2):
        config = FinetuneConfig(n_last=n_last, lr=lr, batch_size=bs, epochs=max(epoch_values), augment=aug,
                                body_lr_factor=factor)
        _, history = finetune(pretrained, config, train, val, seed)
        key = {"n_last": n_last, "lr": lr, "batch_size": bs, "augment": aug, "body_lr_factor": factor, "seed": seed}
        for row in history:
            curves.append({**key, **row})
            if row["epoch"] in epoch_values:
                rows.append({**key, "epochs": row["epoch"], "val_acc": row["val_acc"],
                             "val_correct": row["val_correct"], "val_loss": row["val_loss"]})
    return pd.DataFrame(rows), pd.DataFrame(curves)


def tricks_search(pretrained: DigitCNN, train: dict, val: dict, base: FinetuneConfig, epoch_values: list[int],
                  seeds: list[int], augment_values: list[bool], body_lr_factors: list[float],
                  progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Like :func:`grid_search` at ``base``'s n, learning rate and batch size, over augmentation and
    body learning-rate factors, leaving out ``base``'s own variant (already trained)."""
    return grid_search(pretrained, train, val, n_last_values=[base.n_last], lrs=[base.lr],
                       batch_sizes=[base.batch_size], epoch_values=epoch_values, seeds=seeds,
                       augment_values=augment_values, body_lr_factors=body_lr_factors, progress=progress,
                       skip=[(base.augment, base.body_lr_factor)])


def rank_configurations(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds per configuration, best first.

    Ranked by mean validation accuracy, computed from the counts of correct images so that two
    configurations with the same count tie exactly (float accuracies can differ in the last bit);
    ties are broken by mean validation loss (lower is better).
    """
    summary = (
        runs.groupby(CONFIG_COLUMNS)
        .agg(val_acc_mean=("val_acc", "mean"), val_acc_std=("val_acc", "std"), val_acc_min=("val_acc", "min"),
             val_acc_max=("val_acc", "max"), val_correct_mean=("val_correct", "mean"),
             val_loss_mean=("val_loss", "mean"), seeds=("seed", "count"))
        .reset_index()
        .sort_values(["val_correct_mean", "val_loss_mean"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )
    summary.insert(0, "rank", range(1, len(summary) + 1))
    return summary


def config_of(row) -> FinetuneConfig:
    """The :class:`FinetuneConfig` of one ranking row (a Series or a dict)."""
    return FinetuneConfig(
        n_last=int(row["n_last"]), lr=float(row["lr"]), batch_size=int(row["batch_size"]), epochs=int(row["epochs"]),
        augment=bool(row["augment"]), body_lr_factor=float(row["body_lr_factor"]),
    )


def best_config(ranking: pd.DataFrame) -> FinetuneConfig:
    """The top-ranked configuration of :func:`rank_configurations`."""
    return config_of(ranking.iloc[0])


def rows_of(frame: pd.DataFrame, config, keys=RUN_KEYS) -> pd.DataFrame:
    """The rows of a runs/curves/ranking table that belong to ``config`` (a FinetuneConfig or dict) on ``keys``."""
    values = config if isinstance(config, dict) else vars(config)
    mask = np.ones(len(frame), bool)
    for key in keys:
        mask &= (frame[key] == values[key]).to_numpy()
    return frame[mask]


def stability(ranking: pd.DataFrame, curves: pd.DataFrame, config: FinetuneConfig) -> dict:
    """How steady a configuration is: spread over seeds, learning-rate sensitivity, curve roughness.

    * ``seed_std``: standard deviation of validation accuracy over seeds at ``config``;
    * ``lr_range``: best minus worst mean validation accuracy over the learning rates tried,
      everything else as in ``config`` (0 by construction when ``lrs_tried`` holds one rate);
    * ``val_loss_roughness``: mean absolute change of validation loss from one epoch to the next
      (over seeds, up to ``config.epochs``): large = jumpy curves.
    """
    same = rows_of(ranking, config, [k for k in CONFIG_COLUMNS if k != "lr"])
    row = rows_of(same, config, ["lr"]).iloc[0]
    sel = rows_of(curves, config)
    sel = sel[sel.epoch <= config.epochs].sort_values(["seed", "epoch"])
    rough = sel.groupby("seed")["val_loss"].apply(lambda s: s.diff().abs().mean()).mean()
    return {
        "val_acc_mean": float(row.val_acc_mean),
        "seed_std": float(row.val_acc_std),
        "seeds": int(row.seeds),
        "lr_range": float(same.val_acc_mean.max() - same.val_acc_mean.min()),
        "lrs_tried": sorted(float(v) for v in same.lr.unique()),
        "val_loss_roughness": float(rough),
    }


def stability_table(strategies: dict[str, dict]) -> pd.DataFrame:
    """The stability figures of several strategies side by side (one column each), for a notebook.

    ``lrs_tried`` becomes the number of learning rates compared, so that an ``lr_range`` of
    0 from a single rate is visibly not a measurement.
    """
    table = pd.DataFrame({name: {**s, "lrs_tried": len(s["lrs_tried"])} for name, s in strategies.items()})
    return table.rename(index={"lrs_tried": "learning rates compared"})


def score_after_selection(pretrained: DigitCNN, ranking: pd.DataFrame, train: dict, heldout: dict,
                          epoch_values: list[int], seed: int) -> pd.DataFrame:
    """After the choice is made: every configuration of ``ranking`` trained once more (``seed``, the final
    model's) and scored on a held-out set, to measure what choosing on the validation images cost.

    Reporting only: nothing is chosen from this table. Epoch counts are read off one run, as in
    :func:`grid_search` (the held-out set takes the validation set's place in the history, which only
    records it). The chosen configuration's row therefore equals the final model's held-out result.
    """
    rows = []
    for run in ranking.drop_duplicates(RUN_KEYS)[RUN_KEYS].to_dict("records"):
        config = FinetuneConfig(**{k: v.item() if hasattr(v, "item") else v for k, v in run.items()},
                                epochs=max(epoch_values))
        _, history = finetune(pretrained, config, train, heldout, seed, val_epochs=set(epoch_values))
        rows += [{**run, "epochs": h["epoch"], "heldout_correct": h["val_correct"], "heldout_total": len(heldout["y"])}
                 for h in history if h["epoch"] in epoch_values]
    table = ranking.merge(pd.DataFrame(rows), on=CONFIG_COLUMNS)
    table["tied_with_chosen"] = table.val_correct_mean == table.val_correct_mean.iloc[0]
    return table


def selection_cost(table: pd.DataFrame) -> dict:
    """From :func:`score_after_selection`: the chosen configuration's held-out accuracy, the best and worst in
    the grid, how many configurations tied with the choice on validation and their held-out range, and the cost
    (best minus chosen)."""
    acc = table.heldout_correct / table.heldout_total
    tied = acc[table.tied_with_chosen]
    return {"configurations": len(table), "tied": int(table.tied_with_chosen.sum()), "heldout_total": int(table.heldout_total.iloc[0]),
            "chosen": float(acc.iloc[0]), "best": float(acc.max()), "worst": float(acc.min()),
            "tied_min": float(tied.min()), "tied_max": float(tied.max()), "cost": float(acc.max() - acc.iloc[0]),
            "chosen_rank_on_heldout": int((acc > acc.iloc[0]).sum()) + 1}
