"""Data: MNIST from the committed IDX files, and the own dataset as in-memory tensors.

MNIST is read straight from the gzip-compressed IDX files under ``Code/data/MNIST/raw``
after checking them against ``SHA256SUMS``; nothing is ever downloaded. The own
dataset is read once with torchvision's :class:`~torchvision.datasets.ImageFolder`
and kept as tensors, so training loops never touch the disk.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import datasets

from . import paths

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

RESTORE_HINT = (
    "Restore it from git with `git checkout -- \"Code/data/MNIST\"` (the four files ship "
    "with the project; see Code/data/MNIST/README.md for their provenance)."
)


class DataError(RuntimeError):
    """A data file is missing, corrupt or not what the project expects."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_checksums(mnist_dir: Path = paths.MNIST_DIR) -> dict[str, str]:
    sums_file = mnist_dir / "SHA256SUMS"
    if not sums_file.is_file():
        raise DataError(f"Checksum list {sums_file} is missing. {RESTORE_HINT}")
    sums = {}
    for line in sums_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


def verify_mnist_file(name: str, mnist_dir: Path = paths.MNIST_DIR) -> Path:
    """Return the path of one raw MNIST file after checking its SHA-256."""
    path = mnist_dir / "raw" / name
    if not path.is_file():
        raise DataError(f"MNIST file {path} is missing. {RESTORE_HINT}")
    expected = expected_checksums(mnist_dir).get(name)
    if expected is None:
        raise DataError(f"{name} is not listed in {mnist_dir / 'SHA256SUMS'}. {RESTORE_HINT}")
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(
            f"MNIST file {path} is corrupt: sha256 {actual[:12]}… differs from the expected "
            f"{expected[:12]}…. {RESTORE_HINT}"
        )
    return path


def _read_idx(path: Path, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path} is not an IDX file of the expected kind (magic {found}, expected {magic}).")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: {data.size} values for shape {shape}. {RESTORE_HINT}")
    return data.reshape(shape)


def mnist_count(split: str, mnist_dir: Path = paths.MNIST_DIR) -> int:
    """How many images MNIST ``split`` holds (from its checked label file; cheap)."""
    return len(_read_idx(verify_mnist_file(MNIST_FILES[split][1], mnist_dir), 0x0801))


def load_mnist(split: str, mnist_dir: Path = paths.MNIST_DIR) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST ``split`` ("train" or "test") as ``(images uint8 [N,28,28], labels int64 [N])``."""
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    image_name, label_name = MNIST_FILES[split]
    images = _read_idx(verify_mnist_file(image_name, mnist_dir), 0x0803)
    labels = _read_idx(verify_mnist_file(label_name, mnist_dir), 0x0801)
    if len(images) != len(labels):
        raise DataError(f"MNIST {split}: {len(images)} images but {len(labels)} labels. {RESTORE_HINT}")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N,28,28]`` (or float in [0,1]) -> normalised float ``[N,1,28,28]``."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return (x - MNIST_MEAN) / MNIST_STD


def flattened(img: Image.Image) -> Image.Image:
    """An image with transparency composited onto white paper (``RGB``; others returned as they are).

    Tablet and drawing apps save digits as PNGs whose ink may be only in the alpha channel (every
    pixel black, the strokes opaque): without this they read as one black square, or as blank.
    """
    if img.mode in ("P", "PA") and ("transparency" in img.info or img.mode == "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        array = np.asarray(rgba, dtype=np.float32)
        from .page import ink_only_in_alpha

        if ink_only_in_alpha(array[..., :3], array[..., 3] / 255.0):  # one colour (white, say) everywhere
            return Image.fromarray(np.clip(255.0 - array[..., 3] + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    return img


def read_flattened(path) -> np.ndarray:
    """Any image file as uint8 BGR (as OpenCV reads it), with transparency composited onto white
    (see :func:`flattened`); ``OSError``/``ValueError`` when it is not a readable image."""
    with Image.open(path) as img:
        img.load()
        rgb = np.asarray(flattened(img).convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[..., ::-1])


def _grayscale_loader(path: str) -> np.ndarray:
    """A dataset image as uint8 grayscale (transparency flattened onto white); a file that is not a readable
    image is named with the fix."""
    try:
        with Image.open(path) as img:
            return np.asarray(flattened(img).convert("L"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:  # PIL: UnidentifiedImageError, truncated files
        raise DataError(f"{path} cannot be read as an image ({type(err).__name__}: {err}). Delete it, or re-run "
                        "notebook 01 to write the dataset again.") from None


REBUILD_HINT = (
    "Undo the change (put the file back where notebook 01 wrote it), or re-run notebook 01_dataset_preparation "
    "with REPLACE_EXISTING = True to rebuild the dataset and its manifest from your sheet."
)


def read_manifest(manifest: Path = paths.MANIFEST) -> list[dict]:
    """The rows of the dataset manifest written by notebook 01 (file, label, split, ..., sha256)."""
    if not Path(manifest).is_file():
        raise DataError(f"The dataset manifest {manifest} is missing, so the split folders cannot be checked. "
                        "Re-run notebook 01_dataset_preparation to write the dataset and its manifest.")
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"file", "label", "split", "sha256"} <= set(rows[0]):
        raise DataError(f"{manifest} is not a dataset manifest (columns {list(rows[0])}). {REBUILD_HINT}")
    return rows


def dataset_fingerprint(manifest: Path = paths.MANIFEST) -> str:
    """sha256 of the dataset as the manifest lists it (every file, label, split and the file's own sha256).

    Every results file of notebooks 02-04 records it, so a result computed on another dataset is refused.
    """
    rows = read_manifest(manifest)
    lines = sorted(f"{r['file']},{r['label']},{r['split']},{r['sha256']}" for r in rows)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def manifest_problems(split_dir: Path, split: str | None, manifest_rows: list[dict]) -> list[str]:
    """Every way the files under ``split_dir`` differ from the manifest (empty list: they match).

    Names each file that is missing, moved (its bytes now elsewhere), copied (bytes listed for
    another file), extra (not in the manifest), changed (other bytes), or whose manifest row has
    another split or label than its folder says.
    """
    split_dir = Path(split_dir)
    prefix = split_dir.name + "/"
    on_disk = {
        f"{split_dir.name}/{p.relative_to(split_dir).as_posix()}": p
        for p in split_dir.rglob("*") if p.is_file() and not paths.is_os_file(p, split_dir)
    }
    listed = {row["file"]: row for row in manifest_rows if row["file"].startswith(prefix)}
    by_hash: dict[str, list[str]] = {}
    for row in manifest_rows:
        by_hash.setdefault(row["sha256"], []).append(row["file"])
    hashes = {name: sha256_of(path) for name, path in on_disk.items()}
    problems = []
    for name, row in sorted(listed.items()):
        folder_label = name.split("/")[1] if name.count("/") >= 2 else "?"
        if split is not None and row["split"] != split:
            problems.append(f"{name}: the manifest puts it in the {row['split']} split, but it is in {split_dir.name}/")
        if str(row["label"]) != folder_label:
            problems.append(f"{name}: the manifest labels it {row['label']}, but it is in folder {folder_label}/")
        if name not in on_disk:
            moved = [f for f, h in hashes.items() if h == row["sha256"]]
            problems.append(f"{name} is missing" + (f" (moved to {moved[0]})" if moved else ""))
        elif hashes[name] != row["sha256"]:
            problems.append(f"{name} was changed after notebook 01 wrote it (its sha256 differs from the manifest)")
    for name in sorted(set(on_disk) - set(listed)):
        same = [f for f in by_hash.get(hashes[name], []) if f != name]
        if same:
            problems.append(f"{name} is not in the manifest: it is a copy of {same[0]}"
                            + (" (a test or validation image in training leaks the answer)" if not same[0].startswith(prefix) else ""))
        else:
            problems.append(f"{name} is not in the manifest (an extra file)")
    return problems


def _check_class_folders(split_dir: Path) -> None:
    for entry in sorted(split_dir.iterdir()):
        if paths.is_os_file(entry, split_dir):
            continue
        if entry.is_dir() and not (len(entry.name) == 1 and entry.name.isdigit()):
            raise DataError(
                f"'{entry}' is not a class folder: the classes are the digits 0 to 9, one folder each, named by the "
                f"digit. Move its images into the right digit folder or remove it. {REBUILD_HINT}"
            )


class _DigitFolders(datasets.ImageFolder):
    """torchvision's ImageFolder whose classes are only the digit folders 0-9, each labelled by its own digit."""

    def find_classes(self, directory):
        classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and len(e.name) == 1 and e.name.isdigit())
        return classes, {name: int(name) for name in classes}


def _is_dataset_image(path: Path, split_dir: Path) -> bool:
    """An image file the loader reads: the same files the manifest check sees (the OS's own files never)."""
    return datasets.folder.has_file_allowed_extension(path.name, datasets.folder.IMG_EXTENSIONS) \
        and not paths.is_os_file(path, split_dir)


def load_split(split_dir: Path, manifest: Path | None = paths.MANIFEST, split: str | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """An ImageFolder split (``<split_dir>/<digit>/*.jpg``) as ``(uint8 [N,28,28], labels, files)``.

    The folder is first checked against the manifest that notebook 01 wrote (every file, its
    bytes, split and label; ``manifest=None`` skips this, for folders made by hand). Labels are
    the folder names read as digits, so a folder layout with a missing digit cannot silently
    shift labels; folders other than 0-9 are refused.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(
            f"Dataset folder '{split_dir}' does not exist. Run notebook 01_dataset_preparation "
            "to create it from your sheet."
        )
    _check_class_folders(split_dir)
    if manifest is not None:
        problems = manifest_problems(split_dir, split, read_manifest(manifest))
        if problems:
            shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
            raise DataError(f"'{split_dir.name}' does not match the dataset manifest {Path(manifest).name}: {shown}. "
                            f"{REBUILD_HINT}")
    stray = [p for p in split_dir.iterdir() if p.is_file() and not paths.is_os_file(p, split_dir)]
    if stray:
        raise DataError(f"{stray[0]} lies outside the digit folders of '{split_dir}'. Move it into its digit "
                        "folder or remove it.")
    folder = _DigitFolders(str(split_dir), loader=_grayscale_loader, allow_empty=True,
                           is_valid_file=lambda p: _is_dataset_image(Path(p), split_dir))
    if len(folder) == 0:
        raise DataError(f"Dataset folder '{split_dir}' holds no images.")
    images, labels, files = [], [], []
    for path, class_index in folder.samples:
        image = folder.loader(path)
        if image.shape != (28, 28):
            raise DataError(f"{path} is {image.shape[1]}x{image.shape[0]}, not 28x28. Re-run notebook 01.")
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        if border.mean() > 100:
            raise DataError(f"{path} is a dark digit on a light ground; MNIST-style images are white on black. "
                            "Re-run notebook 01 to write the dataset again.")
        images.append(image)
        labels.append(class_index)  # the class index is the digit itself (_DigitFolders)
        files.append(Path(path).relative_to(split_dir.parent).as_posix())
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64), files


def load_own_dataset(split_dirs: dict[str, Path] | None = None, manifest: Path | None = paths.MANIFEST,
                     with_heldout: bool = False) -> dict[str, dict]:
    """All three own splits: ``{"train": {"x", "y", "files"}, "val": …, "test": …}``, checked against the manifest;
    ``with_heldout``: also ``"heldout"``, the writer's own extra digits, when the dataset has them."""
    split_dirs = dict(split_dirs or paths.SPLIT_DIRS)
    if with_heldout and paths.HELDOUT_DIR.is_dir():
        split_dirs.setdefault("heldout", paths.HELDOUT_DIR)
    out = {}
    for split, folder in split_dirs.items():
        x, y, files = load_split(folder, manifest, split)
        out[split] = {"x": x, "y": y, "files": files}
    return out
