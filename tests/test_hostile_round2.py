"""Hostile inputs, second round (issue 17): no single bad digit slips through, and every sheet problem names itself.

Written by a tester from the issue text and the public API only (not from the code under test). Every sheet is
built from real ink: the pen strokes of the UNIPEN writers (:func:`mnist_transfer.handwriting.draw_digit`) placed
in rows of 0..9 on paper, then spoiled the way a student spoils a sheet (a digit crossed out, scribbled over, two
neighbours exchanged, a scan that cuts through the last row, a mirrored, sideways or transparent image, a white
table under the paper). The real scans of ``Code/data`` and the ten UNIPEN writers must still pass.

Messages are matched on the cell ("row R, column C", 1-based) and a keyword, never on whole sentences. Where a
test cannot tell a refusal from a correction, any accepted result must have every label right: a wrong label
written silently is the worst outcome.

Contract for the warnings (issue 17, "list the rest as warnings"): :class:`sheet_check.Check` has a field
``flagged``, a list of objects with ``row`` and ``col`` (1-based; None for a digit from a folder), ``file`` (str or
None), ``label``, ``read_as``, ``confidence`` (0..1) and ``reason`` (str).
"""

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mnist_transfer import data, evaluation, handwriting, sheet_check, sheet_reading
from mnist_transfer.layout import ShortRow
from mnist_transfer.sheet_reading import Digit, SheetError, SheetLayout

DATA = Path(__file__).resolve().parents[1] / "Code" / "data"
REAL = DATA / "real_sheets"
SAMPLE = Path(__file__).resolve().parents[1] / "Code" / "sheets" / "sample_sheet.jpg"

ROWS = 4
LAYOUT = SheetLayout(rows=ROWS)  # 4 rows of 0..9 (small: every refusal is read in up to 8 orientations)
WRITER = "W03"  # a writer the pre-trained model reads well (all but one of 499 digits)
HEIGHT, PEN, PITCH, ROW_PITCH, MARGIN = 48, 4, 78, 96, 82  # small pages: every refusal is read up to 14 times
PAPER, INK = 245.0, 40.0


# --------------------------------------------------------------------------- real ink on paper


def _probs(model, images: np.ndarray) -> np.ndarray:
    return evaluation.predict(model, torch.from_numpy(np.ascontiguousarray(images))).numpy()


@pytest.fixture(scope="module")
def pools(pretrained):
    """For every label, WRITER's digits (PenDigit) that the model reads right and surely, surest first."""
    writer = handwriting.load_writers()[WRITER]
    images, labels, indices = handwriting.writer_images(WRITER)
    probs = _probs(pretrained, images)
    out = {}
    for label in range(10):
        good = [(probs[k].max(), int(indices[k])) for k in range(len(labels))
                if labels[k] == label and probs[k].argmax() == label and probs[k].max() >= 0.8]
        out[label] = [writer[i] for _, i in sorted(good, reverse=True)]
        assert len(out[label]) >= 8, (label, len(out[label]))
    return out


def compose(pools, rows, shift=None, height=HEIGHT, pen=PEN):
    """A flat page (BGR) with ``rows`` written on it in real ink, and the box of every item.

    ``rows``: one list per row of items, an item a label (the next digit of that label from ``pools``), a
    :class:`handwriting.PenDigit`, or None (the place left empty). ``shift``: {(r, k): dx} moves item k of row r
    and every item after it by dx pixels. Returns (image, {(r, k): (x, y, w, h)}, {(r, k): true label}).
    """
    shift = shift or {}
    width = 2 * MARGIN + PITCH * (max(len(r) for r in rows) + 1)
    needed = 2 * MARGIN + ROW_PITCH * len(rows)
    top = MARGIN + max(0, width - needed) // 2  # a square page: read turned by 90 degrees it is no larger
    page = np.full((max(needed, width), width), PAPER, np.float32)
    boxes, labels, used = {}, {}, {}
    rng = np.random.default_rng(len(rows))
    for r, items in enumerate(rows):
        dx = 0
        for k, item in enumerate(items):
            dx += shift.get((r, k), 0)
            if item is None:
                continue
            if isinstance(item, (int, np.integer)):
                pool = pools[int(item)]
                digit = pool[(used.get(int(item), 0) + 3 * r) % len(pool)]
                used[int(item)] = used.get(int(item), 0) + 1
            else:
                digit = item
            mask = handwriting.draw_digit(digit.strokes, height * rng.uniform(0.95, 1.04), pen,
                                          slant_deg=rng.normal(0, 2), rotate_deg=rng.normal(0, 1.5),
                                          max_width_px=0.9 * PITCH)
            h, w = mask.shape
            x = int(MARGIN + k * PITCH + (PITCH - w) / 2 + dx)
            y = int(top + r * ROW_PITCH + (ROW_PITCH + height) / 2 + rng.normal(0, 2) - h)
            alpha = mask.astype(np.float32) / 255 * 0.95
            region = page[y : y + h, x : x + w]
            page[y : y + h, x : x + w] = region * (1 - alpha) + INK * alpha
            boxes[(r, k)] = (x, y, w, h)
            labels[(r, k)] = digit.label
    rng = np.random.default_rng(7)
    page = cv2.GaussianBlur(page, (0, 0), 0.6) + rng.normal(0, 1.5, page.shape).astype(np.float32)  # a scan
    return cv2.cvtColor(np.clip(page, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR), boxes, labels


def sequence(n_rows=ROWS):
    return [list(range(10)) for _ in range(n_rows)]


def _pen_line(image, points, pen=PEN):
    pts = np.round(np.asarray(points, np.float64) * 16).astype(np.int32)
    cv2.polylines(image, [pts], False, (INK, INK, INK), pen, cv2.LINE_AA, 4)


def cross_out(image, box, pen=PEN):
    """An X through the box, a little past its corners, as a pen draws it (two strokes, slightly bent)."""
    out = image.copy()
    x, y, w, h = box
    m = 0.12
    for (x0, y0), (x1, y1) in (((x - m * w, y - m * h), (x + w * (1 + m), y + h * (1 + m))),
                               ((x + w * (1 + m), y - m * h), (x - m * w, y + h * (1 + m)))):
        t = np.linspace(0, 1, 12)[:, None]
        line = (1 - t) * [x0, y0] + t * [x1, y1] + np.sin(np.pi * t) * [2.5, -2.5]
        _pen_line(out, line, pen)
    return out


def scribble_over(image, box, pen=PEN, seed=3):
    """The digit scribbled out: one stroke zigzagging over it, back and forth three times (many overlapping lines)."""
    out = image.copy()
    rng = np.random.default_rng(seed)
    x, y, w, h = box
    points = []
    for sweep in range(3):
        xs = np.linspace(x - 0.1 * w, x + 1.1 * w, 9) + rng.normal(0, 0.04 * w, 9)
        ys = np.where((np.arange(9) + sweep) % 2 == 0, y - 0.05 * h, y + 1.05 * h) + rng.normal(0, 0.05 * h, 9)
        points += list(zip(xs, ys))[:: 1 if sweep % 2 == 0 else -1]
    _pen_line(out, points, pen)
    return out


# --------------------------------------------------------------------------- checks of results and messages


def _cell(message: str, row: int, col: int) -> bool:
    """Whether ``message`` names the cell (1-based), as "row R, column C"."""
    return re.search(rf"\brow {row}, column {col}\b", message) is not None


def _refusal(image, layout, model, source):
    with pytest.raises(SheetError) as info:
        sheet_check.read_checked_sheet(image, layout, model, source)
    message = str(info.value)
    assert source in message
    return message


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float32).ravel(), b.astype(np.float32).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-6))


def assert_every_label_right(result, reference):
    """Every digit of an accepted ``result`` is the reference digit of its label (matched by its pixels)."""
    assert len(result.digits) == len(reference.digits)
    for d in result.digits:
        scores = [(_similarity(d.image, ref.image), ref.label) for ref in reference.digits]
        best, label = max(scores)
        assert best > 0.6, (d.row, d.col, best)
        assert label == d.label, f"row {d.row + 1}, column {d.col + 1} was written as {d.label} but shows a {label}"


@pytest.fixture(scope="module")
def base(pools):
    """A clean sheet of 4 rows of 0..9 in WRITER's ink, its boxes, and its digits read upright (the reference)."""
    image, boxes, labels = compose(pools, sequence())
    reference = sheet_reading.process_sheet(image, LAYOUT, source="IMG_0100.png")
    assert [d.label for d in reference.digits] == [labels[(d.row, d.col)] for d in reference.digits]
    return image, boxes, reference


def test_the_clean_sheet_is_accepted_as_it_is(base, pretrained):
    image, _, reference = base
    result, check = sheet_check.read_checked_sheet(image, LAYOUT, pretrained, "IMG_0100.png")
    assert check.accepted and not check.corrected
    assert_every_label_right(result, reference)


# --------------------------------------------------------------------------- a digit that is not one whole digit


def test_a_digit_crossed_out_with_an_x_is_refused_naming_its_cell(base, pretrained):
    image, boxes, _ = base
    crossed = cross_out(image, boxes[(2, 4)])  # row 3, the 4
    message = _refusal(crossed, LAYOUT, pretrained, "IMG_0101.png")
    assert _cell(message, 3, 5) and "crossed out" in message, message


def test_a_digit_crossed_out_and_written_again_right_after_it_is_refused(pools, pretrained):
    rows = sequence()
    rows[2] = [0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9]  # the 4 written twice: the first one crossed out
    image, boxes, _ = compose(pools, rows, shift={(2, 5): -int(0.3 * PITCH)})
    crossed = cross_out(image, boxes[(2, 4)])
    message = _refusal(crossed, LAYOUT, pretrained, "IMG_0102.png")
    assert _cell(message, 3, 5) and "crossed out" in message, message


def test_a_digit_scribbled_over_is_refused_naming_its_cell(base, pretrained):
    image, boxes, _ = base
    scribbled = scribble_over(image, boxes[(3, 7)])  # row 4, the 7
    message = _refusal(scribbled, LAYOUT, pretrained, "IMG_0103.png")
    assert _cell(message, 4, 8) and ("scribbled" in message or "crossed out" in message), message


# --------------------------------------------------------------------------- two neighbours exchanged


def test_two_neighbours_exchanged_are_refused_naming_both_cells(pools, pretrained):
    rows = sequence()
    rows[3] = [0, 1, 2, 3, 5, 4, 6, 7, 8, 9]  # row 4: the 4 and the 5 written the other way round
    image, _, _ = compose(pools, rows)
    message = _refusal(image, LAYOUT, pretrained, "IMG_0104.png")
    assert _cell(message, 4, 5) or _cell(message, 4, 6), message
    assert "column 5" in message and "column 6" in message and "swapped with" in message, message


# --------------------------------------------------------------------------- the edge of the scan or photo


def test_a_scan_that_cuts_through_the_last_row_is_refused(base, pretrained):
    """The bottom quarter of every digit of the last row is missing: ten truncated digits must not be written."""
    image, boxes, _ = base
    last = [boxes[(ROWS - 1, k)] for k in range(10)]
    cut = image[: min(y + int(0.75 * h) for _, y, _, h in last)]
    message = _refusal(cut, LAYOUT, pretrained, "IMG_0105.png")
    assert "cut off" in message and re.search(rf"\brow {ROWS}\b", message), message


def test_a_last_row_cut_off_at_the_photos_edge_says_so(base, pretrained):
    """A tilted scan whose edge runs through the last row: the left digits cut, the right-hand ones gone entirely."""
    image, boxes, _ = base
    h, w = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), -3.5, 1.0)  # the right side lower
    tilted = cv2.warpAffine(image, turn, (w, h), borderValue=(PAPER, PAPER, PAPER))
    x, y, bw, bh = boxes[(ROWS - 1, 2)]
    corner = turn @ np.array([x + bw / 2, y + bh, 1.0])
    cut = tilted[: int(corner[1])]  # through the bottom of the 3rd digit of the last row
    message = _refusal(cut, LAYOUT, pretrained, "IMG_0106.png")
    assert re.search(rf"\brow {ROWS} is cut off", message), message


# --------------------------------------------------------------------------- mirrored, sideways, transparent, white table


@pytest.mark.parametrize("flip", [1, 0], ids=["left-right", "up-down"])
def test_a_mirrored_photo_is_named_as_mirrored_or_read_right(base, pretrained, flip):
    image, _, reference = base
    mirrored = cv2.flip(image, flip)
    try:
        result, check = sheet_check.read_checked_sheet(mirrored, LAYOUT, pretrained, "IMG_0107.jpg")
    except SheetError as err:
        assert "mirrored" in str(err), str(err)
        return
    assert "mirrored" in check.message or any("mirrored" in note for note in result.notes), check.message
    assert_every_label_right(result, reference)


def _transparent(image, rgb):
    """The sheet as a drawing app saves it: the ink in the alpha channel only, every pixel's colour ``rgb``."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    alpha = np.clip((PAPER - 8 - gray) / (PAPER - 8 - INK) * 255, 0, 255).astype(np.uint8)
    out = np.zeros(image.shape[:2] + (4,), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = alpha
    on_white = cv2.cvtColor(255 - alpha, cv2.COLOR_GRAY2BGR)
    return out, on_white


@pytest.mark.parametrize("rgb", [0, 255], ids=["black-ink", "white-ink"])
def test_a_transparent_png_sheet_is_read_like_the_same_sheet_on_white_paper(base, pretrained, tmp_path, rgb):
    image, _, _ = base
    transparent, on_white = _transparent(image, rgb)
    path = tmp_path / "tablet sheet.png"
    assert cv2.imwrite(str(path), transparent)
    reference = sheet_reading.process_sheet(on_white, LAYOUT, source="white.png")
    result, check = sheet_check.read_checked_sheet(sheet_reading.read_image(path), LAYOUT, pretrained, path.name)
    assert check.accepted and not check.corrected
    assert [(d.row, d.col, d.label) for d in result.digits] == [(d.row, d.col, d.label) for d in reference.digits]
    assert min(_similarity(a.image, b.image) for a, b in zip(result.digits, reference.digits)) > 0.9


def test_a_sideways_photo_with_the_layout_of_what_it_shows_says_sideways_or_is_read_right(base, pretrained):
    """Turned a quarter counter-clockwise the sheet shows rows of 9s down to 0s; the student writes that layout."""
    image, _, reference = base
    sideways = cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    as_seen = SheetLayout(rows=10, cols=ROWS, order="row_is_digit", digits=tuple(range(9, -1, -1)))
    try:
        result, check = sheet_check.read_checked_sheet(sideways, as_seen, pretrained, "IMG_0108.jpg")
    except SheetError as err:
        assert "sideways" in str(err), str(err)
        return
    assert check.corrected and result.notes, "a sideways photo read without a note"
    assert_every_label_right(result, reference)


def _on_a_white_table(page, seed=4, table_grey=236.0, shadow_depth=0.12):
    """A phone photo of ``page`` lying on a white table (the paper a little whiter than the table), all of it in view."""
    rng = np.random.default_rng(seed)
    ph, pw = page.shape[:2]
    out_w, out_h = int(pw * 1.25), int(ph * 1.35)
    corners = np.float32([[0.1, 0.12], [0.9, 0.1], [0.92, 0.9], [0.08, 0.88]]) * [out_w, out_h]
    corners = (corners + rng.normal(0, 0.004 * out_w, corners.shape)).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(np.float32([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]]), corners)
    paper = cv2.warpPerspective(page.astype(np.float32), matrix, (out_w, out_h), flags=cv2.INTER_AREA,
                                borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpPerspective(np.ones((ph, pw), np.float32), matrix, (out_w, out_h), flags=cv2.INTER_AREA)
    table = np.full((out_h, out_w, 3), table_grey, np.float32) + cv2.GaussianBlur(
        rng.standard_normal((out_h, out_w, 1)).astype(np.float32), (0, 0), 3)[..., None] * 3
    shadow = cv2.GaussianBlur(cv2.warpAffine(inside, np.float32([[1, 0, 6], [0, 1, 8]]), (out_w, out_h)), (0, 0), 6)
    table *= (1 - shadow_depth * shadow)[..., None]
    photo = paper * inside[..., None] + table * (1 - inside[..., None])
    yy = np.linspace(0, 1, out_h, dtype=np.float32)[:, None, None]
    photo = cv2.GaussianBlur(photo * (1.0 - 0.06 * yy), (0, 0), 0.8) + rng.normal(0, 2, photo.shape).astype(np.float32)
    ok, encoded = cv2.imencode(".jpg", np.clip(photo, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


@pytest.mark.parametrize("framing", ["all-in-view", "corner-off-the-frame"])
def test_a_sheet_photographed_on_a_white_table_says_darker_surface_or_is_read_right(base, pretrained, monkeypatch,
                                                                                    framing):
    image, boxes, reference = base
    if framing == "all-in-view":
        photo = _on_a_white_table(image, table_grey=222.0, shadow_depth=0.25)
    else:  # a phone photo as student_sheets takes it, on a white table instead of a desk
        from mnist_transfer import student_sheets

        monkeypatch.setattr(student_sheets, "_desk", lambda kind, h, w, rng: np.full((h, w, 3), 218, np.float32)
                            + rng.normal(0, 2, (h, w, 1)).astype(np.float32))
        photo, _ = student_sheets.photograph_on_desk(image, 3, "white", "corner", list(boxes.values()), megapixels=1.5)
    try:
        result, _ = sheet_check.read_checked_sheet(photo, LAYOUT, pretrained, "IMG_0109.jpg")
    except SheetError as err:
        assert "darker surface" in str(err), str(err)
        return
    assert_every_label_right(result, reference)


# --------------------------------------------------------------------------- a digit missing, a digit too many


@pytest.mark.parametrize("closed_up", [False, True], ids=["its-place-left-empty", "the-rest-moved-up"])
def test_a_missing_digit_is_named_at_its_column(pools, pretrained, closed_up):
    """Left out with the rest moved up one place, the row's end is empty, as if its last digit were missing (or
    a wide digit were two touching): only the model's reading of the row's digits places the gap."""
    rows = sequence()
    rows[1] = [0, 1, 2, 3, 4, 6, 7, 8, 9] if closed_up else [0, 1, 2, 3, 4, None, 6, 7, 8, 9]  # row 2: no 5
    image, _, _ = compose(pools, rows)
    message = _refusal(image, LAYOUT, pretrained, "IMG_0110.png")
    assert re.search(r"\brow 2\b", message) and "missing at column 6" in message, message
    assert message.count("[1]") == 1 and "[2]" not in message, message  # that row's problem replaced, not added to
    if closed_up:
        assert "reads the row's 9 digits as 0 1 2 3 4 6 7 8 9" in message, message


def test_a_row_written_backwards_is_refused_as_not_the_layouts_digits(pools, pretrained):
    """Row 3 written 9 8 7 ... 0 under a layout of 0..9: read as labelled it would be ten wrong labels (the model
    agrees with 90% of the sheet, so the sheet as a whole looks fine). Only its middle pair reads as a swap;
    the row as a whole is named."""
    rows = sequence()
    rows[2] = list(reversed(range(10)))
    image, _, _ = compose(pools, rows)
    message = _refusal(image, LAYOUT, pretrained, "IMG_0112.png")
    assert "row 3 is not the layout's digits: the pre-trained model reads 0 of its 10 as labelled" in message, message
    assert "in another order" in message and "Nothing was written" in message


class _ReadsCorner(torch.nn.Module):
    """A stand-in for the model: reads each image as the digit written in its top-left pixel."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        pixel = ((x[:, 0, 0, 0] * data.MNIST_STD + data.MNIST_MEAN) * 255 + 0.5).long().clamp(0, 9)
        return torch.nn.functional.one_hot(pixel, 10).float() * 20


def _short_row_refusal(reads: list[int], expected_row: int = 1, wide: int | None = None):
    images = []
    for label in reads:
        image = np.zeros((28, 28), np.uint8)
        image[0, 0] = label
        images.append(image)
    boxes = tuple((100 * k, 50, 80 if k == wide else 40, 60) for k in range(len(reads)))
    problems = [((0, 0, 1, 1), "row 1: something else"), (boxes[0], "row 2: 9 digits where the layout has 10")]
    short = {expected_row: ShortRow(problems[1][1], boxes, tuple(images))}
    return SheetError("refused", None, "local", problems, short, retell=lambda new: SheetError(
        "; ".join(t for _, t in new), None, "local", new))


@pytest.mark.parametrize("reads,layout,named,wide", [
    ([0, 1, 2, 3, 4, 6, 7, 8, 9], SheetLayout(rows=4), "the 5 is missing at column 6", None),
    ([0, 1, 2, 3, 4, 6, 7, 3, 9], SheetLayout(rows=4), "the 5 is missing at column 6", None),  # one misread allowed
    ([1, 2, 3, 4, 5, 6, 7, 8, 9], SheetLayout(rows=4), "the 0 is missing at column 1", None),
    ([0, 1, 2, 3, 4, 5, 6, 7, 8], SheetLayout(rows=4), "the 9 is missing at column 10", None),
    ([0, 1, 2, 3, 3, 6, 7, 3, 9], SheetLayout(rows=4), None, None),  # two misread: no place fits well enough
    ([4] * 9, SheetLayout(rows=10, cols=10, order="row_is_digit"), None, None),  # a row of 4s: every place fits alike
    ([0, 1, 2, 3, 5, 6, 7, 8, 9], SheetLayout(rows=4), None, 3),  # the 4th piece twice as wide: a 3 and a 4 touching
])
def test_a_missing_digit_is_placed_by_the_models_reading_only_when_one_place_fits(reads, layout, named, wide):
    err = _short_row_refusal(reads, wide=wide)
    out = sheet_check.missing_by_reading(err, layout, _ReadsCorner())
    if named is None:
        assert out is err
        return
    assert named in str(out) and "row 1: something else" in str(out), str(out)
    assert "9 digits where the layout has 10" not in str(out)


def test_an_extra_digit_is_named_at_its_column(pools, pretrained):
    rows = sequence()
    rows[3] = [*range(10), 3]  # row 4: eleven digits, the last one extra
    image, _, _ = compose(pools, rows)
    message = _refusal(image, LAYOUT, pretrained, "IMG_0111.png")
    assert re.search(r"\brow 4\b", message) and "an extra digit at column 11" in message, message


# --------------------------------------------------------------------------- folders of cut digits


def _write_folder(root: Path, digits, rgba=None):
    """Cut digits as a student gives them: ``root/<label>/<name>.png``, dark ink on white, 56 px."""
    for folder, name, image in digits:
        (root / str(folder)).mkdir(parents=True, exist_ok=True)
        big = cv2.resize(image, (56, 56), interpolation=cv2.INTER_LINEAR)
        if rgba is not None and name == rgba[0]:
            out = np.zeros((56, 56, 4), np.uint8)
            out[..., :3], out[..., 3] = rgba[1], big  # the ink in the alpha channel only
        else:
            out = 255 - big
        assert cv2.imwrite(str(root / str(folder) / name), out)


@pytest.fixture(scope="module")
def writer_folder(pretrained):
    """WRITER's digits the model reads surely, 12 of every digit: (folder, file name, 28x28 image) each."""
    images, labels, indices = handwriting.writer_images(WRITER)
    probs = _probs(pretrained, images)
    out = []
    for label in range(10):
        ks = [k for k in np.argsort(-probs.max(1)) if labels[k] == label and probs[k].argmax() == label][:12]
        out += [(label, f"{WRITER}_{int(indices[k]):04d}.png", images[k]) for k in ks]
    return out


def test_a_3_filed_under_8_and_an_8_under_3_are_refused_naming_the_files(writer_folder, pretrained, tmp_path):
    digits = list(writer_folder)
    three = next(i for i, d in enumerate(digits) if d[0] == 3)
    eight = next(i for i, d in enumerate(digits) if d[0] == 8)
    digits[three], digits[eight] = (8, *digits[three][1:]), (3, *digits[eight][1:])
    _write_folder(tmp_path, digits)
    cut = sheet_reading.digits_from_folder(tmp_path)
    with pytest.raises(SheetError) as info:
        sheet_check.check_digits(cut, pretrained, "my digits")
    message = str(info.value)
    assert digits[three][1] in message and digits[eight][1] in message and "filed under" in message, message


@pytest.mark.parametrize("rgb", [0, 255], ids=["black-ink", "white-ink"])
def test_a_transparent_png_digit_is_read_not_blank(writer_folder, tmp_path, rgb):
    label, name, image = next(d for d in writer_folder if d[0] == 5)
    _write_folder(tmp_path / "opaque", [(label, name, image)])
    _write_folder(tmp_path / "transparent", [(label, name, image)], rgba=(name, rgb))
    opaque = sheet_reading.digits_from_folder(tmp_path / "opaque")
    transparent = sheet_reading.digits_from_folder(tmp_path / "transparent")
    assert [d.label for d in transparent] == [5]
    assert _similarity(transparent[0].image, opaque[0].image) > 0.95


# --------------------------------------------------------------------------- warnings (Check.flagged)

BORDERLINE = ("W06", 371)  # an 8 of W06 that the pre-trained model reads as a 6 (about 0.75 sure)


def test_a_digit_read_as_another_without_a_swap_is_accepted_and_flagged_with_its_cell(pretrained):
    writer, index = BORDERLINE
    pen_digits = handwriting.load_writers()[writer]
    images, labels, indices = handwriting.writer_images(writer)
    probs = _probs(pretrained, images)
    pools_w = {label: [pen_digits[int(indices[k])] for k in np.argsort(-probs.max(1))
                       if labels[k] == label and probs[k].argmax() == label][:10] for label in range(10)}
    rows = sequence()
    rows[2][8] = pen_digits[index]  # row 3, column 9: the 8 read as a 6 (its neighbours are a 7 and a 9)
    assert pen_digits[index].label == 8
    image, _, _ = compose(pools_w, rows)
    result, check = sheet_check.read_checked_sheet(image, LAYOUT, pretrained, "IMG_0112.png")
    cut = next(d for d in result.digits if (d.row, d.col) == (2, 8))
    p = _probs(pretrained, cut.image[None])[0]
    assert p.argmax() == 6 and 0.4 < p.max() < 0.95, p.round(2)  # the case is what it claims to be
    assert check.accepted and not check.corrected  # a writer the model reads poorly must pass
    assert cut.label == 8  # written with the layout's label, never the model's
    # Issue 17 flags a confident misreading only when a swap with a neighbour (or a filing mistake) explains it;
    # this 8 has neither, so it need not be listed. If it is, the warning must say what the contract says.
    for flag in [f for f in check.flagged if (f.row, f.col) == (3, 9)]:
        assert flag.label == 8 and flag.read_as == 6 and 0.0 < flag.confidence <= 1.0 and flag.reason
    for flag in check.flagged:
        assert 1 <= flag.row <= ROWS and 1 <= flag.col <= 10 and (flag.file is None or isinstance(flag.file, str))
        assert 0.0 < flag.confidence <= 1.0 and flag.reason and flag.label in range(10) and flag.read_as in range(10)


def test_a_folder_digit_read_as_another_is_accepted_and_flagged_with_its_file(pretrained):
    writer, index = BORDERLINE
    images, labels, indices = handwriting.writer_images(writer)
    digits = [Digit(images[k], int(labels[k]), f"{labels[k]}/{writer}_{int(indices[k]):04d}.png", 0, k)
              for k in range(len(labels))]
    p = _probs(pretrained, images[list(indices).index(index)][None])[0]
    assert p.argmax() == 6 and p.max() < 0.95, p.round(2)  # the case is what it claims to be
    check = sheet_check.check_digits(digits, pretrained, writer)  # raises on a refusal
    assert check.accepted
    # As on a sheet: a misreading below "high confidence" that no filing mistake explains need not be listed;
    # every warning that is listed names its file and says the contract's fields.
    for flag in [f for f in check.flagged if f.file and f"{writer}_{index:04d}.png" in f.file]:
        assert flag.label == 8 and flag.read_as == 6
    for flag in check.flagged:
        assert flag.row is None and flag.col is None and isinstance(flag.file, str) and flag.file
        assert 0.0 < flag.confidence <= 1.0 and flag.reason and flag.label in range(10) and flag.read_as in range(10)


# --------------------------------------------------------------------------- no false refusals

WRITERS = tuple(f"W{k:02d}" for k in range(1, 11))


@pytest.mark.parametrize("writer", WRITERS)
def test_every_unipen_writers_digits_pass_the_folder_check(pretrained, writer):
    images, labels, indices = handwriting.writer_images(writer)
    digits = [Digit(images[k], int(labels[k]), f"{labels[k]}/{writer}_{int(indices[k]):04d}.png", 0, k)
              for k in range(len(labels))]
    check = sheet_check.check_digits(digits, pretrained, writer)  # raises on a refusal
    assert check.accepted


@pytest.mark.parametrize("pair", [WRITERS[k : k + 2] for k in range(0, 10, 2)], ids="-".join)
def test_every_unipen_writers_sheet_passes_the_sheet_check(pretrained, pair):
    """Two rows of 0..9 of each writer, with the digits as they come (not only those the model reads well)."""
    writers = handwriting.load_writers()
    rows = []
    for k, writer in enumerate(pair):
        by_label = {label: [d for d in writers[writer] if d.label == label] for label in range(10)}
        rows += [[by_label[label][(7 * r + 3 * label) % len(by_label[label])] for label in range(10)]
                 for r in range(2 * k, 2 * k + ROWS // 2)]
    image, _, _ = compose(None, rows)
    result, check = sheet_check.read_checked_sheet(image, LAYOUT, pretrained, "-".join(pair) + ".png")
    assert check.accepted and not check.corrected and len(result.digits) == LAYOUT.count


def test_the_shipped_sample_sheet_passes(pretrained):
    image = sheet_reading.read_image(SAMPLE)
    result, check = sheet_check.read_checked_sheet(image, SheetLayout(), pretrained, SAMPLE.name)
    assert check.accepted and not check.corrected and len(result.digits) == 120


ROW_LENGTHS = json.loads((REAL / "row_counts.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("scan", ["live_digits"] + [f"digit_{d}" for d in range(10)])
def test_every_real_scan_passes(pretrained, scan):
    if scan == "live_digits":
        layout = SheetLayout(rows=10, cols=15, order="row_is_digit")
    else:
        d, lengths = int(scan[-1]), tuple(ROW_LENGTHS[scan])
        layout = SheetLayout(rows=5, cols=max(lengths), order="row_is_digit", digits=(d,) * 5, row_lengths=lengths)
    image = sheet_reading.read_image(REAL / f"{scan}.jpg")
    result, check = sheet_check.read_checked_sheet(image, layout, pretrained, f"{scan}.jpg")
    assert check.accepted and not check.corrected and len(result.digits) == layout.count


def test_the_second_dataset_passes(pretrained):
    digits = sheet_reading.digits_from_folder(DATA / "second_dataset")
    check = sheet_check.check_digits(digits, pretrained, "second_dataset")
    assert check.accepted and len(digits) == 157
