"""Every notebook's parameters cell, checked in one place before anything runs.

A student edits the tagged ``parameters`` cell of a notebook (or papermill injects values there).
:func:`check` takes those values by their names, checks each against the rule for that name, and
raises one :class:`ParameterError` that lists every wrong value with what it must be, e.g.
``LRS must be a non-empty list of positive numbers (learning rates, at most 1); got [-0.001]``.
Nothing runs with a value that would train backwards (a negative learning rate), not at all (zero
epochs) or crash deep inside NumPy or PyTorch.
"""

from __future__ import annotations

import math
import os
import numbers
from pathlib import Path

from .model import STAGES


class ParameterError(ValueError):
    """One or more values of a parameters cell are not what they must be; the message lists each."""


def is_whole(value) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    """A real, finite number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _seed(value) -> bool:
    return is_whole(value) and 0 <= value < 2**32


def _learning_rate(value) -> bool:
    return is_finite_number(value) and 0 < value <= 1


def _positive_int(value) -> bool:
    return is_whole(value) and value >= 1


def _bool(value) -> bool:
    return isinstance(value, bool)


def _split(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 3 and all(_positive_int(v) for v in value)


def _writers(value) -> bool:
    return value == "all" or (isinstance(value, (list, tuple)) and len(value) > 0 and len(set(value)) == len(value)
                              and all(isinstance(v, str) and v for v in value))


def _n_last(value) -> bool:
    return is_whole(value) and 2 <= value <= len(STAGES)


# name -> (what one value must be, test of one value, whether the parameter is a list of such values)
RULES = {
    "LRS": ("positive numbers (learning rates, at most 1)", _learning_rate, True),
    "MAX_LR": ("a positive number (a learning rate, at most 1)", _learning_rate, False),
    "BATCH_SIZES": ("positive whole numbers (images per step)", _positive_int, True),
    "BATCH_SIZE": ("a positive whole number (images per step)", _positive_int, False),
    "EPOCH_VALUES": ("positive whole numbers (epochs)", _positive_int, True),
    "EPOCHS": ("a positive whole number (epochs)", _positive_int, False),
    "SEEDS": ("whole numbers from 0 to 2**32 - 1 (seeds)", _seed, True),
    "SPLIT_SEEDS": ("whole numbers from 0 to 2**32 - 1 (seeds)", _seed, True),
    "SEED": ("a whole number from 0 to 2**32 - 1 (a seed)", _seed, False),
    "FINAL_SEED": ("a whole number from 0 to 2**32 - 1 (a seed)", _seed, False),
    "SPLIT_SEED": ("a whole number from 0 to 2**32 - 1 (a seed)", _seed, False),
    "SELECTION_SPLIT_SEED": ("a whole number from 0 to 2**32 - 1 (a seed)", _seed, False),
    "N_LAST_VALUES": (f"whole numbers from 2 to {len(STAGES)} (trainable stages: {', '.join(STAGES)})", _n_last, True),
    "GALLERY_IMAGES": ("a positive whole number (images per gallery)", _positive_int, False),
    "FULL": ("True or False", _bool, False),
    "DIGIT_FOLDER": ("None, or an existing folder of cut digits (<folder>/<digit>/*.png), as a Path or a string",
                     lambda v: v is None or (isinstance(v, (str, os.PathLike)) and Path(v).is_dir()), False),
    "STUDY": ('"subset" or "full"', lambda v: v in ("subset", "full"), False),
    "SWEEP": ('"subset" or "full"', lambda v: v in ("subset", "full"), False),
    "WRITERS": ('"all" or a non-empty list of distinct writer names (e.g. ["W01", "W02"])', _writers, False),
    "RETRAIN": ("True or False", _bool, False),
    "SAVE_CHECKPOINT": ("True or False", _bool, False),
    "REPLACE_EXISTING": ("True or False", _bool, False),
    "SPLIT": ("three positive whole numbers (training, validation and test copies of each digit, e.g. (8, 2, 2))",
              _split, False),
    "ACCEPT_IMPLAUSIBLE": ("True or False", _bool, False),
}
TRICKS_RULES = {
    "augment": ("True or False", _bool),
    "body_lr_factor": ("positive numbers (multiples of the head's learning rate, at most 1)", _learning_rate),
}


def problem(name: str, value) -> str | None:
    """What is wrong with one parameter's value, as a sentence naming it, or None when it is fine."""
    if name == "TRICKS":
        return _tricks_problem(value)
    if name not in RULES:
        raise KeyError(f"no rule for the parameter {name!r}")
    what, ok, is_list = RULES[name]
    if not is_list:
        return None if ok(value) else f"{name} must be {what}; got {value!r}"
    if not isinstance(value, (list, tuple)) or not value:
        return f"{name} must be a non-empty list of {what}; got {value!r}"
    wrong = [v for v in value if not ok(v)]
    if wrong:
        return f"{name} must be a non-empty list of {what}; got {list(value)!r} ({', '.join(map(repr, wrong))} not)"
    if len(set(value)) != len(value):
        return f"{name} lists a value twice; got {list(value)!r}"
    return None


def _tricks_problem(value) -> str | None:
    expected = f"a dict with the keys {', '.join(repr(k) for k in TRICKS_RULES)}, each a non-empty list"
    if not isinstance(value, dict) or set(value) != set(TRICKS_RULES):
        return f"TRICKS must be {expected}; got {value!r}"
    for key, (what, ok) in TRICKS_RULES.items():
        values = value[key]
        if not isinstance(values, (list, tuple)) or not values or not all(ok(v) for v in values):
            return f"TRICKS[{key!r}] must be a non-empty list of {what}; got {values!r}"
    return None


def check(**values) -> None:
    """Check every given parameter by its name; raise one :class:`ParameterError` listing all wrong ones."""
    problems = [p for name, value in values.items() if (p := problem(name, value))]
    if "SELECTION_SPLIT_SEED" in values and "SPLIT_SEEDS" in values and not problems \
            and values["SELECTION_SPLIT_SEED"] not in values["SPLIT_SEEDS"]:
        problems.append(f"SELECTION_SPLIT_SEED must be one of SPLIT_SEEDS {list(values['SPLIT_SEEDS'])!r}; "
                        f"got {values['SELECTION_SPLIT_SEED']!r}")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ParameterError(f"{len(problems)} value{'s' if len(problems) > 1 else ''} in the parameters cell "
                             f"cannot be used; fix {'them' if len(problems) > 1 else 'it'} and run the notebook "
                             f"again:\n{lines}")
