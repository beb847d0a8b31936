"""From a photo or scan of a handwritten sheet (or a folder of cut digits) to labelled 28x28 digits.

The pipeline, each step one function:

1. :func:`find_page`          locate the paper and undo the perspective (photos), or take the scan as is
2. :func:`binarize`           even out the light, then threshold adaptively (ink = 255)
3. :func:`remove_grid_lines`  drop long printed/ruled lines, keep the strokes that cross them
4. :func:`find_digits`        group ink into digits (a 5's hat is one digit; dust is not)
5. :func:`assign_cells`       rows and columns by clustering positions, then check one digit per cell
6. :func:`~.mnist_style.to_mnist`  MNIST normalisation (module :mod:`.mnist_style`)

:func:`process_sheet` runs them and raises :class:`SheetError` naming what is wrong and
where. Writing the split folders is the next stage, :mod:`.dataset_writing`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import paths
from .mnist_style import to_mnist

PAGE_WIDTH = 1400  # the rectified page is resampled to this width (pixels)


class SheetError(ValueError):
    """The sheet cannot be turned into a correctly labelled dataset; the message says why."""

    def __init__(self, message: str, annotated: np.ndarray | None = None):
        super().__init__(message)
        self.annotated = annotated


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


# --------------------------------------------------------------------------- several sheets


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


