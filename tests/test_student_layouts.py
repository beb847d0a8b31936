"""The sheet reader on sheets the way real students write them (issue 15).

Every sheet is drawn from real writers' pen strokes (UNIPEN, CC BY 4.0) by
:mod:`mnist_transfer.student_sheets`, which knows nothing of the reader. Only the reader's public API
is used: :func:`sheet_reading.process_sheet`, the fields of ``SheetResult`` and ``Digit``, ``SheetError``
(and, for a row of letters in a table, which only the pre-trained model can tell from digits,
:func:`sheet_check.read_checked_sheet` as notebook 01 reads a sheet).

* Each trait a student's sheet has (a photo on a desk with the paper off the frame, a table ruled by
  hand or printed with dashed lines, touching digits, strokes written apart, a wider column gap,
  a fine ballpoint, a red marker, a pencil) must be read whole: as many digits as the layout has, and
  every true digit found by exactly one digit of the reader, with the true label, row and column
  (reader digits are matched to the true boxes by overlap, so a wrong label, a merge or a split fails).
* Each hostile sheet (an 11th digit in a row, a row of letters, a scribbled row, an ink blot beside a
  digit) must be refused with a message that names the row (and for the digit too many, its column),
  on plain paper and in a table (hand-ruled in pen or pencil, or printed with dashed lines), where
  the same sheet without the mark is read whole.
"""

import functools
import re

import cv2
import numpy as np
import pytest

from mnist_transfer import sheet_check
from mnist_transfer import student_sheets as ss
from mnist_transfer.sheet_reading import SheetError, process_sheet

MATCH_IOU = 0.5  # a reader digit is the true digit whose box it overlaps this much (intersection / union)
LAYOUTS = ss.STUDENT_LAYOUTS
TRAITS = ss.TRAIT_FIELDS  # trait -> StudentSpec fields; each read on every one of SHEETS
SHEETS = ss.STUDENT_SHEETS  # writer, seed, layout index
HOSTILE = ss.HOSTILE_FIELDS  # kind -> StudentSpec fields
HOSTILE_SHEETS = ss.HOSTILE_SHEETS  # writer, seed, layout index, hostile row (0-based)
HOSTILE_TABLE_SHEETS = ss.HOSTILE_TABLE_SHEETS  # ... and the table (a key of TRAITS)


def _spec(fields: dict, writer: str, seed: int, layout: int, **more) -> ss.StudentSpec:
    return ss.StudentSpec(writer=writer, seed=seed, layout=LAYOUTS[layout], **fields, **more)


def _image_box(box, to_image: np.ndarray) -> tuple[int, int, int, int]:
    """A reader box (page pixels) as the bounding box of its corners in the image read."""
    x, y, w, h = box
    corners = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]).reshape(-1, 1, 2)
    pts = cv2.perspectiveTransform(corners, np.asarray(to_image, np.float64)).reshape(-1, 2)
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def _iou(a, b) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def misreads(result, truth) -> list[str]:
    """Every true digit not found by exactly one reader digit of its label, row and column (1-based)."""
    boxes = [_image_box(d.box, result.to_image) for d in result.digits]
    overlaps = np.array([[_iou(b, t["box"]) for t in truth] for b in boxes]).reshape(len(boxes), len(truth))
    errors = []
    for k, t in enumerate(truth):
        where = f"row {t['row'] + 1}, column {t['col'] + 1} (a {t['label']})"
        mine = [i for i in range(len(boxes)) if overlaps[i, k] >= MATCH_IOU and np.argmax(overlaps[i]) == k]
        if len(mine) != 1:
            best = float(overlaps[:, k].max()) if len(boxes) else 0.0
            errors.append(f"{where}: {len(mine)} reader digits on it (best overlap {best:.2f})")
            continue
        d = result.digits[mine[0]]
        if (d.label, d.row, d.col) != (t["label"], t["row"], t["col"]):
            errors.append(f"{where}: read as a {d.label} at row {d.row + 1}, column {d.col + 1}")
    return errors


def _read(spec: ss.StudentSpec):
    image, truth, marks = ss.render_sheet(spec)
    return process_sheet(image, spec.layout, source=spec.name), truth, marks


@functools.lru_cache(maxsize=None)
def _control(writer: str, seed: int, layout: int):
    """The sheet of (writer, seed, layout) without any trait, read once for the tests that use it."""
    return _read(_spec({}, writer, seed, layout))


def test_a_plain_sheet_of_the_same_writers_is_read_right():
    """The control: the same writers and seeds without any trait are read right, so a failure below is the trait's."""
    for writer, seed, layout in SHEETS:
        result, truth, _ = _control(writer, seed, layout)
        assert len(result.digits) == LAYOUTS[layout].count
        assert misreads(result, truth) == []


# Sheets the reader still refuses: each must stay a refusal, never a misread, and the test fails as soon as one is
# read right, so that it is taken off this list. (W02's row 8, where the 7 is written into the 6 and the 8, each a
# third of a column into the next, was the last one: it is cut in three and read right.)
STILL_REFUSED: set[tuple[str, str]] = set()
# Read with every label right (by the table's cells), but a digit whose stroke lies on a cell's line loses that
# stroke with the line, so its box is not the true one: none now. A stroke lying on the line and thickening it (a 7's
# bar, a 5's top) is kept (ink.strokes_along), and so is a 6's loop flattened along it (ink.loops_on_line; W02,
# row 11, was the last one).
STILL_DAMAGED: set[tuple[str, str]] = set()


@pytest.mark.parametrize("writer,seed,layout", SHEETS, ids=[f"{w}-s{s}" for w, s, _ in SHEETS])
@pytest.mark.parametrize("trait", list(TRAITS))
def test_students_sheet_is_read_whole_and_right(trait, writer, seed, layout):
    spec = _spec(TRAITS[trait], writer, seed, layout)
    known_gap = (trait, writer) in STILL_REFUSED
    try:
        result, truth, _ = _read(spec)
    except SheetError as err:
        if known_gap:
            pytest.xfail(f"still refused (issue 15 open): {str(err).splitlines()[0][:160]}")
        pytest.fail(f"refused: {str(err).splitlines()[0]}")
    if known_gap and len(result.digits) == spec.layout.count and not misreads(result, truth):
        pytest.fail(f"{trait} on {writer} is now read right: take it off STILL_REFUSED")
    assert len(result.digits) == spec.layout.count, f"{len(result.digits)} digits read, the layout has {spec.layout.count}"
    errors = misreads(result, truth)
    if (trait, writer) in STILL_DAMAGED:
        assert all("0 reader digits on it" in e for e in errors), errors  # a digit's box shrunk, never a wrong label
        if errors:
            pytest.xfail(f"strokes on a line removed with it (issue 15 open): {errors}")
        pytest.fail(f"{trait} on {writer} is now read right: take it off STILL_DAMAGED")
    assert errors == [], f"{len(errors)} of {len(truth)} digits wrong, first: {errors[:3]}"


def test_a_digit_that_lost_its_loop_is_listed_before_anything_is_written(pretrained):
    """The 6 of W02's row 11, whose loop lies on the table's line, with the loop gone (erased with the line under
    it, as the line removal once took it): its stem alone, which the model reads as a 1. Notebook 01's check
    lists it (cell, label, reading) instead of writing it without a word."""
    writer, seed, layout = next(s for s in SHEETS if s[0] == "W02")
    spec = _spec(TRAITS["table_pen"], writer, seed, layout)
    image, truth, _ = ss.render_sheet(spec)
    x, y, w, h = (int(round(v)) for v in next(t["box"] for t in truth if (t["row"], t["col"]) == (10, 6)))
    paper = np.median(image[y - 40 : y - 20, x : x + w].reshape(-1, image.shape[2]), axis=0)
    image[y + int(0.6 * h) : y + h + 4, x - 2 : x + w + 2] = paper  # the loop, and the line under it
    _, check = sheet_check.read_checked_sheet(image, spec.layout, pretrained, spec.name)
    flagged = [(f.row, f.col, f.label, f.read_as) for f in check.flagged]
    assert (11, 7, 6, 1) in flagged and "a stroke of it missing" in check.message, (flagged, check.message)


@functools.lru_cache(maxsize=None)
def _refusal(kind: str, writer: str, seed: int, layout: int, row: int, paper: str = ""):
    """The hostile sheet (in the table of ``paper``, a key of TRAITS) read: its SheetError (None if it was
    read), its spec and how many digits were read (read once)."""
    spec = _spec({**(TRAITS[paper] if paper else {}), **HOSTILE[kind]}, writer, seed, layout, hostile_row=row)
    image, _, _ = ss.render_sheet(spec)
    try:
        result = process_sheet(image, spec.layout, source=spec.name)
    except SheetError as err:
        return err, spec, 0
    return None, spec, len(result.digits)


def _extra_digit_at(r: int, col: int) -> str:
    """The message's words for a digit too many in row ``r`` at column ``col`` (1-based; two alike side by side:
    either of them)."""
    return rf"row {r}, column \d+: .*an extra digit at column (\d+ or )?{col}\b"


def _assert_refused_naming_the_row(err, spec, read: int, extra_digit: str) -> None:
    """Refused, the message naming the hostile row; for a digit too many, also matching ``extra_digit``
    (where it is: :func:`_extra_digit_at`)."""
    assert err is not None, f"{spec.name} was read ({read} digits), not refused"
    message = str(err)
    r = spec.hostile_row + 1  # "row 4", or "between rows 3 and 4" / "rows 4 and 5"
    assert re.search(rf"\brow {r}\b|\brows \d+ and {r}\b|\brows {r} and \d+", message), message
    if spec.hostile == "extra_digit":
        assert re.search(extra_digit, message), message


@pytest.mark.parametrize("writer,seed,layout,row", HOSTILE_SHEETS, ids=[f"{w}-s{s}" for w, s, _, _ in HOSTILE_SHEETS])
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_sheet_is_refused_naming_the_row(kind, writer, seed, layout, row):
    err, spec, read = _refusal(kind, writer, seed, layout, row)
    col = spec.layout.cols + 1 if spec.hostile_col < 0 else spec.hostile_col + 2
    _assert_refused_naming_the_row(err, spec, read, _extra_digit_at(row + 1, col))


# In a table, a digit too many is squeezed into cell ``hostile_col`` beside that cell's digit: the message must
# name that cell's column ("an extra digit at column 5" for the fifth cell, or "row 4, column 5: two digits in
# one cell"); with ``hostile_col=-1`` it is written just right of the table's frame ("an extra digit at column
# 11").
# A letter in each cell of a row is, to the reader, a mark in each cell: it reads these sheets whole (60 or 120
# "digits"). Only the pre-trained model tells letters from digits, so that row is refused by the check that runs
# before anything is written (sheet_check, as notebook 01 reads a sheet): the test after this one.
READER_CANNOT_TELL = {("letters_row", paper) for paper in ("table_pen", "table_pencil", "table_dashed")}


def _table_cases():
    for kind in HOSTILE:
        for sheet in HOSTILE_TABLE_SHEETS:
            writer, seed, _, _, paper = sheet
            if (kind, paper) not in READER_CANNOT_TELL:
                yield pytest.param(kind, *sheet, id=f"{kind}-{paper}-{writer}-s{seed}")


@pytest.mark.parametrize("kind,writer,seed,layout,row,paper", list(_table_cases()))
def test_hostile_table_sheet_is_refused_naming_the_row(kind, writer, seed, layout, row, paper):
    err, spec, read = _refusal(kind, writer, seed, layout, row, paper)
    r = row + 1
    if spec.hostile_col < 0:
        where = _extra_digit_at(r, spec.layout.cols + 1)
    else:  # the cell holding two digits
        c = spec.hostile_col + 1
        where = rf"{_extra_digit_at(r, c)}|row {r}, column {c}: two (\w+ )?digits in one cell"
    _assert_refused_naming_the_row(err, spec, read, where)


@pytest.mark.parametrize("writer,seed,layout,row,paper", HOSTILE_TABLE_SHEETS,
                         ids=[f"{p}-{w}-s{s}" for w, s, _, _, p in HOSTILE_TABLE_SHEETS])
def test_a_row_of_letters_in_a_table_is_refused_before_anything_is_written(pretrained, writer, seed, layout, row, paper):
    """Read as notebook 01 reads a sheet (:func:`sheet_check.read_checked_sheet`): the model reads none of the
    row's letters as the digit of its cell, and the other rows' digits well, so the row is refused, named."""
    spec = _spec({**TRAITS[paper], **HOSTILE["letters_row"]}, writer, seed, layout, hostile_row=row)
    image, _, _ = ss.render_sheet(spec)
    with pytest.raises(SheetError) as err:
        sheet_check.read_checked_sheet(image, spec.layout, pretrained, spec.name)
    assert re.search(rf"\brow {row + 1} is not the layout's digits", str(err.value)), str(err.value)


@pytest.mark.parametrize("writer,seed,layout,row,paper", HOSTILE_TABLE_SHEETS,
                         ids=[f"{p}-{w}-s{s}" for w, s, _, _, p in HOSTILE_TABLE_SHEETS])
def test_hostile_table_sheet_without_its_mark_is_read_whole(writer, seed, layout, row, paper):
    """The control: the same table sheet without the mark is read whole, so a refusal above is the mark's."""
    result, _, _ = _read(_spec(TRAITS[paper], writer, seed, layout))
    assert len(result.digits) == LAYOUTS[layout].count


def test_hostile_marks_in_a_table_spoil_only_their_row():
    """The hostile table sheets are the sheets without the mark but for the hostile row: every other row's
    digits and ink as they were, the mark in its row (a digit too many or a blot in its cell, beside the digit)."""
    for writer, seed, layout, row, paper in HOSTILE_TABLE_SHEETS:
        clean, clean_truth, _ = ss.render_page(_spec(TRAITS[paper], writer, seed, layout))
        for kind in HOSTILE:
            spec = _spec({**TRAITS[paper], **HOSTILE[kind]}, writer, seed, layout, hostile_row=row)
            page, truth, marks = ss.render_page(spec)
            mine = [m for m in marks if m["kind"] == spec.hostile]
            assert mine and all(m["row"] == row for m in mine), spec.name
            assert [t for t in truth if t["row"] != row] == [t for t in clean_truth if t["row"] != row], spec.name
            band = [t["box"] for t in truth + clean_truth + marks if t["row"] == row and "box" in t]
            y0, y1 = min(b[1] for b in band), max(b[1] + b[3] for b in band)
            changed = np.nonzero((page != clean).any(2).any(1))[0]
            assert y0 <= changed.min() and changed.max() < y1, spec.name
            if spec.hostile in ("extra_digit", "blot"):
                cols = {t["col"]: t["box"] for t in truth if t["row"] == row}
                x, _, w, _ = mine[0]["box"]
                c = mine[0]["col"]
                if c == spec.layout.cols:  # right of the table's frame
                    assert x > cols[c - 1][0] + cols[c - 1][2], spec.name
                else:  # beside the cell's digit, before the next cell's
                    assert cols[c][0] + cols[c][2] < x and (c + 1 not in cols or x + w < cols[c + 1][0]), spec.name


def test_the_reader_annotates_what_it_read_and_what_it_refused():
    result, _, _ = _control(*SHEETS[0])
    assert result.annotated.ndim == 3 and result.annotated.shape[:2] == result.page.shape[:2]
    gray = cv2.cvtColor(result.annotated, cv2.COLOR_BGR2GRAY)
    assert (gray != result.page).mean() > 0.001  # the boxes and labels are drawn
    err, _, _ = _refusal("extra_digit_at_end", *HOSTILE_SHEETS[0])
    assert err is not None and err.annotated is not None and err.annotated.ndim == 3
