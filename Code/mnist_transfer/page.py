"""Stage 1, the page: read the image, judge its exposure and focus, find the paper and undo the perspective.

A photo of a sheet on a darker surface: the four-cornered sheet is found and flattened. A scan,
or a photo the paper fills: the frame is the page, less any desk, shadow and paper's edge showing
along a border (:func:`_beyond_the_paper`; a shadow with writing in it is paper and stays). A photo
whose paper runs off the frame (no four corners): the paper alone, the desk painted out
(:func:`_paper_off_the_frame`). A transparent PNG is flattened onto white (:func:`flatten_alpha`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .layout import SheetError

PAGE_WIDTH = 1400  # the page is resampled to this width (pixels)


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
    if _may_have_alpha(data):
        with_alpha = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if with_alpha is not None and with_alpha.ndim == 3 and with_alpha.shape[2] == 4:
            return flatten_alpha(with_alpha)
    return image


def _may_have_alpha(data: np.ndarray) -> bool:
    """A PNG, WEBP or TIFF file (formats that can hold an alpha channel; a JPEG cannot)."""
    head = data[:12].tobytes()
    return head.startswith(b"\x89PNG") or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[:4] in (b"II*\x00", b"MM\x00*")


def flatten_alpha(image: np.ndarray) -> np.ndarray:
    """A BGRA image (8 or 16 bits) as BGR on white paper: what is transparent becomes paper.

    Tablet and drawing apps save the ink in the alpha channel only (the colour may be black
    everywhere, even where nothing is drawn); composited onto white, it reads like ink on paper.
    """
    top = float(np.iinfo(image.dtype).max) if image.dtype.kind in "ui" else 1.0
    colour = image[..., :3].astype(np.float32) * (255.0 / top)
    alpha = image[..., 3:].astype(np.float32) / top
    if ink_only_in_alpha(colour, alpha[..., 0]):  # e.g. white everywhere: composited it would be blank
        return np.repeat(np.clip(255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8), 3, axis=2)
    return np.clip(colour * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)


def ink_only_in_alpha(colour: np.ndarray, alpha: np.ndarray) -> bool:
    """Whether an image's strokes are only in its alpha channel (0..1): partly transparent, partly opaque, and
    one colour (0..255) wherever it is drawn. Such ink is drawn dark on white, whatever the colour (a white
    pen saved by a drawing app would otherwise vanish on white paper)."""
    drawn = alpha > 0.5
    if drawn.all() or not drawn.any() or (alpha < 0.5).sum() == 0:
        return False
    return float(colour[drawn].std(axis=0).max()) < 8.0


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
        return _frame_as_page(gray, small, small_scale, page_width)
    colour = cv2.resize(image, small.shape[::-1], interpolation=cv2.INTER_AREA) if image.ndim == 3 else None
    quad = _page_quad(small, colour)
    if quad is None:
        if _paper_fills_frame(small):  # a close-up photo (no table in sight) or a scan with a shadow
            return _frame_as_page(gray, small, small_scale, page_width)
        paper = _paper_off_the_frame(gray, small, small_scale)
        if paper is not None:  # the paper runs off the frame on one side or more: the desk is painted out
            return paper[0], "photo", paper[1] @ np.diag([paper[2], paper[2], 1.0])
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


def _beyond_the_paper(small: np.ndarray) -> tuple[int, int, int, int]:
    """How far the desk, the paper's shadow and its edge reach in from each border: (left, right, top, bottom).

    In pixels of the downscaled photo. A desk is a run of rows or columns from the border whose
    median brightness is below 0.6 of the paper's, ending in a sharp step up to the paper (within
    3% of the frame, the paper's shadow and edge included). A shadow on the paper itself either
    rises softly or has writing in it (:func:`_holds_writing`), and is not cut. 0 where the paper
    reaches the border (every scan).
    """
    paper = float(np.percentile(small, 90))
    out = []
    strips = (lambda k: small[:, :k], lambda k: small[:, small.shape[1] - k :],
              lambda k: small[:k], lambda k: small[small.shape[0] - k :])
    for profile, strip in zip((np.median(small, axis=0), np.median(small, axis=0)[::-1],
                               np.median(small, axis=1), np.median(small, axis=1)[::-1]), strips):
        n = len(profile)
        dark = int(np.argmax(profile >= 0.6 * paper)) if (profile >= 0.6 * paper).any() else n
        if dark < 3 or dark > 0.4 * n or _holds_writing(strip(dark)):
            out.append(0)
            continue
        rise = np.flatnonzero(profile[dark : dark + int(0.03 * n) + 1] >= 0.9 * paper)
        out.append(dark + int(rise[0]) + 2 + int(0.004 * n) if len(rise) else 0)
    return tuple(out)


def _holds_writing(strip: np.ndarray) -> bool:
    """Is a dark strip along the border paper in a shadow with writing on it, rather than the desk?

    Ink on shadowed paper is far darker than the paper just around it (a closing of 7 pixels, which
    fills thin strokes in); the grain of a desk is not, nor is the shadow the paper casts on the desk
    (dark, but smooth).
    """
    around = cv2.morphologyEx(strip, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8)).astype(np.float32)
    return float((strip < 0.6 * around).mean()) > 0.002


def _frame_as_page(gray: np.ndarray, small: np.ndarray, small_scale: float, page_width: int):
    """The frame as the page (a scan, or a photo filled by the paper), less any desk showing along a border."""
    h, w = gray.shape
    left, right, top, bottom = (int(round(v / small_scale)) for v in _beyond_the_paper(small))
    if left or right or top or bottom:
        gray = gray[top : h - bottom, left : w - right]
    f = gray.shape[1] / page_width
    to_image = np.array([[f, 0, left], [0, f, top], [0, 0, 1.0]])
    return _resize_to_width(gray, page_width), "scan", to_image


def _resize_to_width(gray: np.ndarray, page_width: int) -> np.ndarray:
    f = page_width / gray.shape[1]
    return cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)


def _paper_off_the_frame(gray: np.ndarray, small: np.ndarray, small_scale: float,
                         page_width: int = PAGE_WIDTH) -> tuple[np.ndarray, np.ndarray, float] | None:
    """A photo whose paper runs off the frame (no four corners to find): the paper alone, the desk painted out.

    The paper is the largest bright region (at least 0.75 of the paper's brightness, its writing
    filled in), covering a third of the frame or more and reaching the frame's border (else its
    corners would have been found). Its outline is pulled in by a little (the paper's edge and its
    shadow are not writing); the frame is cropped to it, and what lies outside it is painted with
    the paper's own brightness nearby, so that no edge is left to be taken for ink. Returns (the
    page at ``page_width``, the crop's offset matrix in image pixels, image pixels per page pixel),
    or None.
    """
    paper = float(np.percentile(small, 90))
    if paper < 110:
        return None
    bright = (small >= 0.75 * paper).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, 4]))
    x, y, w, h, _ = stats[k]
    sh, sw = small.shape
    if w * h < small.size / 3 or not (x == 0 or y == 0 or x + w >= sw or y + h >= sh):
        return None
    region = np.zeros_like(bright)
    contours, _ = cv2.findContours((labels == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(region, contours, -1, 1, -1)  # the writing inside the paper filled in
    if region.mean() < 1 / 3:
        return None
    inner = cv2.erode(region, np.ones((9, 9), np.uint8), borderType=cv2.BORDER_REPLICATE)  # off the edge and its shadow
    if inner.mean() < 1 / 3:
        return None
    H, W = gray.shape
    mask = cv2.resize(inner, (W, H), interpolation=cv2.INTER_NEAREST) > 0
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, bottom, left, right = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    crop = gray[top:bottom, left:right].astype(np.float32)
    inside = mask[top:bottom, left:right].astype(np.float32)
    if inside.mean() < 0.999:
        k = max(15, (crop.shape[1] // 15) | 1)
        near = cv2.blur(crop * inside, (k, k)) / np.maximum(cv2.blur(inside, (k, k)), 1e-3)
        near[cv2.blur(inside, (k, k)) < 0.05] = float(np.median(crop[inside > 0]))
        crop = np.where(inside > 0, crop, near)
    crop = np.clip(crop, 0, 255).astype(np.uint8)
    shift = np.array([[1.0, 0, left], [0, 1.0, top], [0, 0, 1.0]])
    f = crop.shape[1] / page_width
    return _resize_to_width(crop, page_width), shift, f


def light_surface_edge(page: np.ndarray) -> bool:
    """Does the paper's edge show inside the page, against a surface nearly as light as the paper (a white
    table)? A long straight edge (a third of the page or more, away from its border) with light ground,
    of a different brightness, on both sides. Then the page could not be told from the table."""
    f = 400 / page.shape[1]
    small = cv2.GaussianBlur(cv2.resize(page, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), (5, 5), 0)
    h, w = small.shape
    paper = float(np.percentile(small, 90))
    edges = cv2.Canny(small, 8, 24)
    found = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=int(0.2 * min(h, w)), minLineLength=int(0.33 * min(h, w)),
                            maxLineGap=4)
    if found is None:
        return False
    for x0, y0, x1, y1 in found.reshape(-1, 4)[:50]:
        a, b = np.float64([x0, y0]), np.float64([x1, y1])
        mid = (a + b) / 2
        if min(mid[0], mid[1], w - mid[0], h - mid[1]) < 0.03 * min(h, w):
            continue  # along the page's own border
        normal = np.array([-(b - a)[1], (b - a)[0]]) / max(1e-6, float(np.hypot(*(b - a))))
        sides = []
        for sign in (-1, 1):
            values = []
            for t in np.linspace(0.1, 0.9, 9):
                x, y = (a + t * (b - a) + sign * 6 * normal).round().astype(int)
                if 0 <= x < w and 0 <= y < h:
                    values.append(float(small[y, x]))
            sides.append(np.median(values) if len(values) >= 5 else np.nan)
        if np.isnan(sides).any():
            continue
        if min(sides) >= 0.6 * paper and abs(sides[0] - sides[1]) >= 6:
            return True
    return False
