"""The sample writer's held-out digits: hundreds more of the same person's handwriting.

The shipped sample sheet is written with real strokes of one UNIPEN writer (see
``Code/sheets/sample_sheet_truth.csv``: the writer and the index of every digit on it).
That writer's other digits, none of them on the sheet, drawn and normalised by the same
code (:func:`.handwriting.writer_images`), are a test set of the same person hundreds of
images large. They are never used for training or selection: notebooks 02-04 evaluate
them once per final model, beside the 20 test images. A dataset cut from any other sheet
has no held-out digits, and :func:`load_heldout` says so by returning ``None``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from . import paths
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


def load_heldout(manifest: Path = paths.MANIFEST, truth: Path = SAMPLE_TRUTH) -> dict | None:
    """The held-out digits as a split ``{"x", "y", "files"}`` (files are ``"<writer>#<index>"``), or
    ``None`` when the dataset was not cut from the shipped sample sheet (a student's own photo)."""
    found = sample_writer(truth)
    if found is None or not Path(manifest).is_file():
        return None
    if set(pd.read_csv(manifest).source) != {SAMPLE_SHEET.name}:
        return None
    writer, on_sheet = found
    images, labels, indices = writer_images(writer, heldout_indices(writer, on_sheet))
    return {"x": torch.from_numpy(images), "y": torch.from_numpy(labels),
            "files": [f"{writer}#{i}" for i in indices], "writer": writer}


def evaluate(model, model_name: str, split: dict | None) -> tuple[dict | None, pd.DataFrame | None]:
    """Evaluate a final model once on the held-out digits: ``(record, predictions)``, or
    ``(None, None)`` when there are none (a dataset from another sheet)."""
    if split is None:
        return None, None
    frame = predict_frame(model, split)
    record = evaluation_record(model_name, f"held-out digits of writer {split['writer']}", frame, writer=split["writer"])
    return record, frame
