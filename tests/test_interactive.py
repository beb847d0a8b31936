"""The try panel and the draw pad, driven through their Python API as a student's clicks would drive them."""


import numpy as np
import pytest
import torch

from mnist_transfer import data, evaluation, handwriting, interactive, mnist_style, sheet_reading, training


def test_try_configuration_reports_every_epoch_and_trains_what_it_was_given(pretrained, tiny_own):
    seen = []
    config = training.FinetuneConfig(n_last=1, lr=1e-2, batch_size=16, epochs=3)
    tried = interactive.try_configuration(pretrained, config, tiny_own["train"], tiny_own["val"], seed=2,
                                          on_epoch=seen.append)
    assert [row["epoch"] for row in seen] == [1, 2, 3]
    assert seen == tried["history"]  # the callback saw exactly the run's history, as it happened
    _, again = training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=2)
    assert again == tried["history"]  # watching a run does not change it
    assert tried["config"] == config and tried["seconds"] > 0


@pytest.fixture
def panel(pretrained, tiny_own):
    return interactive.TryPanel(pretrained, tiny_own["train"], tiny_own["val"], n_last_options=(1, 2),
                                reference=[{"epoch": 1, "val_loss": 1.0, "val_acc": 0.5, "train_loss": 1.2}])


def test_the_train_button_runs_the_configuration_the_controls_show_and_the_table_grows(panel, monkeypatch):
    calls = []
    real = interactive.try_configuration

    def spy(pretrained, config, train, val, seed, on_epoch=None):
        calls.append((config, seed, len(train["y"]), len(val["y"])))
        return real(pretrained, config, train, val, seed, on_epoch=on_epoch)

    panel.trainer = spy
    panel.n_last.value, panel.lr.value, panel.batch_size.value = 2, 3e-3, 8
    panel.epochs.value, panel.augment.value, panel.seed.value = 2, True, 7
    panel.button.click()  # what a click in the browser does: the button's click handlers run
    assert calls == [(training.FinetuneConfig(n_last=2, lr=3e-3, batch_size=8, epochs=2, augment=True), 7, 80, 20)]
    assert len(panel.table_frame()) == 1
    panel.epochs.value = 1
    panel.button.click()
    table = panel.table_frame()
    assert list(table["try"]) == [1, 2] and list(table.epochs) == [2, 1]
    assert table.best_val_acc.between(0, 1).all() and (table.seconds > 0).all()
    assert "try 2: best validation accuracy" in panel.status.value
    assert not panel.button.disabled
    assert len(panel.figure().axes[1].lines) == 3  # the grid's choice and both tries


def test_the_controls_refuse_values_outside_sane_bounds(panel):
    panel.lr.value = 50.0
    assert panel.lr.value <= interactive.LR_RANGE[1]
    panel.epochs.value = 10_000
    assert panel.epochs.value == interactive.EPOCH_RANGE[1]
    panel.seed.value = -5
    assert panel.seed.value == 0
    with pytest.raises(Exception):
        panel.batch_size.value = 0  # not one of the offered batch sizes


def test_a_last_layer_try_with_live_curves_takes_seconds(pretrained, cpu_clock):
    own = data.load_own_dataset()
    panel = interactive.TryPanel(pretrained, own["train"], own["val"])
    with cpu_clock() as clock:
        panel.train(training.FinetuneConfig(n_last=1, lr=3e-2, batch_size=8, epochs=40), seed=0)
    assert clock.seconds < 10, f"{clock.seconds:.1f} s"  # 0.5-1.0 s here; 9-21 s before one torch thread


@pytest.fixture
def pad(pretrained, tmp_path):
    models = {"pre-trained": pretrained, "also pre-trained": pretrained}
    return interactive.DrawPad(models, tmp_path / "my digits")


def test_a_drawn_digit_goes_the_folder_path_and_every_model_answers(pad, pretrained):
    for stroke in interactive.writer_strokes("W02", 3):
        answers = pad.add_stroke(stroke)
    assert answers is not None and list(answers.columns) == ["pre-trained", "also pre-trained"]
    image = mnist_style.to_mnist(sheet_reading.digit_mask(interactive.render_strokes(pad.strokes), "x"))
    assert np.array_equal(interactive.drawn_digit(pad.page()), image)
    own_path = evaluation.predict(pretrained, torch.from_numpy(image)[None])[0].numpy()
    assert np.allclose(answers["pre-trained"].to_numpy(), own_path)
    assert int(answers["pre-trained"].idxmax()) == 3
    assert "pre-trained reads 3" in pad.status.value
    assert mnist_style.mnist_style_problems(image) == []


def test_a_kept_drawing_becomes_a_digit_folder_image_with_the_same_pixels(pad, tmp_path):
    for stroke in interactive.writer_strokes("W02", 7):
        pad.add_stroke(stroke)
    pad.label.value = 7
    pad.save_button.click()
    pad.save_button.click()
    kept = sorted((tmp_path / "my digits" / "7").glob("*.png"))
    assert [p.name for p in kept] == ["drawn_001.png", "drawn_002.png"]  # never overwritten
    digits = sheet_reading.digits_from_folder(tmp_path / "my digits")
    assert [d.label for d in digits] == [7, 7]
    assert np.array_equal(digits[0].image, interactive.drawn_digit(pad.page()))


def test_a_blank_canvas_says_draw_a_digit_first(pad, tmp_path):
    assert pad.show() is None and "draw a digit first" in pad.status.value
    pad.save_button.click()
    assert "not kept: draw a digit first" in pad.status.value and not (tmp_path / "my digits").exists()
    pad.add_stroke([(100, 100), (150, 180)])
    pad.clear_button.click()
    assert pad.strokes == [] and pad.show() is None


def test_mouse_moves_without_the_pen_down_draw_nothing(pad):
    pad._move(10, 10)
    assert pad.strokes == []
    pad._down(50, 50)
    pad._move(60, 80)
    pad._up(70, 120)
    pad._move(200, 200)
    assert pad.strokes == [[(50, 50), (60, 80), (70, 120)]]


def test_the_final_models_are_rebuilt_exactly_from_their_saved_configurations(pretrained):
    from mnist_transfer import results

    everything = results.load_all()
    models = interactive.final_models(everything, pretrained, data.load_own_dataset())
    assert list(models) == ["pre-trained", "last layer", f"last {everything['many']['chosen']['n_last']} layers"]
    assert models["pre-trained"] is pretrained


def test_the_final_models_refuse_to_stand_in_for_other_predictions(pretrained):
    from mnist_transfer import results

    everything = results.load_all()
    everything["last"]["predictions"] = everything["last"]["predictions"].assign(pred=lambda f: (f.pred + 1) % 10)
    with pytest.raises(RuntimeError, match="does not reproduce its saved test predictions"):
        interactive.final_models(everything, pretrained, data.load_own_dataset())
