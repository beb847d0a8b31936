"""Training: seeding, augmentation, pre-training on MNIST, and one fine-tuning run.

All data lives in memory as tensors; a training epoch never reads a file. Choosing the
fine-tuning hyperparameters on the validation set is the next stage, :mod:`.tuning`.
"""

from __future__ import annotations

import contextlib
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
from .evaluation import predict
from .model import STAGES, DigitCNN, freeze_all_but_last, lenet5, resnet18_for_mnist, train_mode
from .parameters import is_finite_number, is_whole


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


def seconds_per_epoch(model: nn.Module, batch_size: int = 128, steps: int = 10, n_images: int = 60000,
                      bf16: bool = True, device: torch.device | str = "cpu", warmup: int = 3) -> float:
    """Measured wall time of one MNIST training epoch of ``model``, from ``steps`` timed training steps after
    ``warmup`` untimed ones: their lower quartile, so that a step slowed by another job on the same cores (or
    the first steps' kernel set-up) does not count for the whole epoch."""
    device = torch.device(device)
    model = copy.deepcopy(model).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    timings = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        with _autocast(device, bf16):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            timings.append(time.perf_counter() - start)
    return float(np.percentile(timings, 25)) * n_images / batch_size


def candidate_epoch_seconds(device: torch.device | str = "cpu") -> dict[str, dict]:
    """What one MNIST epoch costs for each candidate architecture here: parameters and seconds (measured)."""
    candidates = {"LeNet-5": lenet5(), "compact CNN (ours)": DigitCNN(), "ResNet-18 (28x28)": resnet18_for_mnist()}
    return {
        name: {"parameters": sum(p.numel() for p in net.parameters()),
               "seconds": round(seconds_per_epoch(net, device=device), 1)}
        for name, net in candidates.items()
    }


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


# --------------------------------------------------------------------------- fine-tuning

FINETUNE_THREADS = 1  # batches of 4-64 images: a second thread mostly waits (measured 2.3 s against 9-53 s a run
#                       on a busy 2-core machine, same weights to the last bit)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch threads (None: unchanged), then restore the previous number."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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

    def __post_init__(self):
        """A configuration that would train backwards (a negative rate), not at all, or crash is refused here."""
        wrong = [f"{name} must be {what}; got {getattr(self, name)!r}" for name, what, ok in (
            ("n_last", f"a whole number from 1 to {len(STAGES)}", lambda v: is_whole(v) and 1 <= v <= len(STAGES)),
            ("lr", "a positive number, at most 1", lambda v: is_finite_number(v) and 0 < v <= 1),
            ("batch_size", "a positive whole number", lambda v: is_whole(v) and v >= 1),
            ("epochs", "a positive whole number", lambda v: is_whole(v) and v >= 1),
            ("augment", "True or False", lambda v: isinstance(v, (bool, np.bool_))),
            ("body_lr_factor", "a positive number, at most 1", lambda v: is_finite_number(v) and 0 < v <= 1),
            ("weight_decay", "a number of 0 or more", lambda v: is_finite_number(v) and v >= 0),
        ) if not ok(getattr(self, name))]
        if wrong:
            raise ValueError("This fine-tuning configuration cannot be trained: " + "; ".join(wrong) + ".")


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
    on_epoch=None,
    val_epochs=None,
) -> tuple[DigitCNN, list[dict]]:
    """Fine-tune a copy of ``pretrained`` on ``train``; return it and its per-epoch history.

    ``on_epoch(row)``, if given, receives each epoch's history row as soon as the epoch ends
    (live curves); it cannot change the run. ``val_epochs``: score ``val`` only after these epochs (a large
    held-out set scored at a few epoch counts; scoring never changes the training).

    Only ``train`` and ``val`` (dicts with uint8 images ``x`` and labels ``y``) are seen:
    this function never receives the test set. Adam with a constant learning rate, so the
    model after ``e`` epochs of a longer run is exactly the model of a run with ``epochs=e``;
    the grid search reads every epoch count off one run.

    Frozen stages stay in eval mode (their BatchNorm statistics do not move). Without
    augmentation their output never changes, so it is computed once and the trainable
    stages train on it: the same arithmetic, several times faster. On the CPU it runs with
    :data:`FINETUNE_THREADS` torch threads.
    """
    with torch_threads(FINETUNE_THREADS if next(pretrained.parameters()).device.type == "cpu" else None):
        return _finetune(pretrained, config, train, val, seed, on_epoch, val_epochs)


def _finetune(pretrained, config, train, val, seed, on_epoch, val_epochs=None):
    generator = seed_everything(seed)
    device = next(pretrained.parameters()).device
    model = copy.deepcopy(pretrained)
    trainable = freeze_all_but_last(model, config.n_last)
    frozen = [name for name in STAGES if name not in trainable]
    optimizer = torch.optim.Adam(_param_groups(model, config), weight_decay=config.weight_decay)
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
    y_val = val["y"].to(device) if val is not None else None
    history = run_epochs(model, body, optimizer, (x_train, y_train), (x_val, y_val), config, generator,
                         on_epoch=on_epoch, val_epochs=val_epochs)
    model.eval()
    return model, history


def run_epochs(model: DigitCNN, body: nn.Module, optimizer: torch.optim.Optimizer, train: tuple, val: tuple,
               config: FinetuneConfig, generator: torch.Generator, after_epoch=None, on_epoch=None,
               val_epochs=None) -> list[dict]:
    """The epochs of one fine-tuning run: ``body`` (the trainable stages, or the whole ``model``) trains on
    ``train = (x, y)`` and is scored on ``val = (x, y)`` (``x`` None: no validation) after every epoch.

    ``x`` are the inputs of ``body``: images, or the frozen stages' features. ``after_epoch(epoch)`` is
    called at the end of each epoch (e.g. to keep a copy of the weights), ``on_epoch(row)`` with a copy of
    the epoch's history row (e.g. to draw live curves); ``val_epochs``, if given, limits the scoring of ``val``
    to those epochs. Returns the per-epoch history.
    """
    (x_train, y_train), (x_val, y_val) = train, val
    loss_fn = nn.CrossEntropyLoss()
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
        if x_val is not None and (val_epochs is None or epoch in val_epochs):
            row.update(evaluate_loss_acc(body, x_val, y_val))
            train_mode(model)
        history.append(row)
        if after_epoch is not None:
            after_epoch(epoch)
        if on_epoch is not None:
            on_epoch(dict(row))
    return history


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
