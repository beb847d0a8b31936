"""Evaluation: predictions of a model on a set of images, and what they add up to.

:func:`predict` gives softmax probabilities, :func:`predictions_frame` one row per image,
:func:`evaluation_record` the counts, Wilson interval, per-class metrics and confusion
matrix that every notebook saves. :class:`SealedTestSet` opens the own test set once per
final model, so no selection code can look at it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import data, stats


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
            batch = data.normalize(batch)
        probs.append(F.softmax(model(batch.to(device)).float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(probs)


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


def predict_frame(model: nn.Module, split: dict) -> pd.DataFrame:
    """:func:`predictions_frame` of ``model`` on a split ``{"x", "y", "files"}``."""
    return predictions_frame(split["files"], split["y"].numpy(), predict(model, split["x"]).numpy())


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


def mnist_record(model: nn.Module, model_name: str) -> dict:
    """:func:`evaluation_record` of ``model`` on the 10,000 MNIST test images: what a fine-tuned model
    still reads of the task it was pre-trained on."""
    x, y = data.load_mnist("test")
    frame = predictions_frame([f"t10k[{i}]" for i in range(len(y))], y.numpy(), predict(model, x).numpy())
    return evaluation_record(model_name, "MNIST test set", frame)


def format_accuracy(record: dict) -> str:
    """``"18/20 = 90.0% (95% CI 69.9-97.2%)"``: the one way accuracies are written everywhere.

    ``record`` needs ``correct``, ``total``, ``accuracy``, ``ci_low`` and ``ci_high``. Two
    decimals from 1,000 images on (99.66%, not a rounded-up 99.7%), one below; counts get
    thousands separators.
    """
    digits = 2 if record["total"] >= 1000 else 1
    return (
        f"{record['correct']:,}/{record['total']:,} = {100 * record['accuracy']:.{digits}f}% "
        f"(95% CI {100 * record['ci_low']:.{digits}f}-{100 * record['ci_high']:.{digits}f}%)"
    )


def per_class_table(records: dict[str, dict], metrics=("recall", "precision", "f1")) -> pd.DataFrame:
    """One row per digit, a column per (evaluation, metric); recall is the per-class accuracy."""
    return pd.DataFrame(
        {f"{name}: {metric}": [row[metric] for row in record["per_class"]]
         for name, record in records.items() for metric in metrics},
        index=pd.Index(range(10), name="digit"),
    )


class SealedTestSet:
    """The own test set, opened once per final model and never handed to selection code.

    ``evaluate(model, name)`` returns the predictions of model ``name`` on the test images;
    asking again for the same name raises, so a notebook cannot peek at the test set and
    then go back to tuning. ``evaluations`` records what was evaluated.
    """

    def __init__(self, split: dict):
        self._split = split
        self.evaluations: list[str] = []

    def __len__(self) -> int:
        return len(self._split["y"])

    def evaluate(self, model: nn.Module, name: str) -> pd.DataFrame:
        if name in self.evaluations:
            raise RuntimeError(f"The test set was already evaluated for '{name}': it is evaluated once per final model.")
        self.evaluations.append(name)
        return predict_frame(model, self._split)

    def images(self, files) -> list:
        """The test images of ``files`` (for a gallery of mistakes after evaluation)."""
        if not self.evaluations:
            raise RuntimeError("Look at test images only after the final evaluation.")
        index = {f: i for i, f in enumerate(self._split["files"])}
        return [self._split["x"][index[f]].numpy() for f in files]
