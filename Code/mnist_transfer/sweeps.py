"""Training stability where it shows: learning-rate and depth sweeps on the bundled writers' held-out digits,
and what fine-tuning costs on MNIST (issue 18). Reporting only.

For every writer of the study (its split seed :data:`SPLIT_SEED`: 80 training, 20 validation, 20 test digits,
the rest held out, exactly as :func:`.writer_study.draw_split` draws them), every depth ``n`` of
:data:`DEPTHS` (1 = the classifier only, 5 = the whole network) is fine-tuned at every learning rate of
:data:`LRS` (about half a decade apart, from where nothing moves to where training breaks down), with
batch size :data:`BATCH_SIZE` and :data:`EPOCHS` epochs (the longest runs the study's grids allow), for
each training seed. Every run is scored on its validation and held-out digits after a quarter, half,
three quarters and all of its epochs (after every epoch for the writers of ``Sweep.curve_writers``), and
after the last epoch on :data:`MNIST_IMAGES` MNIST test images, a fixed random draw (what it forgot).
Scoring, not training, is most of a run's time; these choices make the full sweep about five times
cheaper than scoring every epoch on all 10,000 MNIST images.

Nothing here feeds a choice of notebooks 03-05: the selected models come from validation alone
elsewhere. The one choice made here, the rate of each depth in :func:`depth_table`, is made on the
validation digits (mean over writers and seeds, ties broken by validation loss); the held-out digits are
only reported. :func:`stable_ranges` is a description of the held-out curve, not a choice.

:data:`FULL` is the sweep whose results are committed (``writer_sweep_runs.csv.gz``);
:data:`SUBSET` is what notebook 05 recomputes by default, in about a minute: some of the full sweep's
runs, which :func:`agreement` compares with the committed ones. The subset keeps to rates where training
is stable: at 1e-1 with five layers trained, one rounding difference between two CPUs grows within a few
epochs into hundreds of held-out digits (the same CPU reproduces a run exactly), so no other machine could
check those runs by training them again.
"""

from __future__ import annotations

import itertools
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import data as data_mod
from . import paths
from .model import STAGES, DigitCNN, load_pretrained
from .training import FinetuneConfig, torch_threads
from .stats import mean_interval
from .writer_study import Digits, draw_split, mnist_digits, train_run, writer_digits

LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
DEPTHS = (1, 2, 3, 4, 5)
BATCH_SIZE = 16
EPOCHS = {1: 40, 2: 20, 3: 20, 4: 20, 5: 20}  # the largest epoch counts of the study's grids (last layer; last n)
SPLIT_SEED = 0
MNIST_IMAGES = 2000  # of the 10,000 MNIST test images, drawn once with seed 0
WITHIN = 0.01  # "stable": held-out accuracy within 1 point of the depth's best rate
FILES = {"runs": "writer_sweep_runs.csv.gz", "summary": "writer_sweep_summary.json"}


@dataclass(frozen=True)
class Sweep:
    """Which writers, depths, rates and training seeds a sweep covers."""

    writers: tuple[str, ...]
    depths: tuple[int, ...] = DEPTHS
    lrs: tuple[float, ...] = LRS
    seeds: tuple[int, ...] = (0, 1)
    batch_size: int = BATCH_SIZE
    curve_writers: tuple[str, ...] = ("W01",)  # scored after every epoch (the curves)

    def runs(self) -> int:
        return len(self.writers) * len(self.depths) * len(self.lrs) * len(self.seeds)


FULL = Sweep(writers=tuple(f"W{i:02d}" for i in range(1, 11)))
SUBSET = Sweep(writers=("W01", "W06"), depths=(1, 2, 5), lrs=(1e-3, 1e-2), seeds=(0,))


def scored_epochs(epochs: int, every: bool = False) -> list[int]:
    """The epochs after which a run is scored: every one, or a quarter, half, three quarters and the end."""
    return list(range(1, epochs + 1)) if every else sorted({max(1, round(epochs * q)) for q in (0.25, 0.5, 0.75, 1.0)})


def run_sweep(sweep: Sweep = SUBSET, pretrained: DigitCNN | None = None, progress: bool = True,
              processes: int = 1) -> dict:
    """Every run of ``sweep``: ``{"runs", "seconds", "sweep"}``.

    ``processes`` > 1 trains the writers in that many processes at once (each on one torch thread, each
    loading the shipped checkpoint itself); the rows are the same, in the same order.

    ``runs`` has one row per (writer, n_last, lr, seed, scored epoch): training loss, validation and held-out
    correct counts and loss; ``mnist_correct`` (of :data:`MNIST_IMAGES`) is filled at the last epoch only.
    """
    start = time.perf_counter()
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            parts = list(tqdm(pool.map(_writer_runs, [sweep] * len(sweep.writers), sweep.writers),
                              total=len(sweep.writers), desc="learning-rate sweep (writers)", disable=not progress))
    else:
        pretrained = pretrained if pretrained is not None else load_pretrained("cpu")
        bar = tqdm(total=sweep.runs(), desc="learning-rate sweep", disable=not progress)
        parts = [_writer_runs(sweep, writer, pretrained, bar) for writer in sweep.writers]
        bar.close()
    rows = [row for part in parts for row in part]
    return {"runs": pd.DataFrame(rows), "seconds": round(time.perf_counter() - start, 1), "sweep": asdict(sweep)}


def _writer_runs(sweep: Sweep, writer: str, pretrained: DigitCNN | None = None, bar=None) -> list[dict]:
    """Every run of ``sweep`` for one writer (also the work of one process)."""
    pretrained = pretrained if pretrained is not None else load_pretrained("cpu")
    rows = []
    with torch_threads(1):
        mnist = mnist_digits(pretrained, sweep.depths, MNIST_IMAGES)
        digits = _writer_sets(writer, pretrained, sweep.depths)
        for n_last, lr, seed in itertools.product(sweep.depths, sweep.lrs, sweep.seeds):
            rows += _one_run(pretrained, digits, mnist, writer, n_last, lr, seed, sweep.batch_size,
                             every_epoch=writer in sweep.curve_writers)
            if bar is not None:
                bar.update()
    return rows


def _writer_sets(writer: str, pretrained: DigitCNN, depths) -> dict[str, Digits]:
    digits = writer_digits(writer, pretrained, depths)
    split = draw_split(digits.y.cpu().numpy(), writer, SPLIT_SEED)
    return {name: digits.take(np.flatnonzero(split == name)) for name in ("train", "val", "heldout")}


@torch.no_grad()
def _scores(trained, digits: Digits) -> tuple[int, float]:
    trained.body.eval()
    logits = trained.body(digits.inputs(trained.n_last, trained.whole))
    return int((logits.argmax(1) == digits.y).sum()), float(torch.nn.functional.cross_entropy(logits, digits.y))


def _one_run(pretrained, sets, mnist, writer, n_last, lr, seed, batch_size, every_epoch=False) -> list[dict]:
    """One fine-tuning run scored at :func:`scored_epochs` (validation and held-out), and on MNIST at the end."""
    config = FinetuneConfig(n_last=n_last, lr=lr, batch_size=batch_size, epochs=EPOCHS[n_last])
    epochs = scored_epochs(config.epochs, every_epoch)
    trained = train_run(pretrained, config, sets["train"], None, seed, keep_epochs=epochs)
    rows = []
    for epoch in epochs:
        history = trained.history[epoch - 1]
        at = trained.at_epoch(epoch)
        val_correct, val_loss = _scores(at, sets["val"])
        held_correct, held_loss = _scores(at, sets["heldout"])
        row = {"writer": writer, "n_last": n_last, "lr": lr, "seed": seed, "batch_size": batch_size,
               "epoch": epoch, "train_loss": history["train_loss"],
               "val_correct": val_correct, "val_total": len(sets["val"]), "val_loss": val_loss,
               "heldout_correct": held_correct, "heldout_total": len(sets["heldout"]), "heldout_loss": held_loss,
               "mnist_correct": np.nan, "mnist_total": len(mnist)}
        if epoch == config.epochs:
            row["mnist_correct"] = _scores(at, mnist)[0]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- summaries


def final_epoch(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last epoch (the sweep's model), with accuracies as fractions."""
    last = runs[runs.epoch == runs.n_last.map(EPOCHS)].copy()
    for name in ("val", "heldout", "mnist"):
        last[f"{name}_acc"] = last[f"{name}_correct"] / last[f"{name}_total"]
    return last.reset_index(drop=True)


def lr_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per depth and rate: held-out accuracy averaged over seeds per writer, then over writers (mean and a
    95% t-interval across writers), the band of the seeds (the lowest and highest seed's mean over
    writers), validation accuracy and loss, and MNIST accuracy."""
    last = final_epoch(runs)
    per_writer = last.groupby(["n_last", "lr", "writer"])[["heldout_acc", "val_acc", "val_loss", "mnist_acc"]].mean()
    per_seed = last.groupby(["n_last", "lr", "seed"])["heldout_acc"].mean()
    rows = []
    for (n_last, lr), t in per_writer.groupby(level=["n_last", "lr"]):
        held = mean_interval(t.heldout_acc.to_numpy(), bounds=(0, 1))
        seeds = per_seed.loc[(n_last, lr)]
        rows.append({"n_last": n_last, "lr": lr, "writers": len(t), "heldout_acc": held["mean"],
                     "ci_low": held["ci_low"], "ci_high": held["ci_high"],
                     "seed_low": float(seeds.min()), "seed_high": float(seeds.max()),
                     "val_acc": float(t.val_acc.mean()), "val_loss": float(t.val_loss.mean()),
                     "mnist_acc": float(t.mnist_acc.mean())})
    return pd.DataFrame(rows)


def stable_ranges(table: pd.DataFrame, within: float = WITHIN) -> pd.DataFrame:
    """Per depth: its best held-out rate and the unbroken run of neighbouring rates within ``within`` of it.

    A description of the held-out curves (reporting, not a choice): ``steps`` counts the rates in the run,
    ``decades`` the width of the run in decades of learning rate (0 when only the best rate qualifies).
    """
    rows = [{"n_last": n_last, **_stable_run(t.lr.to_numpy(), t.heldout_acc.to_numpy(), within)}
            for n_last, t in table.sort_values("lr").groupby("n_last")]
    return pd.DataFrame(rows)


def _stable_run(lrs: np.ndarray, acc: np.ndarray, within: float) -> dict:
    """The best rate of one held-out curve (rates ascending) and the unbroken run of rates within ``within``."""
    best = int(np.argmax(acc))
    ok = acc >= acc[best] - within - 1e-12
    low = high = best
    while low > 0 and ok[low - 1]:
        low -= 1
    while high < len(acc) - 1 and ok[high + 1]:
        high += 1
    return {"best_lr": lrs[best], "best_heldout_acc": acc[best], "lr_low": lrs[low], "lr_high": lrs[high],
            "steps": high - low + 1, "decades": float(np.log10(lrs[high] / lrs[low])),
            "at_edge": bool(low == 0 or high == len(acc) - 1),
            "worst_heldout_acc": float(acc.min()), "worst_lr": lrs[int(np.argmin(acc))]}


def writer_ranges(runs: pd.DataFrame, within: float = WITHIN) -> pd.DataFrame:
    """Each writer's own stable range per depth: the same rule as :func:`stable_ranges` on that writer's
    held-out curve (final epoch, mean over training seeds)."""
    curve = final_epoch(runs).groupby(["writer", "n_last", "lr"]).heldout_acc.mean().reset_index()
    rows = [{"writer": writer, "n_last": n_last, **_stable_run(t.lr.to_numpy(), t.heldout_acc.to_numpy(), within)}
            for (writer, n_last), t in curve.sort_values("lr").groupby(["writer", "n_last"])]
    return pd.DataFrame(rows)


def range_spread(runs: pd.DataFrame, within: float = WITHIN) -> pd.DataFrame:
    """Per depth, the width in decades of the writers' own stable ranges: mean with a 95% t-interval across
    writers, and the narrowest and widest writer's."""
    rows = []
    for n_last, t in writer_ranges(runs, within).groupby("n_last"):
        width = mean_interval(t.decades.to_numpy(), bounds=(0.0, float(np.log10(runs.lr.max() / runs.lr.min()))))
        rows.append({"n_last": n_last, "writers": len(t), "decades_mean": width["mean"],
                     "decades_ci_low": width["ci_low"], "decades_ci_high": width["ci_high"],
                     "decades_min": float(t.decades.min()), "decades_max": float(t.decades.max())})
    return pd.DataFrame(rows)


def depth_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per depth: the rate chosen on validation (mean validation accuracy over writers and seeds, ties broken
    by the lower mean validation loss), and at that rate the held-out accuracy across writers (mean, 95%
    t-interval), its MNIST accuracy, and how many rates tied on validation."""
    table = lr_table(runs)
    last = final_epoch(runs)
    rows = []
    for n_last, t in table.groupby("n_last"):
        ranked = t.sort_values(["val_acc", "val_loss"], ascending=[False, True])
        chosen = ranked.iloc[0]
        at = last[(last.n_last == n_last) & (last.lr == chosen.lr)]
        per_writer = at.groupby("writer")[["heldout_acc", "mnist_acc"]].mean()
        held, mnist = (mean_interval(per_writer[column].to_numpy(), bounds=(0, 1)) for column in ("heldout_acc", "mnist_acc"))
        rows.append({"n_last": n_last, "stages": ", ".join(STAGES[-n_last:]), "lr_chosen_on_val": chosen.lr,
                     "val_acc": chosen.val_acc, "rates_tied_on_val": int((t.val_acc == chosen.val_acc).sum()),
                     "heldout_acc": held["mean"], "ci_low": held["ci_low"], "ci_high": held["ci_high"],
                     "mnist_acc": mnist["mean"], "mnist_ci_low": mnist["ci_low"], "mnist_ci_high": mnist["ci_high"],
                     "writers": len(per_writer)})
    return pd.DataFrame(rows)


def curves(runs: pd.DataFrame, writer: str, lrs, depths=(1, 2), seed: int = 0) -> pd.DataFrame:
    """Held-out accuracy after every epoch, for one writer, some rates and depths, one training seed."""
    pick = runs[(runs.writer == writer) & runs.lr.isin(lrs) & runs.n_last.isin(depths) & (runs.seed == seed)]
    return pick.assign(heldout_acc=pick.heldout_correct / pick.heldout_total)[
        ["n_last", "lr", "epoch", "heldout_acc", "train_loss"]].reset_index(drop=True)


def oscillation(runs: pd.DataFrame) -> pd.DataFrame:
    """Per depth and rate: how much held-out accuracy moves in the second half of training (mean over writers
    and seeds of the range of held-out accuracy at the scored epochs from the half on), and how far the last
    epoch is below the best of those."""
    late = runs[runs.epoch >= runs.n_last.map(EPOCHS) / 2].assign(acc=lambda t: t.heldout_correct / t.heldout_total)
    g = late.groupby(["n_last", "lr", "writer", "seed"]).acc
    spread = (g.max() - g.min()).groupby(level=["n_last", "lr"]).mean()
    last = late[late.epoch == late.n_last.map(EPOCHS)].set_index(["n_last", "lr", "writer", "seed"]).acc
    drop = (g.max() - last).groupby(level=["n_last", "lr"]).mean()
    return pd.DataFrame({"late_range": spread, "last_below_best": drop}).reset_index()


def summarize(outputs: dict) -> dict:
    """What the report and the workbook quote, from the runs alone."""
    runs = outputs["runs"]
    table = lr_table(runs)
    return {"sweep": outputs.get("sweep"), "seconds": outputs.get("seconds"), "runs": int(len(final_epoch(runs))),
            "within": WITHIN, "epochs": EPOCHS, "split_seed": SPLIT_SEED,
            "stable_ranges": stable_ranges(table).to_dict("records"),
            "range_spread": range_spread(runs).to_dict("records"),
            "depth": depth_table(runs).to_dict("records")}


def agreement(recomputed: pd.DataFrame, committed: pd.DataFrame, tolerance: int = 2, share: float = 0.01) -> dict:
    """Compare recomputed runs with the same runs of the committed sweep (per run and epoch: held-out and
    validation counts). Different CPUs round differently, so up to ``tolerance`` images, or ``share`` of the
    set where that is more, may differ (on 808 held-out digits: 8)."""
    keys = ["writer", "n_last", "lr", "seed", "epoch"]
    both = recomputed.merge(committed, on=keys, suffixes=("", "_committed"), how="left", indicator=True)
    found = both[both._merge == "both"]
    off = {name: (found[f"{name}_correct"] - found[f"{name}_correct_committed"]).abs() for name in ("heldout", "val")}
    diff = np.maximum(off["heldout"], off["val"])
    within = all((off[name] <= np.maximum(tolerance, np.floor(share * found[f"{name}_total"]))).all() for name in off)
    return {"rows": int(len(recomputed)), "found": int(len(found)), "identical": int((diff == 0).sum()),
            "max_difference": int(diff.max()) if len(found) else None,
            "agree": bool(len(found) == len(recomputed) and within)}


def save_sweep(outputs: dict, folder: Path = paths.RESULTS_DIR) -> dict[str, Path]:
    """Write the runs (gzip without a timestamp: the same runs give the same bytes) and their summary."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"runs": folder / FILES["runs"], "summary": folder / FILES["summary"]}
    outputs["runs"].to_csv(written["runs"], index=False, compression={"method": "gzip", "mtime": 0})
    written["summary"].write_text(json.dumps(summarize(outputs), indent=2, default=_plain) + "\n", encoding="utf-8")
    return written


def load_sweep(folder: Path = paths.RESULTS_DIR) -> dict | None:
    """The committed sweep (``{"runs", "summary"}``), or None if it was never run here."""
    folder = Path(folder)
    if not (folder / FILES["runs"]).exists():
        return None
    try:
        return {"runs": pd.read_csv(folder / FILES["runs"]),
                "summary": json.loads((folder / FILES["summary"]).read_text(encoding="utf-8"))}
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(f"{paths.shown(folder / FILES['runs'])} or its summary is damaged ({type(err).__name__}: "
                         f"{err}); run notebook 05_writer_study with SWEEP = 'full' to write them again.") from None


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    raise TypeError(f"cannot write {type(value)} to JSON")


def forgetting(models: dict, pretrained: DigitCNN) -> pd.DataFrame:
    """MNIST test accuracy of each named model (e.g. the final models of notebooks 03 and 04) beside the
    pre-trained model's: correct, total, accuracy, change in points."""
    x, y = data_mod.load_mnist("test")
    from .evaluation import predict

    rows = []
    for name, model in {"pre-trained": pretrained, **models}.items():
        correct = int((predict(model, x).argmax(1) == y).sum())
        rows.append({"model": name, "mnist_correct": correct, "mnist_total": len(y), "mnist_acc": correct / len(y)})
    table = pd.DataFrame(rows)
    table["change_points"] = 100 * (table.mnist_acc - table.mnist_acc.iloc[0])
    return table
