"""The committed deliverables agree with each other and with a recount from the saved predictions."""

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from PIL import Image
from pypdf import PdfReader

from mnist_transfer import data, paths, reporting, sheet, stats, training

RESULT_FILES = {
    "baseline": ["mnist_test", "own_test"],
    "finetune_last_layer": ["own_test"],
    "finetune_n_layers": ["own_test"],
}
PREDICTIONS = {
    ("baseline", "mnist_test"): "pretrained_mnist_test",
    ("baseline", "own_test"): "pretrained_own_test",
    ("finetune_last_layer", "own_test"): "finetune_last_layer_own_test",
    ("finetune_n_layers", "own_test"): "finetune_n_layers_own_test",
}


@pytest.fixture(scope="module")
def manifest():
    return pd.read_csv(paths.MANIFEST)


def test_dataset_is_8_2_2_per_digit_and_matches_the_manifest(manifest):
    counts = manifest.pivot_table(index="split", columns="label", values="file", aggfunc="count")
    assert (counts.loc["train"] == 8).all() and (counts.loc["val"] == 2).all() and (counts.loc["test"] == 2).all()
    on_disk = sorted(
        f"{folder.name}/{p.relative_to(folder).as_posix()}" for folder in paths.SPLIT_DIRS.values()
        for p in folder.rglob("*") if p.is_file()
    )
    assert on_disk == sorted(manifest.file)
    for row in manifest.itertuples():
        path = paths.PROJECT_ROOT / row.file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
        assert path.parent.name == str(row.label)
        image = np.asarray(Image.open(path))
        assert image.dtype == np.uint8 and image.shape == (28, 28)
        assert sheet.mnist_style_problems(image) == [], row.file


def test_no_image_is_in_two_splits(manifest):
    assert not manifest.sha256.duplicated().any()
    pixels = {}
    for row in manifest.itertuples():
        key = np.asarray(Image.open(paths.PROJECT_ROOT / row.file)).tobytes()
        assert key not in pixels, (row.file, pixels.get(key))
        pixels[key] = row.file


def test_dataset_labels_agree_with_the_sample_sheet_ground_truth(manifest):
    truth = pd.read_csv(paths.SHEETS_DIR / "sample_sheet_truth.csv").set_index(["row", "col"]).label
    for row in manifest.itertuples():
        assert truth[(row.row, row.col)] == row.label, row.file


def test_checkpoint_json_agrees_with_a_fresh_evaluation(pretrained):
    metrics = json.loads(paths.PRETRAINED_METRICS.read_text())
    x, y = data.load_mnist("test")
    correct = int((training.predict(pretrained, x).argmax(1) == y).sum())
    assert correct == metrics["test_correct"]
    assert metrics["test_accuracy"] == correct / 10000


@pytest.mark.parametrize("name,key", [(n, k) for n, keys in RESULT_FILES.items() for k in keys])
def test_results_equal_a_recount_of_the_saved_predictions(name, key):
    record = reporting.load_results(name)[key]
    frame = reporting.load_predictions(PREDICTIONS[(name, key)])
    assert (frame.pred == frame.true).tolist() == frame.correct.tolist()
    assert record["correct"] == int((frame.pred == frame.true).sum())
    assert record["total"] == len(frame)
    assert record["accuracy"] == record["correct"] / record["total"]
    assert (record["ci_low"], record["ci_high"]) == pytest.approx(stats.wilson_interval(record["correct"], record["total"]))
    assert record["confusion"] == stats.confusion_matrix(frame.true, frame.pred).tolist()


def test_own_test_predictions_cover_exactly_the_test_folder(manifest):
    test_files = sorted(manifest[manifest.split == "test"].file)
    for key in ("pretrained_own_test", "finetune_last_layer_own_test", "finetune_n_layers_own_test"):
        assert sorted(reporting.load_predictions(key).file) == test_files


def test_test_set_was_evaluated_once_per_final_model():
    assert reporting.load_results("baseline")["test_evaluations"] == ["pre-trained"]
    assert reporting.load_results("finetune_last_layer")["test_evaluations"] == ["last layer"]
    many = reporting.load_results("finetune_n_layers")
    assert many["test_evaluations"] == [f"last {many['chosen']['n_last']} layers"]
    assert many["chosen"]["n_last"] >= 2


def test_chosen_configurations_are_the_validation_winners():
    for name in ("finetune_last_layer", "finetune_n_layers"):
        ranking = pd.read_csv(paths.RESULTS_DIR / f"grid_ranking_{name}.csv")
        runs = pd.read_csv(paths.RESULTS_DIR / f"grid_runs_{name}.csv")
        assert training.rank_configurations(runs)[training.CONFIG_COLUMNS].equals(ranking[training.CONFIG_COLUMNS])
        chosen = reporting.load_results(name)["chosen"]
        assert {k: chosen[k] for k in training.CONFIG_COLUMNS} == ranking.iloc[0][training.CONFIG_COLUMNS].to_dict()
        assert ranking.seeds.min() >= 5


def test_workbook_first_sheet_equals_the_results_files():
    sheet_ = load_workbook(paths.WORKBOOK, read_only=True)["Results"]
    rows = list(sheet_.iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert len(body) == 4
    for row, expected in zip(body, reporting.four_evaluations()):
        got = dict(zip(header, row))
        assert got["Images"] == expected["images"] and got["Correct"] == expected["correct"]
        assert got["Accuracy"] == pytest.approx(expected["accuracy"])
        assert got["95% CI low (Wilson)"] == pytest.approx(expected["ci_low"])
        assert got["Hyperparameters (chosen on validation)"] == expected["hyperparameters"]


def _pdf_text_and_figure_page(pdf):
    pages = PdfReader(pdf).pages
    texts = [p.extract_text() for p in pages]
    figures_at = next(i for i, t in enumerate(texts) if "Figures" in t.splitlines()[:3])
    return "\n".join(texts), figures_at


def test_report_has_at_most_two_text_pages_and_the_four_accuracies():
    text, figures_at = _pdf_text_and_figure_page(paths.REPORT_PDF)
    assert figures_at <= 2
    for e in reporting.four_evaluations():
        assert reporting.format_accuracy({**e, "total": e["images"]}) in text
    assert "synthetic" in text


def test_regenerating_the_report_updates_its_numbers(tmp_path):
    """Change one saved prediction: the rebuilt PDF must show the new accuracy, not the old one."""
    results = tmp_path / "results"
    shutil.copytree(paths.RESULTS_DIR, results)
    frame = reporting.load_predictions("pretrained_own_test", results)
    old = reporting.evaluation_record("pre-trained CNN", "own test set", frame)
    frame.loc[0, "pred"] = (frame.loc[0, "true"] + 1) % 10 if frame.loc[0, "correct"] else frame.loc[0, "true"]
    frame["correct"] = frame.pred == frame.true
    reporting.save_predictions("pretrained_own_test", frame, results)
    baseline = reporting.load_results("baseline", results)
    baseline["own_test"] = reporting.evaluation_record("pre-trained CNN", "own test set", frame)
    reporting.save_results("baseline", baseline, results)
    pdf = reporting.build_report(tmp_path / "report.pdf", results, data_file=tmp_path / "report_data.json")
    text, _ = _pdf_text_and_figure_page(pdf)
    assert reporting.format_accuracy(baseline["own_test"]) in text
    assert reporting.format_accuracy(old) not in text.split("(3)")[0].split("(2)")[1]


def test_readme_quotes_the_measured_pretraining_figures():
    metrics = json.loads(paths.PRETRAINED_METRICS.read_text())
    readme = (paths.PROJECT_ROOT / "README.md").read_text()
    assert f"{100 * metrics['test_accuracy']:.2f}% on the 10,000 MNIST test images" in readme
    assert f"after {round(metrics['train_seconds'])} s of training" in readme
