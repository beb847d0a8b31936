"""From a photo or scan of a handwritten sheet to MNIST-style 28x28 digits in three split folders.

The pipeline, each step one function:

1. :func:`find_page`          locate the paper and undo the perspective (photos), or take the scan as is
2. :func:`binarize`           even out the light, then threshold adaptively (ink = 255)
3. :func:`remove_grid_lines`  drop long printed/ruled lines, keep the strokes that cross them
4. :func:`find_digits`        group ink into digits (a 5's hat is one digit; dust is not)
5. :func:`assign_cells`       rows and columns by clustering positions, then check one digit per cell
6. :func:`to_mnist`           MNIST normalisation: 20x20 box, anti-aliased, centred by mass in 28x28

:func:`process_sheet` runs them and raises :class:`SheetError` naming what is wrong and
where; :func:`write_dataset` splits 8/2/2 per digit and never overwrites a dataset silently.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import paths

PAGE_WIDTH = 1400  # the rectified page is resampled to this width (pixels)
JPEG_QUALITY = 95
INK_THRESHOLD = 40  # a pixel of a saved 28x28 digit counts as ink above this (JPEG noise is below)
SPLIT_COUNTS = {"train": 8, "val": 2, "test": 2}


class SheetError(ValueError):
    """The sheet cannot be turned into a correctly labelled dataset; the message says why."""

    def __init__(self, message: str, annotated: np.ndarray | None = None):
        super().__init__(message)
        self.annotated = annotated


class DatasetExistsError(FileExistsError):
    """A different dataset is already on disk and replacing it was not asked for."""


@dataclass(frozen=True)
class SheetLayout:
    """How the digits are laid out on one sheet.

    ``order="row_is_sequence"``: every row is 0,1,…,9 (the default, 12 rows of 10).
    ``order="row_is_digit"``: row r holds copies of digit ``digits[r]`` (10 rows of 12, or 10 of 10).
    """

    rows: int = 12
    cols: int = 10
    order: str = "row_is_sequence"
    digits: tuple[int, ...] = tuple(range(10))

    def __post_init__(self):
        if self.order not in ("row_is_sequence", "row_is_digit"):
            raise ValueError(f"order must be 'row_is_sequence' or 'row_is_digit', not {self.order!r}")
        if self.order == "row_is_sequence" and self.cols != len(self.digits):
            raise ValueError(f"each row holds {len(self.digits)} digits, so cols must be {len(self.digits)}")
        if self.order == "row_is_digit" and self.rows != len(self.digits):
            raise ValueError(f"each row is one digit, so rows must be {len(self.digits)}")

    def label_at(self, row: int, col: int) -> int:
        return self.digits[col] if self.order == "row_is_sequence" else self.digits[row]

    @property
    def count(self) -> int:
        return self.rows * self.cols


@dataclass
class Digit:
    """One cut-out digit and where it came from."""

    image: np.ndarray  # 28x28 uint8, white on black
    label: int
    source: str
    row: int
    col: int
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y, w, h on the rectified page


@dataclass
class SheetResult:
    digits: list[Digit]
    page: np.ndarray  # rectified grayscale page
    annotated: np.ndarray  # BGR page with every box and label drawn
    seconds: float = 0.0
    steps: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def read_image(path: Path) -> np.ndarray:
    """Read a photo or scan as BGR; a clear error when it is missing or not an image."""
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"Sheet image '{path}' does not exist. Check the path in the parameters cell.")
    data = np.fromfile(str(path), dtype=np.uint8)  # works with spaces and non-ASCII in the path
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SheetError(
            f"'{path}' could not be read as an image. Save the photo as .jpg or .png and try again."
        )
    return image


# --------------------------------------------------------------------------- 1. page


def _order_corners(pts: np.ndarray) -> np.ndarray:
    pts = pts.reshape(4, 2).astype(np.float32)
    s, d = pts.sum(1), np.diff(pts, axis=1).ravel()
    return np.float32([pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]])


def _page_quad(small: np.ndarray) -> np.ndarray | None:
    """The page outline in a downscaled photo: the largest convex four-cornered outline.

    Edges, not brightness, so that a shadow across the paper does not cut the page in two.
    """
    edges = cv2.Canny(small, 30, 90)
    edges = cv2.dilate(edges, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:3]:
        hull = cv2.convexHull(contour)
        if cv2.contourArea(hull) < 0.15 * small.size:
            break
        for eps in (0.01, 0.02, 0.03, 0.05):
            approx = cv2.approxPolyDP(hull, eps * cv2.arcLength(hull, True), True)
            if len(approx) == 4:
                return approx
    return None


def find_page(image: np.ndarray, page_width: int = PAGE_WIDTH) -> tuple[np.ndarray, str]:
    """The page as a flat grayscale image, and how it was found ("photo" or "scan").

    A scan (paper reaching the image border) is used as is. In a photo, the largest bright
    four-sided region is the page; its perspective is undone onto an A4-shaped canvas.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = gray.shape
    if min(h, w) < 200:
        raise SheetError(f"The image is only {w}x{h} pixels; photograph the sheet at 1 megapixel or more.")
    small_scale = 800 / max(h, w)
    small = cv2.resize(gray, None, fx=small_scale, fy=small_scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    border = np.concatenate([small[:4].ravel(), small[-4:].ravel(), small[:, :4].ravel(), small[:, -4:].ravel()])
    otsu_level, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if np.median(border) >= otsu_level and (bright.mean() / 255) > 0.6:  # a scan: the paper fills the frame
        f = page_width / w
        return cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), "scan"
    else:
        quad = _page_quad(small)
        if quad is None:
            raise SheetError(
                "No page found: there is no large, bright, four-cornered sheet of paper in the photo. "
                "Photograph the whole sheet on a darker background, with all four corners visible, "
                "or use a flat scan."
            )
        corners = _order_corners(quad) / small_scale
        top = np.linalg.norm(corners[1] - corners[0])
        side = np.linalg.norm(corners[3] - corners[0])
        ratio = side / top if top else 0
        out_h = int(round(page_width * (ratio if 0.5 < ratio < 2.5 else 297 / 210)))
        target = np.float32([[0, 0], [page_width - 1, 0], [page_width - 1, out_h - 1], [0, out_h - 1]])
        matrix = cv2.getPerspectiveTransform(corners, target)
        page = cv2.warpPerspective(gray, matrix, (page_width, out_h), flags=cv2.INTER_AREA)
        inset = int(page_width * 0.01)  # the paper's edge itself is not writing
        return page[inset:-inset, inset:-inset], "photo"


# --------------------------------------------------------------------------- 2. binarise


def binarize(page: np.ndarray) -> np.ndarray:
    """Even out illumination (divide by a blurred paper estimate), then threshold adaptively."""
    k = max(15, (page.shape[1] // 40) | 1)
    paper = cv2.morphologyEx(page, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    paper = cv2.GaussianBlur(paper, (0, 0), k / 3)
    flat = cv2.divide(page, paper, scale=255)
    block = max(31, (page.shape[1] // 25) | 1)
    ink = cv2.adaptiveThreshold(flat, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, block, 18)
    _, dark = cv2.threshold(flat, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return cv2.bitwise_and(ink, dark)


# --------------------------------------------------------------------------- 3. grid lines


def remove_grid_lines(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove long straight horizontal/vertical lines; return (ink without lines, line mask).

    Lines are found by opening with a kernel a quarter of the page long: no digit stroke is
    that long. Where a digit crossed a line, the gap left behind is closed again.
    """
    h, w = ink.shape
    horizontal = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (w // 4, 1)))
    vertical = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, h // 4)))
    lines = cv2.dilate(cv2.bitwise_or(horizontal, vertical), np.ones((3, 3), np.uint8))
    if not lines.any():
        return ink, lines
    cleaned = cv2.bitwise_and(ink, cv2.bitwise_not(lines))
    repaired = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return cv2.bitwise_or(cleaned, cv2.bitwise_and(repaired, lines)), lines


# --------------------------------------------------------------------------- 4. digits


def _box_gap(a, b) -> float:
    """Distance between two boxes (x, y, w, h); 0 when they touch or overlap."""
    dx = max(0, max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3]))
    return float(np.hypot(dx, dy))


def _overlap(a, b) -> float:
    """Overlap area of two boxes as a fraction of the smaller one."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h) / max(1, min(a[2] * a[3], b[2] * b[3]))


def _union(a, b):
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    return (x0, y0, max(a[0] + a[2], b[0] + b[2]) - x0, max(a[1] + a[3], b[1] + b[3]) - y0)


def find_digits(ink: np.ndarray, expected: int | None = None) -> tuple[list[tuple[tuple[int, int, int, int], list[int]]], np.ndarray]:
    """The digits as (box (x, y, w, h), ids of their ink pieces), and the label image the ids index.

    A piece with at least a third of a typical digit's ink is a stroke of its own; strokes
    whose boxes overlap much are one digit (a 4 or a 7 written in two strokes). Smaller pieces
    (a 5's hat, a broken stroke) join the nearest digit within 1.5% of the page width; what is
    left and tiny is dust. Two whole digits never merge just for being close, so a digit
    written near its neighbour in the next row stays separate.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    pieces = [(tuple(int(v) for v in stats[i, :4]), int(stats[i, 4]), i) for i in range(1, n)]
    if not pieces:
        return [], labels
    areas = np.array(sorted((a for _, a, _ in pieces), reverse=True))
    typical = float(np.median(areas[: expected or max(1, len(areas) // 2)]))
    major = [[box, area, [i]] for box, area, i in pieces if area >= typical / 3]
    minor = sorted(((box, area, i) for box, area, i in pieces if area < typical / 3), key=lambda p: -p[1])
    merged = True
    while merged:  # strokes of one digit: boxes overlapping by half of the smaller one
        merged = False
        for i in range(len(major)):
            for j in range(i + 1, len(major)):
                if _overlap(major[i][0], major[j][0]) > 0.5:
                    major[i] = [_union(major[i][0], major[j][0]), major[i][1] + major[j][1], major[i][2] + major[j][2]]
                    del major[j]
                    merged = True
                    break
            if merged:
                break
    reach = ink.shape[1] * 0.015
    for box, area, i in minor:
        gaps = [_box_gap(box, m[0]) for m in major]
        nearest = int(np.argmin(gaps)) if gaps else -1
        if nearest >= 0 and gaps[nearest] <= reach:
            major[nearest] = [_union(major[nearest][0], box), major[nearest][1] + area, major[nearest][2] + [i]]
        elif area >= typical / 8:
            major.append([box, area, [i]])  # a small digit of its own (or a stray mark the layout check flags)
    return [(box, ids) for box, _, ids in major], labels


# --------------------------------------------------------------------------- 5. cells


def _cluster_1d(values: np.ndarray, k: int) -> np.ndarray | None:
    """Split sorted positions into ``k`` groups at the ``k-1`` widest gaps.

    Returns each value's group index, or None when the groups are not clearly separated
    (the narrowest chosen gap is not at least twice the widest gap left inside a group).
    """
    if len(values) < k:
        return None
    order = np.argsort(values)
    gaps = np.diff(values[order])
    if k == 1:
        return np.zeros(len(values), int)
    cut = np.sort(np.argsort(gaps)[-(k - 1) :])
    chosen = gaps[cut]
    inside = np.delete(gaps, cut)
    if len(inside) and chosen.min() < 2 * inside.max():
        return None
    groups = np.zeros(len(values), int)
    groups[order] = np.searchsorted(cut, np.arange(len(values)), side="left")
    return groups


def assign_cells(boxes: list[tuple[int, int, int, int]], layout: SheetLayout) -> dict[tuple[int, int], list[int]]:
    """Map (row, col) to the indices of the boxes in that cell, by clustering box centres."""
    if not boxes:
        raise SheetError("No handwriting found on the page. Is the pen dark enough and the photo in focus?")
    centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in boxes])
    rows = _cluster_1d(centres[:, 1], layout.rows)
    cols = _cluster_1d(centres[:, 0], layout.cols)
    if rows is None or cols is None:
        what = "rows" if rows is None else "columns"
        n = layout.rows if rows is None else layout.cols
        raise SheetError(
            f"Found {len(boxes)} digits but could not arrange them into {n} clearly separated {what}. "
            f"The layout says {layout.rows} rows x {layout.cols} columns; check the layout in the "
            "parameters cell, and that rows and columns are evenly spaced on the sheet."
        )
    cells: dict[tuple[int, int], list[int]] = {}
    for i, (r, c) in enumerate(zip(rows, cols)):
        cells.setdefault((int(r), int(c)), []).append(i)
    return cells


# --------------------------------------------------------------------------- 6. MNIST normalisation


def to_mnist(mask: np.ndarray, target_stroke: float = 2.8) -> np.ndarray:
    """One digit's binary ink mask (any size, 255 = ink) -> a 28x28 MNIST-style uint8 image.

    As in MNIST: the digit is scaled to fit a 20x20 box keeping its aspect ratio, with
    anti-aliasing (area resampling), then placed in 28x28 so that its centre of mass is at
    the centre. The stroke is thickened or thinned first so that it ends about
    ``target_stroke`` pixels wide in the 28x28 image, like MNIST's pens.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise SheetError("An empty digit mask cannot be normalised.")
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    ink = cv2.copyMakeBorder((crop > 0).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    stroke = 4.0 * float(dist[ink > 0].mean())  # mean width of the strokes (calibrated against MNIST)
    change = (target_stroke / scale - stroke) / 2  # radius in source pixels
    radius = int(round(abs(change)))
    if radius >= 1:
        pad = radius + 2
        crop = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        thinner = cv2.erode(crop, kernel)
        crop = cv2.dilate(crop, kernel) if change > 0 else (thinner if thinner.any() else crop)
        ys, xs = np.nonzero(crop)
        crop = crop[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        h, w = crop.shape
        scale = 20.0 / max(h, w)
    new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    small = cv2.resize(crop.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((28, 28), np.float32)
    y0, x0 = (28 - new_h) // 2, (28 - new_w) // 2
    canvas[y0 : y0 + new_h, x0 : x0 + new_w] = small
    m = cv2.moments(canvas)
    dx, dy = int(round(13.5 - m["m10"] / m["m00"])), int(round(13.5 - m["m01"] / m["m00"]))
    dx = int(np.clip(dx, -x0, 28 - x0 - new_w))  # a whole-pixel shift, as MNIST did: the 20x20 box stays sharp
    dy = int(np.clip(dy, -y0, 28 - y0 - new_h))
    centred = np.zeros_like(canvas)
    centred[y0 + dy : y0 + dy + new_h, x0 + dx : x0 + dx + new_w] = small
    return np.clip(centred, 0, 255).round().astype(np.uint8)


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
        cv2.putText(out, text, (x, y + h // 2), cv2.FONT_HERSHEY_SIMPLEX, page.shape[1] / 2000, (0, 0, 230), thick)
    return out


def _cell_box(boxes, cells, r, c):
    """Approximate box of cell (r, c) from the boxes found in its row and column."""
    row_boxes = [boxes[i] for (rr, _), idx in cells.items() if rr == r for i in idx]
    col_boxes = [boxes[i] for (_, cc), idx in cells.items() if cc == c for i in idx]
    if not row_boxes or not col_boxes:
        return (0, 0, 1, 1)
    y = int(np.median([b[1] for b in row_boxes]))
    h = int(np.median([b[3] for b in row_boxes]))
    x = int(np.median([b[0] for b in col_boxes]))
    w = int(np.median([b[2] for b in col_boxes]))
    return (x, y, w, h)


def process_sheet(image: np.ndarray, layout: SheetLayout | None = None, source: str = "sheet") -> SheetResult:
    """Cut one sheet into labelled 28x28 digits, or raise :class:`SheetError` saying what and where."""
    layout = layout or SheetLayout()
    start = time.perf_counter()
    steps = {}
    page, kind = find_page(image)
    steps["page"] = kind
    ink, lines = remove_grid_lines(binarize(page))
    steps["grid_lines_removed"] = bool(lines.any())
    blobs, pieces = find_digits(ink, expected=layout.count)
    boxes = [box for box, _ in blobs]
    problems, found = [], len(boxes)
    try:
        cells = assign_cells(boxes, layout)
    except SheetError as err:
        raise SheetError(f"{source}: {err}", _annotate(page, boxes)) from None
    typical_width, typical_height = np.median([b[2] for b in boxes]), np.median([b[3] for b in boxes])
    for (r, c), idx in sorted(cells.items()):
        w = boxes[idx[0]][2]
        if len(idx) == 1 and w > 2.6 * typical_width and w > 1.3 * typical_height:  # two digits touching
            problems.append((boxes[idx[0]], f"row {r + 1}, column {c + 1}: looks like 2 digits in one cell "
                                            f"({boxes[idx[0]][2] / typical_width:.1f}x as wide as a typical digit)"))
        if len(idx) > 1:
            x0 = min(boxes[i][0] for i in idx)
            y0 = min(boxes[i][1] for i in idx)
            x1 = max(boxes[i][0] + boxes[i][2] for i in idx)
            y1 = max(boxes[i][1] + boxes[i][3] for i in idx)
            problems.append(((x0, y0, x1 - x0, y1 - y0), f"row {r + 1}, column {c + 1}: {len(idx)} digits in one cell"))
    for r in range(layout.rows):
        for c in range(layout.cols):
            if (r, c) not in cells:
                problems.append((_cell_box(boxes, cells, r, c), f"row {r + 1}, column {c + 1}: no digit"))
    if problems or found != layout.count:
        annotated = _annotate(page, boxes, problems=problems)
        details = "; ".join(text for _, text in problems[:12])
        raise SheetError(
            f"{source}: found {found} digits, the layout expects {layout.count} "
            f"({layout.rows} rows x {layout.cols} columns). {details}. Nothing was written; see the "
            "annotated sheet, then fix the photo (or the layout in the parameters cell).",
            annotated,
        )
    digits, labels = [], [None] * len(boxes)
    for (r, c), (i,) in sorted(cells.items()):
        x, y, w, h = boxes[i]
        mask = np.where(np.isin(pieces[y : y + h, x : x + w], blobs[i][1]), 255, 0).astype(np.uint8)
        label = layout.label_at(r, c)
        labels[i] = label
        digits.append(Digit(to_mnist(mask), label, source, r, c, boxes[i]))
    steps["digits"] = len(digits)
    return SheetResult(digits, page, _annotate(page, boxes, labels), time.perf_counter() - start, steps)


# --------------------------------------------------------------------------- folders of single digits


def digits_from_folder(folder: Path) -> list[Digit]:
    """Already-cut digit images (any size, either polarity), labelled by sub-folder or name.

    Accepts ``folder/<digit>/*.png`` or files whose name starts with the digit (``7_03.png``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SheetError(f"Digit folder '{folder}' does not exist.")
    out = []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"})
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
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        if np.median(border) > 127:  # dark digit on light ground: make it white on black
            gray = 255 - gray
        _, mask = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        if not mask.any() or mask.mean() > 0.6 * 255:
            raise SheetError(f"'{path.relative_to(folder)}' shows no single digit (blank or all ink).")
        out.append(Digit(to_mnist(mask), int(name), str(path.relative_to(folder)), 0, i))
    return out


# --------------------------------------------------------------------------- split and write


def split_digits(digits: list[Digit], seed: int = 0, counts: dict[str, int] = SPLIT_COUNTS) -> dict[str, list[Digit]]:
    """Stratified, seeded split: for each digit, ``counts`` copies to each split (8/2/2)."""
    per_label: dict[int, list[Digit]] = {}
    for d in digits:
        per_label.setdefault(d.label, []).append(d)
    need = sum(counts.values())
    wrong = {k: len(v) for k, v in sorted(per_label.items()) if len(v) != need}
    missing = [k for k in range(10) if k not in per_label]
    if wrong or missing:
        raise SheetError(
            f"Each digit needs exactly {need} copies for an 8/2/2 split; "
            + ", ".join([f"digit {k}: {n}" for k, n in wrong.items()] + [f"digit {k}: 0" for k in missing])
            + ". Add or remove sheets so that every digit 0-9 appears exactly 12 times."
        )
    rng = np.random.default_rng(seed)
    splits = {name: [] for name in counts}
    for label in sorted(per_label):
        group = sorted(per_label[label], key=lambda d: (d.source, d.row, d.col))
        order = rng.permutation(len(group))
        start = 0
        for name, n in counts.items():
            splits[name].extend(group[i] for i in order[start : start + n])
            start += n
    return splits


def _encode(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return buf.tobytes()


def _planned_files(splits: dict[str, list[Digit]], split_dirs: dict[str, Path]) -> list[dict]:
    plan = []
    for split, digits in splits.items():
        for d in digits:
            stem = Path(d.source).stem.replace(" ", "_")
            name = f"{d.label}_{stem}_r{d.row + 1:02d}_c{d.col + 1:02d}.jpg"
            data = _encode(d.image)
            plan.append({
                "path": split_dirs[split] / str(d.label) / name,
                "file": f"{split_dirs[split].name}/{d.label}/{name}",
                "label": d.label, "split": split, "source": d.source, "row": d.row + 1, "col": d.col + 1,
                "sha256": hashlib.sha256(data).hexdigest(), "data": data,
            })
    return plan


def _existing_files(split_dirs: dict[str, Path]) -> dict[str, str]:
    found = {}
    for folder in split_dirs.values():
        if folder.exists():
            for p in folder.rglob("*"):
                if p.is_file():
                    found[f"{folder.name}/{p.relative_to(folder).as_posix()}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def write_dataset(
    splits: dict[str, list[Digit]],
    split_dirs: dict[str, Path] | None = None,
    manifest: Path = paths.MANIFEST,
    replace: bool = False,
    backup_dir: Path = paths.BACKUP_DIR,
) -> dict:
    """Write the split folders and the manifest, never destroying a different dataset.

    * Nothing on disk yet: write it.
    * The same files (names and bytes) already there: leave them, report "unchanged".
    * A different dataset there and ``replace=False``: raise :class:`DatasetExistsError`.
    * A different dataset there and ``replace=True``: move the old folders and manifest
      to ``backup_dir/dataset-<time>/`` first, then write.
    """
    split_dirs = split_dirs or paths.SPLIT_DIRS
    plan = _planned_files(splits, split_dirs)
    existing = _existing_files(split_dirs)
    wanted = {p["file"]: p["sha256"] for p in plan}
    status = "written"
    backup = None
    if existing and existing == wanted:
        status = "unchanged"
    elif existing:
        if not replace:
            raise DatasetExistsError(
                f"A different dataset ({len(existing)} files) is already in "
                f"{', '.join(repr(d.name) for d in split_dirs.values())}. Nothing was changed. To keep it, "
                "copy those folders elsewhere first; to replace it, set REPLACE_EXISTING = True in the "
                f"parameters cell (the old folders are then moved to {backup_dir.name}/, not deleted)."
            )
        backup = backup_dir / time.strftime("dataset-%Y%m%d-%H%M%S")
        backup.mkdir(parents=True, exist_ok=False)
        for folder in split_dirs.values():
            if folder.exists():
                shutil.move(str(folder), str(backup / folder.name))
        if Path(manifest).exists():
            shutil.move(str(manifest), str(backup / Path(manifest).name))
    if status == "written":
        for p in plan:
            p["path"].parent.mkdir(parents=True, exist_ok=True)
            p["path"].write_bytes(p["data"])
    Path(manifest).parent.mkdir(parents=True, exist_ok=True)
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "label", "split", "source", "row", "col", "sha256"])
        writer.writeheader()
        for p in sorted(plan, key=lambda p: p["file"]):
            writer.writerow({k: p[k] for k in writer.fieldnames})
    return {"status": status, "files": len(plan), "backup": str(backup) if backup else None}


# --------------------------------------------------------------------------- checks and pictures


def mnist_style_problems(image: np.ndarray) -> list[str]:
    """What, if anything, keeps a saved digit from being MNIST-style (empty list = fine).

    28x28 uint8 grayscale, white digit on black, ink bounding box at most 20 px on its longer
    side, centre of mass within 1 px of the image centre. "Ink" is above :data:`INK_THRESHOLD`,
    which JPEG ringing stays below.
    """
    problems = []
    if image.shape != (28, 28) or image.dtype != np.uint8:
        return [f"shape {image.shape} dtype {image.dtype}, expected (28, 28) uint8"]
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if border.mean() > 20:
        problems.append("not white on black (bright border)")
    ys, xs = np.nonzero(image > INK_THRESHOLD)
    if len(xs) == 0:
        return problems + ["no ink"]
    side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    if side > 20:
        problems.append(f"ink box {side} px > 20 px")
    m = cv2.moments(image.astype(np.float32))
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    if abs(cx - 13.5) > 1 or abs(cy - 13.5) > 1:
        problems.append(f"centre of mass ({cx:.1f}, {cy:.1f}) is more than 1 px from (13.5, 13.5)")
    return problems


def process_sheets(sheets: list[tuple[Path, SheetLayout]], on_error_dir: Path | None = paths.FIGURES_DIR) -> tuple[list[Digit], list[SheetResult]]:
    """Process several sheets; on a :class:`SheetError` save the annotated page, then re-raise."""
    digits, results = [], []
    for path, layout in sheets:
        path = Path(path)
        try:
            result = process_sheet(read_image(path), layout, source=path.name)
        except SheetError as err:
            if err.annotated is not None and on_error_dir is not None:
                on_error_dir.mkdir(parents=True, exist_ok=True)
                out = on_error_dir / f"sheet_errors_{path.stem}.png"
                cv2.imwrite(str(out), err.annotated)
                err.args = (f"{err.args[0]} Annotated sheet saved to {out}.",)
            raise
        digits.extend(result.digits)
        results.append(result)
    return digits, results


def montage(splits: dict[str, list[Digit]], gap: int = 4) -> np.ndarray:
    """One row per digit 0-9: its training, validation and test images, split by a gap (uint8)."""
    rows = []
    for label in range(10):
        parts = []
        for name in SPLIT_COUNTS:
            imgs = [d.image for d in sorted(splits[name], key=lambda d: (d.source, d.row, d.col)) if d.label == label]
            parts.append(np.hstack(imgs) if imgs else np.zeros((28, 0), np.uint8))
            parts.append(np.full((28, gap * 3), 90, np.uint8))
        rows.append(np.hstack(parts[:-1]))
        rows.append(np.zeros((gap, rows[-1].shape[1]), np.uint8))
    return np.vstack(rows[:-1])
