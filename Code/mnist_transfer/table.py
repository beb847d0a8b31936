"""Stage 3b, the table: a sheet written in a table is read by its cells, wherever in them the digits sit.

Writers who have a table do not keep to a baseline: a digit sits high in its cell, the next one low,
one touches the line below. Chained into rows of writing (:mod:`.rows`), such a sheet has rows that
wander into each other; read by the table's own lines, every digit is simply in its cell. This
stage finds a table's lines on the page, faint pencil ones included (they are often too faint to be
ink at all), and, when the table has exactly the layout's rows and columns, gives every digit the
cell that holds it (:func:`read_table`).

It is only a second reading: :func:`.sheet_reading.process_sheet` uses it when the rows of writing
do not fit the layout and the page has a table. It never splits or merges digits across a line; a
cell with two digits, an empty cell or a mark outside the table is refused, named by the table's row
and column (a mark right of the frame: a digit too many at the row's end), in place of the first
reading's problems: on a page with the layout's table, the rows of writing wander, the cells do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .ink import flatten_light
from .layout import Box, SheetLayout
from .rows import Piece, group_digits

FAINT = 4  # a table line: this much darker than the paper (levels of 255), after smoothing along the line
SPAN = 0.6  # a line of the table runs at least this share of the table's width (or height)
MERGE = 0.35  # pieces of one line lie within this share of a digit height of each other, across the line
REMNANT = 0.4  # a piece whose ink is thinner than this share of the writing's stroke is a line's remnant
STRADDLE = 0.35  # a digit of a crowded cell may be given to an empty neighbour if its centre is this close
                 # (a share of the cell's size) to the line between them


@dataclass
class Line:
    """A line of the table: its position across (y of a horizontal line, x of a vertical one) along its course."""

    along: np.ndarray  # sample positions along the line, increasing
    across: np.ndarray  # the line's position at each
    extent: float  # how much of its course has ink

    def at(self, t: float) -> float:
        return float(np.interp(t, self.along, self.across))


@dataclass
class Table:
    rows: list[Line]  # horizontal lines, top to bottom (the cells' borders; outer borders included)
    cols: list[Line]  # vertical lines, left to right

    def cell_of(self, x: float, y: float) -> tuple[int, int] | None:
        """The (row, column) of the cell holding a point, or None outside the table."""
        r = sum(line.at(x) < y for line in self.rows) - 1
        c = sum(line.at(y) < x for line in self.cols) - 1
        if 0 <= r < len(self.rows) - 1 and 0 <= c < len(self.cols) - 1:
            return r, c
        return None

    def cell_size(self) -> tuple[float, float]:
        """The median width and height of a cell."""
        ys = [line.at(line.along.mean()) for line in self.rows]
        xs = [line.at(line.along.mean()) for line in self.cols]
        return float(np.median(np.diff(xs))), float(np.median(np.diff(ys)))


def _runs(flat: np.ndarray, paper: float, digit_height: float, horizontal: bool) -> np.ndarray:
    """Long runs of faint ink in one direction: smoothed along it, thresholded just under the paper,
    smeared across (a wobble of a few pixels), closed along (breaks at crossings), opened along by 1.7
    digit heights (no digit stroke is that long)."""
    smooth = cv2.blur(flat, (15, 1) if horizontal else (1, 15))
    faint = np.where(smooth < paper - FAINT, 255, 0).astype(np.uint8)
    smear = (1, 5) if horizontal else (5, 1)
    gaps = (9, 1) if horizontal else (1, 9)
    along = (int(1.7 * digit_height), 1) if horizontal else (1, int(1.7 * digit_height))
    runs = cv2.dilate(faint, cv2.getStructuringElement(cv2.MORPH_RECT, smear))
    runs = cv2.morphologyEx(runs, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, gaps))
    return cv2.morphologyEx(runs, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, along))


def _lines(runs: np.ndarray, digit_height: float, horizontal: bool) -> list[Line]:
    """The runs joined into lines (pieces of one line broken where it was drawn apart), each as its course."""
    mask = runs if horizontal else runs.T  # rows of ``mask``: across; columns: along
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    pieces = []
    for i in range(1, n):
        x, y, w, h, _ = stats[i]
        if h > 0.5 * digit_height:  # thicker than any line: a blot or a dense patch of writing
            continue
        sub = labels[y : y + h, x : x + w] == i
        cols = np.flatnonzero(sub.any(0))
        centre = (sub * np.arange(h)[:, None]).sum(0)[cols] / sub.sum(0)[cols] + y
        pieces.append((x + cols, centre))
    pieces.sort(key=lambda p: float(np.median(p[1])))
    groups: list[list[tuple[np.ndarray, np.ndarray]]] = []
    for p in pieces:
        if groups and abs(float(np.median(p[1])) - float(np.median(np.concatenate([q[1] for q in groups[-1]])))) \
                <= MERGE * digit_height:
            groups[-1].append(p)
        else:
            groups.append([p])
    lines = []
    for g in groups:
        along = np.concatenate([q[0] for q in g])
        across = np.concatenate([q[1] for q in g])
        order = np.argsort(along, kind="stable")
        along, across = along[order], across[order]
        step = 8  # the line's course: its median position in every 8 pixels along it
        bins = along // step
        keys = np.unique(bins)
        centres = np.array([np.median(across[bins == k]) for k in keys])
        lines.append(Line(keys * step + step / 2, centres, float(len(np.unique(along)))))
    return lines


def find_table(page: np.ndarray, layout: SheetLayout, digit_height: float) -> Table | None:
    """The page's table, if it has one of exactly the layout's rows and columns (outer borders drawn); else None."""
    if layout.row_lengths:
        return None
    flat = flatten_light(page)
    paper = float(np.median(flat))
    found = []
    for horizontal, wanted in ((True, layout.rows + 1), (False, layout.cols + 1)):
        lines = _lines(_runs(flat, paper, digit_height, horizontal), digit_height, horizontal)
        if not lines:
            return None
        longest = max(line.extent for line in lines)
        lines = [line for line in lines if line.extent >= SPAN * longest]
        if len(lines) != wanted:
            return None
        gaps = np.diff([line.at(line.along.mean()) for line in lines])
        if gaps.min() < 0.8 * digit_height:
            return None
        found.append(lines)
    return Table(*found)


ON_LINE = 0.12  # a thin piece whose middle is this close to a line of the table (a share of a cell) is the line's


def _on_a_line(p: Piece, table: Table, digit_height: float) -> bool:
    """Is the piece (a cell's pieces grouped into digits: a digit's strokes together) a remnant of one of the
    table's lines: thin across it (under 0.3 of a digit), and lying on it (its middle within :data:`ON_LINE` of
    a cell's size)? A digit's middle is well inside its cell."""
    cell_w, cell_h = table.cell_size()
    if p.box[2] < 0.3 * digit_height and min(abs(p.cx - line.at(p.cy)) for line in table.cols) <= ON_LINE * cell_w:
        return True
    return p.box[3] < 0.3 * digit_height and min(abs(p.cy - line.at(p.cx)) for line in table.rows) <= ON_LINE * cell_h


def _outside(p: Piece, table: Table, layout: SheetLayout) -> tuple[Box, str]:
    """A digit-sized mark outside the table, named by where it is: right of the frame in a row, it is a digit
    too many at the row's end."""
    r = min(max(sum(line.at(p.cx) < p.cy for line in table.rows) - 1, 0), len(table.rows) - 2)
    right = p.cx > table.cols[-1].at(p.cy)
    within = table.rows[0].at(p.cx) < p.cy < table.rows[-1].at(p.cx)
    if right and within:
        return (p.box, f"row {r + 1}, column {layout.cols + 1}: a mark right of the table's frame (x={p.box[0]}) - "
                       f"an extra digit at column {layout.cols + 1}? The table has {layout.cols} columns: erase it, "
                       "or correct the layout")
    where = ("above the table" if p.cy < table.rows[0].at(p.cx) else "below the table" if p.cy > table.rows[-1].at(p.cx)
             else f"left of the table, beside row {r + 1}")
    return (p.box, f"a mark outside the table, {where} (x={p.box[0]}, y={p.box[1]}): erase or cover it")


def read_table(pieces: list[Piece], table: Table, layout: SheetLayout, stroke: float,
               digit_height: float) -> tuple[dict[tuple[int, int], Piece] | None, list[tuple[Box, str]], list[Box]]:
    """Every cell's digit, if each cell of the table holds exactly one; else None, with the problems; and the
    boxes of every digit found in a cell (to draw on the page).

    Each piece of ink goes to the cell that holds its centre, and the pieces of one cell are grouped
    into digits as a row's are (:func:`.rows.group_digits`, judged by the sheet's digit height). Left
    out: marks smaller than a third of a digit, flat ones (under a quarter of a digit tall: what is
    left of a line) and pieces whose ink is thinner than the writing's (``REMNANT``). A digit written over the line into an empty neighbour's side (its centre within
    a third of a cell of the line) is given to that neighbour when its own cell holds another
    digit. A digit-sized piece outside the table, a cell still holding two digits or an empty cell
    is a problem, named by its row and column (with a box to mark on the page).
    """
    cell_w, cell_h = table.cell_size()
    inside: dict[tuple[int, int], list[Piece]] = {}
    problems: list[tuple[Box, str]] = []
    for p in pieces:
        if p.area < REMNANT * stroke * (p.box[2] + p.box[3]):
            continue  # thinner than the writing: what is left of a line where a digit crossed it
        cell = table.cell_of(p.cx, p.cy)
        if cell is None:
            if p.box[3] >= 0.35 * digit_height:
                problems.append(_outside(p, table, layout))
            continue
        inside.setdefault(cell, []).append(p)
    cells: dict[tuple[int, int], list[Piece]] = {}
    for cell, ps in inside.items():
        digits = [d for d in group_digits(ps, stroke, digit_height) if d.box[3] >= 0.25 * digit_height
                  and max(d.box[2], d.box[3]) >= 0.35 * digit_height
                  and not _on_a_line(d, table, digit_height)]  # a dash of the table's line, left by its removal
        if digits:
            cells[cell] = digits
    moved = True
    while moved:
        moved = False
        for (r, c), digits in list(cells.items()):
            if len(digits) < 2:
                continue
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                to = (r + dr, c + dc)
                if to in cells or not (0 <= to[0] < layout.rows and 0 <= to[1] < layout.cols):
                    continue
                border = table.rows[r + (dr > 0)] if dr else table.cols[c + (dc > 0)]
                size = cell_h if dr else cell_w
                off = [((d.cy - border.at(d.cx)) if dr else (d.cx - border.at(d.cy))) * (dr or dc) for d in digits]
                k = int(np.argmax(off))  # the digit nearest the line (signed: towards the neighbour)
                if off[k] >= -STRADDLE * size and sorted(off)[-2] < -STRADDLE * size:
                    cells[to] = [digits.pop(k)]
                    moved = True
                    break
    for r in range(layout.rows):
        for c in range(layout.cols_in(r)):
            digits = cells.get((r, c), [])
            if len(digits) > 1:
                x0, y0 = min(d.box[0] for d in digits), min(d.box[1] for d in digits)
                x1 = max(d.box[0] + d.box[2] for d in digits)
                y1 = max(d.box[1] + d.box[3] for d in digits)
                count = "two" if len(digits) == 2 else str(len(digits))
                problems.append(((x0, y0, x1 - x0, y1 - y0), (
                    f"row {r + 1}, column {c + 1}: {count} digits in one cell (x={x0}) - an extra digit, a digit "
                    "crossed out and written again, or a mark beside it? Keep one digit a cell: erase the others")))
            elif not digits:
                x0, x1 = (line.at(line.along.mean()) for line in table.cols[c : c + 2])
                y0, y1 = (line.at(line.along.mean()) for line in table.rows[r : r + 2])
                problems.append(((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), (
                    f"row {r + 1}, column {c + 1}: the cell is empty; write the missing digit, or darken one too "
                    "faint to be seen")))
    found = [d.box for digits in cells.values() for d in digits]
    if problems:  # else every cell of the layout holds one digit
        return None, problems, found
    return {cell: d[0] for cell, d in cells.items()}, [], found
