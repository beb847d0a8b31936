"""Stage 4, the cells: each row read left to right into the layout's cells; problems named and drawn.

A row with fewer pieces than its count, in which pieces about k times as wide as its digits
hold exactly the missing ones, has them cut at the weakest ink (:func:`.rows.split_piece`),
unless the row, once cut, would still look a digit short (:func:`_empty_cell_likely`): a wide
digit beside an empty cell is refused, never cut into two labels. A row with a piece too many
names the piece least like its digits. A refusal counts every problem, numbers them, and the
annotated page lists them in a panel beside it.
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


def _too_many(r: int, digits: list[Piece], wanted: int) -> list[tuple[Box, str]]:
    """The pieces of a row with too many: the ones least like the row's digits named, one problem each."""
    extra = len(digits) - wanted
    scores = _unlikeness(digits)
    worst = sorted(range(len(digits)), key=lambda i: -scores[i][0])[:extra]
    out = []
    for i in sorted(worst):
        d = digits[i]
        out.append((d.box, f"row {r + 1}, column {i + 1}: {extra} mark(s) too many in this row ({len(digits)} where "
                           f"the layout has {wanted}); the one at column {i + 1} (x={d.box[0]}) is the least like "
                           f"the row's digits ({scores[i][1]}) - a stray mark, two digits in one cell, or a digit in "
                           "pieces far apart? Erase the mark, or rewrite the digit"))
    return out


def _too_few(r: int, digits: list[Piece], wanted: int, row: list[Piece]) -> tuple[Box, str]:
    """A row with too few digits: the widest one if it looks like digits touching, else the widest gap."""
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


def _split_row(digits: list[Piece], parts: list[int], labels: np.ndarray):
    """The row's digits with every piece that holds k of them cut into k, and the cuts."""
    split, cuts = [], []
    for d, k in zip(digits, parts):
        if k == 1:
            split.append(d)
            continue
        pieces, where = split_piece(d, k, labels)
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
    all_digits, cuts = [], []
    grouped = [group_digits(row, stroke) for row in rows]
    complete = [g for r, g in enumerate(grouped) if len(g) == layout.cols_in(r)]
    for r, row in enumerate(rows):
        digits, wanted = grouped[r], layout.cols_in(r)
        parts = touching_counts(digits, wanted) if labels is not None else None
        if parts is not None:
            split, where = _split_row(digits, parts, labels)
            if not _empty_cell_likely(split, complete, ends=not layout.row_lengths):  # rows of unequal length need not start or end together
                digits = split
                cuts.extend(where)
        all_digits.append(digits)
        if len(digits) == wanted:
            for c, d in enumerate(digits):
                cells[(r, c)] = d
        elif len(digits) > wanted:
            problems.extend(_too_many(r, digits, wanted))
        else:
            problems.append(_too_few(r, digits, wanted, row))
    return CellReading(cells, problems, all_digits, cuts)


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
