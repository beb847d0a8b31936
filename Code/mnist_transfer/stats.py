"""Accuracy with honest uncertainty (Wilson intervals; Student-t intervals of a mean across writers), confusion
matrices and per-class metrics."""

from __future__ import annotations

import functools
import math

import numpy as np

Z_95 = 1.959963984540054


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval for a proportion ``correct/total`` (good at n=20 and at 100%)."""
    if total <= 0:
        raise ValueError("total must be positive")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be in [0, {total}], not {correct}")
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    # at 0 or all correct the bound is exactly 0 or 1 (the formula lands an ulp short: 0.9999999999999999)
    return (0.0 if correct == 0 else low), (1.0 if correct == total else high)


@functools.lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``df`` degrees of freedom (numerical, no SciPy)."""
    const = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))

    def cdf(t: float) -> float:
        grid = np.linspace(0.0, t, 20001)
        density = const * (1 + grid**2 / df) ** (-(df + 1) / 2)
        return 0.5 + float(np.trapezoid(density, grid))

    low, high = 0.0, 1000.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def mean_interval(values, level: float = 0.95, bounds: tuple[float, float] | None = None) -> dict:
    """Mean of ``values`` with a Student-t interval (``n - 1`` degrees of freedom) across them.

    ``bounds`` clips the interval to the values' possible range, e.g. ``(0, 1)`` for accuracies (a t-interval
    of accuracies near 100% would otherwise reach past it).
    """
    values = np.asarray(values, dtype=float)
    n, mean = len(values), float(values.mean())
    if n < 2:
        return {"mean": mean, "ci_low": float("nan"), "ci_high": float("nan"), "n": n}
    half = t_quantile(0.5 + level / 2, n - 1) * float(values.std(ddof=1)) / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": n}


def accuracy_summary(y_true, y_pred) -> dict:
    """``{"correct", "total", "accuracy", "ci_low", "ci_high"}`` from two label arrays."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    correct, total = int((y_true == y_pred).sum()), int(len(y_true))
    low, high = wilson_interval(correct, total)
    return {"correct": correct, "total": total, "accuracy": correct / total, "ci_low": low, "ci_high": high}


def confusion_matrix(y_true, y_pred, n_classes: int = 10) -> np.ndarray:
    """Counts ``[true, predicted]``."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def per_class_metrics(y_true, y_pred, n_classes: int = 10) -> list[dict]:
    """Support, correct, accuracy (= recall), precision and F1 for each digit."""
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    rows = []
    for digit in range(n_classes):
        tp = int(matrix[digit, digit])
        support = int(matrix[digit].sum())
        predicted = int(matrix[:, digit].sum())
        recall = tp / support if support else float("nan")
        precision = tp / predicted if predicted else float("nan")
        f1 = (
            2 * precision * recall / (precision + recall)
            if predicted and support and (precision + recall) > 0
            else 0.0
        )
        rows.append(
            {"digit": digit, "support": support, "correct": tp, "recall": recall, "precision": precision, "f1": f1}
        )
    return rows


def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact McNemar test for two models on the same images (paired).

    Only the images where exactly one model is right carry information: ``a_only`` and
    ``b_only``. Under "both models are equally good" each of those is a fair coin flip, so
    the two-sided p-value is a binomial tail. With 20 test images a difference of one or
    two images is never significant.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    return {"a_only": a_only, "b_only": b_only, "p_value": sign_test(a_only, b_only)}


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: how surprising ``wins`` against ``losses`` are if either side were
    equally likely to win each one (ties carry no information and are left out by the caller)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n)
