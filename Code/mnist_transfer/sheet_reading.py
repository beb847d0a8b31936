"""From a photo or scan of a handwritten sheet (or a folder of cut digits) to labelled 28x28 digits.

The reader is a pipeline of stages, one module each, every one importing only earlier ones:

0. :mod:`.layout`  what a sheet holds (:class:`SheetLayout`), what comes out (:class:`Digit`,
                   :class:`SheetResult`) and the refusal (:class:`SheetError`)
1. :mod:`.page`    read the image, judge exposure and focus, locate the paper and undo the
                   perspective (photos), or take the frame as the page (scans, close-ups)
2. :mod:`.ink`     even out the light and threshold (ink = 255); measure the writing's scale;
                   remove printed and hand-drawn lines of any weight, keep the strokes that cross them
3. :mod:`.rows`    connected pieces of ink, chained into rows of writing (drift, tilt and uneven
                   spacing do not matter; no column grid) and grouped into digits
3b. :mod:`.table` a sheet written in a table (pencil lines too) read by its cells, when its rows of
                   writing do not fit the layout
4. :mod:`.cells`   each row read left to right into the layout's cells (touching digits split
                   where the count asks for it); every problem named with its row and column,
                   and drawn on the annotated page
5. :func:`~.mnist_style.to_mnist`  MNIST normalisation (module :mod:`.mnist_style`)

This module composes them: :func:`process_sheet` runs them and raises :class:`SheetError` naming
what is wrong, where and how to fix it; :func:`process_sheets` reads a list of sheets; digit
folders are read by :func:`digits_from_folder`. Whether the labels are plausible (an upside-down
photo, a transposed layout) is checked with the pre-trained model by the next stage,
:mod:`.sheet_check`; writing the split folders is :mod:`.dataset_writing`. No stage needs a
model (no torch).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np

from . import paths
from .cells import CellReading, _annotate, _diagnosis, _where, assign_cells, refusal
from .ink import binarize, ink_scale, remove_drawn_lines, remove_grid_lines, stroke_length
from .layout import ORDERS, Box, Digit, SheetError, SheetLayout, SheetResult, ShortRow
from .mnist_style import to_mnist
from .page import (PAGE_WIDTH, blur_problem, exposure_problem, find_page, light_surface_edge, page_and_transform,
                   read_image)
from .rows import Piece, find_pieces, find_rows, group_digits
from .table import find_table, read_table

__all__ = ["ORDERS", "PAGE_WIDTH", "Box", "Digit", "Piece", "SheetError", "SheetLayout", "SheetResult",
           "assign_cells", "binarize", "blur_problem", "check_sheet_list", "digit_mask", "digits_from_folder",
           "exposure_problem", "find_page", "find_pieces", "find_rows", "group_digits", "ink_scale",
           "page_and_transform", "process_sheet", "process_sheets", "read_image", "remove_grid_lines",
           "save_error_sheet", "sheet_names"]


def process_sheet(image: np.ndarray, layout: SheetLayout | None = None, source: str = "sheet") -> SheetResult:
    """Cut one sheet into labelled 28x28 digits, or raise :class:`SheetError` saying what and where."""
    layout = layout or SheetLayout()
    start = time.perf_counter()
    try:
        page, kind, to_image = page_and_transform(image)
    except SheetError as err:
        raise SheetError(f"{source}: {err}", cause="page") from None
    steps = {"page": kind}
    ink = binarize(page)
    height, stroke = ink_scale(ink)
    ink, lines = remove_grid_lines(ink, height)
    steps["grid_lines_removed"] = bool(lines.any())
    height, stroke = ink_scale(ink)
    ink, drawn = remove_drawn_lines(ink, height, known=lines)
    if drawn.any():  # lines drawn by hand, dashed or dotted: the scale of the writing without them
        steps["grid_lines_removed"] = True
        height, stroke = ink_scale(ink)
    pieces, dust, labels = find_pieces(ink, height, stroke)
    if not pieces:
        raise SheetError(f"{source}: {_diagnosis(page)}No handwriting found on the page. Write with a dark pen, "
                         "and photograph the sheet in focus and in good light.", _annotate(page, []))
    if len(pieces) > 20 * layout.count + 200:
        raise SheetError(f"{source}: {_diagnosis(page)}the page is covered in {len(pieces)} small marks, not "
                         f"{layout.count} digits: is it a photo of paper at all, taken in good light? Photograph "
                         "the sheet again, evenly lit, or scan it.", _annotate(page, []))
    rows, stray = find_rows(pieces, height, min_chain=min(3, layout.cols))
    problems = [(p.box, f"a mark outside the rows of digits, {_where(p.box, rows, height)}: erase or cover it")
                for p in stray if max(p.box[2], p.box[3]) >= 0.35 * height]
    reading = assign_cells(rows, layout, stroke, labels)
    cut_off = _cut_off(reading.digits, page.shape, height)
    problems = cut_off + problems + reading.problems
    cells, cuts, table_boxes = reading.cells, reading.cuts, None
    if problems or len(cells) != layout.count:  # a second reading, by the table's cells, if the page has a table
        by_table = _read_by_table(page, layout, pieces, stroke, height)
        if by_table is not None and by_table[0] is not None:
            cells, cuts, problems = by_table[0], [], []
            steps["read_by_table"] = True
        elif by_table is not None:  # the writing is in the layout's table: its cells say what is wrong
            problems, table_boxes = cut_off + by_table[1], by_table[2]
    if problems or len(cells) != layout.count:
        if not any("turned by 90 degrees" in text for _, text in problems) and _reads_sideways(ink, layout, len(pieces)):
            problems.insert(0, ((0, 0, 1, 1), (
                "the writing is sideways: turned a quarter turn, the page reads whole as "
                f"{layout.cols} rows of {layout.rows} digits, so the photo is turned by 90 degrees. Turn the photo upright "
                "(or photograph the sheet the right way up) and read it again")))
        if kind == "scan" and light_surface_edge(page):
            problems.insert(0, ((0, 0, 1, 1), (
                "the paper's edge shows in the photo against a light surface (a white table), so the paper cannot "
                "be told from the table and its edges become marks: photograph the sheet on a darker surface, with "
                "all four corners visible, or crop the photo to the paper")))
        all_boxes = table_boxes if table_boxes is not None else [p.box for r in reading.digits for p in r]
        cause = ("turned" if any("turned by 90 degrees" in text for _, text in problems) else
                 "local" if _as_laid_out(reading.digits, layout) or (
                     cut_off and all(_within_rows(box, cut_off) for box, _ in problems)) else "")
        diagnosis = _diagnosis(page)

        def retell(problems):
            return SheetError(refusal(source, diagnosis, layout, problems),
                              _annotate(page, all_boxes, problems=problems, cuts=reading.cuts), cause, problems,
                              short, retell)

        short = {r: ShortRow(text, tuple(p.box for p in reading.digits[r]),
                             tuple(_image_of(p, labels) for p in reading.digits[r]))
                 for r, text in reading.short.items() if any(text == t for _, t in problems)}
        raise SheetError(refusal(source, diagnosis, layout, problems),
                         _annotate(page, all_boxes, problems=problems, cuts=reading.cuts), cause, problems, short, retell)
    digits, boxes, given = [], [], []
    for (r, c), piece in sorted(cells.items()):
        label = layout.label_at(r, c)
        mask = _mask_of(piece, labels)
        digits.append(Digit(to_mnist(mask), label, source, r, c, piece.box, strokes=stroke_length(mask)))
        boxes.append(piece.box)
        given.append(label)
    steps["digits"] = len(digits)
    steps["specks_ignored"] = len(dust) + len(stray) - sum(max(p.box[2], p.box[3]) >= 0.35 * height for p in stray)
    steps["touching_cuts"] = len(cuts)  # cuts between touching digits (drawn on the annotated page)
    return SheetResult(digits, page, _annotate(page, boxes, given, cuts=cuts), time.perf_counter() - start, steps,
                       to_image=to_image)


def _read_by_table(page: np.ndarray, layout: SheetLayout, pieces: list[Piece], stroke: float,
                   height: float) -> tuple[dict | None, list[tuple[Box, str]], list[Box]] | None:
    """The cells of the page's table, if it has one of the layout's shape holding one whole digit a cell:
    (cells, [], boxes); with a problem in some cell, (None, the problems, the boxes of the digits found in
    the cells); None when there is no such table (or its reading cuts a row off at the photo's edge)."""
    table = find_table(page, layout, height)
    if table is None:
        return None
    cells, problems, boxes = read_table(pieces, table, layout, stroke, height)
    if cells is not None and _cut_off([list(cells.values())], page.shape, height):
        return None
    return cells, problems, boxes


def _cut_off(rows: list[list[Piece]], shape: tuple[int, ...], height: float) -> list[tuple[Box, str]]:
    """The first or last row, if the photo's edge cuts through its digits: two or more of them (or half
    the row) reach the page's top or bottom edge, their bottoms or tops missing."""
    if not rows:
        return []
    out = []
    page_h = shape[0]
    for r, edge, where in ((0, "top", "above the first row"), (len(rows) - 1, "bottom", "below the last row")):
        row = rows[r]
        touching = [d for d in row if (d.box[1] <= 1 if edge == "top" else d.box[1] + d.box[3] >= page_h - 1)]
        if len(touching) >= max(2, (len(row) + 1) // 2 if len(row) < 4 else 2):
            x0 = min(d.box[0] for d in touching)
            x1 = max(d.box[0] + d.box[2] for d in touching)
            y0 = min(d.box[1] for d in touching)
            y1 = max(d.box[1] + d.box[3] for d in touching)
            out.append(((x0, y0, x1 - x0, y1 - y0),
                        f"row {r + 1} is cut off at the photo's edge: {len(touching)} of its digits reach the "
                        f"{edge} edge of the photo, part of them missing; photograph the whole sheet, with some "
                        f"paper {where}"))
        if len(rows) == 1:
            break
    return out


def _as_laid_out(rows: list[list[Piece]], layout: SheetLayout) -> bool:
    """Do the rows found have the layout's shape: every row there, and all but a quarter of them (at least one
    allowed) holding exactly their number of digits? Then the sheet is the right way round and its problems are
    local: a mark, a missing or extra digit, digits touching, which no other orientation would remove."""
    if len(rows) != layout.rows:
        return False
    off = sum(len(row) != layout.cols_in(r) for r, row in enumerate(rows))
    return off <= max(1, layout.rows // 4)


def _within_rows(box: Box, rows: list[tuple[Box, str]]) -> bool:
    """Does ``box`` lie in the band of one of ``rows`` (boxes of whole rows), half a row's height either side?"""
    middle = box[1] + box[3] / 2
    return any(y - h / 2 <= middle <= y + 1.5 * h for (_, y, _, h), _ in rows)


def _mask_of(piece: Piece, labels: np.ndarray) -> np.ndarray:
    """The piece's ink alone (not its neighbours' in its box), 255 = ink, the size of its box."""
    x, y, w, h = piece.box
    return np.where(np.isin(labels[y : y + h, x : x + w], piece.ids), 255, 0).astype(np.uint8)


def _image_of(piece: Piece, labels: np.ndarray) -> np.ndarray:
    """The piece's ink alone, MNIST-style (28x28)."""
    return to_mnist(_mask_of(piece, labels))


def _reads_sideways(ink: np.ndarray, layout: SheetLayout, n_pieces: int) -> bool:
    """Does the ink, turned by 90 degrees, read whole with the layout's rows and columns exchanged?

    Then the photo is sideways (even where the layout, as given, describes the sideways sheet: rows
    of 9s down to 0s). Only the rows and counts are compared; the labels are not read. Tried only
    where the page holds about as many pieces as the layout has digits (``n_pieces``, upright), so that
    a page of text is refused as fast as before.
    """
    other = layout.transposed()
    if other == layout or not 0.5 * layout.count <= n_pieces <= 2 * layout.count + 20:
        return False
    turned = cv2.rotate(ink, cv2.ROTATE_90_CLOCKWISE)
    height, stroke = ink_scale(turned)
    pieces, _, labels = find_pieces(turned, height, stroke)
    if not pieces or len(pieces) > 20 * layout.count + 200:
        return False
    rows, stray = find_rows(pieces, height, min_chain=min(3, other.cols))
    if any(max(p.box[2], p.box[3]) >= 0.35 * height for p in stray):
        return False
    reading = assign_cells(rows, other, stroke, labels)
    return not reading.problems and len(reading.cells) == other.count


# --------------------------------------------------------------------------- folders of single digits

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def digit_mask(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """One cut-out digit (any size, either polarity, tight or loose crop) as a binary ink mask.

    The background is whichever of the two Otsu classes covers most of the image's border; when
    the border does not decide it (a crop so tight that the ink touches every edge), the ink is
    taken to be the darker class, as on paper. The mask is padded, so that ink touching the edge
    is normalised like any other.
    """
    if float(np.percentile(gray, 99) - np.percentile(gray, 1)) < 30:
        raise SheetError(f"'{name}' is blank (no contrast between ink and paper): remove it or replace it.")
    level, bright = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    border = np.concatenate([bright[0], bright[-1], bright[:, 0], bright[:, -1]]) > 0
    mask = 255 - bright if border.mean() >= 0.35 else bright  # bright border: dark ink on light paper
    if border.mean() < 0.35 and border.mean() > 0.0 and (mask > 0).mean() > 0.5:
        mask = 255 - bright
    mask = cv2.copyMakeBorder(mask, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0)
    if (mask > 0).mean() > 0.9:
        raise SheetError(f"'{name}' is almost all ink: it shows no digit. Remove it or replace it.")
    return mask


def digits_from_folder(folder: Path) -> list[Digit]:
    """Already-cut digit images (any size, either polarity), labelled by sub-folder or name.

    Accepts ``folder/<digit>/*.png`` or files whose name starts with the digit (``7_03.png``).
    Any file that cannot be read or shows no digit is named with its path.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SheetError(f"Digit folder '{folder}' does not exist.")
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not re.fullmatch(r"[0-9]", sub.name):
            raise SheetError(
                f"'{sub}' is not a digit folder: class folders must be named 0 to 9, one digit each. Rename or "
                "remove it."
            )
    out = []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SheetError(f"'{folder}' holds no .png/.jpg images.")
    for i, path in enumerate(files):
        name = path.parent.name if path.parent != folder else path.stem[:1]
        if not (len(name) == 1 and name.isdigit()):
            raise SheetError(
                f"Cannot tell the label of '{path.relative_to(folder)}': put it in a folder named by its digit "
                "(0..9) or start its file name with the digit."
            )
        gray = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2GRAY)
        mask = digit_mask(gray, str(path))
        out.append(Digit(to_mnist(mask), int(name), str(path.relative_to(folder)), 0, i))
    return out


# --------------------------------------------------------------------------- several sheets


def sheet_names(sheet_paths: list[Path]) -> list[str]:
    """A file-name stem for every sheet, unique among them.

    The sheet's own stem (spaces as underscores) when no other sheet has the same one, so that a
    single sheet keeps its familiar names; otherwise the stem with ``-s<k>`` (its position in the
    list, from 1) appended, so that "sheet 1.jpg" and "sheet_1.jpg", or two "IMG_0001.jpg" from
    different folders, never overwrite each other's images.
    """
    stems = [Path(p).stem.replace(" ", "_") for p in sheet_paths]
    return [s if stems.count(s) == 1 else f"{s}-s{k + 1}" for k, s in enumerate(stems)]


def save_error_sheet(err: SheetError, path: Path, on_error_dir: Path | None) -> None:
    """Save the annotated page of a refused sheet as ``sheet_errors_<stem>.png`` and say so in the error."""
    if err.annotated is not None and on_error_dir is not None:
        on_error_dir.mkdir(parents=True, exist_ok=True)
        out = on_error_dir / f"sheet_errors_{Path(path).stem.replace(' ', '_')}.png"
        out.write_bytes(cv2.imencode(".png", err.annotated)[1].tobytes())  # cv2.imwrite fails on non-ASCII paths (Windows)
        err.args = (f"{err.args[0]} Annotated sheet saved to {out}.",)


def check_sheet_list(sheets: list[tuple[Path, SheetLayout]], need: int = 12) -> None:
    """Refuse a list of sheets before any is read: one file listed twice (its digits would be counted twice),
    or layouts that together cannot give ``need`` copies of every digit 0-9 (the 8/2/2 split needs 12).

    The counts follow from the layouts alone, so a sheet list that could never make the dataset
    is refused at once, not after every sheet has been read.
    """
    seen: dict[Path, int] = {}
    for k, (path, _) in enumerate(sheets):
        resolved = Path(path).resolve()
        if resolved in seen:
            raise SheetError(f"'{path}' is listed twice in SHEETS (entries {seen[resolved] + 1} and {k + 1}); "
                             "list every sheet once.")
        seen[resolved] = k
    totals = dict.fromkeys(range(10), 0)
    for _, layout in sheets:
        for digit, n in layout.digit_counts().items():
            totals[digit] += n
    short = {digit: n for digit, n in totals.items() if n < need}
    if short:
        listed = ", ".join(f"digit {digit}: {n}" for digit, n in short.items())
        raise SheetError(f"The layouts of the {len(sheets)} sheet(s) in SHEETS hold too few of some digits for the "
                         f"dataset ({need} of every digit 0-9 are needed; {listed}). Add a sheet with those digits, "
                         "or correct the layouts. No sheet was read.")


def process_sheets(sheets: list[tuple[Path, SheetLayout]], on_error_dir: Path | None = paths.FIGURES_DIR,
                   read=None) -> tuple[list[Digit], list[SheetResult]]:
    """Process several sheets; on a :class:`SheetError` save the annotated page, then re-raise.

    ``read(image, layout, source)`` cuts one sheet (default :func:`process_sheet`;
    :func:`.sheet_check.read_checked_sheets` passes the checked reading). Every digit gets
    ``sheet``, a name unique among these sheets (see :func:`sheet_names`).
    """
    read = read or (lambda image, layout, source: process_sheet(image, layout, source=source))
    check_sheet_list(sheets)
    names = sheet_names([p for p, _ in sheets])
    digits, results = [], []
    for (path, layout), name in zip(sheets, names):
        path = Path(path)
        try:
            result = read(read_image(path), layout, path.name)
        except SheetError as err:
            save_error_sheet(err, path, on_error_dir)
            raise
        for d in result.digits:
            d.sheet = name
        digits.extend(result.digits)
        results.append(result)
    return digits, results
