"""Stage 4, the cells: each row read left to right into the layout's cells; problems named and drawn."""

from __future__ import annotations

import cv2
import numpy as np

from .layout import Box, SheetLayout
from .page import blur_problem
from .rows import Piece, group_digits


def _where(box: Box, rows: list[list[Piece]]) -> str:
    """Where a mark outside the rows is: above/below/between which rows."""
    cy = box[1] + box[3] / 2
    centres = [float(np.median([p.cy for p in r])) for r in rows]
    above = sum(c < cy for c in centres)
    if not centres:
        return f"at x={box[0]}, y={box[1]}"
    if above == 0:
        return f"above row 1 (x={box[0]}, y={box[1]})"
    if above == len(centres):
        return f"below row {len(centres)} (x={box[0]}, y={box[1]})"
    return f"between rows {above} and {above + 1} (x={box[0]}, y={box[1]})"


def assign_cells(rows: list[list[Piece]], layout: SheetLayout, stroke: float = 3.0) -> tuple[dict[tuple[int, int], Piece], list[tuple[Box, str]]]:
    """Read each row left to right into the layout's cells: ``({(row, col): digit}, problems)``.

    ``problems`` name every row and column that does not fit (with a box to mark on the page):
    too many or too few rows, a row with a digit too many (a stray mark, the widest gap it
    sits in) or too few (two digits touching, the widest box).
    """
    problems: list[tuple[Box, str]] = []
    if len(rows) != layout.rows:
        counts = [len(group_digits(r, stroke)) for r in rows]
        hint = ""
        if len(rows) == layout.cols and counts and all(c == layout.rows for c in counts):
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
        return {}, problems
    cells: dict[tuple[int, int], Piece] = {}
    for r, row in enumerate(rows):
        digits = group_digits(row, stroke)
        if len(digits) == layout.cols:
            for c, d in enumerate(digits):
                cells[(r, c)] = d
            continue
        widths = np.array([d.box[2] for d in digits], float)
        heights = np.array([d.box[3] for d in digits], float)
        if len(digits) > layout.cols:
            size = np.maximum(widths, heights)
            odd = int(np.argmin(size))
            d = digits[odd]
            problems.append((d.box, f"row {r + 1}, column {odd + 1}: {len(digits) - layout.cols} mark(s) too many "
                                    f"in this row ({len(digits)} where the layout has {layout.cols}); the one at "
                                    f"column {odd + 1} (x={d.box[0]}) is the smallest - a stray mark, two digits in "
                                    "one cell, or a digit in pieces far apart? Erase the mark, or rewrite the digit"))
        else:
            wide = int(np.argmax(widths / np.median(widths))) if len(digits) else 0
            if len(digits) and widths[wide] > 1.5 * np.median(widths):
                problems.append((digits[wide].box, f"row {r + 1}, column {wide + 1}: looks like 2 digits touching "
                                                   f"({widths[wide] / np.median(widths):.1f}x as wide as the others); "
                                                   "leave a gap between digits"))
            else:
                gaps = [digits[k + 1].box[0] - digits[k].box[0] - digits[k].box[2] for k in range(len(digits) - 1)]
                where, box = "", row[0].box
                if len(gaps) >= 2 and max(gaps) > 2 * np.median(gaps):
                    k = int(np.argmax(gaps))
                    where = f"; column {k + 2} seems empty (the widest gap, after column {k + 1})"
                    box = (digits[k].box[0] + digits[k].box[2], digits[k].box[1], max(1, gaps[k]), digits[k].box[3])
                problems.append((box, f"row {r + 1}: {len(digits)} digits where the layout has {layout.cols}{where}; "
                                      "write the missing digit, or darken one too faint to be seen"))
    return cells, problems


# --------------------------------------------------------------------------- the whole sheet


def _annotate(page: np.ndarray, boxes, labels=None, problems=()) -> np.ndarray:
    out = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    thick = max(2, page.shape[1] // 500)
    for i, (x, y, w, h) in enumerate(boxes):
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 160, 0), thick)
        if labels is not None and labels[i] is not None:
            cv2.putText(out, str(labels[i]), (x, max(20, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, page.shape[1] / 1400,
                        (200, 0, 0), thick)
    for (x, y, w, h), text in problems:
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 0, 230), thick * 2)
        cv2.putText(out, text[:60], (x, y + h // 2), cv2.FONT_HERSHEY_SIMPLEX, page.shape[1] / 2000, (0, 0, 230), thick)
    return out


def _diagnosis(page: np.ndarray) -> str:
    """A likely cause in the photo itself (blur), to put first in a refusal; '' if none is seen."""
    problem = blur_problem(page)
    return f"{problem} " if problem else ""
