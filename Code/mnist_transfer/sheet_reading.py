"""From a photo or scan of a handwritten sheet (or a folder of cut digits) to labelled 28x28 digits.

The pipeline, each step one function:

1. :func:`find_page`          locate the paper and undo the perspective (photos), or take the frame as
                              the page (flat scans, photos in which the paper fills the frame)
2. :func:`binarize`           even out the light (shadows too), then threshold adaptively (ink = 255)
3. :func:`remove_grid_lines`  drop printed/ruled lines of any weight, keep the strokes that cross them
4. :func:`find_rows`          the rows of writing, found by chaining neighbouring strokes (drift, a few
                              degrees of tilt and uneven spacing do not matter; no column grid)
5. :func:`group_digits`       the strokes of one row grouped into digits relative to that row's digit size
                              (a crossbar, a 5's hat, a two-stroke 4, a pen lift); dust dropped by size
6. :func:`assign_cells`       each row read left to right; anything that does not fit the layout is named
                              with its row and column
7. :func:`~.mnist_style.to_mnist`  MNIST normalisation (module :mod:`.mnist_style`)

:func:`process_sheet` runs them and raises :class:`SheetError` naming what is wrong, where and
how to fix it. Whether the labels are plausible (an upside-down photo, a transposed layout) is
checked with the pre-trained model by the next stage, :mod:`.sheet_check`; writing the split
folders is :mod:`.dataset_writing`. This module needs no model (no torch).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import paths
from .mnist_style import to_mnist

PAGE_WIDTH = 1400  # the page is resampled to this width (pixels)
ORDERS = ("row_is_sequence", "row_is_digit")


class SheetError(ValueError):
    """The sheet cannot be turned into a correctly labelled dataset; the message says why."""

    def __init__(self, message: str, annotated: np.ndarray | None = None, cause: str = ""):
        super().__init__(message)
        self.annotated = annotated
        self.cause = cause  # "page": no usable page in the photo; "turned": the writing looks turned by 90 degrees


@dataclass(frozen=True)
class SheetLayout:
    """How the digits are laid out on one sheet.

    ``order="row_is_sequence"``: every row holds ``digits`` in order (default: 12 rows of 0..9).
    ``order="row_is_digit"``: row r holds copies of digit ``digits[r]`` (10 rows of 12, or 10 of 10).
    ``digits`` may be a subset, e.g. ``tuple(range(1, 10))`` for 9 rows of 1..9.
    """

    rows: int = 12
    cols: int = 10
    order: str = "row_is_sequence"
    digits: tuple[int, ...] = tuple(range(10))

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order must be 'row_is_sequence' or 'row_is_digit', not {self.order!r}")
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"a layout needs at least 1 row and 1 column, not {self.rows} x {self.cols}")
        if not all(isinstance(d, (int, np.integer)) and 0 <= d <= 9 for d in self.digits):
            raise ValueError(f"digits must be digits 0..9, not {self.digits!r}")
        if self.order == "row_is_sequence" and self.cols != len(self.digits):
            raise ValueError(f"each row holds {len(self.digits)} digits, so cols must be {len(self.digits)}")
        if self.order == "row_is_digit" and self.rows != len(self.digits):
            raise ValueError(f"each row is one digit, so rows must be {len(self.digits)}")

    def label_at(self, row: int, col: int) -> int:
        return self.digits[col] if self.order == "row_is_sequence" else self.digits[row]

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def transposed(self) -> "SheetLayout":
        """The same sheet turned by 90 degrees: rows become columns (12 x 10 of 0..9 <-> 10 x 12, a digit a row)."""
        order = "row_is_digit" if self.order == "row_is_sequence" else "row_is_sequence"
        return SheetLayout(rows=self.cols, cols=self.rows, order=order, digits=self.digits)

    def describe(self) -> str:
        digits = "".join(map(str, self.digits))
        what = f"each row {digits}" if self.order == "row_is_sequence" else f"row r holds digit r of {digits}"
        return f"{self.rows} rows x {self.cols} columns, {what}"


@dataclass
class Digit:
    """One cut-out digit and where it came from."""

    image: np.ndarray  # 28x28 uint8, white on black
    label: int
    source: str  # the sheet's file name (or the digit file's path in a digit folder)
    row: int
    col: int
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y, w, h on the page
    sheet: str = ""  # a name unique among the sheets of one dataset (used in file names); "" = from source


@dataclass
class SheetResult:
    digits: list[Digit]
    page: np.ndarray  # grayscale page as read
    annotated: np.ndarray  # BGR page with every box and label drawn
    seconds: float = 0.0
    steps: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was corrected or ignored (say it to the user)
    to_image: np.ndarray = field(default_factory=lambda: np.eye(3))  # page pixels -> pixels of the image read

    def image_centres(self) -> np.ndarray:
        """The centre of every digit's box in the pixels of the image that was read, ``[N, 2]``."""
        centres = np.float32([[x + w / 2, y + h / 2] for x, y, w, h in (d.box for d in self.digits)])
        return cv2.perspectiveTransform(centres.reshape(-1, 1, 2), self.to_image).reshape(-1, 2)


Box = tuple[int, int, int, int]


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
            f"'{path}' could not be read as an image (empty, truncated or not a picture). "
            "Save the photo again as .jpg or .png and try again."
        )
    return image


# --------------------------------------------------------------------------- 1. page


def exposure_problem(gray: np.ndarray) -> str | None:
    """Why a photo cannot show readable ink (too dark, overexposed), or None."""
    small = cv2.resize(gray, (200, max(1, 200 * gray.shape[0] // gray.shape[1])), interpolation=cv2.INTER_AREA)
    bright = float(np.percentile(small, 95))
    if bright < 70:
        return (f"The photo is too dark (its brightest part has brightness {bright:.0f} of 255). "
                "Photograph the sheet in daylight or under a lamp, without flash glare.")
    saturated = float((small >= 250).mean())
    if saturated > 0.5 and np.percentile(gray, 0.5) > 160:
        return (f"The photo is overexposed: {100 * saturated:.0f}% of it is pure white and the ink is washed "
                "out. Take it again with less light or lower exposure (tap the paper on the phone screen).")
    return None


def blur_problem(page: np.ndarray, ink: np.ndarray | None = None) -> str | None:
    """Whether the page is too blurred to cut digits reliably (judged on the sharpness of ink edges)."""
    gray = page if page.shape[1] <= PAGE_WIDTH else cv2.resize(page, (PAGE_WIDTH, page.shape[0] * PAGE_WIDTH // page.shape[1]))
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    magnitude = cv2.magnitude(gx, gy)
    contrast = float(np.percentile(gray, 99) - np.percentile(gray, 1))
    if contrast < 30:
        return None  # nothing written: not a blur question
    sharpness = float(np.percentile(magnitude, 99.7)) / (4 * contrast)  # ~0.5 for a crisp edge, lower when blurred
    if sharpness < 0.12:
        return (f"The photo is too blurred (edge sharpness {sharpness:.2f}; a focused photo has 0.2 or more). "
                "Hold the phone still, tap the sheet to focus, and photograph it again.")
    return None


def _order_corners(pts: np.ndarray) -> np.ndarray:
    pts = pts.reshape(4, 2).astype(np.float32)
    s, d = pts.sum(1), np.diff(pts, axis=1).ravel()
    return np.float32([pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]])


def _page_quad(small: np.ndarray, colour: np.ndarray | None = None) -> np.ndarray | None:
    """The page outline in a downscaled photo: a large convex four-cornered outline with darker surroundings.

    Edges, not brightness, so that a shadow across the paper does not cut the page in two; if
    the brightness edges give no page, edges of colour too (white paper in a shadow can be as
    dark as a wooden table, but not as brown). The outline must be darker just outside than just
    inside on at least three sides (a table around the paper), so that the outline of the
    writing is not taken for the page; of several such outlines the largest (the edge of a
    shadow encloses less than the page).
    """
    edges = cv2.Canny(small, 30, 90)
    edge_maps, lab = [edges], None
    if colour is not None:
        lab = cv2.cvtColor(colour, cv2.COLOR_BGR2LAB)
        for low, high in ((20, 50), (8, 20)):
            chroma = [cv2.Canny(cv2.GaussianBlur(lab[..., channel], (5, 5), 0), low, high) for channel in (1, 2)]
            edge_maps.append(edges | chroma[0] | chroma[1])
    found = []
    for edges in edge_maps:
        edges = cv2.dilate(edges, np.ones((5, 5), np.uint8))
        contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:3]:
            hull = cv2.convexHull(contour)
            if cv2.contourArea(hull) < 0.15 * small.size:
                break
            candidates = []
            for eps in (0.01, 0.02, 0.03, 0.05):
                approx = cv2.approxPolyDP(hull, eps * cv2.arcLength(hull, True), True)
                if len(approx) == 4:
                    candidates.append(approx)
                    break
            # a ragged outline (a corner shadowed, a broken edge): the quadrilateral adding the least area
            candidates.append(cv2.approxPolyN(hull, 4, epsilon_percentage=-1, ensure_convex=True).reshape(-1, 1, 2))
            for approx in candidates:
                if len(approx) == 4 and _edge_of_paper(small, _order_corners(approx), lab):
                    found.append(approx)
                    break
            if found:
                break
    return max(found, key=cv2.contourArea) if found else None  # a shadow's edge encloses less than the page


def _edge_of_paper(small: np.ndarray, corners: np.ndarray, lab: np.ndarray | None = None) -> bool:
    """Does the ground just outside the quad differ from the paper just inside, on 3 sides or more?

    Different means darker by a fifth, or (in colour) another hue: a wooden table is brown,
    paper in a shadow is grey. Paper on both sides (the outline of the writing) is not an edge.
    """
    h, w = small.shape
    centre = corners.mean(0)
    differs = 0
    for a, b in zip(corners, np.roll(corners, -1, axis=0)):
        inside, outside = [], []
        for t in np.linspace(0.2, 0.8, 7):
            p = a + t * (b - a)
            direction = (p - centre) / max(1e-6, np.linalg.norm(p - centre))
            for ring, out in ((inside, -12), (outside, 12)):
                x, y = (p + out * direction).round().astype(int)
                if 0 <= x < w and 0 <= y < h:
                    ring.append(lab[y, x].astype(float) if lab is not None else np.float64([small[y, x] * 255 / 100, 128, 128]))
        if not inside or len(outside) < 3:
            continue
        inner, outer = np.median(inside, axis=0), np.median(outside, axis=0)
        darker = outer[0] < 0.8 * inner[0]
        hue = np.hypot(outer[1] - inner[1], outer[2] - inner[2]) >= 7
        differs += bool(darker or hue)
    return differs >= 3


def _paper_fills_frame(small: np.ndarray) -> bool:
    """A flat scan or a close-up photo: bright paper, and most of the frame's border as bright (shadows allowed)."""
    border = np.concatenate([small[:4].ravel(), small[-4:].ravel(), small[:, :4].ravel(), small[:, -4:].ravel()])
    paper = float(np.percentile(small, 90))
    return paper >= 110 and float((border > 0.4 * paper).mean()) > 0.7 and np.median(border) > 0.55 * paper


def find_page(image: np.ndarray, page_width: int = PAGE_WIDTH) -> tuple[np.ndarray, str]:
    """The page as a flat grayscale image, and how it was found ("photo" or "scan").

    A scan, or a photo in which the paper fills the whole frame, is used as it is ("scan"). In
    a photo of a sheet lying on a darker surface, the four-cornered sheet is found and its
    perspective undone onto a canvas of the sheet's proportions ("photo").
    """
    page, kind, _ = page_and_transform(image, page_width)
    return page, kind


def page_and_transform(image: np.ndarray, page_width: int = PAGE_WIDTH) -> tuple[np.ndarray, str, np.ndarray]:
    """:func:`find_page`, and the 3x3 matrix that maps page pixels back to image pixels."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = gray.shape
    if min(h, w) < 200:
        raise SheetError(f"The image is only {w}x{h} pixels; photograph the sheet at 1 megapixel or more.")
    problem = exposure_problem(gray)
    if problem:
        raise SheetError(problem)
    small_scale = 800 / max(h, w)
    small = cv2.resize(gray, None, fx=small_scale, fy=small_scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    border = np.concatenate([small[:4].ravel(), small[-4:].ravel(), small[:, :4].ravel(), small[:, -4:].ravel()])
    otsu_level, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    to_image = np.diag([w / page_width, w / page_width, 1.0])
    if np.median(border) >= otsu_level and (bright.mean() / 255) > 0.6:  # a scan: the paper fills the frame
        return _resize_to_width(gray, page_width), "scan", to_image
    colour = cv2.resize(image, small.shape[::-1], interpolation=cv2.INTER_AREA) if image.ndim == 3 else None
    quad = _page_quad(small, colour)
    if quad is None:
        if _paper_fills_frame(small):  # a close-up photo (no table in sight) or a scan with a shadow
            return _resize_to_width(gray, page_width), "scan", to_image
        raise SheetError(
            "No page found: the sheet's four corners are not visible against a darker surface, and the "
            "paper does not fill the photo either. Photograph the whole sheet on a darker surface with all "
            "four corners visible, or fill the whole photo with the paper, or use a flat scan."
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
    shift = np.array([[1.0, 0, inset], [0, 1.0, inset], [0, 0, 1.0]])
    return page[inset:-inset, inset:-inset], "photo", np.linalg.inv(matrix) @ shift


def _resize_to_width(gray: np.ndarray, page_width: int) -> np.ndarray:
    f = page_width / gray.shape[1]
    return cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)


# --------------------------------------------------------------------------- 2. binarise


def binarize(page: np.ndarray) -> np.ndarray:
    """Even out illumination (divide by the paper's own brightness), then threshold adaptively.

    The paper's brightness is a closing (which removes the ink), smoothed by a wide blur except
    on the dark side of a hard shadow's edge, where the blur would overshoot and leave false ink.
    """
    k = max(15, (page.shape[1] // 40) | 1)
    closed = cv2.morphologyEx(page, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    paper = cv2.GaussianBlur(closed, (0, 0), k / 3)
    shadow_edge = cv2.subtract(paper, closed) > 12  # the dark side of a hard shadow: the blur would overshoot
    paper[shadow_edge] = closed[shadow_edge]
    flat = cv2.divide(page, paper, scale=255)
    block = max(31, (page.shape[1] // 25) | 1)
    ink = cv2.adaptiveThreshold(flat, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, block, 18)
    _, dark = cv2.threshold(flat, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return cv2.bitwise_and(ink, dark)


# --------------------------------------------------------------------------- 3. grid lines


def ink_scale(ink: np.ndarray) -> tuple[float, float]:
    """(typical digit height, typical stroke width) of the writing, in pixels.

    From the pieces of ink that could be digits: not specks, not lines as long as a tenth of
    the page. The height is the median of the larger half (a digit's pieces are smaller).
    """
    n, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    h, w = ink.shape
    s = stats[1:]
    limit = 0.25 * min(h, w)
    ok = (s[:, 3] >= 6) & (s[:, 4] >= 20) & (s[:, 2] < limit) & (s[:, 3] < limit)
    if not ok.any():
        return max(8.0, 0.03 * w), 3.0
    heights, areas = s[ok, 3].astype(float), s[ok, 4].astype(float)
    big = areas >= np.percentile(areas, 50)
    height = float(np.median(heights[big]))
    boxes = s[ok][big]
    widths = []
    for x, y, bw, bh, _ in boxes[:: max(1, len(boxes) // 40)]:
        piece = (ink[y : y + bh, x : x + bw] > 0).astype(np.uint8)
        dist = cv2.distanceTransform(cv2.copyMakeBorder(piece, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0), cv2.DIST_L2, 3)
        widths.append(4.0 * float(dist[dist > 0].mean()))
    return height, float(np.median(widths))


def _line_segments(ink: np.ndarray, min_length: int, horizontal: bool) -> np.ndarray:
    """Straight segments at least ``min_length`` long, within 10 degrees of horizontal (or vertical)."""
    kernel = (15, 1) if horizontal else (1, 15)
    candidates = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel))
    if not candidates.any():
        return np.zeros((0, 4), int)
    segments = cv2.HoughLinesP(candidates, 1, np.pi / 720, threshold=int(min_length * 0.6),
                               minLineLength=min_length, maxLineGap=max(4, min_length // 25))
    if segments is None:
        return np.zeros((0, 4), int)
    segments = segments.reshape(-1, 4)
    dx, dy = np.abs(segments[:, 2] - segments[:, 0]), np.abs(segments[:, 3] - segments[:, 1])
    keep = dy <= np.tan(np.radians(10)) * dx if horizontal else dx <= np.tan(np.radians(10)) * dy
    return segments[keep]


def remove_grid_lines(ink: np.ndarray, digit_height: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Remove printed/ruled straight lines of any weight; return (ink without lines, line mask).

    A line is a straight run of ink (found by a Hough transform, so a line tilted by a few
    degrees counts) longer than a tenth of the page and more than twice a digit's height: no
    digit stroke is that long. The band of the line, as thick as the line's ink, is removed;
    where a digit's stroke crossed it, the gap is closed again across the band.
    """
    h, w = ink.shape
    lines = np.zeros_like(ink)
    for horizontal in (True, False):
        extent = w if horizontal else h
        min_length = int(max(0.1 * extent, 2.2 * digit_height if digit_height else 0.2 * extent))
        segments = _line_segments(ink, min_length, horizontal)
        if not len(segments):
            continue
        drawn = np.zeros_like(ink)
        for x0, y0, x1, y1 in segments:
            cv2.line(drawn, (int(x0), int(y0)), (int(x1), int(y1)), 255, 1)
        dist = cv2.distanceTransform((ink > 0).astype(np.uint8), cv2.DIST_L2, 3)
        half = float(np.percentile(dist[drawn > 0], 75)) if (drawn > 0).any() else 1.0
        reach = int(np.clip(round(2 * half) + 1, 2, 12))
        across = (1, 2 * reach + 1) if horizontal else (2 * reach + 1, 1)
        band = cv2.dilate(drawn, cv2.getStructuringElement(cv2.MORPH_RECT, across))
        line_ink = cv2.bitwise_and(ink, band)
        cleaned = cv2.bitwise_and(ink, cv2.bitwise_not(line_ink))
        close = (1, 2 * reach + 3) if horizontal else (2 * reach + 3, 1)  # strokes crossing the band, joined again
        repaired = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, close))
        ink = cv2.bitwise_or(cleaned, cv2.bitwise_and(repaired, line_ink))
        lines = cv2.bitwise_or(lines, line_ink)
    return ink, lines


# --------------------------------------------------------------------------- 4. rows


@dataclass
class Piece:
    """A connected piece of ink (or several grouped into one digit): its box, ink area and label ids."""

    box: Box
    area: int
    ids: list[int]

    @property
    def cx(self) -> float:
        return self.box[0] + self.box[2] / 2

    @property
    def cy(self) -> float:
        return self.box[1] + self.box[3] / 2

    def joined(self, other: "Piece") -> "Piece":
        return Piece(_union(self.box, other.box), self.area + other.area, self.ids + other.ids)


def _union(a: Box, b: Box) -> Box:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    return (x0, y0, max(a[0] + a[2], b[0] + b[2]) - x0, max(a[1] + a[3], b[1] + b[3]) - y0)


def _x_gap(a: Box, b: Box) -> float:
    """Horizontal gap between two boxes (negative: they overlap by that much)."""
    return max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2])


def _y_overlap(a: Box, b: Box) -> float:
    return min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])


def find_pieces(ink: np.ndarray, digit_height: float, stroke: float) -> tuple[list[Piece], list[Piece], np.ndarray]:
    """The ink as pieces: (pieces that may belong to digits, specks and line remnants, label image).

    A speck is smaller than a fifth of a digit's height each way; a remnant of a line is long
    and thin (longer than 1.8 digit heights, thinner than a quarter of one); a thin sliver
    touching the page's border is the paper's edge.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    pieces, dust = [], []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        piece = Piece((x, y, w, h), area, [i])
        long_side, short_side = max(w, h), min(w, h)
        if long_side < 0.2 * digit_height or area < 0.5 * stroke * stroke:
            dust.append(piece)
        elif long_side > 1.8 * digit_height and short_side < 0.25 * digit_height:
            dust.append(piece)
        elif short_side < 0.25 * digit_height and (x == 0 or y == 0 or x + w >= ink.shape[1] or y + h >= ink.shape[0]):
            dust.append(piece)  # a sliver of the paper's edge or of the table beyond it
        else:
            pieces.append(piece)
    return pieces, dust, labels


def _chain(anchors: list[Piece], height: float) -> list[list[Piece]]:
    """Link every anchor to its nearest neighbour on the right that shares its height band."""
    order = sorted(range(len(anchors)), key=lambda i: anchors[i].box[0])
    successor: dict[int, int] = {}
    taken: dict[int, tuple[float, int]] = {}
    lefts = [anchors[i].box[0] for i in order]
    for i in order:
        a = anchors[i].box
        best = None
        for j in order[: int(np.searchsorted(lefts, a[0] + a[2] + 3.0 * height, side="right"))]:
            b = anchors[j].box
            if j == i or anchors[j].cx <= anchors[i].cx:
                continue
            gap = _x_gap(a, b)
            if gap > 3.0 * height or gap < -0.5 * min(a[2], b[2]):
                continue
            if _y_overlap(a, b) < 0.25 * min(a[3], b[3]):
                continue
            if best is None or gap < best[0]:
                best = (gap, j)
        if best is not None:
            gap, j = best
            if j not in taken or gap < taken[j][0]:
                if j in taken:
                    successor.pop(taken[j][1], None)
                taken[j] = (gap, i)
                successor[i] = j
    chains, seen = [], set()
    for i in order:
        if i in seen or any(successor.get(k) == i for k in successor):
            continue
        chain = [i]
        while chain[-1] in successor:
            chain.append(successor[chain[-1]])
        seen.update(chain)
        chains.append([anchors[k] for k in chain])
    return chains


def _line_of(chain: list[Piece]) -> tuple[float, float]:
    """Slope and intercept of a chain's centres (slope 0 for a single piece)."""
    xs, ys = np.array([p.cx for p in chain]), np.array([p.cy for p in chain])
    if len(chain) < 2 or np.ptp(xs) < 1:
        return 0.0, float(ys.mean())
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(np.clip(slope, -0.1, 0.1)), float(ys.mean() - np.clip(slope, -0.1, 0.1) * xs.mean())


def _join_chains(chains: list[list[Piece]], height: float) -> list[list[Piece]]:
    """Join chains that continue each other (a row broken by a wide gap or a digit written high)."""
    chains = [sorted(c, key=lambda p: p.cx) for c in chains]
    while True:
        best = None
        for i, a in enumerate(chains):
            for j, b in enumerate(chains):
                if i == j or b[0].cx <= a[-1].cx:
                    continue
                overlap = a[-1].box[0] + a[-1].box[2] - b[0].box[0]
                if overlap > 0.5 * height:  # side by side, not one after the other
                    continue
                (sa, ia), (sb, ib) = _line_of(a), _line_of(b)
                mid = (a[-1].cx + b[0].cx) / 2
                mismatch = abs((sa * mid + ia) - (sb * mid + ib))
                if mismatch <= 0.5 * height:
                    gap = b[0].cx - a[-1].cx
                    if best is None or gap < best[0]:
                        best = (gap, i, j)
        if best is None:
            return chains
        _, i, j = best
        chains[i] = chains[i] + chains[j]
        del chains[j]


def _stack_pieces(pieces: list[Piece], digit_height: float) -> list[Piece]:
    """Join pieces that lie over each other (half the narrower one's width shared), up to 1.6 digit heights.

    A 5's hat, a 7's crossbar, a two-stroke 4 and a stroke broken by a pen lift become one
    piece before rows are sought, so that they cannot start rows of their own.
    """
    pieces = sorted(pieces, key=lambda p: p.box[0])
    merged = True
    while merged:
        merged = False
        for i in range(len(pieces)):
            for j in range(i + 1, len(pieces)):
                a, b = pieces[i], pieces[j]
                if b.box[0] > a.box[0] + a.box[2]:
                    break
                union = _union(a.box, b.box)
                if union[3] > 1.6 * digit_height or union[2] > 1.8 * digit_height:
                    continue
                if -_x_gap(a.box, b.box) >= 0.5 * min(a.box[2], b.box[2]) and _y_overlap(a.box, b.box) > -0.25 * digit_height:
                    pieces[i] = a.joined(b)
                    del pieces[j]
                    pieces.sort(key=lambda p: p.box[0])
                    merged = True
                    break
            if merged:
                break
    return pieces


def find_rows(pieces: list[Piece], digit_height: float, min_chain: int = 3) -> tuple[list[list[Piece]], list[Piece]]:
    """The rows of writing, top to bottom, each a list of pieces; and pieces that belong to no row.

    Rows are chains of neighbouring pieces (each linked to the nearest one on its right whose
    height band it shares), joined where a row continues after a wide gap; every other piece (a
    digit written high, a hat, a crossbar) then goes to the row whose line passes closest. No
    column grid is assumed.
    """
    pieces = _stack_pieces(pieces, digit_height)
    anchors = [p for p in pieces if p.box[3] >= 0.45 * digit_height]
    chains = _chain(anchors, digit_height)
    rows = _join_chains([c for c in chains if len(c) >= min_chain], digit_height)
    in_rows = {id(p) for r in rows for p in r}
    rest = [p for p in pieces if id(p) not in in_rows]
    stray = rest
    lines = [_line_of(r) for r in rows]
    changed = True
    while rest and changed:  # from the chains outwards: a row's span grows with every piece it takes
        changed, stray = False, []
        spans = [(min(p.box[0] for p in r) - 1.5 * digit_height, max(p.box[0] + p.box[2] for p in r) + 1.5 * digit_height)
                 for r in rows]
        for p in rest:
            best = None
            for k, ((slope, intercept), (x0, x1)) in enumerate(zip(lines, spans)):
                if not x0 <= p.cx <= x1:
                    continue
                y = slope * p.cx + intercept  # the row's centre line here; how far the piece's box is from it
                distance = max(0.0, p.box[1] - y, y - (p.box[1] + p.box[3]))
                if distance <= 0.5 * digit_height and (best is None or distance < best[0]):
                    best = (distance, k)
            if best is None:
                stray.append(p)
            else:
                rows[best[1]].append(p)
                changed = True
        rest = stray
    rows = [sorted(r, key=lambda p: p.cx) for r in rows]
    rows.sort(key=lambda r: float(np.median([p.cy for p in r])))
    return rows, stray


# --------------------------------------------------------------------------- 5. digits


def _same_digit(a: Piece, b: Piece, height: float, stroke: float) -> bool:
    """Are two pieces of one row strokes of one digit? (see :func:`group_digits`)"""
    union = _union(a.box, b.box)
    if union[3] > 1.6 * height or union[2] > 1.8 * height:  # some people write their 5s half again as wide as tall
        return False
    gap = _x_gap(a.box, b.box)
    if -gap >= 0.5 * min(a.box[2], b.box[2]):  # one over the other: a hat, a crossbar, a two-stroke 4
        return True
    if gap <= min(1.5 * stroke + 1, 0.125 * height) and _y_overlap(a.box, b.box) > -0.1 * height:  # a pen lift
        return True
    small, body = (a, b) if a.box[3] < b.box[3] else (b, a)
    sx, sy, sw, sh = small.box
    bx, by, bw, bh = body.box
    flat = sh <= 0.4 * height and sw >= 1.5 * sh
    if flat and bh >= 0.5 * height and gap <= 0.2 * height:  # a hat or bar beside the body's upper part
        return by - 0.3 * height <= sy + sh / 2 <= by + 0.6 * bh
    return False


def group_digits(row: list[Piece], stroke: float) -> list[Piece]:
    """The pieces of one row grouped into digits, left to right, relative to the row's digit size.

    Two pieces are one digit, if together no taller than 1.6 and no wider than 1.8 of the row's
    digit heights, when they overlap sideways by half the narrower one (a hat, a crossbar, a
    two-stroke 4); when the gap between them is no wider than a pen lift (1.5 stroke widths, at
    most an eighth of a digit height); or when one is a short flat stroke within a fifth of a
    digit height of the other's upper part (a 5's hat or a 7's bar written apart). Anything
    else stays a mark of its own, so that a stray mark is named, not merged into a digit.
    """
    height = float(np.median([p.box[3] for p in row if p.box[3] >= 0.45 * max(q.box[3] for q in row)]))
    digits = sorted(row, key=lambda p: p.box[0])
    merged = True
    while merged:
        merged = False
        pairs = sorted(((max(0.0, _x_gap(digits[i].box, digits[j].box)), i, j)
                        for i in range(len(digits)) for j in range(i + 1, len(digits))))
        for _, i, j in pairs:
            if _same_digit(digits[i], digits[j], height, stroke):
                digits[i] = digits[i].joined(digits[j])
                del digits[j]
                merged = True
                break
    return sorted(digits, key=lambda p: p.cx)


# --------------------------------------------------------------------------- 6. cells


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
    pieces, dust, labels = find_pieces(ink, height, stroke)
    if not pieces:
        raise SheetError(f"{source}: {_diagnosis(page)}No handwriting found on the page. Write with a dark pen, "
                         "and photograph the sheet in focus and in good light.", _annotate(page, []))
    if len(pieces) > 20 * layout.count + 200:
        raise SheetError(f"{source}: {_diagnosis(page)}the page is covered in {len(pieces)} small marks, not "
                         f"{layout.count} digits: is it a photo of paper at all, taken in good light? Photograph "
                         "the sheet again, evenly lit, or scan it.", _annotate(page, []))
    rows, stray = find_rows(pieces, height, min_chain=min(3, layout.cols))
    problems = [(p.box, f"a mark outside the rows of digits, {_where(p.box, rows)}: erase or cover it")
                for p in stray if max(p.box[2], p.box[3]) >= 0.35 * height]
    cells, cell_problems = assign_cells(rows, layout, stroke)
    problems += cell_problems
    all_boxes = [p.box for r in rows for p in group_digits(r, stroke)]
    if problems or len(cells) != layout.count:
        details = "; ".join(text for _, text in problems[:8])
        raise SheetError(
            f"{source}: {_diagnosis(page)}the layout is {layout.describe()} ({layout.count} digits); {details}. "
            "Nothing was written; see the annotated sheet (problems in red).",
            _annotate(page, all_boxes, problems=problems),
            cause="turned" if any("turned by 90 degrees" in text for _, text in problems) else "",
        )
    digits, boxes, given = [], [], []
    for (r, c), piece in sorted(cells.items()):
        x, y, w, h = piece.box
        mask = np.where(np.isin(labels[y : y + h, x : x + w], piece.ids), 255, 0).astype(np.uint8)
        label = layout.label_at(r, c)
        digits.append(Digit(to_mnist(mask), label, source, r, c, piece.box))
        boxes.append(piece.box)
        given.append(label)
    steps["digits"] = len(digits)
    steps["specks_ignored"] = len(dust) + len(stray) - sum(max(p.box[2], p.box[3]) >= 0.35 * height for p in stray)
    return SheetResult(digits, page, _annotate(page, boxes, given), time.perf_counter() - start, steps,
                       to_image=to_image)


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
        cv2.imwrite(str(out), err.annotated)
        err.args = (f"{err.args[0]} Annotated sheet saved to {out}.",)


def check_sheet_list(sheets: list[tuple[Path, SheetLayout]]) -> None:
    """Refuse a list of sheets that names the same file twice (its digits would be counted twice)."""
    seen: dict[Path, int] = {}
    for k, (path, _) in enumerate(sheets):
        resolved = Path(path).resolve()
        if resolved in seen:
            raise SheetError(f"'{path}' is listed twice in SHEETS (entries {seen[resolved] + 1} and {k + 1}); "
                             "list every sheet once.")
        seen[resolved] = k


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
