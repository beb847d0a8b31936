"""Cut-out digits -> the three split folders (8/2/2 per digit) and the manifest.

:func:`split_digits` makes the seeded, stratified split; :func:`write_dataset` writes the
JPEG files and ``Code/results/dataset_manifest.csv`` and never destroys a different
dataset silently.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np

from . import paths
from .sheet_reading import Digit, SheetError

JPEG_QUALITY = 95
SPLIT_COUNTS = {"train": 8, "val": 2, "test": 2}


class DatasetExistsError(FileExistsError):
    """A different dataset is already on disk and replacing it was not asked for."""


def split_digits(digits: list[Digit], seed: int = 0, counts: dict[str, int] = SPLIT_COUNTS) -> dict[str, list[Digit]]:
    """Stratified, seeded split: for each digit, ``counts`` copies to each split (8/2/2)."""
    per_label: dict[int, list[Digit]] = {}
    for d in digits:
        per_label.setdefault(d.label, []).append(d)
    need = sum(counts.values())
    wrong = {k: len(v) for k, v in sorted(per_label.items()) if len(v) != need}
    missing = [k for k in range(10) if k not in per_label]
    if wrong or missing:
        raise SheetError(
            f"Each digit needs exactly {need} copies for an 8/2/2 split; "
            + ", ".join([f"digit {k}: {n}" for k, n in wrong.items()] + [f"digit {k}: 0" for k in missing])
            + ". Add or remove sheets so that every digit 0-9 appears exactly 12 times."
        )
    rng = np.random.default_rng(seed)
    splits = {name: [] for name in counts}
    for label in sorted(per_label):
        group = sorted(per_label[label], key=lambda d: (d.source, d.sheet, d.row, d.col))
        order = rng.permutation(len(group))
        start = 0
        for name, n in counts.items():
            splits[name].extend(group[i] for i in order[start : start + n])
            start += n
    return splits


def _encode(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return buf.tobytes()


def file_name(d: Digit) -> str:
    """``<label>_<sheet>_r<row>_c<col>.jpg``; ``sheet`` is unique among a dataset's sheets (see
    :func:`.sheet_reading.sheet_names`), the source's stem when it was not set."""
    stem = d.sheet or Path(d.source).stem.replace(" ", "_")
    return f"{d.label}_{stem}_r{d.row + 1:02d}_c{d.col + 1:02d}.jpg"


def _planned_files(splits: dict[str, list[Digit]], split_dirs: dict[str, Path]) -> list[dict]:
    """One entry per file to write; two digits that would get the same file are refused, never overwritten."""
    plan, seen = [], {}
    for split, digits in splits.items():
        for d in digits:
            name = file_name(d)
            key = (split, d.label, name)
            if key in seen:
                raise SheetError(
                    f"Two digits would be saved as the same file '{name}' ({seen[key]} and {d.source}, row "
                    f"{d.row + 1}, column {d.col + 1}). Give the sheets different file names, or read them with "
                    "process_sheets / read_checked_sheets, which names them uniquely. Nothing was written."
                )
            seen[key] = f"{d.source}, row {d.row + 1}, column {d.col + 1}"
            data = _encode(d.image)
            plan.append({
                "path": split_dirs[split] / str(d.label) / name,
                "file": f"{split_dirs[split].name}/{d.label}/{name}",
                "label": d.label, "split": split, "source": d.source, "row": d.row + 1, "col": d.col + 1,
                "sha256": hashlib.sha256(data).hexdigest(), "data": data,
            })
    return plan


def _existing_files(split_dirs: dict[str, Path]) -> dict[str, str]:
    found = {}
    for folder in split_dirs.values():
        if folder.exists():
            for p in folder.rglob("*"):
                if p.is_file():
                    found[f"{folder.name}/{p.relative_to(folder).as_posix()}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def write_dataset(
    splits: dict[str, list[Digit]],
    split_dirs: dict[str, Path] | None = None,
    manifest: Path = paths.MANIFEST,
    replace: bool = False,
    backup_dir: Path = paths.BACKUP_DIR,
) -> dict:
    """Write the split folders and the manifest, never destroying a different dataset.

    * Nothing on disk yet: write it.
    * The same files (names and bytes) already there: leave them, report "unchanged".
    * A different dataset there and ``replace=False``: raise :class:`DatasetExistsError`.
    * A different dataset there and ``replace=True``: move the old folders and manifest
      to ``backup_dir/dataset-<time>/`` first, then write.
    """
    split_dirs = split_dirs or paths.SPLIT_DIRS
    plan = _planned_files(splits, split_dirs)
    existing = _existing_files(split_dirs)
    wanted = {p["file"]: p["sha256"] for p in plan}
    status = "written"
    backup = None
    if existing and existing == wanted:
        status = "unchanged"
    elif existing:
        if not replace:
            raise DatasetExistsError(
                f"A different dataset ({len(existing)} files) is already in "
                f"{', '.join(repr(d.name) for d in split_dirs.values())}. Nothing was changed. To keep it, "
                "copy those folders elsewhere first; to replace it, set REPLACE_EXISTING = True in the "
                f"parameters cell (the old folders are then moved to {backup_dir.name}/, not deleted)."
            )
        backup = paths.unique_folder(backup_dir, "dataset")
        for folder in split_dirs.values():
            if folder.exists():
                shutil.move(str(folder), str(backup / folder.name))
        if Path(manifest).exists():
            shutil.move(str(manifest), str(backup / Path(manifest).name))
    if status == "written":
        for p in plan:
            p["path"].parent.mkdir(parents=True, exist_ok=True)
            p["path"].write_bytes(p["data"])
    Path(manifest).parent.mkdir(parents=True, exist_ok=True)
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "label", "split", "source", "row", "col", "sha256"])
        writer.writeheader()
        for p in sorted(plan, key=lambda p: p["file"]):
            writer.writerow({k: p[k] for k in writer.fieldnames})
    return {"status": status, "files": len(plan), "backup": paths.shown(backup) if backup else None}
