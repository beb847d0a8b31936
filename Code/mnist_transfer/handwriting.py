"""Real people's handwritten digits (UNIPEN pen strokes) drawn as ink: single digits and whole sheets.

The strokes of ten real writers (``Code/data/unipen``, see its README) are drawn with a pen of
any width, so that

* :func:`digit_image` / :func:`writer_images` turn a writer's digits into MNIST-style 28x28
  images (the same normalisation as a sheet's digits), e.g. a large held-out test of one writer;
* :func:`render_sheet` writes a whole sheet the way people do - rows that drift and tilt,
  uneven spacing, pen lifts, ballpoint or marker, blue or black ink, plain, ruled or lined paper,
  scanned or photographed, shadows and dust - with the ground truth of every digit, so that
  :mod:`.sheet_reading` can be tested on material it was not written against;
* :func:`corpus` is a fixed set of such sheets covering every layout and trait.

Data: UNIPEN train_r01_v07, Guyon et al., ICPR 1994, doi:10.5281/zenodo.1195803, CC BY 4.0.
Like :mod:`.synth`, this module only makes inputs; the sheet reader never imports it.
"""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

import cv2
import numpy as np

from . import paths, synth
from .mnist_style import to_mnist
from .sheet_reading import SheetLayout

SHIFT = 4  # fractional bits of the polyline coordinates (sub-pixel positions)
DIGIT_HEIGHT, DIGIT_PEN = 80, 6  # how digit_image draws before MNIST normalisation (pen 7.5 % of height)

PENS = {"ballpoint": 0.06, "marker": 0.12}  # pen width as a fraction of the digit height
INKS = {"black": (38, 36, 34), "blue": (150, 62, 28)}  # BGR
PAPERS = ("plain", "table_thin", "table_thick", "lined")
CAPTURES = ("scan", "photo", "photo_fill")
FLAGS = ("drift", "uneven", "wobble", "pen_lifts", "shadow", "uneven_light", "specks")
ALL_TRAITS = frozenset(FLAGS) | set(PENS) | set(INKS) | set(PAPERS) | set(CAPTURES)


class PenDigit(NamedTuple):
    """One written digit: its label, its pen-down strokes ((n, 2) float32 arrays, y down), its index."""

    label: int
    strokes: tuple[np.ndarray, ...]
    index: int  # position in its writer's list


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@functools.lru_cache(maxsize=4)
def load_writers(path=paths.UNIPEN_WRITERS) -> MappingProxyType:
    """Every writer's digits: a read-only mapping ``"W01"`` -> tuple of :class:`PenDigit` (cached)."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    writers = {}
    for writer in data["writers"]:
        writers[writer["writer"]] = tuple(
            PenDigit(
                int(d["label"]),
                tuple(_frozen(np.asarray(s, np.float32).reshape(-1, 2)) for s in d["strokes"]),
                i,
            )
            for i, d in enumerate(writer["digits"])
        )
    return MappingProxyType(writers)


# --------------------------------------------------------------------------- one digit


def _cut(poly: np.ndarray, start: float, stop: float) -> list[np.ndarray]:
    """A polyline with the stretch between arc lengths ``start`` and ``stop`` removed (a pen lift)."""
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(poly, axis=0).T))])
    at = lambda s: np.array([np.interp(s, along, poly[:, 0]), np.interp(s, along, poly[:, 1])])  # noqa: E731
    before = np.vstack([poly[along < start], at(start)])
    after = np.vstack([at(stop), poly[along > stop]])
    return [before, after]


def _pen_lifts(polys: list[np.ndarray], count: int, pen: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Cut ``count`` short gaps into the longer strokes, away from their ends (pixel coordinates)."""
    for _ in range(count):
        lengths = np.array([np.hypot(*np.diff(p, axis=0).T).sum() if len(p) > 1 else 0.0 for p in polys])
        gap = pen + max(2.0, rng.uniform(0.4, 0.9) * pen)  # the round caps eat one pen width
        long_enough = lengths > 5 * gap
        if not long_enough.any():
            break
        i = int(rng.choice(len(polys), p=np.where(long_enough, lengths, 0) / lengths[long_enough].sum()))
        start = rng.uniform(0.25, 0.75) * lengths[i] - gap / 2
        polys[i : i + 1] = _cut(polys[i], start, start + gap)
    return polys


def draw_digit(
    strokes,
    height_px: float,
    pen_px: float,
    rng: np.random.Generator | None = None,
    pen_lift_gaps: int = 0,
    slant_deg: float = 0.0,
    rotate_deg: float = 0.0,
    max_width_px: float | None = None,
) -> np.ndarray:
    """Draw one digit's pen strokes as an anti-aliased ink mask (uint8, 255 = ink), cropped to the ink.

    The digit is normalised by its own bounding box, keeping its aspect ratio, so that the ink
    (pen included) is ``height_px`` tall - or ``max_width_px`` wide (default twice the height)
    if that is smaller. ``slant_deg`` shears it forwards (top to the right), ``rotate_deg``
    turns it counter-clockwise. Each stroke is drawn on its own: strokes that do not touch in
    the data stay apart. ``pen_lift_gaps`` short gaps (about one pen width visible) are cut
    into the longer strokes at places drawn from ``rng``. Without gaps and rng it is deterministic.
    """
    polys = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes]
    points = np.vstack(polys)
    centre = (points.min(0) + points.max(0)) / 2
    a, t = np.radians(rotate_deg), np.tan(np.radians(slant_deg))
    rotate = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # y points down
    matrix = rotate @ np.array([[1.0, -t], [0.0, 1.0]])
    polys = [(p - centre) @ matrix.T for p in polys]
    points = np.vstack(polys)
    low, size = points.min(0), np.maximum(points.max(0) - points.min(0), 1e-6)
    pen = max(1, int(round(pen_px)))
    max_width = 2 * height_px if max_width_px is None else max_width_px
    scale = min(max(1.0, height_px - pen - 3) / size[1], max(1.0, max_width - pen - 3) / size[0])  # AA fringe
    pad = pen / 2 + 2
    polys = [(p - low) * scale + pad for p in polys]
    if pen_lift_gaps:
        polys = _pen_lifts(polys, pen_lift_gaps, pen, rng if rng is not None else np.random.default_rng(0))
    width, height = (np.ceil(size * scale + 2 * pad) + 1).astype(int)
    canvas = np.zeros((height, width), np.uint8)
    for p in polys:
        p = p if len(p) > 1 else np.vstack([p, p])  # a dot
        cv2.polylines(canvas, [np.round(p * (1 << SHIFT)).astype(np.int32)], False, 255, pen, cv2.LINE_AA, SHIFT)
    ys, xs = np.nonzero(canvas)
    return canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def digit_image(strokes) -> np.ndarray:
    """One digit's strokes -> a 28x28 MNIST-style uint8 image (deterministic).

    Drawn 80 px tall with a 6 px pen, thresholded like a sheet's ink, then put through
    :func:`~.mnist_style.to_mnist`, the normalisation every sheet digit goes through.
    """
    mask = draw_digit(strokes, DIGIT_HEIGHT, DIGIT_PEN)
    return to_mnist(np.where(mask >= 128, 255, 0).astype(np.uint8))


def writer_images(writer: str, indices=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A writer's digits (all, or those at ``indices``) as (uint8 [N, 28, 28], labels, indices)."""
    digits = load_writers()[writer]
    indices = np.arange(len(digits)) if indices is None else np.asarray(indices, dtype=np.int64)
    images = np.zeros((len(indices), 28, 28), np.uint8)
    for k, i in enumerate(indices):
        images[k] = digit_image(digits[i].strokes)
    labels = np.array([digits[i].label for i in indices], dtype=np.int64)
    return images, labels, indices


# --------------------------------------------------------------------------- sheets


@dataclass(frozen=True)
class SheetSpec:
    """Everything that decides one rendered sheet (same spec, same bytes).

    ``indices``: the writer's digits the sheet may use (None: all), so that some can be kept
    out; each cell takes a different one of the right label. How the person writes: ``drift``
    (rows tilt by a few degrees and bow; on plain paper only), ``uneven`` (uneven spacing and
    row starts, one row shifted by half a digit), ``wobble`` (baseline, size and angle vary),
    ``pen_lifts`` (short gaps inside strokes). On a ruled table every digit stays in its cell
    (drift and uneven spacing become a larger jitter inside it); on lined paper digits sit on the lines.
    """

    writer: str = "W01"
    layout: SheetLayout = SheetLayout()
    seed: int = 0
    indices: tuple[int, ...] | None = None
    drift: bool = False
    uneven: bool = False
    wobble: bool = False
    pen_lifts: bool = False
    pen: str = "ballpoint"  # or "marker"
    ink: str = "black"  # or "blue"
    paper: str = "plain"  # "table_thin", "table_thick" (a ruled box around every cell), "lined"
    capture: str = "scan"  # "photo" (on a table), "photo_fill" (the paper fills the frame)
    shadow: bool = False  # a hard shadow over part of the page
    uneven_light: bool = False
    specks: bool = False  # a few dark specks of dust
    page_width: int = 1240  # page pixels (A4 at 150 dpi)
    megapixels: float = 2.0  # photo size

    def __post_init__(self):
        for name, allowed in (("pen", PENS), ("ink", INKS), ("paper", PAPERS), ("capture", CAPTURES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {tuple(allowed)}, not {getattr(self, name)!r}")

    @property
    def traits(self) -> frozenset[str]:
        """The traits of this sheet by name (the flags that are on, pen, ink, paper and capture)."""
        return frozenset(f for f in FLAGS if getattr(self, f)) | {self.pen, self.ink, self.paper, self.capture}

    @property
    def name(self) -> str:
        lay = self.layout
        order = "seq" if lay.order == "row_is_sequence" else "dig"
        return f"{self.writer}_{lay.rows}x{lay.cols}_{order}{''.join(map(str, lay.digits))}_s{self.seed}"


def _choose_digits(spec: SheetSpec, rng: np.random.Generator) -> dict[int, list]:
    """For every label, the writer's digits (shuffled) that the sheet may use."""
    digits = load_writers()[spec.writer]
    allowed = range(len(digits)) if spec.indices is None else spec.indices
    pools = {label: [] for label in spec.layout.digits}
    for i in allowed:
        if digits[i].label in pools:
            pools[digits[i].label].append(digits[i])
    lay = spec.layout
    need = {label: 0 for label in pools}
    for r in range(lay.rows):
        for c in range(lay.cols):
            need[lay.label_at(r, c)] += 1
    for label, pool in pools.items():
        if len(pool) < need[label]:
            raise ValueError(f"{spec.writer}: the sheet needs {need[label]} {label}s, the indices allow {len(pool)}")
        pools[label] = [pool[j] for j in rng.permutation(len(pool))]
    return pools


def _aspect(strokes) -> float:
    """Width / height of a digit's strokes."""
    points = np.vstack(strokes)
    w, h = points.max(0) - points.min(0)
    return float(w / max(h, 1e-6))


def _light(shape, spec: SheetSpec, rng: np.random.Generator) -> np.ndarray | None:
    """Multiplicative light on the page: a smooth uneven light and/or a hard-edged shadow."""
    ph, pw = shape
    light = None
    if spec.uneven_light:  # a strong gradient and a dim corner, computed small and enlarged
        h, w = ph // 16, pw // 16
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        gx, gy = rng.normal(0, 1, 2)
        ramp = gx * (xx / w - 0.5) + gy * (yy / h - 0.5)
        cx, cy = rng.uniform(0, 1, 2)
        corner = np.hypot(xx / w - cx, yy / h - cy)
        spread = rng.uniform(0.15, 0.3) * (ramp - ramp.min()) / max(1e-6, np.ptp(ramp))
        small = 1 - spread - rng.uniform(0.1, 0.2) * corner
        light = cv2.resize(small.astype(np.float32), (pw, ph))
    if spec.shadow:  # something between the lamp and the paper: a straight, nearly sharp edge
        mask = np.zeros((ph, pw), np.uint8)
        side = rng.integers(4)
        a, b = rng.uniform(0.15, 0.55, 2)
        if side == 0:  # from the left edge
            pts = [(0, 0), (a * pw, 0), (b * pw, ph), (0, ph)]
        elif side == 1:  # from the right edge
            pts = [(pw, 0), ((1 - a) * pw, 0), ((1 - b) * pw, ph), (pw, ph)]
        elif side == 2:  # from the top edge
            pts = [(0, 0), (pw, 0), (pw, a * ph * 0.7), (0, b * ph * 0.7)]
        else:  # a corner
            pts = [(pw, ph), (pw, (1 - a) * ph), ((1 - b) * pw, ph)]
        cv2.fillPoly(mask, [np.array(pts, np.int32)], 255, cv2.LINE_AA)
        edge = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), rng.uniform(1.5, 4))
        shade = 1 - rng.uniform(0.35, 0.55) * edge
        light = shade if light is None else light * shade
    return light


@dataclass(frozen=True)
class _Geometry:
    """Where the writing goes on the page (pixels)."""

    width: int  # page
    height: int
    left: float  # margin
    top: float
    col_w: float  # nominal space per digit along a row
    pitch: float  # row to row
    digit_h: float  # the writer's digit height
    table: bool

    @property
    def usable_w(self) -> float:
        return self.width - 2 * self.left

    def baseline(self, row: int) -> float:
        return self.top + row * self.pitch + (self.pitch + self.digit_h) / 2


def _geometry(spec: SheetSpec, pools: dict) -> _Geometry:
    """Margins, rows and digit size: digits as large as the rows and the writer's widest digits allow."""
    lay = spec.layout
    pw = spec.page_width
    ph = int(round(pw * synth.A4_RATIO))
    fill = spec.capture == "photo_fill"  # a close-up photo loses the page's outer margin
    left, top, bottom = pw * (0.10 if fill else 0.08), ph * (0.11 if fill else 0.07), ph * (0.11 if fill else 0.06)
    col_w = (pw - 2 * left) / lay.cols
    table = spec.paper.startswith("table")
    wide = np.percentile([_aspect(d.strokes) for pool in pools.values() for d in pool], 80)
    digit_h = min(0.6 * (ph - top - bottom) / lay.rows, (0.65 if table else 0.75) * col_w / wide)
    pitch = min((ph - top - bottom) / lay.rows, digit_h / 0.45)  # few rows: written at the top, not spread out
    if table:
        digit_h = min(digit_h, 0.62 * pitch)
    return _Geometry(pw, ph, left, top, col_w, pitch, digit_h, table)


def _rules(spec: SheetSpec, g: _Geometry, rng: np.random.Generator) -> tuple[np.ndarray | None, tuple]:
    """The printed lines as an alpha mask (or None) and their BGR colour."""
    rows, cols = spec.layout.rows, spec.layout.cols
    if spec.paper == "plain":
        return None, ()
    mask = np.zeros((g.height, g.width), np.uint8)
    if spec.paper == "lined":  # pale blue lines edge to edge, one under every row
        for r in range(rows):
            y = int(g.baseline(r))
            cv2.line(mask, (0, y), (g.width, y), 255, 2, cv2.LINE_AA)
        return mask, (205, 170, 140)
    thick = 1 if spec.paper == "table_thin" else int(rng.integers(3, 5))
    x0, y0 = int(g.left), int(g.top)
    x1, y1 = int(round(g.left + cols * g.col_w)), int(round(g.top + rows * g.pitch))
    for r in range(rows + 1):
        y = int(round(g.top + r * g.pitch))
        cv2.line(mask, (x0, y), (x1, y), 255, thick, cv2.LINE_AA)
    for c in range(cols + 1):
        x = int(round(g.left + c * g.col_w))
        cv2.line(mask, (x, y0), (x, y1), 255, thick, cv2.LINE_AA)
    grey = int(rng.integers(120, 170)) if thick == 1 else int(rng.integers(50, 100))
    return mask, (grey, grey, grey)


def _composite(page: np.ndarray, alpha: np.ndarray, colour, x: int = 0, y: int = 0) -> None:
    """Lay ink of ``colour`` with coverage ``alpha`` (float32, 0..1) onto ``page`` at (x, y), in place."""
    h, w = alpha.shape
    region = page[y : y + h, x : x + w]
    region *= 1 - alpha[..., None]
    region += alpha[..., None] * np.float32(colour)


def _lefts(spec: SheetSpec, g: _Geometry, widths: np.ndarray, shifted: bool, pen_px: float, rng) -> np.ndarray:
    """The left edge of every digit of one row."""
    cols = len(widths)
    if g.table:  # centred in its cell, jittered, never touching the lines
        spread = 0.1 if (spec.uneven or spec.drift) else 0.05
        centres = g.left + (np.arange(cols) + 0.5) * g.col_w + rng.normal(0, spread * g.col_w, cols)
        low = g.left + np.arange(cols) * g.col_w + pen_px + 4
        return np.clip(centres - widths / 2, low, low + g.col_w - 2 * pen_px - 8 - widths)
    if spec.uneven:  # written left to right with uneven gaps, from an uneven start
        start = g.left + rng.uniform(0.0, 0.3) * g.col_w + (0.5 * g.col_w if shifted else 0.0)
        gaps = rng.uniform(0.5, 1.6, cols - 1)
        gaps *= max(0.0, (g.left + g.usable_w - start) * rng.uniform(0.85, 0.97) - widths.sum()) / gaps.sum()
        gaps = np.maximum(gaps, max(0.25 * g.digit_h, 3 * pen_px))
        lefts = start + np.concatenate([[0.0], np.cumsum(widths[:-1] + gaps)])
    else:  # roughly in columns
        lefts = g.left + (np.arange(cols) + 0.5) * g.col_w + rng.normal(0, 0.03 * g.col_w, cols) - widths / 2
    least = max(0.15 * g.digit_h, 2 * pen_px)  # a writer leaves at least a little space between digits
    for c in range(1, cols):
        lefts[c] = max(lefts[c], lefts[c - 1] + widths[c - 1] + least)
    return lefts - np.clip(lefts[-1] + widths[-1] - (g.left + g.usable_w), 0.0, lefts[0] - 0.5 * g.left)


def render_page(spec: SheetSpec) -> tuple[np.ndarray, list[dict]]:
    """The flat page of ``spec`` (BGR uint8, before any camera) and the truth (see :func:`render_sheet`)."""
    rng = np.random.default_rng(spec.seed)
    lay = spec.layout
    pools = _choose_digits(spec, rng)
    g = _geometry(spec, pools)
    warm = rng.uniform(0, 0.04) * np.array([1.0, 0.5, 0.0])  # less blue: a warm white
    page = np.empty((g.height, g.width, 3), np.float32)
    page[:] = np.float32(rng.uniform(238, 250) * (1 - warm))
    rules, rule_colour = _rules(spec, g, rng)
    if rules is not None:
        _composite(page, rules.astype(np.float32) / 255 * 0.9, rule_colour)
    if spec.paper == "lined":  # and a red margin line
        margin = np.zeros(page.shape[:2], np.float32)
        cv2.line(margin, (int(g.left * 0.6), 0), (int(g.left * 0.6), g.height), 1.0, 2)
        _composite(page, margin * 0.8, (120, 110, 225))

    pen_px = max(2.0, PENS[spec.pen] * g.digit_h * rng.uniform(0.92, 1.08))
    ink = np.float32(INKS[spec.ink]) + rng.uniform(-8, 8, 3).astype(np.float32)
    drift = spec.drift and spec.paper == "plain"
    tilt0 = rng.uniform(1.5, 3.5) * rng.choice([-1, 1]) if drift else 0.0
    shifted_row = int(rng.integers(lay.rows)) if spec.uneven else -1
    lifts = np.random.default_rng([spec.seed, 1])  # its own stream: the same sheet with or without pen lifts
    truth = []
    for r in range(lay.rows):
        tilt = tilt0 + (rng.normal(0, 0.4) if drift else 0.0)
        bow = rng.uniform(-0.05, 0.05) * g.pitch if drift else 0.0
        digits = [pools[lay.label_at(r, c)].pop() for c in range(lay.cols)]
        masks = [
            draw_digit(
                d.strokes,
                g.digit_h * (rng.uniform(0.88, 1.08) if spec.wobble else rng.uniform(0.96, 1.03)),
                pen_px,
                lifts,
                pen_lift_gaps=int(lifts.choice(3, p=[0.5, 0.35, 0.15])) if spec.pen_lifts else 0,
                slant_deg=rng.normal(0, 2),
                rotate_deg=tilt + rng.normal(0, 2.5 if spec.wobble else 1.0),
                max_width_px=(0.72 if g.table else 0.9) * g.col_w,
            )
            for d in digits
        ]
        lefts = _lefts(spec, g, np.array([m.shape[1] for m in masks], float), r == shifted_row, pen_px, rng)
        for c, (mask, digit) in enumerate(zip(masks, digits)):
            h, w = mask.shape
            x = int(round(lefts[c]))
            if g.table:  # a little below the middle of the cell
                room = g.pitch - 2 * pen_px - 8 - h
                where = np.clip(rng.normal(0.55, 0.12 if spec.wobble else 0.06), 0, 1)
                y = g.top + r * g.pitch + pen_px + 4 + room * where
            else:  # on the row's baseline, which tilts and bows when the rows drift
                along = (x + w / 2 - g.width / 2) / (g.usable_w / 2)  # -1 .. 1
                base = g.baseline(r) - np.tan(np.radians(tilt)) * along * g.usable_w / 2 + bow * (along**2 - 1 / 3)
                if spec.wobble:
                    base += np.clip(rng.normal(0, 0.05 * g.digit_h), -0.12 * g.digit_h, 0.12 * g.digit_h)
                if spec.paper == "lined":
                    base += rng.normal(0, 0.03 * g.digit_h)  # on the line, sometimes a little across
                y = base - h
            y = int(round(y))
            if x < 0 or y < 0 or x + w > g.width or y + h > g.height:
                raise ValueError(f"{spec.name}: digit at row {r}, col {c} does not fit on the page")
            _composite(page, mask.astype(np.float32) * (rng.uniform(0.85, 1.0) / 255), ink, x, y)
            truth.append({"row": r, "col": c, "label": digit.label, "writer": spec.writer, "index": digit.index,
                          "box": (x, y, w, h), "page_box": (x, y, w, h)})
    boxes = [t["box"] for t in truth]
    _check_apart(boxes, spec)
    if spec.specks:
        _specks(page, boxes, g.digit_h, rng)
    light = _light(page.shape[:2], spec, rng)
    if light is not None:
        page *= light[..., None]
    return np.clip(page, 0, 255).astype(np.uint8), truth


def _check_apart(boxes, spec: SheetSpec) -> None:
    """No two digits' boxes may overlap (their strokes would merge)."""
    b = np.array(boxes, float)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    overlap = (np.minimum(x1[:, None], x1) > np.maximum(x0[:, None], x0)) & (
        np.minimum(y1[:, None], y1) > np.maximum(y0[:, None], y0)
    )
    np.fill_diagonal(overlap, False)
    if overlap.any():
        i, j = np.argwhere(overlap)[0]
        raise ValueError(f"{spec.name}: digits {i} and {j} overlap")


def _specks(page: np.ndarray, boxes, height: float, rng: np.random.Generator) -> None:
    """A few dark specks of dust or toner (dots and short hairs), none on a digit."""
    ph, pw = page.shape[:2]
    b = np.array(boxes, float)
    margin = 0.15 * height
    placed = 0
    for _ in range(200):
        if placed >= rng.integers(8, 16):
            break
        x, y = rng.uniform(0.03, 0.97) * pw, rng.uniform(0.03, 0.97) * ph
        near_x = (x > b[:, 0] - margin) & (x < b[:, 0] + b[:, 2] + margin)
        if (near_x & (y > b[:, 1] - margin) & (y < b[:, 1] + b[:, 3] + margin)).any():
            continue
        alpha = np.zeros((24, 24), np.uint8)
        if rng.random() < 0.75:
            cv2.circle(alpha, (12 * 16, 12 * 16), int(rng.uniform(0.8, 2.5) * 16), 255, -1, cv2.LINE_AA, SHIFT)
        else:
            angle, length = rng.uniform(0, np.pi), rng.uniform(3, 9)
            d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
            p, q = (np.array([12, 12]) - d) * 16, (np.array([12, 12]) + d) * 16
            cv2.line(alpha, tuple(p.astype(int)), tuple(q.astype(int)), 255, 1, cv2.LINE_AA, SHIFT)
        grey = rng.uniform(30, 90)
        _composite(page, alpha.astype(np.float32) / 255, (grey, grey, grey), int(x) - 12, int(y) - 12)
        placed += 1


def _project_box(box, matrix: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box, in photo pixels, of a page box under a perspective ``matrix``."""
    x, y, w, h = box
    corners = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]).reshape(-1, 1, 2)
    warped = cv2.perspectiveTransform(corners, matrix).reshape(-1, 2)
    (x0, y0), (x1, y1) = np.floor(warped.min(0)), np.ceil(warped.max(0))
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def render_sheet(spec: SheetSpec) -> tuple[np.ndarray, list[dict]]:
    """Render the sheet of ``spec``: (BGR uint8 image, truth), the same bytes for the same spec.

    Truth: one dict per written digit with ``row``, ``col``, ``label``, ``writer``, ``index``
    (the digit's index within the writer, see :func:`load_writers`), ``page_box`` (x, y, w, h)
    on the flat page and ``box`` in the output image. For a scan both are the same; for a photo
    ``box`` is the bounding box of the page box seen through the camera's perspective (so a little
    larger than the ink), and ``page_box`` is the box on the flat page.
    """
    page, truth = render_page(spec)
    if spec.capture == "scan":
        return synth.scan(page, spec.seed + 1), truth
    image, matrix = synth.photograph(
        page, spec.seed + 1, megapixels=spec.megapixels, tilt=0.4 if spec.capture == "photo_fill" else 1.0,
        fill_frame=spec.capture == "photo_fill", return_matrix=True, fast=True,
    )
    ih, iw = image.shape[:2]
    for t in truth:
        t["box"] = _project_box(t["page_box"], matrix)
        x, y, w, h = t["box"]
        if x < 0 or y < 0 or x + w > iw or y + h > ih:
            raise ValueError(f"{spec.name}: digit at row {t['row']}, col {t['col']} falls outside the photo")
    return image, truth


# --------------------------------------------------------------------------- corpus

CORPUS_LAYOUTS = (
    SheetLayout(),  # 12 rows of 0..9
    SheetLayout(rows=10, cols=12, order="row_is_digit"),  # one digit per row
    SheetLayout(rows=10, cols=10, order="row_is_digit"),
    SheetLayout(rows=8, cols=10),
    SheetLayout(rows=9, cols=9, digits=tuple(range(1, 10))),  # 9 rows of 1..9
    SheetLayout(rows=9, cols=10, order="row_is_digit", digits=tuple(range(1, 10))),  # rows of 1s, 2s, ... 9s
    SheetLayout(rows=6, cols=10),  # two of these (disjoint digits) hold 12 of each digit
)
_PROFILES = (  # eight ways of writing and capturing, cycled through the corpus
    dict(),  # a clean scan, black ballpoint, plain paper
    dict(capture="photo", ink="blue", drift=True, uneven=True, wobble=True, shadow=True),
    dict(paper="table_thin", ink="blue", pen_lifts=True, specks=True),
    dict(capture="photo_fill", paper="lined", pen="marker", uneven=True, uneven_light=True),
    dict(capture="photo", paper="table_thick", pen="marker", wobble=True, shadow=True, specks=True),
    dict(ink="blue", drift=True, pen_lifts=True, wobble=True, uneven_light=True),
    dict(capture="photo", paper="lined", ink="blue", pen_lifts=True, uneven=True, specks=True),
    dict(capture="photo_fill", pen="marker", drift=True, wobble=True, shadow=True, pen_lifts=True),
)


def _pair_indices(writer: str, per_sheet: int, seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two disjoint sets of a writer's digits with ``per_sheet`` of each label in each."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for label in range(10):
        mine = [d.index for d in load_writers()[writer] if d.label == label]
        picked = rng.choice(mine, 2 * per_sheet, replace=False)
        first += sorted(int(i) for i in picked[:per_sheet])
        second += sorted(int(i) for i in picked[per_sheet:])
    return tuple(sorted(first)), tuple(sorted(second))


def corpus(n: int = 32) -> list[SheetSpec]:
    """``n`` (at least 8) sheet specs, the same every time, covering every layout and trait.

    Writers W01..W10 in turn; the layouts of :data:`CORPUS_LAYOUTS` in turn, where each 6-row
    sheet comes with a second one of the same writer on the other digits (together 12 of each
    digit, none twice); the eight writing/capture profiles in an order that pairs every layout
    with several of them.
    """
    if n < 8:
        raise ValueError("the corpus needs at least 8 sheets to cover every trait")
    writers = sorted(load_writers())
    specs: list[SheetSpec] = []
    i = 0
    while len(specs) < n:
        layout = CORPUS_LAYOUTS[i % len(CORPUS_LAYOUTS)]
        profile = _PROFILES[(i * 3 + i // len(_PROFILES)) % len(_PROFILES)]
        writer = writers[i % len(writers)]
        base = SheetSpec(writer=writer, layout=layout, seed=1000 + i, **profile)
        if layout.rows == 6:  # the pair: same writer, disjoint digits, each sheet written its own way
            first, second = _pair_indices(writer, 6, seed=base.seed)
            other = _PROFILES[(i * 3 + i // len(_PROFILES) + 1) % len(_PROFILES)]
            specs.append(SheetSpec(writer=writer, layout=layout, seed=base.seed, indices=first, **profile))
            specs.append(SheetSpec(writer=writer, layout=layout, seed=base.seed + 500, indices=second, **other))
        else:
            specs.append(base)
        i += 1
    return specs[:n]
