"""Held-out digits of the same writer, evaluated once per final model: the student's own extras, or the
sample writer's other digits.

**Your own held-out digits.** Every copy of a digit beyond the split's counts (the 13th-20th when
each digit is written 20 times) is written by notebook 01 to ``Held-out Set/`` (manifest split
``"heldout"``); :func:`load_heldout` returns them, checked against the manifest like every split.

**The sample writer's.**
The shipped sample sheet is written with real strokes of one UNIPEN writer (see
``Code/sheets/sample_sheet_truth.csv``: the writer and the index of every digit on it).
That writer's other digits, none of them on the sheet, drawn and normalised by the same
code (:func:`.handwriting.writer_images`), are a test set of the same person hundreds of
images large.

Either set is never used for training or selection: notebooks 02-04 evaluate it once per final
model, beside the 20 test images, by the same code. A dataset with neither (12 copies of each
digit from a student's own sheets) has no held-out digits, and :func:`load_heldout` says so by
returning ``None``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from . import paths
from .data import load_split
from .dataset_writing import HELDOUT
from .evaluation import evaluation_record, predict_frame
from .handwriting import load_writers, writer_images

SAMPLE_SHEET = paths.SHEETS_DIR / "sample_sheet.jpg"
SAMPLE_TRUTH = paths.SHEETS_DIR / "sample_sheet_truth.csv"


def sample_writer(truth: Path = SAMPLE_TRUTH) -> tuple[str, list[int]] | None:
    """The sample sheet's writer and the indices of the digits written on it (``None``: not a real writer)."""
    if not Path(truth).is_file():
        return None
    frame = pd.read_csv(truth)
    if not {"writer", "index"} <= set(frame.columns):
        return None
    writers = frame.writer.unique().tolist()
    if len(writers) != 1:
        raise ValueError(f"{truth}: the sample sheet should be one writer's, found {writers}")
    return writers[0], sorted(int(i) for i in frame["index"])


def heldout_indices(writer: str, on_sheet: list[int]) -> list[int]:
    """Every digit of ``writer`` that is not on the sheet."""
    taken = set(on_sheet)
    return [d.index for d in load_writers()[writer] if d.index not in taken]


def own_heldout(manifest: Path = paths.MANIFEST, folder: Path = paths.HELDOUT_DIR) -> dict | None:
    """The student's own extra digits (``Held-out Set/``) as a split ``{"x", "y", "files", "whose": "own"}``,
    or ``None`` when the manifest lists none."""
    if not Path(manifest).is_file() or HELDOUT not in set(pd.read_csv(manifest).split):
        return None
    x, y, files = load_split(folder, manifest, HELDOUT)
    return {"x": x, "y": y, "files": files, "writer": None, "whose": "own"}


def sample_heldout(manifest: Path = paths.MANIFEST, truth: Path = SAMPLE_TRUTH) -> dict | None:
    """The sample writer's other digits (files ``"<writer>#<index>"``), or ``None`` when the dataset was not
    cut from the shipped sample sheet."""
    found = sample_writer(truth)
    if found is None or not Path(manifest).is_file():
        return None
    if set(pd.read_csv(manifest).source) != {SAMPLE_SHEET.name}:
        return None
    writer, on_sheet = found
    images, labels, indices = writer_images(writer, heldout_indices(writer, on_sheet))
    return {"x": torch.from_numpy(images), "y": torch.from_numpy(labels),
            "files": [f"{writer}#{i}" for i in indices], "writer": writer, "whose": "sample"}


def load_heldout(manifest: Path = paths.MANIFEST, truth: Path = SAMPLE_TRUTH,
                 folder: Path = paths.HELDOUT_DIR) -> dict | None:
    """The held-out digits of this dataset's writer as a split: the student's own extras when notebook 01
    wrote any (:func:`own_heldout`), else the sample writer's other digits (:func:`sample_heldout`), else
    ``None`` (12 copies of each digit from a student's own sheets)."""
    return own_heldout(manifest, folder) or sample_heldout(manifest, truth)


def describe(split: dict) -> str:
    """What the held-out digits are, as the evaluation record's ``data``."""
    if split.get("whose") == "own":
        return "your own held-out digits"
    return f"held-out digits of writer {split['writer']}"


def evaluate(model, model_name: str, split: dict | None) -> tuple[dict | None, pd.DataFrame | None]:
    """Evaluate a final model once on the held-out digits: ``(record, predictions)``, or
    ``(None, None)`` when there are none. The record says whose digits they are (``whose``: "own" or
    "sample"; ``writer``: the sample writer, ``None`` for your own)."""
    if split is None:
        return None, None
    frame = predict_frame(model, split)
    record = evaluation_record(model_name, describe(split), frame, writer=split["writer"],
                               whose=split.get("whose", "sample"))
    return record, frame
