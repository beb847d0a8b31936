"""Cut-out digits -> the three split folders (8/2/2 per digit), the held-out extras, and the manifest.

:func:`check_counts` refuses too few copies of a digit before any sheet is read;
:func:`split_digits` makes the seeded, stratified split (every copy beyond 8/2/2 becomes the
student's own held-out test, ``Held-out Set/``); :func:`write_dataset` writes the JPEG files and
``Code/results/dataset_manifest.csv`` and never destroys a different dataset silently.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from . import paths
from .sheet_reading import IMAGE_SUFFIXES, Digit, SheetError

JPEG_QUALITY = 95
SPLIT_COUNTS = {"train": 8, "val": 2, "test": 2}


MANIFEST_COLUMNS = ["file", "label", "split", "source", "sheet", "row", "col", "sha256"]
ORIGINS = ("sheets", "folder")


class DatasetExistsError(FileExistsError):
    """A different dataset is already on disk and replacing it was not asked for."""


HELDOUT = "heldout"  # the split of every copy beyond the 8/2/2 (or the chosen) counts: the student's own held-out test


def _counts_text(counts: dict[str, int]) -> str:
    return "/".join(str(n) for n in counts.values())


def split_counts(split: tuple[int, int, int] | list[int] = (8, 2, 2)) -> dict[str, int]:
    """``(train, val, test)`` copies per digit as the dict :func:`split_digits` takes (``SPLIT`` in notebook 01)."""
    return dict(zip(SPLIT_COUNTS, (int(n) for n in split)))


def count_problem(per_digit: dict[int, int], counts: dict[str, int] = SPLIT_COUNTS, unit: str = "images") -> str | None:
    """Why these copies per digit cannot be split (``None``: they can): every digit 0-9 needs at least
    ``sum(counts)`` copies. Names each digit that is short, its count and how many more would fix it, in
    ``unit``: "images" for a digit folder, "sheets" for photos of sheets (a missing copy is one more row)."""
    need = sum(counts.values())
    short = {k: per_digit.get(k, 0) for k in range(10) if per_digit.get(k, 0) < need}
    if not short:
        return None
    noun = "images" if unit == "images" else "copies on the sheets"
    listed = ", ".join(f"digit {k}: {n} ({need - n} more)" for k, n in short.items())
    if unit == "sheets":
        more = max(need - n for n in short.values())
        fix = (f"Write {more} more row{'s' if more > 1 else ''} of these digits on a sheet and add it to SHEETS "
               "(or add sheets)")
    else:
        fix = "Add images of these digits to their folders"
    return (f"Each digit needs at least {need} {noun}: the {_counts_text(counts)} split (training/validation/test) "
            f"takes exactly {need} of each digit, and every further one becomes your own held-out test. Too few: "
            f"{listed}. {fix}, or choose a smaller split with SPLIT in the parameters cell (e.g. SPLIT = (6, 2, 2) "
            "for 10 of each). Nothing was written.")


def split_digits(digits: list[Digit], seed: int = 0, counts: dict[str, int] = SPLIT_COUNTS,
                 unit: str = "images") -> dict[str, list[Digit]]:
    """Stratified, seeded split: for each digit, ``counts`` copies to each split (8/2/2), and every
    further copy to ``"heldout"`` (the key is there only when some digit has more copies)."""
    per_label: dict[int, list[Digit]] = {}
    for d in digits:
        per_label.setdefault(d.label, []).append(d)
    problem = count_problem({k: len(v) for k, v in per_label.items()}, counts, unit)
    if problem:
        raise SheetError(problem)
    rng = np.random.default_rng(seed)
    splits = {name: [] for name in counts}
    extras = []
    for label in sorted(per_label):
        group = sorted(per_label[label], key=lambda d: (d.source, d.sheet, d.row, d.col))
        order = rng.permutation(len(group))
        start = 0
        for name, n in counts.items():
            splits[name].extend(group[i] for i in order[start : start + n])
            start += n
        extras.extend(group[i] for i in order[start:])
    if extras:
        splits[HELDOUT] = extras
    return splits


def sheet_counts(sheets: list) -> dict[int, int]:
    """Copies of each digit the layouts of ``SHEETS`` promise, known before any sheet is read."""
    per_digit: dict[int, int] = {}
    for _, layout in sheets:
        for row in range(layout.rows):
            for col in range(layout.cols):
                label = layout.label_at(row, col)
                per_digit[label] = per_digit.get(label, 0) + 1
    return per_digit


def folder_counts(folder: Path) -> dict[int, int]:
    """Image files per digit in a digit folder (``<folder>/<digit>/*.png`` or names starting with the digit),
    counted before any is read; files whose label cannot be told are left to the reader to name."""
    folder = Path(folder)
    per_digit: dict[int, int] = {}
    if not folder.is_dir():
        return per_digit
    for path in folder.rglob("*"):
        if path.suffix.lower() not in IMAGE_SUFFIXES or paths.is_os_file(path, folder):
            continue
        name = path.parent.name if path.parent != folder else path.stem[:1]
        if len(name) == 1 and name.isdigit():
            per_digit[int(name)] = per_digit.get(int(name), 0) + 1
    return per_digit


def check_counts(sheets: list | None = None, digit_folder: Path | None = None,
                 counts: dict[str, int] = SPLIT_COUNTS) -> None:
    """Refuse, before any sheet or image is read, a dataset with fewer than ``sum(counts)`` copies of a digit."""
    if digit_folder is not None:
        problem = count_problem(folder_counts(digit_folder), counts, "images")
    else:
        problem = count_problem(sheet_counts(sheets or []), counts, "sheets")
    if problem:
        raise SheetError(problem)


@contextlib.contextmanager
def refusals_noted():
    """Around a step of notebook 01: any refusal says that the cells below it still show an earlier run."""
    try:
        yield
    except Exception as err:
        refusal_note(err)
        raise


def refusal_note(err: BaseException) -> BaseException:
    """Add to a refusal of notebook 01 that the cells below it still show an earlier run (returns ``err``)."""
    err.add_note("Notebook 01 stopped here: nothing below this cell was updated, so any output further down is "
                 "from an earlier run, not from these sheets. The dataset on disk was not changed.")
    return err


def _encode(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return buf.tobytes()


def file_name(d: Digit) -> str:
    """``<label>_<sheet>_r<row>_c<col>.jpg``; ``sheet`` is unique among a dataset's sheets (see
    :func:`.sheet_reading.sheet_names`), the source's stem when it was not set."""
    stem = d.sheet or Path(d.source).stem.replace(" ", "_")
    return f"{d.label}_{stem}_r{d.row + 1:02d}_c{d.col + 1:02d}.jpg"


def _planned_files(splits: dict[str, list[Digit]], split_dirs: dict[str, Path], origin: str = "sheets") -> list[dict]:
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
                "label": d.label, "split": split, "source": d.source,
                "sheet": "" if origin == "folder" else (d.sheet or Path(d.source).stem.replace(" ", "_")),
                # a cut digit of a folder has no row or column on a sheet ("source" names its file)
                "row": "" if origin == "folder" else d.row + 1, "col": "" if origin == "folder" else d.col + 1,
                "sha256": hashlib.sha256(data).hexdigest(), "data": data,
            })
    return plan


def _existing_files(split_dirs: dict[str, Path]) -> dict[str, str]:
    found = {}
    for folder in split_dirs.values():
        if folder.exists():
            for p in folder.rglob("*"):
                if p.is_file() and not paths.is_os_file(p, folder):  # Finder's .DS_Store is no change
                    found[f"{folder.name}/{p.relative_to(folder).as_posix()}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _differences(existing: dict[str, str], wanted: dict[str, str], shown: int = 3) -> str:
    """How the dataset on disk differs from the one to write, naming a few files."""
    only_there = sorted(set(existing) - set(wanted))
    only_new = sorted(set(wanted) - set(existing))
    changed = sorted(f for f in set(existing) & set(wanted) if existing[f] != wanted[f])
    parts = []
    for files, what in ((only_there, "not written by this run"), (only_new, "not there yet"),
                        (changed, "with other bytes")):
        if files:
            more = f" and {len(files) - shown} more" if len(files) > shown else ""
            parts.append(f"{len(files)} file{'s' if len(files) > 1 else ''} {what} ({', '.join(files[:shown])}{more})")
    return "; ".join(parts)


def _check_writable(split_dirs: dict[str, Path], manifest: Path, backup_dir: Path) -> None:
    """Every folder this write changes must accept a new file, before anything is moved or written."""
    folders = {Path(manifest).parent, backup_dir}
    for folder in split_dirs.values():
        folders.add(folder.parent)
        if folder.exists():
            folders.update(p for p in [folder, *folder.rglob("*")] if p.is_dir())
    unwritable = []
    for folder in sorted(folders):
        while not folder.exists():  # a folder still to be made: its first existing parent must be writable
            folder = folder.parent
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as err:
            unwritable.append(f"{paths.shown(folder)} ({err.strerror or type(err).__name__})")
    if unwritable:
        raise PermissionError(
            f"Cannot write the dataset: {', '.join(unwritable[:5])}"
            + (f" and {len(unwritable) - 5} more" if len(unwritable) > 5 else "")
            + " cannot be written to. Nothing was changed. Make the folders writable (not read-only, not on a "
            "read-only drive, not open in another program) and run the notebook again."
        )


def _move_to_backup(items: list[Path], backup_dir: Path) -> Path:
    """Move the existing items into a new backup folder; on any failure move back what was moved, and re-raise."""
    backup = paths.unique_folder(backup_dir, "dataset")
    moved = []
    try:
        for item in items:
            if item.exists():
                shutil.move(str(item), str(backup / item.name))
                moved.append(item)
    except OSError as err:
        for item in reversed(moved):
            shutil.move(str(backup / item.name), str(item))
        shutil.rmtree(backup, ignore_errors=True)
        raise PermissionError(f"Moving the old dataset to {paths.shown(backup_dir)} failed ({err}); everything was "
                              "put back where it was. Nothing was changed.") from err
    return backup


# The results computed from the dataset (notebooks 02-04): a new dataset makes them stale, so they go with the old one.
DERIVED_FROM_DATASET = ("02_baseline_evaluation", "03_finetune_last_layer", "04_finetune_n_layers")


def _move_stale_results(results_dir: Path, backup: Path | None, backup_dir: Path) -> tuple[Path | None, list[Path]]:
    """Move every results file computed from the old dataset into the backup (made if there is none yet)."""
    stale = sorted(p for p in results_dir.glob("*") if p.is_file() and paths.written_by(p) in DERIVED_FROM_DATASET) \
        if results_dir.is_dir() else []
    if stale:
        backup = backup or paths.unique_folder(backup_dir, "dataset")
        (backup / "results").mkdir(exist_ok=True)
        for path in stale:
            shutil.move(str(path), str(backup / "results" / path.name))
    return backup, stale


def write_dataset(
    splits: dict[str, list[Digit]],
    split_dirs: dict[str, Path] | None = None,
    manifest: Path = paths.MANIFEST,
    replace: bool = False,
    backup_dir: Path = paths.BACKUP_DIR,
    origin: str = "sheets",
) -> dict:
    """Write the split folders and the manifest, never destroying a different dataset.

    * Nothing on disk yet: write it.
    * The same files (names and bytes) already there: leave them, report "unchanged".
    * A different dataset there and ``replace=False``: raise :class:`DatasetExistsError`.
    * A different dataset there and ``replace=True``: move the old folders and manifest
      to ``backup_dir/dataset-<time>/`` first, then write.

    Whenever files are written, the results computed from the previous dataset (notebooks 02-04, in the
    manifest's folder) are moved to that backup too (``results/``): nothing derived from an old dataset stays
    beside a new one. ``origin``: "sheets" (photos of sheets) or "folder" (a folder of cut digits); the
    manifest's ``sheet`` column names each digit's sheet, empty for a folder. Returns
    ``{"status", "files", "backup", "results_moved"}``.
    """
    split_dirs = split_dirs or paths.ALL_SPLIT_DIRS
    missing = sorted(set(splits) - set(split_dirs))
    if missing:
        raise ValueError(f"no folder given for the split{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
    plan = _planned_files(splits, split_dirs, origin)
    existing = _existing_files(split_dirs)
    wanted = {p["file"]: p["sha256"] for p in plan}
    status = "written"
    backup = None
    if existing and existing == wanted:
        status = "unchanged"  # nothing to write but the manifest
    elif existing:
        if not replace:
            raise DatasetExistsError(
                f"A different dataset ({len(existing)} files) is already in "
                f"{', '.join(repr(d.name) for d in split_dirs.values())}: {_differences(existing, wanted)}. "
                "Nothing was changed. To keep it, copy those folders elsewhere first; to replace it, set "
                "REPLACE_EXISTING = True in the parameters cell (the old folders are then moved to "
                f"{backup_dir.name}/, not deleted)."
            )
        _check_writable(split_dirs, manifest, backup_dir)
        backup = _move_to_backup([*split_dirs.values(), Path(manifest)], backup_dir)
    else:
        _check_writable(split_dirs, manifest, backup_dir)  # nothing there yet
    moved_results = []
    if status == "written":
        backup, moved_results = _move_stale_results(Path(manifest).parent, backup, backup_dir)
        for p in plan:
            p["path"].parent.mkdir(parents=True, exist_ok=True)
            p["path"].write_bytes(p["data"])
    Path(manifest).parent.mkdir(parents=True, exist_ok=True)
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for p in sorted(plan, key=lambda p: p["file"]):
            writer.writerow({k: p[k] for k in writer.fieldnames})
    return {"status": status, "files": len(plan), "backup": paths.shown(backup) if backup else None,
            "results_moved": len(moved_results)}
