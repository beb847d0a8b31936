"""Every path the project uses, derived from this file's location.

Nothing depends on the current working directory, so the notebooks, the scripts and
the tests find the same files wherever they are started from. Folder names with
spaces ("Training Set") are plain :class:`pathlib.Path` objects and need no quoting.
"""

import re
import time
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CODE_DIR = PACKAGE_DIR.parent
PROJECT_ROOT = CODE_DIR.parent
if not (PROJECT_ROOT / "pyproject.toml").is_file():
    raise ImportError(
        f"mnist_transfer was imported from {PACKAGE_DIR}, which is not inside the project folder, so it cannot find "
        "the data, the model and the results. Install it editable from the project folder "
        "(`python run.py setup` does, or `pip install -e .`), or import it from the project's Code/ folder."
    )

MNIST_DIR = CODE_DIR / "data" / "MNIST"
UNIPEN_DIR = CODE_DIR / "data" / "unipen"  # real writers' digits as pen strokes (CC BY 4.0)
UNIPEN_WRITERS = UNIPEN_DIR / "writers.json.gz"
MODELS_DIR = CODE_DIR / "models"
PRETRAINED_CHECKPOINT = MODELS_DIR / "mnist_cnn.pt"
PRETRAINED_METRICS = MODELS_DIR / "mnist_cnn.json"

SHEETS_DIR = CODE_DIR / "sheets"
FONTS_DIR = CODE_DIR / "fonts"
RESULTS_DIR = CODE_DIR / "results"
FIGURES_DIR = CODE_DIR / "figures"
REPORT_DIR = CODE_DIR / "report"
BACKUP_DIR = CODE_DIR / "backups"

SPLIT_DIRS = {
    "train": PROJECT_ROOT / "Training Set",
    "val": PROJECT_ROOT / "Validation Set",
    "test": PROJECT_ROOT / "Test Set",
}
# Every copy of a digit beyond the split's counts (a 13th-20th): the student's own held-out test, never trained on.
HELDOUT_DIR = PROJECT_ROOT / "Held-out Set"
ALL_SPLIT_DIRS = {**SPLIT_DIRS, "heldout": HELDOUT_DIR}
MANIFEST = RESULTS_DIR / "dataset_manifest.csv"

WORKBOOK = PROJECT_ROOT / "Assignment 4 Results.xlsx"
REPORT_PDF = PROJECT_ROOT / "Assignment 4_Report.pdf"


def shown(path: Path) -> str:
    """``path`` as a person should read it: relative to the project when inside it (no machine paths in outputs)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def unique_folder(parent: Path, prefix: str) -> Path:
    """A new, empty ``parent/<prefix>-<time>`` folder; ``-1``, ``-2``, ... keep two made within one second apart."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
    for i in range(1000):
        folder = parent / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not make a new backup folder in {parent}: {stamp}-0 to -999 all exist.")


# Which notebook writes which file (by file name), so that a missing or damaged file names its fix.
WRITTEN_BY = (
    (r"mnist_cnn\.(json|pt)$", "00_pretrain_mnist"),
    (r"dataset_manifest\.csv$", "01_dataset_preparation"),
    (r"(baseline\.json|predictions_pretrained_.*)$", "02_baseline_evaluation"),
    (r".*finetune_last_layer.*$", "03_finetune_last_layer"),
    (r".*finetune_n_layers.*$", "04_finetune_n_layers"),
    (r"writer_.*$", "05_writer_study"),
    (r"(report_data\.json|Assignment 4.*)$", "06_analysis_and_report"),
)


def written_by(path: Path) -> str | None:
    """The notebook that writes ``path`` (e.g. ``"02_baseline_evaluation"``), or None for a file no notebook writes."""
    return next((notebook for pattern, notebook in WRITTEN_BY if re.match(pattern, Path(path).name)), None)


# What the operating system or Jupyter leave in folders; never part of a dataset, never counted as a change.
OS_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".localized"})
OS_FOLDERS = frozenset({".ipynb_checkpoints", "__MACOSX", ".Trashes", ".Spotlight-V100", ".fseventsd"})


def is_os_file(path: Path, within: Path | None = None) -> bool:
    """True for macOS Finder's .DS_Store and ._ copies, Windows' Thumbs.db and desktop.ini, and anything in a
    .ipynb_checkpoints or __MACOSX folder (below ``within``). A hidden file a person saved (``.x.jpg``) is not."""
    path = Path(path)
    parts = path.relative_to(within).parts if within is not None else path.parts
    return path.name in OS_FILES or path.name.startswith("._") or any(part in OS_FOLDERS for part in parts)
