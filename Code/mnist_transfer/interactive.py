"""Iterating by hand: try one fine-tuning configuration and watch it train; draw a digit and see the models answer.

Two small tools for the notebooks, each a thin widget layer over package functions that are tested on
their own:

* :func:`try_configuration` trains one configuration on the training set, scores it on the validation set
  after every epoch and reports each epoch through a callback. :class:`TryPanel` wires ipywidgets controls
  to it, draws the curves live beside the grid's chosen configuration, and keeps one row per try. It sees
  only the training and validation sets, and nothing it does is saved or changes the protocol's choice.
* :class:`DrawPad` records strokes drawn on an ipycanvas canvas, renders them as pen on paper and sends
  them through the same path as a folder of cut digits (``sheet_reading.digit_mask`` then
  ``mnist_style.to_mnist``), so the 28x28 image is what a saved drawing becomes as a dataset image;
  :func:`answers` gives every model's probabilities for it. A drawing can be kept as a PNG in
  ``<folder>/<digit>/``, which notebook 01 reads as a ``DIGIT_FOLDER``.

Both keep their state in Python (the strokes, the tries), not in the browser, so they run headless under
nbval and their last state can be drawn as a static figure for a reader without a kernel.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from . import handwriting, paths, sheet_reading
from .evaluation import predict, predict_frame
from .mnist_style import to_mnist
from .model import STAGES, DigitCNN
from .training import FinetuneConfig, finetune

# The controls' bounds: what a panel lets a student choose (the parameters check refuses the rest).
LR_RANGE = (1e-5, 1.0)
BATCH_SIZES = (4, 8, 16, 32, 64)
EPOCH_RANGE = (1, 100)
TRY_COLUMNS = ["try", "n_last", "lr", "batch_size", "epochs", "augment", "seed", "best_val_acc", "best_epoch",
               "final_val_acc", "final_val_loss", "seconds"]


def try_configuration(pretrained: DigitCNN, config: FinetuneConfig, train: dict, val: dict, seed: int,
                      on_epoch=None) -> dict:
    """Train one configuration on ``train``, score it on ``val`` after each epoch; ``on_epoch(row)`` sees each epoch.

    Returns ``{"config", "seed", "history", "seconds"}``. Only the training and validation sets are passed in:
    this function cannot see a test set.
    """
    start = time.perf_counter()
    _, history = finetune(pretrained, config, train, val, seed, on_epoch=on_epoch)  # one torch thread on the CPU
    return {"config": config, "seed": seed, "history": history, "seconds": time.perf_counter() - start}


def try_row(number: int, tried: dict) -> dict:
    """One row of the tries table: the configuration, its best and final validation figures, its time."""
    history = pd.DataFrame(tried["history"])
    best = history.loc[history.val_acc.idxmax()]
    config = tried["config"]
    return {"try": number, "n_last": config.n_last, "lr": config.lr, "batch_size": config.batch_size,
            "epochs": config.epochs, "augment": config.augment, "seed": tried["seed"],
            "best_val_acc": float(best.val_acc), "best_epoch": int(best.epoch),
            "final_val_acc": float(history.val_acc.iloc[-1]), "final_val_loss": float(history.val_loss.iloc[-1]),
            "seconds": round(tried["seconds"], 2)}


def plot_tries(tries: list[dict], reference: list[dict] | None = None, title: str = "Tries on the validation set"):
    """Validation loss and accuracy per epoch of every try, and of the grid's chosen configuration (dashed)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.82, wspace=0.25)  # fixed: fast to redraw live
    curves = [(f"try {i}: {_label(t['config'])}", pd.DataFrame(t["history"]), "-") for i, t in enumerate(tries, 1)]
    if reference:
        curves.insert(0, ("chosen by the grid", pd.DataFrame(reference), "--"))
    for label, history, style in curves:
        colour = "black" if style == "--" else None
        ax_loss.plot(history.epoch, history.val_loss, style, color=colour, label=label)
        ax_acc.plot(history.epoch, 100 * history.val_acc, style, color=colour, label=label)
        if style == "-":
            ax_loss.plot(history.epoch, history.train_loss, ":", color=ax_loss.lines[-1].get_color(), lw=1)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="validation loss (dotted: training)")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy", ylim=(0, 101))
    if curves:
        ax_acc.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig


def _label(config: FinetuneConfig) -> str:
    aug = ", augmented" if config.augment else ""
    return f"n={config.n_last}, lr={config.lr:.0e}, batch {config.batch_size}, {config.epochs} ep{aug}"


class TryPanel:
    """Controls for one configuration, a Train button, live curves and a table of tries (validation only).

    ``panel.widget`` is what the notebook displays; ``panel.train()`` is what the button calls, and can be
    called from code too. ``n_last_options``: the strategies offered (1 = the last layer only).
    """

    def __init__(self, pretrained: DigitCNN, train: dict, val: dict, n_last_options=(1,),
                 start: FinetuneConfig | None = None, reference: list[dict] | None = None,
                 trainer=try_configuration, redraw_seconds: float = 0.3):
        import ipywidgets as w

        start = start or FinetuneConfig(n_last=n_last_options[0])
        self.pretrained, self.train_set, self.val_set = pretrained, train, val
        self.reference, self.trainer, self.redraw_seconds = reference, trainer, redraw_seconds
        self.tries: list[dict] = []
        style = {"description_width": "110px"}
        self.n_last = w.Dropdown(options=[(f"last {n} of {len(STAGES)} stages" if n > 1 else "last layer only", n)
                                          for n in n_last_options], value=start.n_last,
                                 description="trainable", style=style)
        self.lr = w.FloatLogSlider(value=start.lr, base=10, min=np.log10(LR_RANGE[0]), max=np.log10(LR_RANGE[1]),
                                   step=0.25, readout_format=".1e", description="learning rate", style=style)
        self.batch_size = w.Dropdown(options=BATCH_SIZES, value=start.batch_size if start.batch_size in BATCH_SIZES
                                     else 16, description="batch size", style=style)
        self.epochs = w.IntSlider(value=min(max(start.epochs, EPOCH_RANGE[0]), EPOCH_RANGE[1]), min=EPOCH_RANGE[0],
                                  max=EPOCH_RANGE[1], description="epochs", style=style)
        self.augment = w.Checkbox(value=start.augment, description="augment (random affine)", indent=False)
        self.seed = w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed", style=style)
        self.button = w.Button(description="Train", button_style="primary", icon="play")
        self.button.on_click(self._clicked)
        self.status = w.HTML("set a configuration and press Train")
        self.curves = w.Output()
        self.table = w.Output()
        controls = w.VBox([self.n_last, self.lr, self.batch_size, self.epochs, self.augment, self.seed,
                           self.button, self.status])
        self.widget = w.HBox([controls, w.VBox([self.curves, self.table])])

    def config(self) -> FinetuneConfig:
        """The configuration the controls show."""
        return FinetuneConfig(n_last=int(self.n_last.value), lr=float(self.lr.value),
                              batch_size=int(self.batch_size.value), epochs=int(self.epochs.value),
                              augment=bool(self.augment.value))

    def _clicked(self, _button) -> None:
        self.train()

    def train(self, config: FinetuneConfig | None = None, seed: int | None = None) -> dict:
        """Train ``config`` (default: the controls'), drawing the curves as epochs end; add a row to the table."""
        config = config or self.config()
        seed = int(self.seed.value if seed is None else seed)
        self.button.disabled = True
        self.status.value = f"training {_label(config)} ..."
        live, next_draw = [], [0.0]

        def on_epoch(row: dict) -> None:
            live.append(row)
            if time.perf_counter() >= next_draw[0] and row["epoch"] < config.epochs:
                started = time.perf_counter()
                self._draw(self.tries + [{"config": config, "history": live}])
                # redraw at most every redraw_seconds, and never spend more than a third of the time drawing
                next_draw[0] = time.perf_counter() + max(self.redraw_seconds, 2 * (time.perf_counter() - started))

        try:
            tried = self.trainer(self.pretrained, config, self.train_set, self.val_set, seed, on_epoch=on_epoch)
        finally:
            self.button.disabled = False
        self.tries.append(tried)
        self._draw(self.tries)
        row = try_row(len(self.tries), tried)
        self.status.value = (f"try {row['try']}: best validation accuracy {100 * row['best_val_acc']:.0f}% "
                             f"(epoch {row['best_epoch']}) in {row['seconds']:.1f} s")
        with self.table:
            from IPython.display import clear_output, display

            clear_output(wait=True)
            display(self.table_frame().style.format({"lr": "{:.1e}", "best_val_acc": "{:.0%}",
                                                     "final_val_acc": "{:.0%}", "final_val_loss": "{:.3f}"}))
        return tried

    def table_frame(self) -> pd.DataFrame:
        """One row per try so far (validation figures only)."""
        return pd.DataFrame([try_row(i, t) for i, t in enumerate(self.tries, 1)], columns=TRY_COLUMNS)

    def figure(self):
        """A static figure of every try's curves and the grid's choice: the panel's last state, for the reader."""
        return plot_tries(self.tries, self.reference)

    def _draw(self, tries: list[dict]) -> None:
        from IPython.display import clear_output, display

        fig = plot_tries(tries, self.reference)
        with self.curves:
            clear_output(wait=True)
            display(fig)
        plt.close(fig)


# --------------------------------------------------------------------------- draw a digit


def render_strokes(strokes: list[list[tuple[float, float]]], size: int = 280, pen: int = 16) -> np.ndarray:
    """Strokes (lists of (x, y) points on a ``size`` square) as dark ink on white paper, uint8 grayscale."""
    page = np.full((size, size), 255, np.uint8)
    for stroke in strokes:
        points = np.round(np.asarray(stroke, np.float64)).astype(np.int32).reshape(-1, 1, 2)
        if len(points) == 1:
            cv2.circle(page, tuple(int(v) for v in points[0, 0]), pen // 2, 0, -1, cv2.LINE_AA)
        elif len(points) > 1:
            cv2.polylines(page, [points], False, 0, pen, cv2.LINE_AA)
    return page


def drawn_digit(page: np.ndarray) -> np.ndarray:
    """A drawing as the 28x28 MNIST-style image it becomes in a dataset (the folder-of-digits path)."""
    if page.min() > 200:
        raise ValueError("draw a digit first: the canvas is blank")
    return to_mnist(sheet_reading.digit_mask(page, "drawing"))


def answers(models: dict[str, DigitCNN], image: np.ndarray) -> pd.DataFrame:
    """Each model's probabilities (columns) for the digits 0-9 (rows) of one 28x28 uint8 image."""
    x = torch.from_numpy(np.ascontiguousarray(image))[None]
    return pd.DataFrame({name: predict(model, x)[0].numpy() for name, model in models.items()},
                        index=pd.RangeIndex(10, name="digit"))


def plot_answers(image: np.ndarray, probabilities: pd.DataFrame, title: str = "What each model reads"):
    """The 28x28 image beside one bar chart per model, the most likely digit in the title of each."""
    models = list(probabilities.columns)
    fig, axes = plt.subplots(1, 1 + len(models), figsize=(2.3 * (1 + len(models)), 2.4),
                             gridspec_kw={"width_ratios": [1] + [1.3] * len(models)})
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set(title="as the models see it\n(28x28)", xticks=[], yticks=[])
    for ax, name in zip(axes[1:], models):
        p = probabilities[name]
        colours = ["tab:blue"] * 10
        colours[int(p.idxmax())] = "tab:orange"
        ax.bar(range(10), 100 * p, color=colours)
        ax.set(title=f"{name}: {int(p.idxmax())} ({100 * p.max():.0f}%)", xticks=range(10), ylim=(0, 100),
               xlabel="digit", ylabel="probability (%)" if ax is axes[1] else None)
        ax.title.set_fontsize(9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_drawing(page: np.ndarray, folder: Path, label: int) -> Path:
    """Keep a drawing as ``<folder>/<label>/drawn_<n>.png`` (never overwriting one), usable as a DIGIT_FOLDER."""
    if not (isinstance(label, (int, np.integer)) and 0 <= label <= 9):
        raise ValueError(f"the digit a drawing shows must be 0 to 9, not {label!r}")
    drawn_digit(page)  # refuses a blank canvas before anything is written
    target = Path(folder) / str(int(label))
    target.mkdir(parents=True, exist_ok=True)
    number = 1 + max([int(p.stem.split("_")[1]) for p in target.glob("drawn_*.png") if p.stem.split("_")[1].isdigit()]
                     or [0])
    path = target / f"drawn_{number:03d}.png"
    ok, encoded = cv2.imencode(".png", page)
    if not ok:
        raise OSError(f"could not encode the drawing as PNG for {path}")
    path.write_bytes(encoded.tobytes())  # bytes, not cv2.imwrite: works with any characters in the path
    return path


def final_models(results: dict, pretrained: DigitCNN, own: dict) -> dict[str, DigitCNN]:
    """The pre-trained model and the two final fine-tuned models of notebooks 03 and 04, by their report names.

    The fine-tuned ones are trained again from their saved configuration and seed on the training and validation
    sets (a few seconds; training is deterministic), and each must reproduce its saved own-test predictions.
    """
    models = {"pre-trained": pretrained}
    for key, name in (("last", "last layer"), ("many", f"last {results['many']['chosen']['n_last']} layers")):
        record = results[key]
        config = FinetuneConfig(**record["chosen"])
        model, _ = finetune(pretrained, config, own["train"], own["val"], seed=int(record["final_seed"]))
        again = predict_frame(model, own["test"]).set_index("file").pred
        saved = record["predictions"].set_index("file").pred
        if not again.sort_index().equals(saved.sort_index()):
            raise RuntimeError(f"the {name} model trained again does not reproduce its saved test predictions: "
                               "run notebooks 03 and 04 again on this machine")
        models[name] = model
    return models


SAMPLE_TRUTH = paths.SHEETS_DIR / "sample_sheet_truth.csv"  # which UNIPEN digits the sample sheet holds


def writer_strokes(writer: str, label: int, which: int = 0, size: int = 280,
                   off_sheet: bool = True) -> list[list[tuple[float, float]]]:
    """A real writer's strokes of one digit (UNIPEN, the ``which``-th of that digit), scaled onto a ``size`` canvas.

    ``off_sheet``: only digits that are not on the shipped sample sheet, so that no model was fine-tuned on it.
    """
    on_sheet = set()
    if off_sheet and SAMPLE_TRUTH.is_file():
        truth = pd.read_csv(SAMPLE_TRUTH)
        on_sheet = set(truth.loc[truth.writer == writer, "index"])
    digit = [d for d in handwriting.load_writers()[writer] if d.label == label and d.index not in on_sheet][which]
    points = np.concatenate(digit.strokes)
    low, high = points.min(0), points.max(0)
    scale = 0.7 * size / float((high - low).max())
    offset = (size - scale * (high - low)) / 2
    return [[tuple(float(v) for v in offset + scale * (p - low)) for p in stroke] for stroke in digit.strokes]


class DrawPad:
    """A canvas to draw a digit with the mouse or a pen, and every model's answer as bars (on pen-up)."""

    def __init__(self, models: dict[str, DigitCNN], folder: Path, size: int = 280, pen: int = 16):
        import ipywidgets as w
        from ipycanvas import Canvas

        self.models, self.size, self.pen = models, size, pen
        self.strokes: list[list[tuple[float, float]]] = []
        self.pen_down = False
        self.canvas = Canvas(width=size, height=size, layout=w.Layout(border="1px solid #999"))
        self.canvas.line_width, self.canvas.line_cap, self.canvas.line_join = pen, "round", "round"
        self._clear_canvas()
        self.canvas.on_mouse_down(self._down)
        self.canvas.on_mouse_move(self._move)
        self.canvas.on_mouse_up(self._up)
        self.clear_button = w.Button(description="Clear", icon="eraser")
        self.clear_button.on_click(lambda _b: self.clear())
        self.label = w.Dropdown(options=list(range(10)), value=0, description="this is a", layout=w.Layout(width="160px"))
        self.folder = w.Text(value=paths.shown(folder), description="keep in", layout=w.Layout(width="420px"))
        self.save_button = w.Button(description="Keep as PNG", icon="save")
        self.save_button.on_click(lambda _b: self._save_clicked())
        self.status = w.HTML("draw a digit, then lift the pen")
        self.result = w.Output()
        self.widget = w.VBox([w.HBox([self.canvas, self.result]),
                              w.HBox([self.clear_button, self.label, self.save_button]), self.folder, self.status])

    def _clear_canvas(self) -> None:
        self.canvas.fill_style = "white"
        self.canvas.fill_rect(0, 0, self.size, self.size)
        self.canvas.stroke_style = "black"

    def _down(self, x, y) -> None:
        self.pen_down = True
        self.strokes.append([(x, y)])

    def _move(self, x, y) -> None:
        if self.pen_down and self.strokes:
            last = self.strokes[-1][-1]
            self.strokes[-1].append((x, y))
            self.canvas.stroke_line(last[0], last[1], x, y)

    def _up(self, x, y) -> pd.DataFrame | None:
        self._move(x, y)
        self.pen_down = False
        return self.show()

    def add_stroke(self, points) -> pd.DataFrame | None:
        """Draw one stroke from code (a list of (x, y) on the canvas) exactly as the mouse does; returns the answers."""
        points = [(float(x), float(y)) for x, y in points]
        self._down(*points[0])
        for x, y in points[1:-1]:
            self._move(x, y)
        self.pen_down = False if len(points) == 1 else self.pen_down
        return self._up(*points[-1]) if len(points) > 1 else self.show()

    def page(self) -> np.ndarray:
        return render_strokes(self.strokes, self.size, self.pen)

    def show(self) -> pd.DataFrame | None:
        """Recompute the 28x28 image and every model's answer, and draw them beside the canvas."""
        from IPython.display import clear_output, display

        try:
            image = drawn_digit(self.page())
        except ValueError as err:
            self.status.value = str(err)
            return None
        probabilities = answers(self.models, image)
        fig = plot_answers(image, probabilities)
        with self.result:
            clear_output(wait=True)
            display(fig)
        plt.close(fig)
        self.status.value = "; ".join(f"{name} reads {int(p.idxmax())}" for name, p in probabilities.items())
        return probabilities

    def figure(self):
        """A static figure of the current drawing and the models' answers (for a reader without a kernel)."""
        image = drawn_digit(self.page())
        return plot_answers(image, answers(self.models, image))

    def clear(self) -> None:
        self.strokes = []
        self.canvas.clear()
        self._clear_canvas()
        self.status.value = "draw a digit, then lift the pen"
        with self.result:
            from IPython.display import clear_output

            clear_output()

    def _save_clicked(self) -> None:
        try:
            folder = Path(self.folder.value)  # relative: to the project folder, as it is shown
            path = save_drawing(self.page(), folder if folder.is_absolute() else paths.PROJECT_ROOT / folder,
                                int(self.label.value))
        except (ValueError, OSError) as err:
            self.status.value = f"not kept: {err}"
            return
        self.status.value = f"kept as {paths.shown(path)}"
