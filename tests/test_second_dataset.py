"""A student's run, end to end, on a second shipped dataset: notebooks 01-04 and 06 in a scratch copy of the project.

The dataset is ``Code/data/second_dataset/``: 157 real pen-on-paper digits, 14-16 of each, given to notebook 01 as a
folder of cut digits (``DIGIT_FOLDER``), so that the 8/2/2 split leaves 37 copies as the writer's own held-out test.
Smaller grids go in through the notebooks' tagged parameters cells (the grids' size is not what is tested here);
notebook 05, which studies the bundled writers and not the dataset, keeps its committed results.
Then, in the copy: nothing of the sample writer in the report, the workbook or the results; the extras evaluated as
held-out by every final model; the four accuracies the same in the results, the workbook and the report; and the
project's own deliverable tests (``tests/test_artifacts.py``) pass on what the run left.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parents[1]
SECOND = ROOT / "Code" / "data" / "second_dataset"
IGNORED = (".venv", ".git", "backups", "__pycache__", ".ipynb_checkpoints", ".pytest_cache")

# Appended to each notebook's tagged parameters cell in the copy (the values a student could type there).
PARAMETERS = {
    "01_dataset_preparation": 'DIGIT_FOLDER = paths.CODE_DIR / "data" / "second_dataset"\nREPLACE_EXISTING = True',
    "02_baseline_evaluation": "",
    "03_finetune_last_layer": "LRS = [3e-3, 1e-2]\nBATCH_SIZES = [16]\nEPOCH_VALUES = [10, 20]\nSEEDS = [0, 1]",
    "04_finetune_n_layers": ('N_LAST_VALUES = [2]\nLRS = [1e-3]\nBATCH_SIZES = [16]\nEPOCH_VALUES = [5, 10]\nSEEDS = [0, 1]\n'
                             'TRICKS = {"augment": [False], "body_lr_factor": [1.0, 0.1]}'),
    # 05_writer_study is not run: it studies the bundled writers, never the dataset, so its committed results
    # (copied with the project) are what notebook 06 reads, as in a student's own run
    "06_analysis_and_report": "",
}


def _set_parameters(notebook: Path, extra: str) -> None:
    if not extra:
        return
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = cell.source + "\n# set by tests/test_second_dataset.py\n" + extra
    nbformat.write(nb, notebook)


def run_second_dataset(parent: Path) -> dict:
    """Copy the project into ``parent``, run notebooks 01-06 there on the second dataset; seconds per notebook."""
    copy = Path(parent) / "project copy"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*IGNORED))
    env = {**{k: v for k, v in os.environ.items() if k != "MPLBACKEND"},  # Agg would leave the notebooks without figures
           "PYTHONPATH": str(copy / "Code"), "MNIST_RETRAIN": "0", "REPLACE_EXISTING": "1",
           "PYTHONWARNDEFAULTENCODING": "1"}
    where = subprocess.run([sys.executable, "-c", "import mnist_transfer.paths as p; print(p.PROJECT_ROOT)"],
                           env=env, cwd=copy, capture_output=True, text=True, encoding="utf-8").stdout.strip()
    assert Path(where).resolve() == copy.resolve(), f"the copy imports mnist_transfer from {where}"
    seconds = {}
    for name, extra in PARAMETERS.items():
        notebook = copy / "Code" / f"{name}.ipynb"
        _set_parameters(notebook, extra)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                               "--inplace", "--ExecutePreprocessor.timeout=600", str(notebook)],
                              env=env, cwd=copy / "Code", capture_output=True, text=True, encoding="utf-8")
        assert done.returncode == 0, f"{name} failed:\n{done.stderr[-4000:]}"
        seconds[name] = round(time.perf_counter() - start, 1)
    return {"copy": copy, "seconds": seconds, "env": env}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = run_second_dataset(tmp_path_factory.mktemp("second-dataset"))
    print("seconds per notebook:", out["seconds"])
    return out


@pytest.fixture(scope="module")
def report_text(run):
    return "\n".join(page.extract_text() for page in PdfReader(run["copy"] / "Assignment 4_Report.pdf").pages)


def _results(run, name):
    return json.loads((run["copy"] / "Code" / "results" / f"{name}.json").read_text(encoding="utf-8"))


def test_the_extras_are_the_writers_own_heldout_set(run):
    manifest = pd.read_csv(run["copy"] / "Code" / "results" / "dataset_manifest.csv")
    counts = manifest.pivot_table(index="split", columns="label", values="file", aggfunc="count").fillna(0)
    assert (counts.loc["train"] == 8).all() and (counts.loc["val"] == 2).all() and (counts.loc["test"] == 2).all()
    given = {d: len(list((SECOND / str(d)).glob("*.png"))) for d in range(10)}
    assert counts.loc["heldout"].astype(int).to_dict() == {d: n - 12 for d, n in given.items()}
    on_disk = sorted(p.name for p in (run["copy"] / "Held-out Set").rglob("*.jpg"))
    assert on_disk == sorted(Path(f).name for f in manifest[manifest.split == "heldout"].file)
    for name in ("baseline", "finetune_last_layer", "finetune_n_layers"):
        record = _results(run, name)["heldout"]
        assert record["whose"] == "own" and record["total"] == sum(given.values()) - 120, name
        frame = pd.read_csv(run["copy"] / "Code" / "results" /
                            f"predictions_{'pretrained' if name == 'baseline' else name}_heldout.csv")
        assert len(frame) == record["total"] and int(frame.correct.sum()) == record["correct"]
        assert all(f.startswith("Held-out Set/") for f in frame.file)


def test_nothing_of_the_sample_writer_is_left(run, report_text):
    results_dir = run["copy"] / "Code" / "results"
    for path in results_dir.glob("*"):
        if path.name.startswith(("writer_", "dataset_manifest")):  # the study of the bundled writers names them
            continue
        assert "W01" not in path.read_text(encoding="utf-8", errors="replace"), path.name
        assert "sample_sheet" not in path.read_text(encoding="utf-8", errors="replace"), path.name
    manifest = pd.read_csv(results_dir / "dataset_manifest.csv")
    assert not manifest.source.str.contains("sample_sheet").any()
    assert not list((run["copy"] / "Code" / "figures").glob("dataset_annotated_sheet*"))
    dataset_section = report_text.split("2. The pre-trained model")[0]
    for stale in ("W01", "sample", "sheet.jpg", "photo as", "finds the page", "808", "_r0"):
        assert stale not in dataset_section, stale
    given = sum(len(list((SECOND / str(d)).glob("*.png"))) for d in range(10))
    assert f"folder of {given} already-cut images" in dataset_section
    assert f"the {given - 120} further copies" in dataset_section
    assert "writer W01" not in report_text and "sample writer" not in report_text
    book = load_workbook(run["copy"] / "Assignment 4 Results.xlsx", read_only=True)
    for sheet in book.sheetnames:
        if sheet.startswith("Writer study"):
            continue  # the bundled writers, W01 among them, named as such
        for row in book[sheet].iter_rows(values_only=True):
            assert not any(isinstance(v, str) and ("W01" in v or "sample_sheet" in v) for v in row), sheet
    assert "Held-out (own)" in book.sheetnames and "Held-out (sample writer)" not in book.sheetnames


def test_the_four_accuracies_agree_across_results_workbook_and_report(run, report_text):
    sys.path.insert(0, str(run["copy"] / "Code"))
    try:
        code = ("import json; from mnist_transfer import results, evaluation; "
                "print(json.dumps([evaluation.format_accuracy(e) for e in results.four_evaluations(results.load_all())]))")
        done = subprocess.run([sys.executable, "-c", code], env=run["env"], cwd=run["copy"], capture_output=True,
                              text=True, encoding="utf-8")
        assert done.returncode == 0, done.stderr
        four = json.loads(done.stdout)
    finally:
        sys.path.remove(str(run["copy"] / "Code"))
    assert all(text in report_text for text in four)
    first = load_workbook(run["copy"] / "Assignment 4 Results.xlsx", read_only=True).worksheets[0]
    rows = list(first.iter_rows(values_only=True))
    head = rows[0]
    correct, total = head.index("Correct"), head.index("Images")
    assert [f"{r[correct]}/{r[total]}" for r in rows[1:5]] == [t.split(" = ")[0].replace(",", "") for t in four]


def test_the_report_speaks_of_the_writers_own_heldout_digits(run, report_text):
    held = _results(run, "finetune_n_layers")["heldout"]
    assert "Held-out digits of the writer’s own." in report_text
    assert f"the writer’s own {held['total']} held-out digits" in report_text.replace("\n", " ")
    assert "No held-out digits." not in report_text


def test_the_deliverable_tests_pass_on_the_second_dataset(run):
    """The project's own tests of the deliverables, run in the copy on what the second dataset left there."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x",
                           "tests/test_artifacts.py"], env={**run["env"], "MPLBACKEND": "Agg"}, cwd=run["copy"], capture_output=True,
                          text=True, encoding="utf-8")
    assert done.returncode == 0, done.stdout[-6000:]
    assert re.search(r"\d+ passed", done.stdout)
