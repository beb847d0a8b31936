"""Sheets the way real students write and photograph them (issue 15), from real writers' pen strokes.

:mod:`.handwriting` draws the strokes of ten real UNIPEN writers (``Code/data/unipen``, CC BY 4.0)
as tidy sheets. This module adds, as opt-in fields of :class:`StudentSpec` (a
:class:`~.handwriting.SheetSpec` with more fields), what real students' sheets look like:

* ``desk``: a phone photo on a desk (wood, dark or a green mat) where the paper does not fill
  the frame on one or two sides (``framing``: the desk, the paper's edge and its shadow along the
  left and/or right border) or one corner of the paper lies outside the frame;
* ``paper="table_pencil"`` / ``"table_pen"``: a table drawn by hand - wobbly, slightly curved,
  faint lines, broken at some crossings, crossing through some digits;
  ``paper="table_dashed"``: a printed table with thick lines, some of them dashed or dotted;
* ``touching``: in some rows two neighbouring digits touch or overlap slightly;
* ``split_strokes``: 4, 5, 7 and 9 written in separate strokes that do not touch (a 9's tail
  below its loop, a two-stroke 4 or 5 with a gap, a 7's bar apart from its stem);
* ``gap_after``: a wider gap after that many columns (the first digits apart from the rest);
* inks and pens: ``ink="red"`` (with ``pen="marker"``: a red marker), ``ink="pencil"`` (grey,
  faint, grainy), ``pen="fine"`` (a thin ballpoint);
* ``hostile``: what a reader must refuse - an 11th digit in a row (``"extra_digit"``), a row of
  letters (``"letters"``), a scribbled row (``"scribble"``), an ink blot beside a digit (``"blot"``),
  all in row ``hostile_row``. In a table they are written the way a student spoils a table: the
  digit too many squeezed into cell ``hostile_col`` beside that cell's digit (both smaller, apart),
  or with ``hostile_col=-1`` written just right of the table's frame; a letter in each of the row's
  cells; one scribble running along the row through its cells; a blot in cell ``hostile_col`` (the
  last with -1) beside its digit.

:func:`render_sheet` returns the image, the truth of every digit (as :func:`.handwriting.render_sheet`)
and the extra marks (hostile marks, touching pairs) with their boxes. Like :mod:`.handwriting`, this
module only makes inputs; the sheet reader never imports it.
Data: UNIPEN train_r01_v07, Guyon et al., ICPR 1994, doi:10.5281/zenodo.1195803, CC BY 4.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import cv2
import numpy as np

from . import handwriting as hw
from . import paths, synth
from .sheet_reading import SheetLayout

PENS = {**hw.PENS, "fine": 0.035}  # pen width as a fraction of the digit height
INKS = {**hw.INKS, "red": (48, 40, 196), "pencil": (100, 100, 104)}  # BGR
PAPERS = hw.PAPERS + ("table_pencil", "table_pen", "table_dashed")
HAND_TABLES = ("table_pencil", "table_pen")
DESKS = ("", "wood", "dark", "green")
FRAMINGS = ("left", "right", "both", "corner")
HOSTILE = ("", "extra_digit", "letters", "scribble", "blot")
SPLIT_LABELS = (4, 5, 7, 9)
LETTERS_WORD = "homework"


@dataclass(frozen=True)
class StudentSpec(hw.SheetSpec):
    """A :class:`~.handwriting.SheetSpec` with the traits of students' sheets (all off by default).

    ``desk``: photographed on a desk ("wood", "dark", "green"; needs ``capture="photo"``), the paper
    off the frame as ``framing`` says: "left" / "right" (the desk shows along that border only),
    "both" (along both), "corner" (one corner of the paper outside the frame).
    ``touching``: in about a third of the rows, one or two pairs of neighbours touch (plain or lined paper).
    ``split_strokes``: every 4, 5, 7 and 9 in strokes pulled a little apart.
    ``gap_after``: columns ``gap_after`` and on start further right (0: no gap; plain or lined paper).
    ``hostile`` / ``hostile_row`` / ``hostile_col``: a mark to be refused in that row (0-based); an
    extra digit or a blot goes after column ``hostile_col`` (-1: at the row's end). In a table both
    go into cell ``hostile_col``, beside its digit; with -1 the extra digit is written right of the
    table's frame, the blot in the last cell (see :func:`_table_hostile`).
    """

    desk: str = ""
    framing: str = "left"
    touching: bool = False
    split_strokes: bool = False
    gap_after: int = 0
    hostile: str = ""
    hostile_row: int = 3
    hostile_col: int = -1

    def __post_init__(self):
        for name, allowed in (("pen", PENS), ("ink", INKS), ("paper", PAPERS), ("desk", DESKS),
                              ("framing", FRAMINGS), ("hostile", HOSTILE)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {tuple(allowed)}, not {getattr(self, name)!r}")
        if self.desk and self.capture != "photo":
            raise ValueError("a photo on a desk needs capture='photo'")
        table = self.paper.startswith("table")
        if table and (self.touching or self.gap_after):
            raise ValueError("touching digits and a column gap are drawn on plain or lined paper")
        if table and self.hostile and not -1 <= self.hostile_col < self.layout.cols:
            raise ValueError("in a table, hostile_col must be one of its columns (or -1)")
        if not 0 <= self.gap_after < self.layout.cols or not 0 <= self.hostile_row < self.layout.rows:
            raise ValueError("gap_after and hostile_row must lie inside the layout")

    @property
    def traits(self) -> frozenset[str]:
        flags = {f for f in ("touching", "split_strokes") if getattr(self, f)}
        flags |= {"gap_after"} if self.gap_after else set()
        flags |= {f"desk_{self.desk}", f"framing_{self.framing}"} if self.desk else set()
        flags |= {f"hostile_{self.hostile}"} if self.hostile else set()
        return super().traits | flags

    @property
    def name(self) -> str:
        extra = sorted(self.traits - hw.SheetSpec(writer=self.writer).traits - {"photo"})
        where = f"_r{self.hostile_row}c{self.hostile_col}" if self.hostile else ""
        return super().name + ("_" + "-".join(extra) if extra else "") + where


# --------------------------------------------------------------------------- digits written apart


def _dense(poly: np.ndarray, step: float) -> np.ndarray:
    """Points along a polyline no more than ``step`` apart."""
    if len(poly) < 2:
        return poly
    seg = np.hypot(*np.diff(poly, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.linspace(0, along[-1], max(2, int(along[-1] / step) + 2))
    return np.column_stack([np.interp(s, along, poly[:, 0]), np.interp(s, along, poly[:, 1])])


def _distance_field(polys, origin: np.ndarray, size: float, res: float) -> np.ndarray:
    """Distance (in stroke units) from every point of a square grid to the nearest of ``polys``."""
    n = int(size * res) + 1
    canvas = np.full((n, n), 255, np.uint8)
    for p in polys:
        q = np.round((np.vstack([p, p]) if len(p) == 1 else p - origin) * res).astype(np.int32)
        cv2.polylines(canvas, [q], False, 0, 1)
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 5) / res


def _first_clear_shift(mover: np.ndarray, field: np.ndarray, origin, res: float, shifts, direction, gap):
    """The smallest of ``shifts`` along ``direction`` that puts every mover point ``gap`` from the rest."""
    points = mover[None] + shifts[:, None, None] * np.asarray(direction)[None, None, :]
    idx = np.clip(np.round((points - origin) * res).astype(int), 0, field.shape[0] - 1)
    clear = field[idx[..., 1], idx[..., 0]].min(1) >= gap
    return shifts[np.argmax(clear)] if clear.any() else None


def _corner_cut(poly: np.ndarray, label: int) -> int | None:
    """Where a one-stroke digit is split in two: a 9 where its loop ends, others at their sharpest corner."""
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(poly, axis=0).T))])
    if along[-1] <= 0:
        return None
    t = along / along[-1]
    if label == 9:
        top, height = poly[:, 1].min(), np.ptp(poly[:, 1])
        upper = np.nonzero((poly[:, 1] < top + 0.55 * height) & (t < 0.85))[0]
        return int(upper[-1]) if len(upper) else None
    d = np.diff(poly, axis=0)
    heading = np.arctan2(d[:, 1], d[:, 0])
    turn = np.abs((np.diff(heading) + np.pi) % (2 * np.pi) - np.pi)
    inner = np.nonzero((t[1:-1] > 0.2) & (t[1:-1] < 0.8))[0]
    return int(inner[np.argmax(turn[inner])] + 1) if len(inner) else None


def _pieces(strokes, label: int) -> tuple[list[np.ndarray], int] | None:
    """The digit's strokes (a one-stroke digit cut in two) and which of them moves (the smaller one)."""
    polys = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes]
    if len(polys) == 1:
        cut = _corner_cut(polys[0], label)
        if cut is None or cut < 2 or cut > len(polys[0]) - 3:
            return None
        polys = [polys[0][: cut + 1], polys[0][cut + 1 :]]
        return polys, 1  # a 9's tail, the second stroke of a 4, 5 or 7
    lengths = [np.hypot(*np.diff(p, axis=0).T).sum() if len(p) > 1 else 0.0 for p in polys]
    return polys, int(np.argmin(lengths))


def split_strokes(strokes, label: int, pen_frac: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Pull one stroke of a digit away from the others until a gap shows (stroke coordinates).

    The gap between the strokes' centre lines is ``pen_frac`` (the pen, as a fraction of the digit
    height) plus 6-11 % of the digit's height; the stroke moves the shortest way that opens it (a
    9's tail only downwards), at most 45 % of the height. Returns the strokes unchanged if none does.
    """
    found = _pieces(strokes, label)
    if found is None:
        return tuple(strokes)
    polys, moving = found
    points = np.vstack(polys)
    height = max(np.ptp(points[:, 1]), np.ptp(points[:, 0]) * 0.5, 1e-6)
    gap = (pen_frac + rng.uniform(0.06, 0.11)) * height * 1.25  # the digit shrinks a little as it widens
    mover = _dense(polys[moving], height / 60)
    rest = [p for k, p in enumerate(polys) if k != moving]
    away = mover.mean(0) - np.vstack(rest).mean(0)
    directions = [(0, 1), (0.5, 0.87), (-0.5, 0.87)] if label == 9 else [
        (0, -1), (0, 1), (-1, 0), (1, 0), (0.71, -0.71), (-0.71, -0.71), (0.71, 0.71), (-0.71, 0.71)]
    if label != 9 and np.hypot(*away) > 1e-6:
        directions.append(tuple(away / np.hypot(*away)))
    reach = 0.45 * height + gap
    origin = points.min(0) - reach
    size = float(np.ptp(points, 0).max() + 2 * reach)
    res = 300 / size
    field = _distance_field(rest, origin, size, res)
    shifts = np.arange(0, 0.45, 0.01) * height
    best = None
    for direction in directions:
        shift = _first_clear_shift(mover, field, origin, res, shifts, direction, gap)
        if shift is not None and (best is None or shift < best[0]):
            best = (shift, np.array(direction))
    if best is None:
        return tuple(strokes)
    polys[moving] = polys[moving] + best[0] * best[1]
    return tuple(p.astype(np.float32) for p in polys)


# --------------------------------------------------------------------------- tables drawn by hand


def _wavy(start, stop, rng: np.random.Generator, wobble: float, bow: float) -> np.ndarray:
    """A freehand line from ``start`` to ``stop``: a slight bow and a wobble of a few pixels."""
    start, stop = np.float64(start), np.float64(stop)
    length = float(np.hypot(*(stop - start)))
    t = np.linspace(0, 1, max(3, int(length / 3)))
    normal = np.array([-(stop - start)[1], (stop - start)[0]]) / max(length, 1e-6)
    offset = bow * length * 4 * t * (1 - t)
    for _ in range(3):
        period = rng.uniform(120, 600)
        offset = offset + rng.uniform(0.3, 1.0) * wobble * np.sin(2 * np.pi * t * length / period + rng.uniform(0, 6.3))
    return start + np.outer(t, stop - start) + np.outer(offset, normal)


def _broken(line: np.ndarray, crossings: np.ndarray, rng: np.random.Generator, gap: float) -> list[np.ndarray]:
    """The line in pieces: the pen lifted at some crossings (a gap), restarted a little off elsewhere."""
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
    keep = np.ones(len(line), bool)
    for s in crossings:
        if rng.random() < 0.35:
            keep &= np.abs(along - s) > rng.uniform(0.5, 1.0) * gap
    edges = np.nonzero(np.diff(keep.astype(np.int8)))[0] + 1
    pieces = [p for p, k in zip(np.split(line, edges), np.split(keep, edges)) if k[0] and len(p) > 1]
    restarted = []
    for p in pieces:  # a long piece drawn in two strokes that overlap and miss by a pixel or two
        if len(p) > 60 and rng.random() < 0.5:
            k = int(rng.integers(20, len(p) - 20))
            restarted += [p[: k + 2], p[k:] + rng.normal(0, 1.0, 2)]
        else:
            restarted.append(p)
    return restarted


@dataclass(frozen=True)
class Cells:
    """Where every column and row of a sheet lies (page pixels): column c spans lo[c]..hi[c]."""

    lo: np.ndarray
    hi: np.ndarray
    tops: np.ndarray  # row r's cell spans tops[r]..tops[r + 1] (tables)


def _hand_table(spec, g, rng: np.random.Generator) -> tuple[np.ndarray, tuple, Cells]:
    """A table ruled by hand: uneven cells, wobbly lines broken at some crossings (alpha mask, colour)."""
    rows, cols = spec.layout.rows, spec.layout.cols
    widths = g.col_w * rng.uniform(0.9, 1.1, cols)
    widths *= cols * g.col_w / widths.sum()
    heights = g.pitch * rng.uniform(0.94, 1.06, rows)
    heights *= rows * g.pitch / heights.sum()
    xs = g.left + np.concatenate([[0.0], np.cumsum(widths)])
    ys = g.top + np.concatenate([[0.0], np.cumsum(heights)])
    pencil = spec.paper == "table_pencil"
    thick = 1 if pencil else 2
    mask = np.zeros((g.height, g.width), np.uint8)
    wobble = rng.uniform(1.5, 3.0)
    lines = []
    for y in ys:
        over = rng.uniform(-0.15, 0.35, 2) * g.col_w  # lines run past the frame, or stop short
        lines.append((_wavy((xs[0] - over[0], y + rng.normal(0, 2)), (xs[-1] + over[1], y + rng.normal(0, 2)),
                            rng, wobble, rng.uniform(-0.004, 0.004)), xs - xs[0] + over[0]))
    for x in xs:
        over = rng.uniform(-0.1, 0.25, 2) * g.pitch
        lines.append((_wavy((x + rng.normal(0, 2), ys[0] - over[0]), (x + rng.normal(0, 2), ys[-1] + over[1]),
                            rng, wobble, rng.uniform(-0.004, 0.004)), ys - ys[0] + over[0]))
    for line, crossings in lines:
        for piece in _broken(line, crossings, rng, gap=rng.uniform(5, 11)):
            cv2.polylines(mask, [np.round(piece * (1 << hw.SHIFT)).astype(np.int32)], False, 255, thick,
                          cv2.LINE_AA, hw.SHIFT)
    alpha = mask.astype(np.float32) / 255
    if pencil:  # graphite: faint and grainy
        alpha *= rng.uniform(0.35, 0.55) * np.clip(0.75 + 0.35 * rng.standard_normal(alpha.shape, np.float32), 0.2, 1.2)
        colour = (95.0, 95.0, 100.0)
    else:
        alpha *= 0.85
        colour = tuple(np.float32(INKS[spec.ink if spec.ink in ("black", "blue") else "black"]))
    return alpha, colour, Cells(xs[:-1], xs[1:], ys)


def _dash_line(mask, p, q, thick: int, style: str, rng: np.random.Generator) -> None:
    """A printed line from p to q: solid, dashed or dotted."""
    p, q = np.float64(p), np.float64(q)
    length = float(np.hypot(*(q - p)))
    unit = (q - p) / max(length, 1e-6)
    if style == "solid":
        cv2.line(mask, tuple(np.int32(p)), tuple(np.int32(q)), 255, thick, cv2.LINE_AA)
    elif style == "dashed":
        dash, space = rng.uniform(9, 16), rng.uniform(4, 8)
        for s in np.arange(0, length, dash + space):
            a, b = p + unit * s, p + unit * min(length, s + dash)
            cv2.line(mask, tuple(np.int32(a)), tuple(np.int32(b)), 255, thick, cv2.LINE_AA)
    else:  # dotted
        for s in np.arange(0, length, rng.uniform(2.2, 3.0) * thick):
            c = p + unit * s
            cv2.circle(mask, (int(c[0] * 16), int(c[1] * 16)), int(thick / 2 * 16 + 8), 255, -1, cv2.LINE_AA, 4)


def _dashed_table(spec, g, rng: np.random.Generator) -> tuple[np.ndarray, tuple, Cells]:
    """A printed table with thick lines: the frame solid, each inner line solid, dashed or dotted."""
    rows, cols = spec.layout.rows, spec.layout.cols
    thick = int(rng.integers(3, 6))
    mask = np.zeros((g.height, g.width), np.uint8)
    xs = g.left + np.arange(cols + 1) * g.col_w
    ys = g.top + np.arange(rows + 1) * g.pitch
    styles = ("solid", "dashed", "dotted")
    for r, y in enumerate(ys):
        style = "solid" if r in (0, rows) else styles[rng.choice(3, p=[0.3, 0.4, 0.3])]
        _dash_line(mask, (xs[0], y), (xs[-1], y), thick, style, rng)
    for c, x in enumerate(xs):
        style = "solid" if c in (0, cols) else styles[rng.choice(3, p=[0.3, 0.4, 0.3])]
        _dash_line(mask, (x, ys[0]), (x, ys[-1]), thick, style, rng)
    grey = float(rng.integers(40, 95))
    return mask.astype(np.float32) / 255 * 0.92, (grey, grey, grey), Cells(xs[:-1], xs[1:], ys)


def _plain_cells(spec, g) -> Cells:
    """Columns of equal width, the columns from ``gap_after`` on moved right by the gap."""
    cols = spec.layout.cols
    extra = 0.8 if spec.gap_after else 0.0  # the gap, in columns
    width = g.usable_w / (cols + extra)
    lo = g.left + np.arange(cols) * width + np.where(np.arange(cols) >= spec.gap_after, extra * width, 0) * bool(extra)
    return Cells(lo, lo + width, g.top + np.arange(spec.layout.rows + 1) * g.pitch)


# --------------------------------------------------------------------------- marks other than digits


def _blot(height: float, rng: np.random.Generator) -> np.ndarray:
    """An ink blot: a round-ish blob of overlapping drops, with a few splashes (mask, 255 = ink)."""
    radius = rng.uniform(0.16, 0.24) * height
    size = int(radius * 5)
    mask = np.zeros((size, size), np.float32)
    centre = np.array([size / 2, size / 2])
    for _ in range(int(rng.integers(4, 8))):
        c = centre + rng.normal(0, 0.35 * radius, 2)
        cv2.circle(mask, tuple(np.int32(c)), int(radius * rng.uniform(0.5, 0.9)), 1.0, -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(1, 4))):
        c = centre + rng.normal(0, 1.1 * radius, 2)
        cv2.circle(mask, tuple(np.int32(c)), max(1, int(radius * rng.uniform(0.12, 0.25))), 1.0, -1, cv2.LINE_AA)
    mask = np.where(cv2.GaussianBlur(mask, (0, 0), radius * 0.2) > 0.4, 255, 0).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _scribble(width: float, height: float, pen: float, rng: np.random.Generator) -> np.ndarray:
    """A scribbled row: a loopy line running along ``width`` pixels, about ``height`` tall."""
    t = np.linspace(0, 1, 1200)
    turns = rng.uniform(10, 16)
    radius = height * rng.uniform(0.28, 0.4)
    phase = 2 * np.pi * turns * (t + 0.02 * np.cumsum(rng.normal(0, 1, t.size)) / np.sqrt(t.size))  # uneven loops
    size = radius * (1 + 0.35 * np.sin(2 * np.pi * t * rng.uniform(2, 5) + rng.uniform(0, 6.3)))
    x = t * (width - 2.7 * radius) + 1.35 * radius + size * np.cos(phase) * rng.uniform(0.6, 1.0)
    y = height / 2 + size * np.sin(phase) + height * 0.08 * np.sin(2 * np.pi * t * rng.uniform(1, 3))
    canvas = np.zeros((int(height + 2 * pen + 4), int(width + 2 * pen + 4)), np.uint8)
    points = np.column_stack([x, y]) + pen + 2
    cv2.polylines(canvas, [np.round(points * (1 << hw.SHIFT)).astype(np.int32)], False, 255, max(1, int(round(pen))),
                  cv2.LINE_AA, hw.SHIFT)
    ys, xs = np.nonzero(canvas)
    return canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _letters(height: float, pen: float, rng: np.random.Generator, word: str = LETTERS_WORD) -> list[np.ndarray]:
    """A handwritten word (:data:`LETTERS_WORD`), one mask per letter, in the lower-case handwriting font."""
    style = synth.WriterStyle(font=paths.FONTS_DIR / "Breip.ttf", jitter=0.8, pen_px=pen)
    tall = set("bdfhklt")
    return [synth.handwritten_glyph(ch, int(height * (1.0 if ch in tall else 0.62)), style, rng) for ch in word]


# --------------------------------------------------------------------------- the page


def _geometry(spec: StudentSpec, pools) -> hw._Geometry:
    """The page geometry of :mod:`.handwriting`, digits smaller where a column gap narrows the columns."""
    g = hw._geometry(spec, pools)
    if not spec.gap_after:
        return g
    narrow = g.usable_w / (spec.layout.cols + 0.8)
    wide = np.percentile([hw._aspect(d.strokes) for pool in pools.values() for d in pool], 80)
    return hw._Geometry(g.width, g.height, g.left, g.top, narrow, g.pitch, min(g.digit_h, 0.75 * narrow / wide), g.table)


def _rules(spec: StudentSpec, g, rng) -> tuple[np.ndarray | None, tuple, Cells]:
    """The table or lines on the paper: alpha (float32 or None), colour, the cells."""
    if spec.paper in HAND_TABLES:
        return _hand_table(spec, g, rng)
    if spec.paper == "table_dashed":
        return _dashed_table(spec, g, rng)
    mask, colour = hw._rules(spec, g, rng)
    alpha = None if mask is None else mask.astype(np.float32) / 255 * 0.9
    if spec.paper.startswith("table"):
        xs = g.left + np.arange(spec.layout.cols + 1) * g.col_w
        return alpha, colour, Cells(xs[:-1], xs[1:], g.top + np.arange(spec.layout.rows + 1) * g.pitch)
    return alpha, colour, _plain_cells(spec, g)


def _ink_alpha(mask: np.ndarray, spec: StudentSpec, rng: np.random.Generator) -> np.ndarray:
    """How much ink a stroke mask lays down: nearly full, or faint and grainy for a pencil."""
    alpha = mask.astype(np.float32) / 255
    if spec.ink != "pencil":
        return alpha * rng.uniform(0.85, 1.0)
    grain = np.clip(0.8 + 0.3 * rng.standard_normal(mask.shape, np.float32), 0.3, 1.2)
    return alpha * rng.uniform(0.5, 0.7) * grain


def _row_lefts(spec, g, cells: Cells, widths: np.ndarray, shifted: bool, pen_px: float, rng) -> np.ndarray:
    """Left edges of a row's items: in their cells (tables), else near the columns or unevenly spaced.

    A row with more or fewer items than columns (a digit too many, a word) is written along the row.
    """
    n = len(widths)
    crowded = n != len(cells.lo)
    if g.table:
        centres = (cells.lo + cells.hi) / 2 + rng.normal(0, 0.05, n) * (cells.hi - cells.lo)
        low = cells.lo + pen_px + 4
        return np.clip(centres - widths / 2, low, np.maximum(low, cells.hi - pen_px - 4 - widths))
    if crowded or spec.uneven:  # written along the row: even or uneven gaps
        start = cells.lo[0] + (rng.uniform(0.0, 0.3) * g.col_w if spec.uneven else 0.15 * g.col_w)
        start += 0.5 * g.col_w if shifted else 0.0
        gaps = rng.uniform(0.5, 1.6, n - 1) if spec.uneven else np.ones(n - 1)
        room = max(0.0, (g.left + g.usable_w - start) * rng.uniform(0.88, 0.97) - widths.sum())
        least = (0.1 if crowded else 0.25) * g.digit_h
        gaps = np.maximum(gaps * room / max(gaps.sum(), 1e-6), max(least, (2 if crowded else 3) * pen_px))
        if spec.gap_after and not crowded:
            gaps[spec.gap_after - 1] += 0.8 * g.col_w
            gaps[np.arange(n - 1) != spec.gap_after - 1] *= 0.9
        lefts = start + np.concatenate([[0.0], np.cumsum(widths[:-1] + gaps)])
    else:
        lefts = (cells.lo + cells.hi) / 2 + rng.normal(0, 0.03 * g.col_w, n) - widths / 2
    least = max(0.1 * g.digit_h, 2 * pen_px) if crowded else max(0.15 * g.digit_h, 2 * pen_px)
    for c in range(1, n):
        lefts[c] = max(lefts[c], lefts[c - 1] + widths[c - 1] + least)
    right = g.left + g.usable_w + (0.6 * g.left if crowded else 0.0)
    return lefts - np.clip(lefts[-1] + widths[-1] - right, 0.0, max(0.0, lefts[0] - 0.5 * g.left))


def _contact_shift(a: np.ndarray, ax: int, ay: int, b: np.ndarray, bx: int, by: int, extra: int) -> int | None:
    """How far ``b`` must move left until its ink touches ``a``'s (then ``extra`` more), or None."""
    ink_a, ink_b = a >= 96, b >= 96
    for shift in range(0, bx - ax - a.shape[1] // 3):
        x = bx - shift
        x0, x1 = max(ax, x), min(ax + a.shape[1], x + b.shape[1])
        y0, y1 = max(ay, by), min(ay + a.shape[0], by + b.shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        if (ink_a[y0 - ay : y1 - ay, x0 - ax : x1 - ax] & ink_b[y0 - by : y1 - by, x0 - x : x1 - x]).any():
            return shift + extra
    return None


def _touch(row_masks, lefts, ys, pairs, pen_px: float, rng) -> list[int]:
    """Move the digits after each pair's left one so that the pair touches; returns the pairs that do."""
    done = []
    for c in pairs:
        extra = int(round(rng.uniform(0, 1.0) * pen_px))
        shift = _contact_shift(row_masks[c], int(round(lefts[c])), ys[c], row_masks[c + 1],
                               int(round(lefts[c + 1])), ys[c + 1], extra)
        if shift is not None:
            lefts[c + 1 :] -= shift
            done.append(c)
    return done


def _items(spec: StudentSpec, r: int, digits, g, pen_px: float, rng, hostile_rng, extra=None) -> tuple[list, list]:
    """A row's masks in writing order, and for each its digit (or None with the kind of mark)."""
    masks = []
    for d in digits:
        strokes = d.strokes
        if spec.split_strokes and d.label in SPLIT_LABELS:
            strokes = split_strokes(strokes, d.label, pen_px / g.digit_h, hostile_rng)
        masks.append(hw.draw_digit(
            strokes, g.digit_h * (rng.uniform(0.88, 1.08) if spec.wobble else rng.uniform(0.96, 1.03)), pen_px,
            slant_deg=rng.normal(0, 2), rotate_deg=rng.normal(0, 2.5 if spec.wobble else 1.0),
            max_width_px=(0.72 if g.table else 0.9) * g.col_w))
    owners = list(digits)
    if spec.hostile and r == spec.hostile_row and not g.table:  # a table's: _table_hostile, once placed
        masks, owners = _hostile_row(spec, masks, owners, g, pen_px, hostile_rng, (extra,))
    return masks, owners


def _hostile_row(spec, masks, owners, g, pen_px, rng, spec_extra) -> tuple[list, list]:
    """Row ``hostile_row`` as the hostile trait writes it (a digit too many, a blot, letters, a scribble)."""
    at = len(masks) if spec.hostile_col < 0 else spec.hostile_col + 1
    if spec.hostile == "extra_digit":
        extra = spec_extra[0]
        mask = hw.draw_digit(extra.strokes, g.digit_h * rng.uniform(0.96, 1.03), pen_px,
                             slant_deg=rng.normal(0, 2), max_width_px=0.9 * g.col_w)
        return masks[:at] + [mask] + masks[at:], owners[:at] + ["extra_digit"] + owners[at:]
    if spec.hostile == "blot":
        return masks[:at] + [_blot(g.digit_h, rng)] + masks[at:], owners[:at] + ["blot"] + owners[at:]
    if spec.hostile == "letters":
        letters = _letters(g.digit_h, pen_px / 2, rng)
        return letters, ["letters"] * len(letters)
    return [_scribble(g.usable_w * rng.uniform(0.6, 0.85), g.digit_h * 0.8, pen_px, rng)], ["scribble"]


TABLE_WORD = "worksheets"  # a table's row of letters: one letter a cell (repeated for more than 10 columns)


def _fit_width(mask: np.ndarray, width: float) -> np.ndarray:
    """``mask`` shrunk (keeping its aspect) to at most ``width`` pixels wide."""
    if mask.shape[1] <= width:
        return mask
    scale = max(1.0, width) / mask.shape[1]
    size = (max(1, int(width)), max(1, int(round(mask.shape[0] * scale))))
    return np.where(cv2.resize(mask, size, interpolation=cv2.INTER_AREA) >= 96, 255, 0).astype(np.uint8)


def _table_hostile(spec, g, cells: Cells, r: int, items, pen_px: float, above, rng, extra) -> list[tuple]:
    """Row ``r`` of a table, placed as without the mark, spoilt by it the way a student spoils a table.

    ``items``: (mask, alpha, owner, left, top, cell) of the row's digits as placed; the main stream
    has drawn them all, so every other row is as on the sheet without the mark. ``rng``: the marks'
    own stream. Returns the items to draw, the marks with the cell (column) they are in:

    * ``extra_digit``: cell ``hostile_col`` holds its digit and the same digit again on its right,
      both written smaller to fit, apart; with ``hostile_col=-1`` a 0 is written just right of the
      table's frame, in the row (column ``cols``, 0-based);
    * ``blot``: a blot beside the digit of cell ``hostile_col`` (the last with -1), on its right, the
      digit moved left in its cell (and written narrower if the cell has no room);
    * ``letters``: a letter of :data:`TABLE_WORD` in each cell instead of its digit;
    * ``scribble``: one scribble along the row, through its cells, instead of its digits.
    """
    pad = pen_px + 4  # as _row_lefts: no ink nearer a cell's line
    kind, lay = spec.hostile, spec.layout
    cell_lo, cell_hi = cells.lo + pad, cells.hi - pad
    if kind == "letters":
        word = (TABLE_WORD * (lay.cols // len(TABLE_WORD) + 1))[: lay.cols]
        out = []
        for c, mask in enumerate(_letters(g.digit_h, pen_px / 2, rng, word)):
            mask = _fit_width(mask, cell_hi[c] - cell_lo[c])
            h, w = mask.shape
            centre = (cells.lo[c] + cells.hi[c]) / 2 + rng.normal(0, 0.05) * (cells.hi[c] - cells.lo[c])
            x = float(np.clip(centre - w / 2, cell_lo[c], max(cell_lo[c], cell_hi[c] - w)))
            bottom = _cell_y(cells, r, int(round(g.digit_h)), rng) + int(round(g.digit_h))  # on a baseline
            y = _clear_of(above, int(round(x)), bottom - h, bottom - h, mask.shape)
            out.append((mask, _ink_alpha(mask, spec, rng), "letters", x, y, c))
        return out
    if kind == "scribble":
        span = cells.hi[-1] - cells.lo[0]
        mask = _scribble(span * rng.uniform(0.7, 0.92), g.digit_h * 0.8, pen_px, rng)
        h, w = mask.shape
        x = cells.lo[0] + (span - w) * rng.uniform(0.15, 0.85)
        y = _cell_y(cells, r, h, rng)
        y = _clear_of(above, int(round(x)), y, y, mask.shape)
        through = tuple(c for c in range(lay.cols) if cells.lo[c] < x + w and cells.hi[c] > x)
        return [(mask, _ink_alpha(mask, spec, rng), "scribble", x, y, through)]
    if kind == "extra_digit" and spec.hostile_col < 0:  # the row went on past the frame
        x = cells.hi[-1] + pad + rng.uniform(0.05, 0.15) * g.col_w
        room = g.width - x - pad - 4
        mask = hw.draw_digit(extra.strokes, g.digit_h * rng.uniform(0.9, 1.0), pen_px, slant_deg=rng.normal(0, 2),
                             rotate_deg=rng.normal(0, 1.0), max_width_px=min(0.72 * g.col_w, room))
        y = _cell_y(cells, r, mask.shape[0], rng)
        y = _clear_of(above, int(round(x)), y, y, mask.shape)
        return items + [(mask, _ink_alpha(mask, spec, rng), "extra_digit", x, y, lay.cols)]
    c = spec.hostile_col if spec.hostile_col >= 0 else lay.cols - 1
    mask, alpha, digit, left, top, _ = items[c]
    lo, hi = cell_lo[c], cell_hi[c]
    gap = max(2 * pen_px + 2, rng.uniform(0.1, 0.18) * g.digit_h)

    def redraw(strokes, label, height, width):
        if spec.split_strokes and label in SPLIT_LABELS:
            strokes = split_strokes(strokes, label, pen_px / g.digit_h, rng)
        return hw.draw_digit(strokes, height, pen_px, slant_deg=rng.normal(0, 2), rotate_deg=rng.normal(0, 1.0),
                             max_width_px=width)

    if kind == "extra_digit":  # the digit and the same again, squeezed into the cell
        size, width = g.digit_h * rng.uniform(0.72, 0.85), (hi - lo - gap) / 2
        first = redraw(digit.strokes, digit.label, size * rng.uniform(0.97, 1.03), width)
        second = redraw(extra.strokes, extra.label, size * rng.uniform(0.97, 1.03), width)
        free = max(0.0, hi - lo - first.shape[1] - gap - second.shape[1])
        x1 = lo + free * rng.uniform(0.2, 0.7)
        x2 = x1 + first.shape[1] + gap + (free - (x1 - lo)) * rng.uniform(0, 0.5)
        bottom = _cell_y(cells, r, int(round(size)), rng) + int(round(size))  # on one baseline
        y1 = _clear_of(above, int(round(x1)), bottom - first.shape[0], bottom - first.shape[0], first.shape)
        y2 = _clear_of(above, int(round(x2)), bottom - second.shape[0] + int(rng.integers(-3, 4)),
                       bottom - second.shape[0], second.shape)
        placed = [(first, _ink_alpha(first, spec, rng), digit, x1, y1, None),
                  (second, _ink_alpha(second, spec, rng), "extra_digit", x2, y2, c)]
    else:  # a blot on the right of the cell's digit
        blot = _blot(g.digit_h * rng.uniform(0.9, 1.1), rng)  # as large as on plain paper
        if hi - lo - mask.shape[1] - gap < blot.shape[1]:  # the digit written narrower, to leave room for it
            old_h = mask.shape[0]
            mask = redraw(digit.strokes, digit.label, old_h, max(0.45 * g.digit_h, hi - lo - gap - blot.shape[1]))
            alpha = _ink_alpha(mask, spec, rng)
            top += old_h - mask.shape[0]
        blot = _fit_width(blot, hi - lo - mask.shape[1] - gap)
        free = max(0.0, hi - lo - mask.shape[1] - gap - blot.shape[1])
        x1 = lo + free * rng.uniform(0.0, 0.4)
        x2 = x1 + mask.shape[1] + gap + (free - (x1 - lo)) * rng.uniform(0.0, 0.7)
        centre = top + mask.shape[0] * rng.uniform(0.45, 0.8)  # beside the digit, at mid height or low
        y2 = int(round(np.clip(centre - blot.shape[0] / 2, cells.tops[r] + 4, cells.tops[r + 1] - 4 - blot.shape[0])))
        placed = [(mask, alpha, digit, x1, top, None), (blot, _ink_alpha(blot, spec, rng), "blot", x2, y2, c)]
    (m1, _, _, x1, y1, _), (m2, _, _, x2, y2, _) = placed
    if int(round(x1)) + m1.shape[1] + 2 * pen_px > int(round(x2)) or int(round(x2)) + m2.shape[1] > cells.hi[c]:
        raise ValueError(f"{spec.name}: the {kind} does not fit beside the digit of row {r}, column {c}")
    return items[:c] + placed + items[c + 1 :]


def _item_y(spec, g, cells: Cells, r: int, h: int, owner, tilt: float, bow: float, x: float, rng) -> int:
    """The top of an item: a little below the middle of its cell (tables), else on the row's baseline."""
    if g.table:
        return _cell_y(cells, r, h, rng)
    along = (x - g.width / 2) / (g.usable_w / 2)
    base = g.baseline(r) - np.tan(np.radians(tilt)) * along * g.usable_w / 2 + bow * (along**2 - 1 / 3)
    if spec.wobble:
        base += np.clip(rng.normal(0, 0.05 * g.digit_h), -0.12 * g.digit_h, 0.12 * g.digit_h)
    if owner == "blot":
        base -= rng.uniform(0.15, 0.5) * g.digit_h  # beside the digit, at mid height or low
    return int(round(base - h))


def _cell_y(cells: Cells, r: int, h: int, rng) -> int:
    """The top of an item ``h`` tall in row ``r`` of a table: a little below the middle of the cell."""
    top, bottom = cells.tops[r], cells.tops[r + 1]
    room = bottom - top - 2 * 4 - h
    return int(round(top + 4 + room * np.clip(rng.normal(0.55, 0.06), 0, 1)))


def _crossing(g, cells: Cells, r: int, y: int, shape, rng) -> int:
    """On a hand-ruled table, some digits run over the line below (or above) their cell."""
    h = shape[0]
    if rng.random() > 0.12:
        return y
    if rng.random() < 0.6:  # down across the line below
        return int(round(cells.tops[r + 1] - h * (1 - rng.uniform(0.1, 0.2))))
    return int(round(cells.tops[r] - h * rng.uniform(0.08, 0.15)))


def _clear_of(boxes, x: int, y: int, fallback: int, shape) -> int:
    """``y``, or ``fallback`` moved down below any box it would overlap (a digit of the row above)."""
    h, w = shape
    for candidate in (y, fallback):
        hits = [b for b in boxes if min(x + w, b[0] + b[2]) > max(x, b[0]) and min(candidate + h, b[1] + b[3]) > max(candidate, b[1])]
        if not hits:
            return candidate
    return max(b[1] + b[3] for b in hits) + 3


def _pick_extra(spec: StudentSpec, pools) -> object | None:
    """The digit written too many (the row's next digit again, or a 0 after the row's last).

    On a table it is one the sheet's digits leave over (not taken from the pool), so that every
    other digit is the one the sheet without the mark has.
    """
    if spec.hostile != "extra_digit":
        return None
    lay = spec.layout
    label = lay.label_at(spec.hostile_row, spec.hostile_col) if spec.hostile_col >= 0 else lay.digits[0]
    if spec.paper.startswith("table"):
        need = sum(lay.label_at(r, c) == label for r in range(lay.rows) for c in range(lay.cols))
        if len(pools.get(label, ())) <= need:
            raise ValueError(f"{spec.name}: no {label} left for the digit too many")
        return pools[label][0]  # the rows pop their digits from the end
    if not pools.get(label):
        raise ValueError(f"{spec.name}: no {label} left for the digit too many")
    return pools[label].pop()


def render_page(spec: StudentSpec) -> tuple[np.ndarray, list[dict], list[dict]]:
    """The flat page of ``spec`` (BGR uint8), the digits' truth and the other marks (see :func:`render_sheet`)."""
    rng = np.random.default_rng([spec.seed, 15])
    side = np.random.default_rng([spec.seed, 15, 1])  # split strokes and hostile marks: their own stream
    spoil = np.random.default_rng([spec.seed, 15, 2])  # a table's hostile marks: the rest as without them
    lay = spec.layout
    pools = hw._choose_digits(spec, rng)
    g = _geometry(spec, pools)
    warm = rng.uniform(0, 0.04) * np.array([1.0, 0.5, 0.0])
    page = np.empty((g.height, g.width, 3), np.float32)
    page[:] = np.float32(rng.uniform(236, 250) * (1 - warm))
    alpha, colour, cells = _rules(spec, g, rng)
    if alpha is not None:
        hw._composite(page, alpha, colour)
    if spec.paper == "lined":
        margin = np.zeros(page.shape[:2], np.float32)
        cv2.line(margin, (int(g.left * 0.6), 0), (int(g.left * 0.6), g.height), 1.0, 2)
        hw._composite(page, margin * 0.8, (120, 110, 225))
    pen_px = max(2.0, PENS[spec.pen] * g.digit_h * rng.uniform(0.92, 1.08))
    ink = np.float32(INKS[spec.ink]) + rng.uniform(-8, 8, 3).astype(np.float32)
    drift = spec.drift and spec.paper == "plain"
    tilt0 = rng.uniform(1.5, 3.5) * rng.choice([-1, 1]) if drift else 0.0
    shifted_row = int(rng.integers(lay.rows)) if spec.uneven else -1
    touch_rows = set(rng.choice(lay.rows, max(2, lay.rows // 3), replace=False).tolist()) if spec.touching else set()
    extra = _pick_extra(spec, pools)
    truth, marks = [], []
    for r in range(lay.rows):
        tilt = tilt0 + (rng.normal(0, 0.4) if drift else 0.0)
        bow = rng.uniform(-0.05, 0.05) * g.pitch if drift else 0.0
        digits = [pools[lay.label_at(r, c)].pop() for c in range(lay.cols)]
        masks, owners = _items(spec, r, digits, g, pen_px, rng, side, extra)
        widths = np.array([m.shape[1] for m in masks], float)
        lefts = _row_lefts(spec, g, cells, widths, r == shifted_row, pen_px, rng)
        if owners[0] == "letters":  # a word: its letters close together
            lefts = lefts[0] + np.concatenate([[0.0], np.cumsum(widths[:-1] + 0.12 * g.digit_h)])
        ys = [_item_y(spec, g, cells, r, m.shape[0], o, tilt, bow, lefts[k] + m.shape[1] / 2, rng)
              for k, (m, o) in enumerate(zip(masks, owners))]
        above = [t["box"] for t in truth + marks if t["row"] == r - 1 and "box" in t]
        if spec.paper in HAND_TABLES:
            ys = [_clear_of(above, int(round(x)), _crossing(g, cells, r, y, m.shape, side), y, m.shape)
                  for x, y, m in zip(lefts, ys, masks)]
        if r in touch_rows:
            pairs = sorted(set(rng.choice(lay.cols - 1, int(rng.integers(1, 3)), replace=False).tolist()))
            for c in _touch(masks, lefts, ys, pairs, pen_px, rng):
                marks.append({"kind": "touching", "row": r, "cols": (c, c + 1)})
        alphas = [_ink_alpha(m, spec, rng) for m in masks]
        items = list(zip(masks, alphas, owners, lefts, ys, [None] * len(masks)))
        if g.table and spec.hostile and r == spec.hostile_row:
            items = _table_hostile(spec, g, cells, r, items, pen_px, above, spoil, extra)
        col = 0
        for mask, alpha, owner, left, y, cell in items:
            h, w = mask.shape
            x = int(round(left))
            if x < 0 or y < 0 or x + w > g.width or y + h > g.height:
                raise ValueError(f"{spec.name}: an item of row {r} does not fit on the page (box {(x, y, w, h)})")
            hw._composite(page, alpha, ink, x, y)
            if isinstance(owner, str):
                mark = {"kind": owner, "row": r, "after_col": col - 1}
                if cell is not None:  # a table's cell (column) it is in, or the columns a scribble runs through
                    mark["cols" if isinstance(cell, tuple) else "col"] = cell
                marks.append({**mark, "box": (x, y, w, h), "page_box": (x, y, w, h)})
                continue
            truth.append({"row": r, "col": col, "label": owner.label, "writer": spec.writer, "index": owner.index,
                          "box": (x, y, w, h), "page_box": (x, y, w, h)})
            col += 1
    _check_apart(truth, marks, spec)
    if spec.specks:
        hw._specks(page, [t["box"] for t in truth] + [m["box"] for m in marks if "box" in m], g.digit_h, rng)
    light = hw._light(page.shape[:2], spec, rng)
    if light is not None:
        page *= light[..., None]
    return np.clip(page, 0, 255).astype(np.uint8), truth, marks


def _check_apart(truth, marks, spec) -> None:
    """No two digits' boxes overlap, but for the pairs written touching."""
    allowed = {(m["row"], c) for m in marks if m["kind"] == "touching" for c in m["cols"][:1]}
    boxes = [t["box"] for t in truth]
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            if min(a[0] + a[2], b[0] + b[2]) > max(a[0], b[0]) and min(a[1] + a[3], b[1] + b[3]) > max(a[1], b[1]):
                ti, tj = truth[i], truth[j]
                if not (ti["row"] == tj["row"] and abs(ti["col"] - tj["col"]) == 1
                        and (ti["row"], min(ti["col"], tj["col"])) in allowed):
                    raise ValueError(f"{spec.name}: digits {i} and {j} overlap")


# --------------------------------------------------------------------------- a photo on a desk


def _desk(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """The desk under the paper (BGR float32): wood grain, a dark top with a sheen, or a green mat."""
    sh, sw = -(-h // 2), -(-w // 2)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    noise = lambda sigma: cv2.GaussianBlur(rng.standard_normal((sh, sw), np.float32), (0, 0), sigma)  # noqa: E731
    if kind == "wood":
        angle = np.radians(rng.uniform(-20, 20) + rng.choice([0, 90]))
        across = xx * np.sin(angle) - yy * np.cos(angle)
        period = rng.uniform(0.015, 0.04) * sw
        warp = noise(sw * 0.05)
        warp *= 40 / max(1e-6, float(np.abs(warp).max()))
        grain = np.sin(2 * np.pi * (across + warp) / period)
        base = np.float32(rng.uniform([35, 70, 115], [65, 105, 170]))
        tone = 1 + 0.16 * grain + 0.1 * noise(1.0)
        small = base * tone[..., None]
    elif kind == "dark":
        base = np.float32(rng.uniform([22, 22, 24], [48, 46, 50]))
        cx, cy = rng.uniform(0, 1, 2)
        sheen = np.exp(-(((xx / sw - cx) ** 2 + (yy / sh - cy) ** 2) / (2 * rng.uniform(0.1, 0.25) ** 2)))
        small = base * (1 + 0.3 * noise(1.5))[..., None] + (rng.uniform(15, 35) * sheen)[..., None]
    else:  # a green desk mat
        base = np.float32(rng.uniform([55, 100, 40], [85, 135, 70]))
        small = base * (1 + 0.2 * noise(1.5) + 3.0 * noise(sw * 0.05))[..., None]
    return cv2.resize(small.astype(np.float32), (w, h))


def _desk_quad(framing: str, pw: int, ph: int, out_w: int, out_h: int, rng) -> np.ndarray:
    """Where the page's corners (TL, TR, BR, BL) land in the photo for ``framing``."""
    aspect = ph / pw
    if framing in ("left", "right"):  # the desk along one border, the paper past the other
        x0 = rng.uniform(0.05, 0.14) * out_w  # the desk's strip
        width = out_w - x0 + rng.uniform(0.01, 0.06) * out_w  # past the other border
        cx, cy = x0 + width / 2, out_h / 2 + rng.normal(0, 0.01 * out_h)
    elif framing == "both":  # the desk along both borders, the paper filling the height
        width = rng.uniform(0.9, 0.955) * out_w
        cx, cy = out_w / 2 + rng.normal(0, 0.008 * out_w), out_h / 2 + rng.normal(0, 0.01 * out_h)
    else:  # one corner outside the frame
        width = rng.uniform(0.8, 0.88) * out_w
        sx, sy = rng.choice([-1, 1], 2)
        height = width * aspect
        cx = out_w / 2 + sx * (out_w / 2 - width / 2 + rng.uniform(0.03, 0.07) * out_w)
        cy = out_h / 2 + sy * (out_h / 2 - height / 2 + rng.uniform(0.03, 0.07) * out_h)
    half = np.array([width / 2, width * aspect / 2])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    corners += rng.normal(0, 0.008 * out_w, corners.shape)  # a little perspective
    angle = np.radians(rng.normal(0, 1.2))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    quad = corners @ rot.T + [cx, cy]
    if framing == "right":  # the mirror image of "left": mirror the outline, keep the page's corners in order
        quad = np.array([[out_w - quad[1, 0], quad[1, 1]], [out_w - quad[0, 0], quad[0, 1]],
                         [out_w - quad[3, 0], quad[3, 1]], [out_w - quad[2, 0], quad[2, 1]]])
    return quad.astype(np.float32)


def _fits(boxes, matrix: np.ndarray, out_w: int, out_h: int, margin: int) -> bool:
    for box in boxes:
        x, y, w, h = hw._project_box(box, matrix)
        if x < margin or y < margin or x + w > out_w - margin or y + h > out_h - margin:
            return False
    return True


def photograph_on_desk(page: np.ndarray, seed: int, desk: str, framing: str, boxes, megapixels: float = 2.0):
    """A phone photo of ``page`` on a desk with the paper off the frame (see :class:`StudentSpec`).

    The page's outline follows ``framing``; it is drawn again (seeded) until every one of ``boxes``
    (page pixels: the writing) lies inside the photo. The paper casts a soft shadow on the desk;
    then uneven light, blur, sensor noise and JPEG as in :func:`.synth.photograph`.
    Returns (BGR uint8 image, 3x3 matrix from page to photo pixels).
    """
    rng = np.random.default_rng([seed, 15])
    out_w = int(round(np.sqrt(megapixels * 1e6 * 3 / 4)))
    out_h = int(round(out_w * 4 / 3))
    ph, pw = page.shape[:2]
    src = np.float32([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]])
    for _ in range(60):
        matrix = cv2.getPerspectiveTransform(src, _desk_quad(framing, pw, ph, out_w, out_h, rng))
        if _fits(boxes, matrix, out_w, out_h, margin=6):
            break
    else:
        raise ValueError(f"no {framing} framing keeps the writing in the photo")
    texture = cv2.GaussianBlur(rng.standard_normal((ph, pw), np.float32), (0, 0), 2) * 5
    paper = np.clip(page.astype(np.float32) * 0.95 + texture[..., None], 0, 255) * np.float32([0.97, 0.99, 1.0])
    warped = cv2.warpPerspective(paper, matrix, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpPerspective(np.ones((ph, pw), np.float32), matrix, (out_w, out_h), flags=cv2.INTER_AREA)
    table = _desk(desk, out_h, out_w, rng)
    toward = {"left": -1.0, "right": 1.0}.get(framing, rng.choice([-1.0, 1.0]))  # the shadow falls on the desk's side
    offset = np.float32([[1, 0, toward * rng.uniform(0.006, 0.015) * out_w], [0, 1, rng.uniform(0.003, 0.012) * out_w]])
    cast = cv2.warpAffine(inside, offset, (out_w, out_h), borderMode=cv2.BORDER_REPLICATE)
    small = cv2.resize(cast, (out_w // 4, out_h // 4), interpolation=cv2.INTER_AREA)  # a wide blur: at a quarter size
    cast = cv2.resize(cv2.GaussianBlur(small, (0, 0), rng.uniform(0.005, 0.012) * out_w / 4), (out_w, out_h))
    table *= (1 - rng.uniform(0.45, 0.7) * cast)[..., None]
    image = warped * inside[..., None] + table * (1 - inside[..., None])
    yy, xx = np.arange(out_h, dtype=np.float32)[:, None], np.arange(out_w, dtype=np.float32)[None, :]
    gx, gy = rng.normal(0, 1, 2)
    light = 1.0 - 0.15 * ((gx * (xx / out_w - 0.5) + gy * (yy / out_h - 0.5)) + 0.5) * rng.uniform(0.5, 1)
    image = cv2.GaussianBlur(image * light[..., None], (0, 0), rng.uniform(0.6, 1.1))
    image += rng.standard_normal(image.shape, np.float32) * np.float32(3.0)
    image = np.clip(image, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(80, 92))])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR), matrix


def render_sheet(spec: StudentSpec) -> tuple[np.ndarray, list[dict], list[dict]]:
    """Render ``spec``: (BGR uint8 image, truth, marks), the same bytes for the same spec.

    ``truth``: one dict per written digit as :func:`.handwriting.render_sheet` (``row``, ``col``,
    ``label``, ``writer``, ``index``, ``box`` in the image, ``page_box`` on the flat page); the
    columns count the digits only (an extra digit or a blot has none). ``marks``: the other things
    written, each with ``kind`` ("extra_digit", "blot", "letters", "scribble": with ``row``,
    ``after_col`` (the digit column it follows, -1 before the first) and boxes, in a table also the
    ``col`` of the cell it is in (``cols``: the cells a scribble runs through; an extra digit right of
    the table's frame: ``cols`` of the layout); "touching": with ``row`` and the two ``cols``).
    """
    page, truth, marks = render_page(spec)
    boxed = truth + [m for m in marks if "box" in m]
    if spec.capture == "scan":
        return synth.scan(page, spec.seed + 1), truth, marks
    if spec.desk:
        image, matrix = photograph_on_desk(page, spec.seed + 1, spec.desk, spec.framing,
                                           [t["page_box"] for t in boxed], spec.megapixels)
    else:
        image, matrix = synth.photograph(
            page, spec.seed + 1, megapixels=spec.megapixels, tilt=0.4 if spec.capture == "photo_fill" else 1.0,
            fill_frame=spec.capture == "photo_fill", return_matrix=True, fast=True)
    ih, iw = image.shape[:2]
    for t in boxed:
        t["box"] = hw._project_box(t["page_box"], matrix)
        x, y, w, h = t["box"]
        if x < 0 or y < 0 or x + w > iw or y + h > ih:
            raise ValueError(f"{spec.name}: a digit or mark of row {t['row']} falls outside the photo")
    return image, truth, marks


# --------------------------------------------------------------------------- the students' sheets

TRAIT_FIELDS = MappingProxyType({  # each trait of issue 15 as StudentSpec fields (tests/test_student_layouts.py)
    "desk_wood_left": dict(capture="photo", desk="wood", framing="left"),
    "desk_dark_right": dict(capture="photo", desk="dark", framing="right"),
    "desk_green_both": dict(capture="photo", desk="green", framing="both"),
    "desk_corner_out": dict(capture="photo", desk="wood", framing="corner"),
    "table_pencil": dict(paper="table_pencil", capture="photo"),
    "table_pen": dict(paper="table_pen", ink="blue"),
    "table_dashed": dict(paper="table_dashed", capture="photo"),
    "touching": dict(touching=True),
    "split_strokes": dict(split_strokes=True),
    "gap_after_2": dict(gap_after=2),
    "fine_blue_ballpoint": dict(pen="fine", ink="blue", capture="photo"),
    "red_marker": dict(pen="marker", ink="red"),
    "pencil": dict(ink="pencil", capture="photo"),
})
HOSTILE_FIELDS = MappingProxyType({  # what must be refused, in row ``hostile_row``
    "extra_digit_at_end": dict(hostile="extra_digit"),
    "extra_digit_in_row": dict(hostile="extra_digit", hostile_col=4),
    "letters_row": dict(hostile="letters"),
    "scribble_row": dict(hostile="scribble"),
    "ink_blot": dict(hostile="blot", hostile_col=5),
})
STUDENT_LAYOUTS = (SheetLayout(), SheetLayout(rows=6, cols=10))
STUDENT_SHEETS = (("W02", 11, 0), ("W07", 12, 1))  # writer, seed, index into STUDENT_LAYOUTS
HOSTILE_SHEETS = (("W04", 21, 0, 3), ("W09", 22, 1, 4))  # ... and the hostile row (0-based)
HOSTILE_TABLE_SHEETS = (  # writer, seed, layout index, hostile row, the table (a key of TRAIT_FIELDS)
    ("W06", 34, 0, 5, "table_pen"), ("W03", 43, 1, 2, "table_dashed"), ("W01", 39, 0, 8, "table_pencil"))


def students_corpus() -> list[StudentSpec]:
    """Every trait on each of :data:`STUDENT_SHEETS`, then every hostile kind on each of :data:`HOSTILE_SHEETS`,
    then every hostile kind in the table of each of :data:`HOSTILE_TABLE_SHEETS`."""
    specs = [StudentSpec(writer=w, seed=s, layout=STUDENT_LAYOUTS[k], **fields)
             for fields in TRAIT_FIELDS.values() for w, s, k in STUDENT_SHEETS]
    specs += [StudentSpec(writer=w, seed=s, layout=STUDENT_LAYOUTS[k], hostile_row=row, **fields)
              for fields in HOSTILE_FIELDS.values() for w, s, k, row in HOSTILE_SHEETS]
    specs += [StudentSpec(writer=w, seed=s, layout=STUDENT_LAYOUTS[k], hostile_row=row, **TRAIT_FIELDS[paper], **fields)
              for fields in HOSTILE_FIELDS.values() for w, s, k, row, paper in HOSTILE_TABLE_SHEETS]
    return specs
