"""The compact CNN pre-trained on MNIST, its named stages, and the freezing helpers.

The network is an ``nn.Sequential`` of five named stages::

    stem    conv 5x5 stride 2 (1->32) + BN + ReLU               28x28 -> 14x14
    block1  conv 3x3 (32->64) + BN + ReLU + max-pool            14x14 -> 7x7
    block2  conv 3x3 (64->96) + BN + ReLU                        7x7
    block3  conv 3x3 (96->128) + BN + ReLU + global avg pool     7x7 -> 128
    head    dropout + linear (128->10)                           the classifier

"Fine-tune only the last layer" means: only ``head`` is trainable. "Fine-tune the last n
layers" means: the last ``n`` stages of :data:`STAGES` are trainable, the rest frozen, and
the frozen stages stay in eval mode so that their BatchNorm statistics do not move.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from . import paths

STAGES = ("stem", "block1", "block2", "block3", "head")


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class DigitCNN(nn.Sequential):
    """Compact MNIST CNN with the named stages of :data:`STAGES`."""

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 96, 128), dropout: float = 0.1):
        w1, w2, w3, w4 = widths
        super().__init__()
        self.add_module("stem", nn.Sequential(*_conv_bn(1, w1, 5, stride=2)))
        self.add_module("block1", nn.Sequential(*_conv_bn(w1, w2, 3), nn.MaxPool2d(2)))
        self.add_module("block2", nn.Sequential(*_conv_bn(w2, w3, 3)))
        self.add_module(
            "block3", nn.Sequential(*_conv_bn(w3, w4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        )
        self.add_module("head", nn.Sequential(nn.Dropout(dropout), nn.Linear(w4, 10)))
        self.widths = tuple(widths)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def trainable_stages(n_last: int) -> tuple[str, ...]:
    """Names of the last ``n_last`` stages (1 = the classifier only)."""
    if not 1 <= n_last <= len(STAGES):
        raise ValueError(f"n_last must be between 1 and {len(STAGES)}, not {n_last}")
    return STAGES[-n_last:]


def freeze_all_but_last(model: DigitCNN, n_last: int) -> tuple[str, ...]:
    """Make only the last ``n_last`` stages trainable; return their names."""
    unfrozen = trainable_stages(n_last)
    for name in STAGES:
        for parameter in getattr(model, name).parameters():
            parameter.requires_grad_(name in unfrozen)
    return unfrozen


def frozen_stage_names(model: DigitCNN) -> tuple[str, ...]:
    return tuple(
        name for name in STAGES if not any(p.requires_grad for p in getattr(model, name).parameters())
    )


def train_mode(model: DigitCNN) -> DigitCNN:
    """``model.train()``, except that fully frozen stages stay in eval mode.

    A frozen BatchNorm in train mode would still update its running mean and variance
    from the tiny fine-tuning batches; keeping it in eval mode keeps it bit-for-bit fixed.
    """
    model.train()
    for name in frozen_stage_names(model):
        getattr(model, name).eval()
    return model


def pick_device(preferred: str | None = None) -> torch.device:
    """CPU by default; CUDA or Apple MPS when present. ``DIGITS_DEVICE=cpu`` forces a device."""
    choice = preferred or os.environ.get("DIGITS_DEVICE")
    if choice:
        source = "the device argument" if preferred else "the environment variable DIGITS_DEVICE"
        try:
            device = torch.device(choice)
        except (RuntimeError, TypeError):
            raise ValueError(f"{source} is {choice!r}, which is not a device: use cpu, cuda or mps "
                             "(or unset it to use CUDA or Apple MPS when present, else the CPU).") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{source} asks for {choice!r}, but PyTorch sees no CUDA GPU on this machine: use cpu, "
                             "or unset it.")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"{source} asks for 'mps', but Apple MPS is not available on this machine: use cpu, "
                             "or unset it.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def save_checkpoint(model: DigitCNN, path: Path = paths.PRETRAINED_CHECKPOINT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, path)
    return path


def save_pretrained(model: DigitCNN, metrics: dict, epoch_cost: dict | None = None,
                    checkpoint: Path = paths.PRETRAINED_CHECKPOINT, metrics_file: Path = paths.PRETRAINED_METRICS,
                    backup_dir: Path = paths.BACKUP_DIR) -> dict:
    """Write the checkpoint (a state_dict) and the JSON of what was measured beside it.

    ``epoch_cost`` (from :func:`.training.candidate_epoch_seconds`) is recorded as
    ``epoch_seconds_measured``. A different checkpoint already there is copied to
    ``backup_dir/model-<time>/`` first, never lost.
    """
    if epoch_cost is not None:
        metrics = {**metrics, "epoch_seconds_measured": {name: c["seconds"] for name, c in epoch_cost.items()}}
    backup = None
    if checkpoint.exists():
        old = torch.load(checkpoint, weights_only=True, map_location="cpu")
        new = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if old.keys() != new.keys() or not all(torch.equal(old[k], new[k]) for k in old):
            backup = paths.unique_folder(backup_dir, "model")
            for path in (checkpoint, metrics_file):
                if path.exists():
                    shutil.copy2(path, backup / path.name)
    save_checkpoint(model, checkpoint)
    metrics_file.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return {"checkpoint": paths.shown(checkpoint), "previous_kept_in": paths.shown(backup) if backup else None}


class CheckpointError(RuntimeError):
    """The pre-trained checkpoint (or its metrics file) cannot be used; the message names the file and the fix."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """The pre-trained checkpoint is not there."""


CHECKPOINT_FIX = "Restore it with `git checkout -- Code/models` or re-create it by running notebook 00_pretrain_mnist."


def load_pretrained(
    device: torch.device | str = "cpu",
    checkpoint: Path = paths.PRETRAINED_CHECKPOINT,
    metrics: Path = paths.PRETRAINED_METRICS,
) -> DigitCNN:
    """The shipped pre-trained model, in eval mode, on ``device``.

    A missing, truncated or corrupt checkpoint, one saved for another network, or an unreadable
    metrics file raises :class:`CheckpointError` naming the file and how to get a good one.
    """
    checkpoint, metrics = Path(checkpoint), Path(metrics)
    if not checkpoint.is_file():
        raise MissingCheckpointError(f"Pre-trained checkpoint {checkpoint} is missing. {CHECKPOINT_FIX}")
    widths = (32, 64, 96, 128)
    if metrics.is_file():
        try:
            widths = tuple(json.loads(metrics.read_text(encoding="utf-8")).get("widths", widths))
        except (ValueError, AttributeError, TypeError) as err:
            raise CheckpointError(f"{metrics} is not valid JSON ({err}). {CHECKPOINT_FIX}") from None
    model = DigitCNN(widths=widths)
    try:
        state = torch.load(checkpoint, weights_only=True, map_location=device)
    except Exception as err:  # truncated zip, not a torch file, unpickling refused: all mean a broken file
        raise CheckpointError(
            f"Pre-trained checkpoint {checkpoint} cannot be read: it is truncated or not a PyTorch checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). {CHECKPOINT_FIX}"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"Pre-trained checkpoint {checkpoint} holds a {type(state).__name__}, not a state_dict. "
                              f"{CHECKPOINT_FIX}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line or "key" in line.lower()), "")
        raise CheckpointError(
            f"Pre-trained checkpoint {checkpoint} was saved for a different network than {metrics.name} describes "
            f"(widths {widths}): {first[:200]}. {CHECKPOINT_FIX}"
        ) from None
    return model.to(device).eval()


def load_pretrained_metrics(metrics: Path = paths.PRETRAINED_METRICS) -> dict:
    """What was measured when the shipped checkpoint was trained (``Code/models/mnist_cnn.json``)."""
    if not Path(metrics).is_file():
        raise FileNotFoundError(
            f"{metrics} is missing. Restore it with `git checkout -- Code/models` or re-create it by running "
            "notebook 00_pretrain_mnist."
        )
    return json.loads(Path(metrics).read_text(encoding="utf-8"))


def resnet18_for_mnist() -> nn.Module:
    """torchvision's ResNet-18 adapted to 28x28 grayscale (the heavier alternative we measured)."""
    from torchvision.models import resnet18

    net = resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def lenet5() -> nn.Module:
    """A classic LeNet-5-sized network (the lighter alternative we measured)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def changed_stages(before: nn.Module, after: nn.Module) -> dict[str, bool]:
    """For each stage: did any parameter or BatchNorm buffer change (bit for bit)?"""
    old, new = before.state_dict(), after.state_dict()
    return {
        name: any(not torch.equal(old[k].cpu(), new[k].cpu()) for k in old if k.startswith(name + "."))
        for name in STAGES
    }
