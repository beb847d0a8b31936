"""Seeding, pre-training on MNIST, evaluation, fine-tuning and the validation grid search.

All data lives in memory as tensors; a training epoch never reads a file.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import data as data_mod
from .model import STAGES, DigitCNN, freeze_all_but_last, train_mode


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, ask for deterministic kernels; return a torch generator."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return torch.Generator().manual_seed(seed)


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    scale: tuple[float, float] = (0.9, 1.1),
    shift: float = 0.1,
    shear: float = 0.15,
) -> torch.Tensor:
    """Apply one random affine warp per image to a whole batch ``[N,1,H,W]`` at once.

    The warp is sampled on the CPU from ``generator`` (so it is reproducible) and applied
    with ``affine_grid``/``grid_sample`` on the batch's device. ``shift`` is a fraction of
    the image half-width (0.1 = 1.4 px on 28x28). Pixels that come in from outside are the
    background value of the normalised images.
    """
    n = x.shape[0]
    rand = lambda lo, hi: torch.empty(n).uniform_(lo, hi, generator=generator)  # noqa: E731
    angle = rand(-degrees, degrees) * math.pi / 180
    zoom = rand(*scale)
    sh = rand(-shear, shear)
    tx, ty = rand(-shift, shift), rand(-shift, shift)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin + sh * cos, tx], 1), torch.stack([sin, cos + sh * sin, ty], 1)], 1
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = (0.0 - data_mod.MNIST_MEAN) / data_mod.MNIST_STD
    return F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros") + background


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2000, device=None) -> torch.Tensor:
    """Softmax probabilities ``[N,10]`` (float32, CPU) for uint8 or normalised images ``x``."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        if batch.dtype == torch.uint8:
            batch = data_mod.normalize(batch)
        probs.append(F.softmax(model(batch.to(device)).float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(probs)


def seconds_per_epoch(model: nn.Module, batch_size: int = 128, steps: int = 3, n_images: int = 60000,
                      bf16: bool = True, device: torch.device | str = "cpu") -> float:
    """Measured wall time of one MNIST training epoch of ``model`` (from a few timed steps)."""
    device = torch.device(device)
    model = copy.deepcopy(model).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    timings = []
    for step in range(steps + 1):  # the first step warms up and is not counted
        start = time.perf_counter()
        with _autocast(device, bf16):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:
            timings.append(time.perf_counter() - start)
    return float(np.median(timings)) * n_images / batch_size


@dataclass
class PretrainConfig:
    epochs: int = 10
    batch_size: int = 128
    max_lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    widths: tuple[int, int, int, int] = (32, 64, 96, 128)
    seed: int = 0
    bf16: bool = True
    augment: bool = True


def pretrain(config: PretrainConfig, device: torch.device, progress: bool = True) -> tuple[DigitCNN, dict]:
    """Train :class:`DigitCNN` from scratch on the 60,000 MNIST training images.

    SGD with Nesterov momentum and a one-cycle schedule, random affine augmentation on
    whole batches, label smoothing, bf16 autocast where the hardware has it. Returns the
    model and a dict of what was measured (test accuracy, wall time, epochs, seed).
    """
    generator = seed_everything(config.seed)
    x_train, y_train = data_mod.load_mnist("train")
    x_test, y_test = data_mod.load_mnist("test")
    x_train = data_mod.normalize(x_train)
    model = DigitCNN(widths=config.widths).to(device).to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.max_lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.max_lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history = []
    start = time.perf_counter()
    for epoch in tqdm(range(config.epochs), desc="pre-training", disable=not progress, mininterval=5):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total, seen = 0.0, 0
        for i in range(steps_per_epoch):
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if config.augment:
                xb = random_affine(xb, generator)
            xb, yb = xb.to(device).contiguous(memory_format=torch.channels_last), yb.to(device)
            with _autocast(device, config.bf16):
                loss = loss_fn(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        history.append({"epoch": epoch + 1, "train_loss": total / seen, "seconds": time.perf_counter() - start})
    train_seconds = time.perf_counter() - start
    model = model.to(memory_format=torch.contiguous_format).eval()
    test_probs = predict(model, x_test)
    correct = int((test_probs.argmax(1) == y_test).sum())
    metrics = {
        "test_correct": correct,
        "test_total": len(y_test),
        "test_accuracy": correct / len(y_test),
        "train_seconds": round(train_seconds, 1),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "max_lr": config.max_lr,
        "weight_decay": config.weight_decay,
        "label_smoothing": config.label_smoothing,
        "widths": list(config.widths),
        "seed": config.seed,
        "bf16_autocast": config.bf16,
        "augment": config.augment,
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "history": history,
    }
    return model, metrics


def save_pretrained(model: DigitCNN, metrics: dict) -> dict:
    """Write the checkpoint (a state_dict) and the JSON of what was measured beside it.

    A different checkpoint already there is moved to ``Code/backups/`` first, never lost.
    """
    import json
    import shutil

    from . import paths
    from .model import save_checkpoint

    target = paths.PRETRAINED_CHECKPOINT
    backup = None
    if target.exists():
        old = torch.load(target, weights_only=True, map_location="cpu")
        new = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if old.keys() != new.keys() or not all(torch.equal(old[k], new[k]) for k in old):
            backup = paths.BACKUP_DIR / time.strftime("model-%Y%m%d-%H%M%S")
            backup.mkdir(parents=True, exist_ok=True)
            for path in (target, paths.PRETRAINED_METRICS):
                if path.exists():
                    shutil.copy2(path, backup / path.name)
    save_checkpoint(model, target)
    paths.PRETRAINED_METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    return {"checkpoint": str(target.relative_to(paths.PROJECT_ROOT)), "previous_kept_in": str(backup) if backup else None}


# --------------------------------------------------------------------------- fine-tuning


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning configuration (the learning rate applies to the head)."""

    n_last: int = 1  # how many of the last stages are trainable (1 = the classifier only)
    lr: float = 1e-3
    batch_size: int = 16
    epochs: int = 20
    augment: bool = False  # small random affine jitter of the training images
    body_lr_factor: float = 1.0  # learning rate of unfrozen stages before the head, relative to lr
    weight_decay: float = 0.0


def _param_groups(model: DigitCNN, config: FinetuneConfig) -> list[dict]:
    head = [p for p in model.head.parameters() if p.requires_grad]
    body = [
        p for name, module in model.named_children() if name != "head"
        for p in module.parameters() if p.requires_grad
    ]
    groups = [{"params": head, "lr": config.lr}]
    if body:
        groups.append({"params": body, "lr": config.lr * config.body_lr_factor})
    return groups


def finetune(
    pretrained: DigitCNN,
    config: FinetuneConfig,
    train: dict,
    val: dict | None,
    seed: int,
) -> tuple[DigitCNN, list[dict]]:
    """Fine-tune a copy of ``pretrained`` on ``train``; return it and its per-epoch history.

    Only ``train`` and ``val`` (dicts with uint8 images ``x`` and labels ``y``) are seen:
    this function never receives the test set. Adam with a constant learning rate, so the
    model after ``e`` epochs of a longer run is exactly the model of a run with ``epochs=e``;
    the grid search reads every epoch count off one run.

    Frozen stages stay in eval mode (their BatchNorm statistics do not move). Without
    augmentation their output never changes, so it is computed once and the trainable
    stages train on it: the same arithmetic, several times faster.
    """
    generator = seed_everything(seed)
    device = next(pretrained.parameters()).device
    model = copy.deepcopy(pretrained)
    trainable = freeze_all_but_last(model, config.n_last)
    frozen = [name for name in STAGES if name not in trainable]
    optimizer = torch.optim.Adam(_param_groups(model, config), weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    x_train = data_mod.normalize(train["x"]).to(device)
    y_train = train["y"].to(device)
    x_val = data_mod.normalize(val["x"]).to(device) if val is not None else None
    body = nn.Sequential(*[getattr(model, name) for name in trainable])
    if config.augment or not frozen:
        body = model
    else:
        prefix = nn.Sequential(*[getattr(model, name) for name in frozen]).eval()
        with torch.no_grad():
            x_train = prefix(x_train)
            x_val = prefix(x_val) if x_val is not None else None
    history = []
    for epoch in range(1, config.epochs + 1):
        train_mode(model)
        order = torch.randperm(len(x_train), generator=generator)
        total, correct = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if config.augment:
                xb = random_affine(xb, generator, degrees=8, scale=(0.92, 1.08), shift=0.08, shear=0.1)
            logits = body(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        row = {"epoch": epoch, "train_loss": total / len(x_train), "train_acc": correct / len(x_train)}
        if x_val is not None:
            row.update(evaluate_loss_acc(body, x_val, val["y"].to(device)))
            train_mode(model)
        history.append(row)
    model.eval()
    return model, history


@torch.no_grad()
def evaluate_loss_acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Validation loss and accuracy, in eval mode."""
    model.eval()
    logits = model(x)
    hits = logits.argmax(1) == y
    return {
        "val_loss": F.cross_entropy(logits, y).item(),
        "val_acc": hits.float().mean().item(),
        "val_correct": int(hits.sum()),
    }


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
) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Every configuration x seed trained on ``train`` and scored on ``val``: no test set here.

    Returns ``(runs, curves)``: one row per (configuration, epochs, seed) with its
    validation accuracy and loss, and the per-epoch curves of every run. Epoch counts are
    read off one run of ``max(epoch_values)`` epochs (constant learning rate).
    """
    import itertools

    import pandas as pd

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
                  progress: bool = True) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Like :func:`grid_search` at ``base``'s n, learning rate and batch size, over augmentation and
    body learning-rate factors, leaving out ``base``'s own variant (already trained)."""
    return grid_search(pretrained, train, val, n_last_values=[base.n_last], lrs=[base.lr],
                       batch_sizes=[base.batch_size], epoch_values=epoch_values, seeds=seeds,
                       augment_values=augment_values, body_lr_factors=body_lr_factors, progress=progress,
                       skip=[(base.augment, base.body_lr_factor)])


CONFIG_COLUMNS = ["n_last", "lr", "batch_size", "epochs", "augment", "body_lr_factor"]


def rank_configurations(runs: "pd.DataFrame") -> "pd.DataFrame":
    """Mean and spread over seeds per configuration, best first.

    Ranked by mean validation accuracy; ties broken by mean validation loss (lower is better).
    """
    summary = (
        runs.groupby(CONFIG_COLUMNS)
        .agg(val_acc_mean=("val_acc", "mean"), val_acc_std=("val_acc", "std"), val_acc_min=("val_acc", "min"),
             val_acc_max=("val_acc", "max"), val_loss_mean=("val_loss", "mean"), seeds=("seed", "count"))
        .reset_index()
        .sort_values(["val_acc_mean", "val_loss_mean"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )
    summary.insert(0, "rank", range(1, len(summary) + 1))
    return summary


def best_config(ranking: "pd.DataFrame") -> FinetuneConfig:
    """The top-ranked configuration of :func:`rank_configurations`."""
    row = ranking.iloc[0]
    return FinetuneConfig(
        n_last=int(row.n_last), lr=float(row.lr), batch_size=int(row.batch_size), epochs=int(row.epochs),
        augment=bool(row.augment), body_lr_factor=float(row.body_lr_factor),
    )


def rows_of(frame: "pd.DataFrame", config, keys=("n_last", "lr", "batch_size", "augment", "body_lr_factor")):
    """The rows of a runs/curves/ranking table that belong to ``config`` (a FinetuneConfig or dict) on ``keys``."""
    values = config if isinstance(config, dict) else vars(config)
    mask = np.ones(len(frame), bool)
    for key in keys:
        mask &= (frame[key] == values[key]).to_numpy()
    return frame[mask]


def stability(ranking: "pd.DataFrame", curves: "pd.DataFrame", config: FinetuneConfig) -> dict:
    """How steady a configuration is: spread over seeds, learning-rate sensitivity, curve roughness.

    * ``seed_std``: standard deviation of validation accuracy over seeds at ``config``;
    * ``lr_range``: best minus worst mean validation accuracy over the learning rates tried,
      everything else as in ``config``;
    * ``val_loss_roughness``: mean absolute change of validation loss from one epoch to the next
      (over seeds, up to ``config.epochs``): large = jumpy curves.
    """
    same = rows_of(ranking, config, ("n_last", "batch_size", "epochs", "augment", "body_lr_factor"))
    row = same[same.lr == config.lr].iloc[0]
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
