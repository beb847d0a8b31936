"""Hostile inputs, second round, away from the sheet reader: the values a student types into a parameters cell,
damaged or missing results files, the operating system's own files in the dataset, read-only folders, and a
workbook a person has added to. Every case is either right or refused with a message naming the place and the fix."""

import json
import re
import shutil
import tempfile
from pathlib import Path

import cv2
import nbformat
import numpy as np
import openpyxl
import pandas as pd
import pytest
import torch
from openpyxl.comments import Comment

from mnist_transfer import data, dataset_writing, model, parameters, paths, results, sheet_reading, training, workbook
from mnist_transfer import writer_study
from mnist_transfer.parameters import ParameterError

# --------------------------------------------------------------------------- parameters cells


@pytest.mark.parametrize("name, value, says", [
    ("LRS", [], "LRS must be a non-empty list of positive numbers"),
    ("LRS", [-0.001], "LRS must be a non-empty list of positive numbers (learning rates, at most 1); got [-0.001]"),
    ("LRS", [0.0], "(0.0 not)"),
    ("LRS", ["1e-3"], "('1e-3' not)"),
    ("LRS", 0.001, "LRS must be a non-empty list"),
    ("LRS", [float("nan")], "(nan not)"),
    ("LRS", [3.0], "at most 1"),
    ("EPOCH_VALUES", [0], "EPOCH_VALUES must be a non-empty list of positive whole numbers (epochs); got [0]"),
    ("EPOCH_VALUES", [2.5], "(2.5 not)"),
    ("SEEDS", [], "SEEDS must be a non-empty list of whole numbers from 0"),
    ("SEEDS", [0, 0], "SEEDS lists a value twice"),
    ("BATCH_SIZES", [0], "BATCH_SIZES must be a non-empty list of positive whole numbers"),
    ("BATCH_SIZES", [-16], "(-16 not)"),
    ("SPLIT_SEED", "1", "SPLIT_SEED must be a whole number from 0 to 2**32 - 1 (a seed); got '1'"),
    ("SPLIT_SEED", -1, "got -1"),
    ("SPLIT_SEED", True, "got True"),
    ("SPLIT_SEEDS", [], "SPLIT_SEEDS must be a non-empty list"),
    ("N_LAST_VALUES", [1], "N_LAST_VALUES must be a non-empty list of whole numbers from 2 to 5"),
    ("N_LAST_VALUES", [6], "(6 not)"),
    ("MAX_LR", -0.1, "MAX_LR must be a positive number"),
    ("EPOCHS", 0, "EPOCHS must be a positive whole number"),
    ("GALLERY_IMAGES", -1, "GALLERY_IMAGES must be a positive whole number"),
    ("FULL", "yes", "FULL must be True or False; got 'yes'"),
    ("SWEEP", "all", 'SWEEP must be "subset" or "full"'),
    ("DIGIT_FOLDER", "no such folder", "DIGIT_FOLDER must be None, or an existing folder of cut digits"),
    ("DIGIT_FOLDER", 3, "got 3"),
    ("TRICKS", {"augment": [False]}, "TRICKS must be a dict with the keys 'augment', 'body_lr_factor'"),
    ("TRICKS", {"augment": [False], "body_lr_factor": [-1.0]}, "TRICKS['body_lr_factor'] must be a non-empty list"),
])
def test_a_wrong_parameter_is_named_with_what_it_must_be(name, value, says):
    with pytest.raises(ParameterError) as info:
        parameters.check(**{name: value})
    assert says in str(info.value)
    assert "1 value in the parameters cell cannot be used; fix it" in str(info.value)


def test_every_wrong_parameter_is_listed_at_once():
    with pytest.raises(ParameterError) as info:
        parameters.check(LRS=[-1e-3], BATCH_SIZES=[16], EPOCH_VALUES=[0], SEEDS=[], FINAL_SEED=0)
    message = str(info.value)
    assert message.startswith("3 values in the parameters cell cannot be used; fix them")
    assert [line.split(" must")[0].strip("- ") for line in message.splitlines()[1:]] == ["LRS", "EPOCH_VALUES", "SEEDS"]


def test_the_selection_split_seed_must_be_one_of_the_split_seeds():
    with pytest.raises(ParameterError, match=r"SELECTION_SPLIT_SEED must be one of SPLIT_SEEDS \[0, 1\]; got 2"):
        parameters.check(SPLIT_SEEDS=[0, 1], SELECTION_SPLIT_SEED=2)
    parameters.check(SPLIT_SEEDS=[0, 1], SELECTION_SPLIT_SEED=1)


def test_good_values_pass():
    parameters.check(LRS=[1e-3, np.float64(3e-3)], BATCH_SIZES=[8, np.int64(16)], EPOCH_VALUES=[5, 40],
                     SEEDS=[0, 1, 2], FINAL_SEED=0, N_LAST_VALUES=[2, 5],
                     TRICKS={"augment": [False, True], "body_lr_factor": [1.0, 0.1]})


NOTEBOOKS_WITH_PARAMETERS = sorted(p for p in paths.CODE_DIR.glob("[0-9][0-9]_*.ipynb")
                                   if any("parameters" in c.metadata.get("tags", [])
                                          for c in nbformat.read(p, as_version=4).cells))


@pytest.mark.parametrize("notebook", NOTEBOOKS_WITH_PARAMETERS, ids=lambda p: p.name)
def test_every_notebook_checks_every_value_of_its_parameters_cell(notebook):
    """The cell after the parameters cell checks each parameter by name (the sheets themselves are checked by the reader)."""
    cells = nbformat.read(notebook, as_version=4).cells
    at = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", cells[at].source, flags=re.M)) - {"SHEETS"}
    checked = set(re.findall(r"\b([A-Z][A-Z0-9_]*)=\1\b", cells[at + 1].source))
    assert "parameters.check(" in cells[at + 1].source
    assert assigned == checked, f"not checked: {assigned - checked}; checked but not a parameter: {checked - assigned}"
    assert all(name in parameters.RULES or name == "TRICKS" for name in checked)


@pytest.mark.parametrize("field, value", [("lr", -1e-3), ("lr", 0.0), ("batch_size", -4), ("batch_size", 0),
                                          ("epochs", 0), ("n_last", 0), ("body_lr_factor", 0.0)])
def test_a_configuration_that_cannot_train_is_refused_before_training(field, value):
    """A negative rate would train by gradient ascent; a zero one would save the pre-trained model as fine-tuned."""
    with pytest.raises(ValueError, match=rf"cannot be trained: {field} must be"):
        training.FinetuneConfig(**{field: value})


def test_a_wrong_device_variable_is_named(monkeypatch):
    monkeypatch.setenv("DIGITS_DEVICE", "gpu")
    with pytest.raises(ValueError, match="the environment variable DIGITS_DEVICE is 'gpu', which is not a device: use cpu"):
        model.pick_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("DIGITS_DEVICE", "cuda")
        with pytest.raises(ValueError, match="PyTorch sees no CUDA GPU on this machine"):
            model.pick_device()


# --------------------------------------------------------------------------- results files


@pytest.fixture
def results_copy(tmp_path):
    folder = tmp_path / "results"
    shutil.copytree(paths.RESULTS_DIR, folder)
    return folder


@pytest.mark.parametrize("file, notebook", [("baseline.json", "02_baseline_evaluation"),
                                            ("finetune_n_layers.json", "04_finetune_n_layers")])
def test_a_truncated_results_json_names_the_file_and_its_notebook(results_copy, file, notebook):
    path = results_copy / file
    path.write_text(path.read_text(encoding="utf-8")[:50], encoding="utf-8")
    with pytest.raises(results.ResultsFileError, match=rf"{file} is damaged \(not valid JSON.*run notebook {notebook} again"):
        results.load_all(results_copy)


@pytest.mark.parametrize("file, notebook", [("grid_runs_finetune_last_layer.csv", "03_finetune_last_layer"),
                                            ("predictions_pretrained_own_test.csv", "02_baseline_evaluation")])
def test_a_deleted_results_csv_names_the_file_and_its_notebook(results_copy, file, notebook):
    (results_copy / file).unlink()
    with pytest.raises(results.MissingResultsError, match=rf"{file} is missing: run notebook {notebook} again"):
        results.load_all(results_copy)


def test_a_deleted_manifest_names_notebook_01(results_copy):
    with pytest.raises((results.MissingResultsError, data.DataError),
                       match="dataset_manifest.csv is missing.*notebook 01_dataset_preparation"):
        results.load_all(results_copy, manifest=results_copy / "gone" / "dataset_manifest.csv")


def test_a_damaged_writer_study_file_names_notebook_05(results_copy):
    (results_copy / "writer_study_summary.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="writer_study_summary.json is damaged .* run notebook 05_writer_study again"):
        writer_study.load_study(results_copy)
    gz = results_copy / "writer_study_predictions.csv.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    (results_copy / "writer_study_summary.json").unlink()
    with pytest.raises(ValueError, match="writer_study_predictions.csv.gz is damaged"):
        writer_study.load_study(results_copy)


# --------------------------------------------------------------------------- the operating system's files


def _fake(label, i, shade=0):
    img = np.zeros((28, 28), np.uint8)
    cv2.putText(img, str(label), (7, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 255, 2)
    img[27, i % 28] = 40 + i + shade  # every image different; another shade: the same files with other bytes
    return sheet_reading.Digit(img, label, "s.jpg", i // 10, i % 10)


def _dirs(root):
    return {k: root / v for k, v in {"train": "Training Set", "val": "Validation Set", "test": "Test Set"}.items()}


@pytest.fixture
def dataset(tmp_path):
    dirs, manifest = _dirs(tmp_path / "project"), tmp_path / "project" / "manifest.csv"
    splits = dataset_writing.split_digits([_fake(label, i) for label in range(10) for i in range(12)])
    dataset_writing.write_dataset(splits, dirs, manifest, backup_dir=tmp_path / "backups")
    return dirs, manifest, splits, tmp_path / "backups"


def test_finder_and_explorer_files_are_ignored_by_the_loader_and_the_writer(dataset):
    dirs, manifest, splits, backups = dataset
    (dirs["train"] / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (dirs["train"] / "3" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (dirs["val"] / "4" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (dirs["test"] / "5" / "desktop.ini").write_text("[.ShellClassInfo]\n", encoding="utf-8")
    shutil.copy(next((dirs["train"] / "6").iterdir()), dirs["train"] / "6" / "._copy.jpg")  # macOS AppleDouble
    (dirs["train"] / "7" / ".ipynb_checkpoints").mkdir()
    own = data.load_own_dataset(dirs, manifest)
    assert [len(own[s]["y"]) for s in ("train", "val", "test")] == [80, 20, 20]
    again = dataset_writing.write_dataset(splits, dirs, manifest, backup_dir=backups)
    assert again["status"] == "unchanged" and not backups.exists()


def test_a_hidden_copy_of_a_test_image_in_training_is_named(dataset):
    dirs, manifest, _, _ = dataset
    test_file = next((dirs["test"] / "3").iterdir())
    shutil.copy(test_file, dirs["train"] / "3" / ".hidden.jpg")
    with pytest.raises(data.DataError, match=rf"Training Set/3/.hidden.jpg is not in the manifest: it is a copy of "
                                             rf"Test Set/3/{re.escape(test_file.name)}"):
        data.load_own_dataset(dirs, manifest)


def test_a_different_dataset_names_the_files_that_differ(dataset):
    dirs, manifest, _, backups = dataset
    other = dataset_writing.split_digits([_fake(label, i, shade=60) for label in range(10) for i in range(12)])
    with pytest.raises(dataset_writing.DatasetExistsError) as info:
        dataset_writing.write_dataset(other, dirs, manifest, backup_dir=backups)
    assert re.search(r"120 files with other bytes \(Test Set/0/[^,]+, [^,]+, [^,]+ and 117 more\)", str(info.value)), str(info.value)


# --------------------------------------------------------------------------- read-only folders


def _fail_in(folder: Path, monkeypatch):
    real = tempfile.TemporaryFile

    def temporary_file(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == folder:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(dataset_writing.tempfile, "TemporaryFile", temporary_file)


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_read_only_digit_folder_is_named_before_anything_moves(dataset, monkeypatch):
    dirs, manifest, _, backups = dataset
    before = _snapshot(manifest.parent)
    _fail_in(dirs["val"] / "4", monkeypatch)
    other = dataset_writing.split_digits([_fake(label, i, shade=60) for label in range(10) for i in range(12)])
    with pytest.raises(PermissionError, match=r"Validation Set/4 \(Permission denied\) cannot be written to\. "
                                              r"Nothing was changed\. Make the folders writable"):
        dataset_writing.write_dataset(other, dirs, manifest, replace=True, backup_dir=backups)
    assert _snapshot(manifest.parent) == before and not backups.exists()


def test_a_move_that_fails_halfway_puts_everything_back(dataset, monkeypatch):
    dirs, manifest, _, backups = dataset
    before = _snapshot(manifest.parent)
    real_move, calls = shutil.move, []

    def move(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise PermissionError(13, "Permission denied", src)
        return real_move(src, dst)

    monkeypatch.setattr(dataset_writing.shutil, "move", move)
    other = dataset_writing.split_digits([_fake(label, i, shade=60) for label in range(10) for i in range(12)])
    with pytest.raises(PermissionError, match="everything was put back where it was. Nothing was changed"):
        dataset_writing.write_dataset(other, dirs, manifest, replace=True, backup_dir=backups)
    assert _snapshot(manifest.parent) == before
    assert not any(backups.iterdir()) if backups.exists() else True


# --------------------------------------------------------------------------- the workbook a person added to


@pytest.fixture(scope="module")
def everything():
    return results.load_all()


def test_a_workbook_changed_by_hand_is_backed_up_before_it_is_replaced(tmp_path, everything):
    path, backups = tmp_path / "Assignment 4 Results.xlsx", tmp_path / "backups"
    first = workbook.write_workbook(path, everything, backup_dir=backups)
    assert first["backup"] is None
    assert workbook.write_workbook(path, everything, backup_dir=backups)["backup"] is None  # untouched: replaced
    book = openpyxl.load_workbook(path)
    book.create_sheet("My notes")["A1"] = "lr 0.03 looked unstable"
    book["Results"]["A2"].comment = Comment("check this", "student")
    book.save(path)
    third = workbook.write_workbook(path, everything, backup_dir=backups)
    kept = sorted(backups.rglob("*.xlsx"))
    assert third["backup"] is not None and len(kept) == 1
    old = openpyxl.load_workbook(kept[0])
    assert old["My notes"]["A1"].value == "lr 0.03 looked unstable" and old["Results"]["A2"].comment.text == "check this"
    assert "My notes" not in openpyxl.load_workbook(path).sheetnames
    assert workbook.write_workbook(path, everything, backup_dir=backups)["backup"] is None
    assert not list(tmp_path.glob(".*.xlsx"))  # no temporary file left behind


def test_the_committed_workbook_carries_the_fingerprint_of_what_it_holds():
    book = openpyxl.load_workbook(paths.WORKBOOK)
    assert book.custom_doc_props[workbook.FINGERPRINT].value == workbook.content_fingerprint(book)


# --------------------------------------------------------------------------- results of an earlier dataset


def test_results_of_an_earlier_dataset_are_refused(results_copy, tmp_path):
    results.load_all(results_copy)  # computed on the current dataset: accepted
    manifest = pd.read_csv(paths.MANIFEST, dtype=str)
    manifest.loc[0, "sha256"] = "0" * 64  # another dataset: one image differs
    other = tmp_path / "gone" / "dataset_manifest.csv"
    other.parent.mkdir()
    manifest.to_csv(other, index=False)
    with pytest.raises(results.StaleResultsError, match=r"results/baseline\.json was computed on dataset [0-9a-f]{12}, "
                                                        r"not on the current one .* notebook 01 wrote a new dataset since"):
        results.load_all(results_copy, manifest=other)


def test_writing_a_new_dataset_moves_the_results_of_the_old_one_to_the_backup(dataset):
    dirs, manifest, _, backups = dataset
    derived = ["baseline.json", "predictions_pretrained_own_test.csv", "grid_runs_finetune_last_layer.csv",
               "finetune_n_layers.json", "predictions_finetune_n_layers_heldout.csv"]
    kept = ["writer_study.csv", "notes.txt"]
    for name in derived + kept:
        (manifest.parent / name).write_text("x\n", encoding="utf-8")
    other = dataset_writing.split_digits([_fake(label, i, shade=60) for label in range(10) for i in range(12)])
    outcome = dataset_writing.write_dataset(other, dirs, manifest, replace=True, backup_dir=backups)
    assert outcome["results_moved"] == len(derived)
    backup = next(backups.iterdir())
    assert sorted(p.name for p in (backup / "results").iterdir()) == sorted(derived)
    assert all((manifest.parent / name).exists() for name in kept)
    assert not any((manifest.parent / name).exists() for name in derived)
