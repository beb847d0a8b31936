"""Any count from 12 up: the split, the held-out extras, the counts checked before reading, whose results are read."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from mnist_transfer import data, dataset_writing, heldout, parameters, plots, report, results, sheet_reading
from mnist_transfer.sheet_reading import Digit, SheetError, SheetLayout


def _digit(label, i, source="s.jpg"):
    img = np.zeros((28, 28), np.uint8)
    cv2.putText(img, str(label), (7, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 255, 2)
    img[27, i % 28] = 40 + i  # every image different
    return Digit(img, label, source, i // 10, i % 10)


def _digits(per_label):
    return [_digit(label, i) for label, n in per_label.items() for i in range(n)]


def _dirs(root):
    return {"train": root / "Training Set", "val": root / "Validation Set", "test": root / "Test Set",
            "heldout": root / "Held-out Set"}


def test_twenty_of_each_digit_split_8_2_2_and_the_rest_held_out():
    splits = dataset_writing.split_digits(_digits({k: 20 for k in range(10)}), seed=0)
    for name, n in {"train": 8, "val": 2, "test": 2, "heldout": 8}.items():
        labels = [d.label for d in splits[name]]
        assert all(labels.count(k) == n for k in range(10)), name
    seen = [(d.label, d.row, d.col) for part in splits.values() for d in part]
    assert len(seen) == len(set(seen)) == 200
    again = dataset_writing.split_digits(_digits({k: 20 for k in range(10)}), seed=0)
    assert [(d.label, d.row, d.col) for d in again["heldout"]] == [(d.label, d.row, d.col) for d in splits["heldout"]]


def test_uneven_counts_from_12_up_are_split_and_exactly_12_leaves_no_heldout_key():
    splits = dataset_writing.split_digits(_digits({k: 12 + k % 3 for k in range(10)}))
    assert [sum(d.label == k for d in splits["heldout"]) for k in range(10)] == [k % 3 for k in range(10)]
    assert "heldout" not in dataset_writing.split_digits(_digits({k: 12 for k in range(10)}))


def test_a_smaller_split_takes_ten_of_each():
    counts = dataset_writing.split_counts((6, 2, 2))
    splits = dataset_writing.split_digits(_digits({k: 10 for k in range(10)}), counts=counts)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [60, 20, 20] and "heldout" not in splits


def test_too_few_copies_are_refused_naming_each_digit_and_the_fix():
    per_label = {k: 12 for k in range(10)} | {3: 10, 7: 11}
    with pytest.raises(SheetError) as info:
        dataset_writing.split_digits(_digits(per_label), unit="images")
    message = str(info.value)
    assert "digit 3: 10 (2 more), digit 7: 11 (1 more)" in message
    assert "at least 12 images" in message and "Add images of these digits to their folders" in message
    assert "SPLIT = (6, 2, 2)" in message and "sheet" not in message
    with pytest.raises(SheetError, match="digit 0: 0 \\(12 more\\)"):
        dataset_writing.split_digits(_digits({k: 12 for k in range(1, 10)}))


def test_sheet_counts_are_checked_before_any_sheet_is_read(tmp_path):
    """Ten rows of ten (a 10x10 sheet): refused from the layout alone; the photo need not even exist."""
    sheets = [(tmp_path / "not there.jpg", SheetLayout(rows=10, cols=10, order="row_is_digit"))]
    with pytest.raises(SheetError) as info:
        dataset_writing.check_counts(sheets=sheets)
    message = str(info.value)
    assert "copies on the sheets" in message and "Write 2 more rows of these digits on a sheet" in message
    assert "digit 0: 10 (2 more)" in message and "images" not in message
    dataset_writing.check_counts(sheets=sheets, counts=dataset_writing.split_counts((6, 2, 2)))
    two = [(tmp_path / "a.jpg", SheetLayout()), (tmp_path / "b.jpg", SheetLayout(rows=8))]
    assert dataset_writing.sheet_counts(two) == {k: 20 for k in range(10)}
    dataset_writing.check_counts(sheets=two)
    ones = [(tmp_path / "c.jpg", SheetLayout(rows=12, cols=9, digits=tuple(range(1, 10))))]
    with pytest.raises(SheetError, match=r"Too few: digit 0: 0 \(12 more\)\. Write 12 more rows"):
        dataset_writing.check_counts(sheets=ones)


def test_folder_counts_are_checked_before_any_image_is_read(tmp_path):
    for label in range(10):
        (tmp_path / str(label)).mkdir()
        for i in range(12 if label != 5 else 9):
            (tmp_path / str(label) / f"{i}.png").write_bytes(b"not an image: never read by the count")
    (tmp_path / "5" / ".DS_Store").write_bytes(b"\x00")
    assert dataset_writing.folder_counts(tmp_path)[5] == 9
    with pytest.raises(SheetError, match=r"at least 12 images: .* Too few: digit 5: 9 \(3 more\)\. Add images"):
        dataset_writing.check_counts(digit_folder=tmp_path)


def test_the_extras_are_written_to_their_own_folder_and_loaded_as_the_heldout_set(tmp_path):
    dirs, manifest = _dirs(tmp_path), tmp_path / "manifest.csv"
    splits = dataset_writing.split_digits(_digits({k: 14 for k in range(10)}))
    dataset_writing.write_dataset(splits, dirs, manifest, backup_dir=tmp_path / "bk", origin="folder")
    frame = pd.read_csv(manifest)
    assert frame.split.value_counts().to_dict() == {"train": 80, "val": 20, "test": 20, "heldout": 20}
    assert frame.sheet.isna().all()  # a folder of cut digits has no sheet, and no rows or columns on one
    assert frame.row.isna().all() and frame.col.isna().all()
    own = data.load_own_dataset({k: v for k, v in dirs.items() if k != "heldout"}, manifest)
    assert [len(own[s]["y"]) for s in ("train", "val", "test")] == [80, 20, 20]
    held = heldout.load_heldout(manifest, folder=dirs["heldout"])
    assert held["whose"] == "own" and held["writer"] is None and len(held["y"]) == 20
    assert sorted(held["files"]) == sorted(frame[frame.split == "heldout"].file)
    assert heldout.describe(held) == "your own held-out digits"


def test_a_new_dataset_without_extras_moves_the_old_heldout_folder_away(tmp_path):
    dirs, manifest, backups = _dirs(tmp_path), tmp_path / "manifest.csv", tmp_path / "bk"
    dataset_writing.write_dataset(dataset_writing.split_digits(_digits({k: 13 for k in range(10)})), dirs, manifest,
                                  backup_dir=backups)
    other = [_digit(label, i, source="t.jpg") for label in range(10) for i in range(12)]
    for d in other:
        d.image = d.image.copy()
        d.image[0, 0] = 7
    dataset_writing.write_dataset(dataset_writing.split_digits(other), dirs, manifest, replace=True, backup_dir=backups)
    assert not dirs["heldout"].exists()
    assert [p.name for p in next(backups.iterdir()).iterdir() if p.name == "Held-out Set"]
    assert heldout.load_heldout(manifest, folder=dirs["heldout"]) is None


def test_the_manifest_names_the_sheet_of_each_digit(tmp_path):
    dirs, manifest = _dirs(tmp_path), tmp_path / "manifest.csv"
    digits = _digits({k: 12 for k in range(10)})
    for d in digits:
        d.sheet = "page_1"
    dataset_writing.write_dataset(dataset_writing.split_digits(digits), dirs, manifest, backup_dir=tmp_path / "bk")
    assert set(pd.read_csv(manifest).sheet) == {"page_1"}
    with pytest.raises(ValueError, match="origin must be"):
        dataset_writing.write_dataset(dataset_writing.split_digits(digits), dirs, manifest, origin="photo")


def test_report_dataset_facts_for_sheets_and_for_a_folder():
    rows = [{"file": f"x/{i}", "label": i % 10, "split": s, "source": "page one.jpg", "sheet": "page_one",
             "row": i // 10 + 1, "col": i % 10 + 1, "sha256": str(i)}
            for i, s in enumerate(["train"] * 80 + ["val"] * 20 + ["test"] * 20 + ["heldout"] * 30)]
    facts = report.dataset_data(pd.DataFrame(rows))
    assert facts["origin"] == "sheets" and facts["split"] == [8, 2, 2] and facts["default_split"]
    assert facts["heldout"] == 30 and facts["heldout_min"] == facts["heldout_max"] == 3
    assert facts["sheets"] == [{"name": "page_one", "file": "page one.jpg", "rows": 15, "cols": 10,
                                "row_is_digit": False, "figure": "dataset_annotated_sheet.png"}]
    folder = pd.DataFrame(rows).assign(sheet=np.nan, source="3/a.png")
    assert report.dataset_data(folder)["origin"] == "folder" and report.dataset_data(folder)["sheets"] == []
    old = pd.DataFrame(rows).drop(columns="sheet")  # a manifest written before the sheet column
    assert report.dataset_data(old)["sheets"][0]["name"] == "page_one"


def test_heldout_and_after_selection_files_are_read_only_when_the_json_has_a_heldout_evaluation(tmp_path):
    """A stale predictions_*_heldout.csv or after_selection_*.csv beside a run without held-out digits is never read."""
    name = "finetune_last_layer"
    for prefix in ("grid_runs", "curves", "grid_ranking"):
        pd.DataFrame({"a": [1]}).to_csv(tmp_path / f"{prefix}_{name}.csv", index=False)
    pd.DataFrame({"file": ["f"], "true": [1], "pred": [1], "correct": [True]}).to_csv(
        tmp_path / f"predictions_{name}_own_test.csv", index=False)
    pd.DataFrame({"stale": [1]}).to_csv(tmp_path / f"after_selection_{name}.csv", index=False)
    pd.DataFrame({"stale": [1]}).to_csv(tmp_path / f"predictions_{name}_heldout.csv", index=False)
    (tmp_path / f"{name}.json").write_text(json.dumps({"own_test": {}}), encoding="utf-8")
    loaded = results.load_experiment(name, tmp_path)
    assert "after_selection" not in loaded and "heldout_predictions" not in loaded
    (tmp_path / f"{name}.json").write_text(json.dumps({"own_test": {}, "heldout": {"total": 1}}), encoding="utf-8")
    loaded = results.load_experiment(name, tmp_path)
    assert "after_selection" in loaded and "heldout_predictions" in loaded


def test_a_refusal_says_nothing_below_was_updated():
    with pytest.raises(SheetError) as info:
        with dataset_writing.refusals_noted():
            raise SheetError("a row has a digit too many")
    assert any("nothing below this cell was updated" in note for note in info.value.__notes__)


def test_the_split_and_writers_parameters_are_checked():
    parameters.check(SPLIT=(8, 2, 2), WRITERS="all")
    parameters.check(SPLIT=[6, 2, 2], WRITERS=["W01", "W02"])
    for name, value in (("SPLIT", (8, 0, 2)), ("SPLIT", (8, 2)), ("SPLIT", "8/2/2"), ("WRITERS", []),
                        ("WRITERS", ["W01", "W01"]), ("WRITERS", "W01")):
        with pytest.raises(parameters.ParameterError, match=f"{name} must be"):
            parameters.check(**{name: value})


def test_the_montage_shows_uneven_extras(tmp_path):
    splits = dataset_writing.split_digits(_digits({k: 12 + k % 4 for k in range(10)}))
    image, where = plots.montage(splits)
    assert image.shape[0] == 10 * 28 + 9 * 4 and set(where["splits"]) == {"train", "val", "test", "heldout"}
    fig = plots.plot_montage(splits)
    assert "All 133 images" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][-1] == "held-out\n(13 in all)"


def test_stale_annotated_sheets_are_removed(tmp_path):
    for name in ("dataset_annotated_sheet.png", "dataset_annotated_sheet.pdf", "dataset_annotated_sheet_b.png",
                 "dataset_montage.png"):
        (tmp_path / name).write_bytes(b"x")
    gone = plots.remove_figures("dataset_annotated_sheet", tmp_path)
    assert len(gone) == 3 and [p.name for p in tmp_path.iterdir()] == ["dataset_montage.png"]
