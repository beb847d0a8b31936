"""Every plot function draws something labelled, and save_figure writes both formats."""

import matplotlib

matplotlib.use("Agg")  # tests draw off-screen; the package itself never picks a backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from pathlib import Path  # noqa: E402

from mnist_transfer import dataset_writing, evaluation, plots, results, sheet_reading  # noqa: E402


def _labelled(ax):
    return ax.get_xlabel() and ax.get_ylabel()


def test_package_does_not_choose_a_backend():
    for source in sorted(Path(plots.__file__).parent.glob("*.py")):
        assert "matplotlib.use(" not in source.read_text(encoding="utf-8"), source.name


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    png = plots.save_figure(fig, "example", figures_dir=tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "example.pdf").read_bytes()[:5] == b"%PDF-"
    plt.close(fig)


def test_confusion_and_gallery_show_the_numbers():
    frame = pd.DataFrame({"file": ["a", "b", "c"], "true": [1, 7, 3], "pred": [1, 4, 3],
                          "confidence": [0.9, 0.52, 0.8], "correct": [True, False, True]})
    ax = plots.plot_confusion(np.array([[5, 1], [0, 4]]), "title")
    assert _labelled(ax) and sorted(t.get_text() for t in ax.texts) == ["1", "4", "5"]
    fig = plots.plot_gallery([np.zeros((28, 28), np.uint8)] * 3, frame, "mistakes")
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles == ["true 7 → 4\n52% sure"]
    plt.close("all")


def _curves():
    rows = []
    for seed in (0, 1):
        for epoch in (1, 2, 3):
            rows.append({"n_last": 1, "lr": 0.01, "batch_size": 8, "augment": False, "body_lr_factor": 1.0,
                         "seed": seed, "epoch": epoch, "train_loss": 1 / epoch, "val_loss": 1.2 / epoch,
                         "train_acc": 0.8 + 0.05 * epoch, "val_acc": 0.7 + 0.1 * epoch})
    return pd.DataFrame(rows)


def test_curves_heatmap_and_lr_sensitivity_are_labelled():
    config = {"n_last": 1, "lr": 0.01, "batch_size": 8, "augment": False, "body_lr_factor": 1.0}
    axes = plots.plot_curves(_curves(), config, "curves")
    assert all(_labelled(ax) for ax in axes) and len(axes[0].lines) == 2
    ranking = pd.DataFrame({"n_last": [1, 1, 1, 1], "lr": [0.01, 0.01, 0.1, 0.1], "epochs": [5, 10, 5, 10],
                            "batch_size": 8, "augment": False, "body_lr_factor": 1.0,
                            "val_acc_mean": [0.9, 0.95, 0.8, 1.0]})
    ax = plots.plot_grid_heatmap(ranking, "grid")
    assert _labelled(ax) and [t.get_text() for t in ax.texts] == ["90", "95", "80", "100"]
    ax = plots.plot_lr_sensitivity({"last layer": (ranking, 1)})
    assert _labelled(ax) and ax.get_ylim()[1] <= 100.5
    assert list(ax.lines[0].get_ydata()) == [95.0, 100.0]  # best over epochs at each rate
    plt.close("all")


def test_montage_ticks_sit_on_the_parts_they_name():
    digits = [sheet_reading.Digit(np.full((28, 28), 10 * label, np.uint8), label, "s.jpg", i, label)
              for label in range(10) for i in range(12)]
    splits = dataset_writing.split_digits(digits, seed=0)
    image, where = plots.montage(splits)
    assert image.shape[0] == 10 * 28 + 9 * 4
    for label, y in enumerate(where["rows"]):
        assert image[int(y), 0] == 10 * label  # the row tick is on that digit's row
    fig = plots.plot_montage(splits)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["train\n(8 each)", "val\n(2 each)", "test\n(2 each)"]
    plt.close(fig)


def test_pretraining_loss_and_filters(pretrained):
    fig = plots.plot_pretraining_loss([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}])
    assert _labelled(fig.axes[0])
    fig = plots.plot_filters_and_responses(pretrained, np.zeros((28, 28), np.uint8), label=7)
    assert "input (7)" in [a.get_title() for a in fig.axes]
    plt.close("all")


@pytest.mark.parametrize("name", ["finetune_last_layer"])
def test_plots_accept_the_saved_results(name):
    experiment = results.load_experiment(name)
    axes = plots.plot_curves(experiment["curves"], experiment["chosen"], "saved")
    assert len(axes[0].lines) == 2
    record = experiment["own_test"]
    ax = plots.plot_confusion(record["confusion"], evaluation.format_accuracy(record))
    assert sum(int(t.get_text()) for t in ax.texts) == record["total"]
    plt.close("all")
