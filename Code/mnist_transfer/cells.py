"""Stage 4, the cells: each row read left to right into the layout's cells; problems named and drawn.

A row with fewer pieces than its count, in which pieces about k times as wide as its digits
hold exactly the missing ones, has them cut at the weakest ink (:func:`.rows.split_piece`),
unless the row, once cut, would still look a digit short (:func:`_empty_cell_likely`): a wide
digit beside an empty cell is refused, never cut into two labels. In rows of 0..9 the other rows,
read whole, say where the columns are and how wide each digit is written (:func:`columns_of`,
:func:`align`): a narrow 1 touching a wide 2 is cut in those proportions, only when the row is
short by the gaps the touching closed (:func:`_touching_by_columns`), and a refused row names the
empty column ("a digit is missing at column 6", :func:`_missing`). A row with a piece too many
names the piece without which the others are the writer's own digits of their columns
(:func:`_extra_by_shape`: "an extra digit at column 11"), or fit the columns, or else the piece
least like its digits. A refusal counts every problem, numbers them, and the annotated page
lists them in a panel beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .layout import Box, SheetLayout
from .page import blur_problem
from .rows import Piece, _line_of, group_digits, split_piece, touching_counts


@dataclass
class CellReading:
    """What :func:`assign_cells` made of the rows."""

    cells: dict[tuple[int, int], Piece]  # (row, col) -> the digit there
    problems: list[tuple[Box, str]]  # what does not fit, with a box to mark on the page
    digits: list[list[Piece]]  # every row's digits, left to right (touching ones split where the count asked)
    cuts: list[tuple[int, int, int]] = field(default_factory=list)  # (x, y_top, y_bottom) of every split
    short: dict[int, str] = field(default_factory=dict)  # row -> its problem, for every row with too few digits


def _row_line(row: list[Piece]) -> tuple[float, float]:
    return _line_of(row)


def _where(box: Box, rows: list[list[Piece]], height: float | None = None) -> str:
    """Where a mark outside the rows is: beside a row (left or right of it), or above/below/between rows.

    Judged by each row's own centre line at the mark's x (rows drift and slope), so that a mark
    at the height of a row is said to be beside that row, never between it and its neighbour.
    """
    if not rows:
        return f"at x={box[0]}, y={box[1]}"
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    lines = [_row_line(r) for r in rows]
    at = [slope * cx + intercept for slope, intercept in lines]
    height = height or float(np.median([p.box[3] for r in rows for p in r]))
    near = int(np.argmin([abs(y - cy) for y in at]))
    if abs(at[near] - cy) <= 0.5 * height:
        row = rows[near]
        left, right = min(p.box[0] for p in row), max(p.box[0] + p.box[2] for p in row)
        side = "left of" if cx < left else "right of" if cx > right else "among"
        return f"in row {near + 1}, {side} its digits (x={box[0]}, y={box[1]})"
    above = sum(y < cy for y in at)
    if above == 0:
        return f"above row 1 (x={box[0]}, y={box[1]})"
    if above == len(at):
        return f"below row {len(at)} (x={box[0]}, y={box[1]})"
    return f"between rows {above} and {above + 1} (x={box[0]}, y={box[1]})"


def _unlikeness(digits: list[Piece]) -> list[tuple[float, str]]:
    """How unlike the row's digits each piece is (a score, and why in words), from the row's own medians.

    Far off the row's centre line; long and thin (a line, the paper's edge); much smaller or
    larger than the row's digits. The piece least like the others is the stray one, which is
    not always the smallest: an edge or a line fragment can be as large as a digit.
    """
    widths = np.array([d.box[2] for d in digits], float)
    heights = np.array([d.box[3] for d in digits], float)
    w0, h0 = float(np.median(widths)), float(np.median(heights))
    slope, intercept = _line_of(digits)
    out = []
    for d, w, h in zip(digits, widths, heights):
        off = abs(d.cy - (slope * d.cx + intercept)) / max(h0, 1.0)
        thin = max(w, h) / max(1.0, min(w, h)) / max(1.0, max(w0, h0) / max(1.0, min(w0, h0)))
        size = abs(np.log(max(w * h, 1.0) / max(w0 * h0, 1.0)))
        reasons = {"off the row's line": 2.0 * max(0.0, off - 0.25),
                   "long and thin like a line or the paper's edge": max(0.0, np.log(thin) - 0.4) * 2.0,
                   "much smaller than the row's digits" if w * h < w0 * h0 else "much larger than the row's digits": size}
        why = max(reasons, key=reasons.get)
        out.append((float(sum(reasons.values())), why))
    return out


def _shape(piece: Piece, labels: np.ndarray) -> np.ndarray:
    """A piece's ink as a 16x16 picture, its longer side filling it, zero mean and unit length (to compare)."""
    x, y, w, h = piece.box
    mask = np.isin(labels[y : y + h, x : x + w], piece.ids).astype(np.float32)
    side = max(w, h)
    square = np.zeros((side, side), np.float32)
    square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = mask
    small = cv2.resize(cv2.GaussianBlur(square, (0, 0), max(1.0, side / 20)), (16, 16), interpolation=cv2.INTER_AREA)
    small -= small.mean()
    return small / max(float(np.linalg.norm(small)), 1e-6)


def column_shapes(grouped: list[list[Piece]], layout: SheetLayout, labels: np.ndarray | None) -> np.ndarray | None:
    """Every column's digit as the writer writes it (the mean shape over the rows read whole), for a layout
    whose columns hold different digits (each row 0..9); None otherwise."""
    if labels is None or layout.order != "row_is_sequence" or len(set(layout.digits)) != len(layout.digits):
        return None
    complete = [g for r, g in enumerate(grouped) if len(g) == layout.cols_in(r)]
    if len(complete) < 3:
        return None
    means = np.mean([[_shape(d, labels) for d in g] for g in complete], axis=0)
    norms = np.linalg.norm(means.reshape(len(means), -1), axis=1)
    return means / np.maximum(norms, 1e-6)[:, None, None]


def _extra_by_shape(digits: list[Piece], shapes: np.ndarray, labels: np.ndarray) -> tuple[int, ...] | None:
    """Which one piece of a row with one too many the others read without, column by column, as the
    writer's own digits of those columns (:func:`column_shapes`): the one whose removal leaves every
    other piece most like its column's digit, if clearly (by :data:`SHAPE_MARGIN` in summed unlikeness) the
    best; or two neighbours written alike (a 4 written twice), if the two are clearly best; else None."""
    pictures = np.array([_shape(d, labels) for d in digits])
    unlike = 1.0 - np.einsum("iyx,cyx->ic", pictures, shapes)  # 0: the same shape
    m = len(shapes)
    costs = []
    for j in range(len(digits)):
        rest = [i for i in range(len(digits)) if i != j]
        costs.append(float(sum(unlike[i, c] for i, c in zip(rest, range(m)))))
    order = np.argsort(costs)
    if costs[order[1]] - costs[order[0]] >= SHAPE_MARGIN:
        return (int(order[0]),)
    if len(order) > 2 and abs(int(order[0]) - int(order[1])) == 1 and costs[order[2]] - costs[order[1]] >= SHAPE_MARGIN:
        return tuple(sorted((int(order[0]), int(order[1]))))  # two alike side by side: one of them is extra
    return None


def _small_pair(digits: list[Piece], i: int, heights: np.ndarray) -> tuple[int, int] | None:
    """The piece ``i`` and a neighbour, if both are small (under 0.8 of the row's digit height) and closer
    to each other than the row's digits usually are: two digits written small in one cell."""
    h0 = float(np.median(heights))
    gaps = [b.box[0] - a.box[0] - a.box[2] for a, b in zip(digits, digits[1:])]
    usual = float(np.median(gaps)) if gaps else 0.0
    for j in (i - 1, i + 1):
        if 0 <= j < len(digits) and max(heights[i], heights[j]) < 0.8 * h0:
            a, b = sorted((i, j))
            if gaps[a] < usual:
                return a, b
    return None


def _too_many(r: int, digits: list[Piece], wanted: int, columns: Columns | None = None,
              shapes: np.ndarray | None = None, labels: np.ndarray | None = None) -> list[tuple[Box, str]]:
    """The pieces of a row with too many, one problem each: the one without which the others are most like
    their columns' digits (:func:`_extra_by_shape`), or fit the other rows' columns (:func:`align`), or else
    the ones least like the row's digits."""
    extra = len(digits) - wanted
    scores = _unlikeness(digits)
    worst = sorted(range(len(digits)), key=lambda i: -scores[i][0])[:extra]
    by_columns = False
    shaped = _extra_by_shape(digits, shapes, labels) if shapes is not None and labels is not None and extra == 1 else None
    if shaped is not None:
        worst, by_columns = [shaped[0]], True
    elif columns is not None and extra == 1 and len(digits) <= 3 * len(columns.left):
        costs = [align(digits[:i] + digits[i + 1 :], columns, max_parts=1) for i in range(len(digits))]
        costs = [c[0] if c is not None else np.inf for c in costs]
        order = np.argsort(costs)
        if costs[order[1]] - costs[order[0]] >= EXTRA_MARGIN:  # the others fit the columns clearly best without it
            worst, by_columns = [int(order[0])], True
    heights = np.array([d.box[3] for d in digits], float)
    out = []
    pair = _small_pair(digits, worst[0], heights) if by_columns and extra == 1 else None
    if pair is not None:  # two small digits side by side where one belongs: one cell written twice
        a, b = digits[pair[0]], digits[pair[1]]
        box = (a.box[0], min(a.box[1], b.box[1]), b.box[0] + b.box[2] - a.box[0],
               max(a.box[1] + a.box[3], b.box[1] + b.box[3]) - min(a.box[1], b.box[1]))
        return [(box, f"row {r + 1}, column {pair[0] + 1}: two small digits in one cell (x={a.box[0]} and "
                      f"x={b.box[0]}; {len(digits)} pieces where the layout has {wanted}) - write one digit a cell: "
                      "erase one of them, or rewrite the cell")]
    for i in sorted(worst):
        d = digits[i]
        if by_columns and d.box[3] >= 0.6 * float(np.median(heights)):  # digit-sized (a 1 is thin, not small)
            if shaped is not None and len(shaped) == 2:
                what = (f"an extra digit at column {shaped[0] + 1} or {shaped[1] + 1}: two alike side by side, "
                        "without one of them the row's digits are those of the other rows")
            else:
                what = (f"an extra digit at column {i + 1}: without it the row's digits fit the columns of the "
                        "other rows")
        elif by_columns:
            what = (f"a mark, not one of the row's digits ({scores[i][1]}): without it the row's digits are those "
                    "of the other rows")
        else:
            what = f"the least like the row's digits ({scores[i][1]})"
        out.append((d.box, f"row {r + 1}, column {i + 1}: {extra} mark(s) too many in this row ({len(digits)} where "
                           f"the layout has {wanted}); the one at column {i + 1} (x={d.box[0]}) is {what} - a stray "
                           "mark, a digit crossed out or scribbled over, two digits in one cell, or a digit in pieces "
                           "far apart? Erase the mark, or rewrite the digit"))
    return out


def _missing(r: int, digits: list[Piece], wanted: int, columns: Columns, max_parts: int = 3) -> tuple[Box, str] | None:
    """A row with too few digits read against the other rows' columns (:func:`align`): the empty columns, if
    the row's pieces fit the other columns one digit each; else None. ``max_parts=1`` where the columns
    hold different digits in every row (a digit a row): their widths say nothing of touching digits."""
    reading = align(digits, columns, max_parts)
    if reading is None or reading[2] or reading[0] > FIT * len(digits):  # the row does not fit the columns well
        return None
    joined = [(i, c, k) for i, c, k in reading[1] if k > 1]
    if joined and not reading[3]:  # touching digits the reader did not dare cut
        i, c, k = joined[0]
        d = digits[i]
        return (d.box, f"row {r + 1}, columns {c + 1}-{c + k}: looks like {k} digits touching (x={d.box[0]}), but "
                       f"the cut is not clear enough to label them ({len(digits)} pieces where the layout has "
                       f"{wanted}); leave a gap between those digits")
    if not reading[3] or joined:
        return None
    empty = reading[3]
    at = {c: i for i, c, _ in reading[1]}
    c = empty[0]
    before = max((k for k in at if k < c), default=None)
    after = min((k for k in at if k > c), default=None)
    y, h = (digits[at[before if before is not None else after]].box[1], digits[at[before if before is not None else after]].box[3])
    x0 = digits[at[before]].box[0] + digits[at[before]].box[2] if before is not None else int(columns.left[c])
    x1 = digits[at[after]].box[0] if after is not None else int(columns.right[c])
    box = (int(min(x0, x1)), int(y), max(1, int(abs(x1 - x0))), int(h))
    named = ", ".join(str(k + 1) for k in empty)
    return (box, f"row {r + 1}, column {c + 1}: a digit is missing at column{'s' if len(empty) > 1 else ''} {named} "
                 f"({len(digits)} digits where the layout has {wanted}; the others fit the columns of the other "
                 "rows); write the missing digit, or darken one too faint to be seen")


def _too_few(r: int, digits: list[Piece], wanted: int, row: list[Piece],
             columns: Columns | None = None, max_parts: int = 3) -> tuple[Box, str]:
    """A row with too few digits: the empty column where the others fit the other rows' columns, else the
    widest one if it looks like digits touching, else the widest gap."""
    if columns is not None and digits:
        missing = _missing(r, digits, wanted, columns, max_parts)
        if missing is not None:
            return missing
    widths = np.array([d.box[2] for d in digits], float)
    wide = int(np.argmax(widths / np.median(widths))) if len(digits) else 0
    if len(digits) and widths[wide] > 1.5 * np.median(widths):
        return (digits[wide].box, f"row {r + 1}, column {wide + 1}: looks like 2 digits touching "
                                  f"({widths[wide] / np.median(widths):.1f}x as wide as the others), but the row "
                                  f"has {len(digits)} pieces where the layout has {wanted}, so the count does not "
                                  "say how to cut it; leave a gap between digits, or correct the layout")
    gaps = [digits[k + 1].box[0] - digits[k].box[0] - digits[k].box[2] for k in range(len(digits) - 1)]
    where, box = "", row[0].box
    if len(gaps) >= 2 and max(gaps) > 2 * np.median(gaps):
        k = int(np.argmax(gaps))
        where = f"; column {k + 2} seems empty (the widest gap, after column {k + 1})"
        box = (digits[k].box[0] + digits[k].box[2], digits[k].box[1], max(1, gaps[k]), digits[k].box[3])
    return (box, f"row {r + 1}: {len(digits)} digits where the layout has {wanted}{where}; "
                 "write the missing digit, or darken one too faint to be seen")


def _touching_by_columns(digits: list[Piece], columns: Columns) -> list[int] | None:
    """How many digits each piece of a row with too few holds, read against the other rows' columns.

    Only when the cheapest reading (:func:`align`) reads every piece and fills every column, cutting
    some pieces; when it is cheaper by a clear margin (0.25) than every reading without a cut (one
    with an empty column: a digit missing); and when every piece to be cut is wider than the widest
    of its columns by 30% (a digit written wide is not two); when the reading fits well (:data:`FIT`); and
    when the row is shorter than the other rows by the gaps the touching digits closed, within :data:`SHORTER`
    of a column's pitch for the first join and :data:`SHORTER_MORE` for each further one (digits written into
    each other shorten the row by their overlaps too, which add up: 0.41 of a pitch for W02's 6, 7 and 8 of
    ``tests/test_student_layouts.py``, two joins; a digit missing at the row's end shortens it by its
    column's width beyond the gaps, measured 0.47 of a pitch where its neighbour is written wide). Else
    None: the row is refused, never cut on a guess.
    """
    best = align(digits, columns)
    if best is None or best[2] or best[3] or all(k == 1 for _, _, k in best[1]) or best[0] > FIT * len(digits):
        return None
    plain = align(digits, columns, max_parts=1)
    if plain is not None and plain[0] - best[0] < 0.25:
        return None
    widths = columns.width
    for i, c, k in best[1]:
        if k > 1 and digits[i].box[2] < 1.3 * float(widths[c : c + k].max()):
            return None
    # the row is shorter than the others by the gaps the touching digits closed, not by a digit more
    span = digits[-1].box[0] + digits[-1].box[2] - digits[0].box[0]
    shortfall = float(columns.right[-1] - columns.left[0]) - span
    closed = sum(float(columns.left[c + q + 1] - columns.right[c + q]) for _, c, k in best[1] for q in range(k - 1))
    joins = sum(k - 1 for _, _, k in best[1])
    if abs(shortfall - closed) > (SHORTER + SHORTER_MORE * (joins - 1)) * columns.pitch:
        return None
    return [k for _, _, k in sorted(best[1])]


def _split_row(digits: list[Piece], parts: list[int], labels: np.ndarray, columns: Columns | None = None):
    """The row's digits with every piece that holds k of them cut into k, and the cuts; with ``columns``
    (every column read, in order), each piece cut in the proportions of its columns' widths."""
    split, cuts, c = [], [], 0
    for d, k in zip(digits, parts):
        c += k
        if k == 1:
            split.append(d)
            continue
        shares = list(columns.width[c - k : c]) if columns is not None else None
        pieces, where = split_piece(d, k, labels, shares)
        split.extend(pieces)
        cuts.extend(where)
    return split, cuts


def _empty_cell_likely(split: list[Piece], complete: list[list[Piece]], ends: bool = True) -> bool:
    """Does the row, once cut, still look one digit short (so that a wide digit, not two touching, was cut)?

    From the rows that hold their full count: a gap between neighbouring boxes wider than twice
    their usual gap and half a digit's width (a digit pushed against its neighbour leaves at most
    two gaps behind it; an empty cell leaves two gaps and a digit's width), or (with ``ends``, when
    the rows are meant to be equally long) a row whose first box starts, or last box ends, short
    of theirs by more than a gap and half a digit's width (a digit pushed against its neighbour
    moves the row's end by at most a gap; an empty first or last cell by a gap and a digit).
    """
    gaps = [b.box[0] - a.box[0] - a.box[2] for r in complete for a, b in zip(r, r[1:])]
    if not gaps:
        return False
    gap, width = float(np.median(gaps)), float(np.median([d.box[2] for r in complete for d in r]))
    row_gaps = [b.box[0] - a.box[0] - a.box[2] for a, b in zip(split, split[1:])]
    if row_gaps and max(row_gaps) > 2 * gap + 0.5 * width:
        return True
    if ends and len(complete) >= 2:
        first = float(np.median([r[0].box[0] for r in complete]))
        last = float(np.median([r[-1].box[0] + r[-1].box[2] for r in complete]))
        short = gap + 0.5 * width
        return split[0].box[0] > first + short or split[-1].box[0] + split[-1].box[2] < last - short
    return False


def assign_cells(rows: list[list[Piece]], layout: SheetLayout, stroke: float = 3.0,
                 labels: np.ndarray | None = None) -> CellReading:
    """Read each row left to right into the layout's cells.

    The problems name every row and column that does not fit (with a box to mark on the page):
    too many or too few rows, a row with a mark too many (the piece least like the row's digits)
    or too few. A row with too few pieces in which some are about k times as wide as the row's
    digits, so that they hold exactly the missing digits, has those pieces cut into k at the
    weakest ink (needs ``labels``, the label image of the pieces); nothing else is ever split.
    """
    problems: list[tuple[Box, str]] = []
    if len(rows) != layout.rows:
        counts = [len(group_digits(r, stroke)) for r in rows]
        hint = ""
        if len(rows) == layout.cols and counts and all(c == layout.rows for c in counts) and not layout.row_lengths:
            hint = (" The writing has the layout's columns as rows: the photo is turned by 90 degrees, or the "
                    f"layout is transposed (try SheetLayout(rows={layout.cols}, cols={layout.rows}, "
                    f"order={layout.transposed().order!r}))."
                    )
        elif len(rows) < layout.rows:
            hint = (" Is a row cut off the photo, or written so close to the next one that they touch? "
                    "Photograph the whole sheet, or correct the number of rows in the layout.")
        else:
            hint = " Is there writing outside the rows of digits (a name, a heading)? Cover it, or correct the layout."
        problems.append(((0, 0, 1, 1), f"found {len(rows)} rows of writing, the layout has {layout.rows} "
                                       f"(digits per row found: {counts}).{hint}"))
        return CellReading({}, problems, [group_digits(r, stroke) for r in rows])
    cells: dict[tuple[int, int], Piece] = {}
    all_digits, cuts, short = [], [], {}
    grouped = [group_digits(row, stroke) for row in rows]
    complete = [g for r, g in enumerate(grouped) if len(g) == layout.cols_in(r)]
    columns = columns_of(grouped, layout)
    shapes = column_shapes(grouped, layout, labels) if any(len(g) > layout.cols_in(r) for r, g in enumerate(grouped)) else None
    for r, row in enumerate(rows):
        digits, wanted = grouped[r], layout.cols_in(r)
        parts = touching_counts(digits, wanted) if labels is not None else None
        if parts is not None:  # cut in the proportions of the columns' widths where they differ (a 1 beside a 2)
            split, where = _split_row(digits, parts, labels, columns if layout.order == "row_is_sequence" else None)
            if not _empty_cell_likely(split, complete, ends=not layout.row_lengths):  # rows of unequal length need not start or end together
                digits = split
                cuts.extend(where)
        elif labels is not None and columns is not None and len(digits) < wanted and layout.order == "row_is_sequence":
            parts = _touching_by_columns(digits, columns)
            if parts is not None:
                split, where = _split_row(digits, parts, labels, columns)
                if not _empty_cell_likely(split, complete, ends=False):
                    digits = split
                    cuts.extend(where)
        all_digits.append(digits)
        if len(digits) == wanted:
            for c, d in enumerate(digits):
                cells[(r, c)] = d
        elif len(digits) > wanted:
            problems.extend(_too_many(r, digits, wanted, columns, shapes, labels))
        else:
            problems.append(_too_few(r, digits, wanted, row, columns, 3 if layout.order == "row_is_sequence" else 1))
            short[r] = problems[-1][1]
    return CellReading(cells, problems, all_digits, cuts, short)


# --------------------------------------------------------------------------- the whole sheet


def _annotate(page: np.ndarray, boxes, labels=None, problems=(), cuts=()) -> np.ndarray:
    """The page in colour with every digit boxed (green), its label (blue) and every cut between touching digits.

    With ``problems``: each one boxed in red with its number, and a legend beside the page listing
    them by number (so that no label covers another or runs off the page).
    """
    out = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    thick = max(2, page.shape[1] // 500)
    for i, (x, y, w, h) in enumerate(boxes):
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 160, 0), thick)
        if labels is not None and labels[i] is not None:
            cv2.putText(out, str(labels[i]), (x, max(20, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, page.shape[1] / 1400,
                        (200, 0, 0), thick)
    for x, y0, y1 in cuts:
        cv2.line(out, (x, y0), (x, y1), (230, 120, 0), thick)
    if not problems:
        return out
    return _with_legend(out, problems, thick)


def _marker(out: np.ndarray, number: int, box: Box, thick: int) -> None:
    """A red box and a numbered red disc at its top-left corner, kept inside the image."""
    x, y, w, h = box
    cv2.rectangle(out, (x, y), (x + w, y + h), (0, 0, 230), thick * 2)
    radius = max(14, out.shape[1] // 90)
    cx = int(np.clip(x, radius, out.shape[1] - radius - 1))
    cy = int(np.clip(y, radius, out.shape[0] - radius - 1))
    cv2.circle(out, (cx, cy), radius, (0, 0, 230), -1)
    text, scale = str(number), radius / 22
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.putText(out, text, (cx - tw // 2, cy + th // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2)


def _wrapped(text: str, width: int, scale: float) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and cv2.getTextSize(trial, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line] if line else lines


def _with_legend(out: np.ndarray, problems, thick: int) -> np.ndarray:
    """Number every problem on the page and list them, wrapped, in a white panel to the page's right."""
    whole_sheet = []
    for k, (box, _) in enumerate(problems, 1):
        if tuple(box) == (0, 0, 1, 1):
            whole_sheet.append(k)  # about the whole sheet: listed only
        else:
            _marker(out, k, box, thick)
    panel_w, scale, step = max(700, out.shape[1] * 2 // 3), max(0.55, out.shape[1] / 2400), 0
    step = int(34 * scale / 0.6)
    panel = np.full((out.shape[0], panel_w, 3), 255, np.uint8)
    y, margin = step + 10, 20
    cv2.putText(panel, f"{len(problems)} problem(s), numbered as on the page:", (margin, y),
                cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2)
    y += step + 6
    for k, (_, text) in enumerate(problems, 1):
        lines = _wrapped(f"{k}. {text}", panel_w - 2 * margin, scale)
        if y + step * (len(lines) + 1) > out.shape[0] - 10:
            cv2.putText(panel, f"... and {len(problems) - k + 1} more (see the message)", (margin, y),
                        cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 230), 2)
            break
        for line in lines:
            cv2.putText(panel, line, (margin, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 200), 1, cv2.LINE_AA)
            y += step
        y += step // 2
    cv2.line(panel, (0, 0), (0, panel.shape[0] - 1), (0, 0, 0), 2)
    return np.hstack([out, panel])


def refusal(source: str, diagnosis: str, layout: SheetLayout, problems: list[tuple[Box, str]], shown: int = 8) -> str:
    """The message of a refused sheet: every problem counted, the first ``shown`` numbered as on the annotated page."""
    details = "; ".join(f"[{k}] {text.rstrip(' .;')}" for k, (_, text) in enumerate(problems[:shown], 1))
    more = len(problems) - shown
    if more > 0:
        details += f"; and {more} more problem{'s' if more > 1 else ''} (all {len(problems)} are listed on the annotated sheet)"
    if not problems:
        details = "the digits found do not fill the layout"
    return (f"{source}: {diagnosis}the layout is {layout.describe()} ({layout.count} digits); {details}. "
            "Nothing was written; see the annotated sheet (problems in red, numbered as here).")


def _diagnosis(page: np.ndarray) -> str:
    """A likely cause in the photo itself (blur), to put first in a refusal; '' if none is seen."""
    problem = blur_problem(page)
    return f"{problem} " if problem else ""


# --------------------------------------------------------------------------- the columns of the other rows


@dataclass
class Columns:
    """Where the layout's columns lie, from the rows that hold their full count: the median left and right
    edge of each column's digit (page pixels), and the median pitch between neighbouring columns."""

    left: np.ndarray
    right: np.ndarray
    pitch: float

    @property
    def width(self) -> np.ndarray:
        return self.right - self.left


def columns_of(grouped: list[list[Piece]], layout: SheetLayout) -> Columns | None:
    """The columns of the rows read whole (at least 2 of them, rows of equal length only); None otherwise."""
    if layout.row_lengths:
        return None
    complete = [g for r, g in enumerate(grouped) if len(g) == layout.cols_in(r)]
    if len(complete) < 2 or layout.cols < 2:
        return None
    left = np.median([[d.box[0] for d in g] for g in complete], axis=0).astype(float)
    right = np.median([[d.box[0] + d.box[2] for d in g] for g in complete], axis=0).astype(float)
    pitch = float(np.median(np.diff((left + right) / 2)))
    return Columns(left, right, pitch) if pitch > 0 else None


MISS, EXTRA, SPLIT = 1.2, 1.2, 0.3  # what an empty column, a piece too many and a cut cost in :func:`align`
SHAPE_MARGIN = 0.25  # in :func:`_extra_by_shape`: how much better the best reading must be than the next
SHORTER = 0.4  # a row cut at touching digits may be shorter than the gaps they closed by this much of a pitch
SHORTER_MORE = 0.2  # ... and by this much more for each further join (their overlaps add up)
FIT = 0.45  # the most a reading may cost a piece, on average, to be trusted (rows of digits: 0.1-0.4; letters: 0.6+)
EXTRA_MARGIN = 0.5  # a piece is named the one too many only if the row fits the columns this much better without it


def align(digits: list[Piece], columns: Columns, max_parts: int = 3):
    """The most likely reading of a row against the other rows' columns: which columns each piece covers.

    Every piece covers one column, or ``k`` neighbouring columns (touching digits), or none (a piece
    too many); a column may be left empty (a digit missing). The cost of a reading: how far each
    piece's width is from its columns' (the widths of touching digits add up), how far every gap
    between neighbours is from the gap between their columns in the other rows (a missing digit
    leaves a gap as wide as a digit and two gaps; touching digits pull the rest of the row left, but
    leave every later gap as it was), where the row starts and ends, and a fixed cost for every
    empty column, piece too many and cut. Returns (cost, [(piece index, first column, k) of every
    piece read], skipped pieces, empty columns), the cheapest reading found.
    """
    n, m = len(digits), len(columns.left)
    pitch = columns.pitch
    L, R, W = columns.left, columns.right, np.maximum(columns.width, 1.0)
    x0 = np.array([d.box[0] for d in digits], float)
    x1 = np.array([d.box[0] + d.box[2] for d in digits], float)
    w = np.maximum(x1 - x0, 1.0)

    def fit(i, c, k):
        expected = W[c : c + k].sum()
        return abs(np.log(w[i] / expected)) + (SPLIT * (k - 1) if k > 1 else 0.0)

    def end_cost(offset):
        return min(1.0, abs(offset) / pitch) * 0.5

    best: dict[tuple[int, int], tuple[float, tuple]] = {}
    # start: piece i (after i skipped pieces) covers columns c..c+k-1 (after c empty columns)
    for i in range(min(n, 3)):
        for c in range(min(m, 3)):
            for k in range(1, max_parts + 1):
                if c + k > m:
                    break
                cost = EXTRA * i + MISS * c + fit(i, c, k) + end_cost(x0[i] - L[c])
                key = (i, c + k - 1)
                if key not in best or cost < best[key][0]:
                    best[key] = (cost, ((i, c, k),))
    for i in range(n):
        for c_end in range(m):
            if (i, c_end) not in best:
                continue
            cost0, path = best[(i, c_end)]
            for j in range(i + 1, min(n, i + 4)):
                for c in range(c_end + 1, min(m, c_end + 4)):
                    gap, expected = x0[j] - x1[i], L[c] - R[c_end]
                    for k in range(1, max_parts + 1):
                        if c + k > m:
                            break
                        cost = (cost0 + EXTRA * (j - i - 1) + MISS * (c - c_end - 1) + fit(j, c, k)
                                + min(2.0, abs(gap - expected) / pitch))
                        key = (j, c + k - 1)
                        if key not in best or cost < best[key][0]:
                            best[key] = (cost, path + ((j, c, k),))
    out = None
    for (i, c_end), (cost, path) in best.items():
        total = cost + EXTRA * (n - 1 - i) + MISS * (m - 1 - c_end) + end_cost(x1[i] - R[c_end])
        if out is None or total < out[0]:
            out = (total, path)
    if out is None:
        return None
    total, path = out
    read = {i for i, _, _ in path}
    covered = {c + q for _, c, k in path for q in range(k)}
    return total, list(path), [i for i in range(n) if i not in read], [c for c in range(m) if c not in covered]
