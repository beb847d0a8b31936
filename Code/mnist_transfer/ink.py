"""Stage 2, the ink: even out the light, threshold, measure the writing's scale, remove lines.

Straight printed or ruled lines of any weight go first (:func:`remove_grid_lines`, a Hough
transform); then lines that are not straight or not whole, drawn by hand, dashed, dotted or thick,
and the pieces left on a line's course (:func:`remove_drawn_lines`). Strokes of digits that cross
a line are joined again across it, and strokes that run along a line, on top of it, are kept
(:func:`strokes_along`). Imports nothing from the other stages (only the stroke width of
:mod:`.mnist_style`, listed above them in the package).
"""

from __future__ import annotations

import cv2
import numpy as np

from .mnist_style import stroke_width


def flatten_light(page: np.ndarray) -> np.ndarray:
    """The page divided by the paper's own brightness, so that paper reads about 250 however it is lit.

    The paper's brightness is a closing (which removes the ink), smoothed by a wide blur except
    on the dark side of a hard shadow's edge, where the blur would overshoot and leave false ink.
    """
    k = max(15, (page.shape[1] // 40) | 1)
    closed = cv2.morphologyEx(page, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    paper = cv2.GaussianBlur(closed, (0, 0), k / 3)
    shadow_edge = cv2.subtract(paper, closed) > 12  # the dark side of a hard shadow: the blur would overshoot
    paper[shadow_edge] = closed[shadow_edge]
    return cv2.divide(page, paper, scale=255)


def binarize(page: np.ndarray) -> np.ndarray:
    """Even out illumination (:func:`flatten_light`), then threshold adaptively."""
    flat = flatten_light(page)
    block = max(31, (page.shape[1] // 25) | 1)
    ink = cv2.adaptiveThreshold(flat, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, block, 18)
    _, dark = cv2.threshold(flat, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return cv2.bitwise_and(ink, dark)


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
        widths.append(stroke_width(ink[y : y + bh, x : x + bw]))
    return height, float(np.median(widths))


def stroke_length(mask: np.ndarray) -> float:
    """How long the strokes of one piece of ink are, in pixels (its area over its mean stroke width,
    :func:`.mnist_style.stroke_width`): the same for a thin and a thick pen, and twice as much for two digits
    as for one."""
    area = int(np.count_nonzero(mask))
    return area / stroke_width(mask) if area else 0.0


def _line_segments(ink: np.ndarray, min_length: int, horizontal: bool) -> np.ndarray:
    """Straight segments at least ``min_length`` long, within 10 degrees of horizontal (or vertical)."""
    kernel = (15, 1) if horizontal else (1, 15)
    candidates = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel))
    if not candidates.any():
        return np.zeros((0, 4), int)
    # half-degree angle steps find the same lines within 10 degrees of the axes as quarter-degree ones, in half the time
    segments = cv2.HoughLinesP(candidates, 1, np.pi / 360, threshold=int(min_length * 0.6),
                               minLineLength=min_length, maxLineGap=max(4, min_length // 25))
    if segments is None:
        return np.zeros((0, 4), int)
    segments = segments.reshape(-1, 4)
    dx, dy = np.abs(segments[:, 2] - segments[:, 0]), np.abs(segments[:, 3] - segments[:, 1])
    keep = dy <= np.tan(np.radians(10)) * dx if horizontal else dx <= np.tan(np.radians(10)) * dy
    return segments[keep]


def _run_across(mask: np.ndarray, horizontal: bool) -> np.ndarray:
    """For every pixel of ``mask``, the length of the run of mask pixels through it across a horizontal
    line (a column's run) or across a vertical one (a row's run); 0 off the mask."""
    on = mask > 0
    a = on if horizontal else on.T
    def from_start(b):
        count = np.cumsum(b, axis=0, dtype=np.int32)
        return count - np.maximum.accumulate(np.where(b, 0, count), axis=0)
    run = from_start(a) + from_start(a[::-1])[::-1] - 1
    run = np.where(a, run, 0)
    return run if horizontal else run.T


def strokes_along(ink: np.ndarray, line_ink: np.ndarray, horizontal: bool, digit_height: float) -> np.ndarray:
    """The part of ``line_ink`` that is a digit's stroke lying on the line (a 7's bar written on a cell's
    line): where the line's ink is much thicker across than the line itself (at least 1.6 times, and 3
    pixels more) for a stretch along it; there the line's ink is kept.

    The stretch must be long (4 line widths, at least 15 pixels): where a stroke or another line crosses
    this one, its ink is as thick across but only a stroke's width long, and it stays a line (the gap is
    closed again across it). And no longer than 1.5 digit heights: longer, it is a thick part of the line
    itself, or the paper's edge and its shadow.
    """
    runs = _run_across(ink, horizontal)
    on_line = runs[line_ink > 0]
    if not on_line.size:
        return np.zeros_like(ink)
    thick = float(np.median(on_line))
    thicker = ((runs >= max(1.6 * thick, thick + 3)) & (line_ink > 0)).astype(np.uint8) * 255
    length = int(max(4 * thick, 15))
    along = (length, 1) if horizontal else (1, length)
    thicker = cv2.morphologyEx(thicker, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, along))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(thicker, connectivity=8)
    too_long = np.flatnonzero(stats[1:, cv2.CC_STAT_WIDTH if horizontal else cv2.CC_STAT_HEIGHT] > 1.5 * digit_height) + 1
    thicker[np.isin(labels, too_long)] = 0
    return cv2.bitwise_and(line_ink, thicker)


def loops_on_line(ink: np.ndarray, line_ink: np.ndarray, horizontal: bool, digit_height: float) -> np.ndarray:
    """The part of ``line_ink`` that is a digit's loop lying flat on the line (a 6's loop written on a cell's
    line, the line running through it): the ink around small enclosed holes of the paper near the line.

    The holes (paper enclosed by ink, at most 0.4 digit heights across the line and one along it, the loop
    cut into several by the line, joined again within 3 pixels) must together be a fifth of a digit height
    to a digit height long and hold 20 pixels, the largest a fifth of a digit height long and 4 pixels
    across (specks of paper in the ragged ink of a line or of the paper's edge are smaller). The ink within
    6 pixels of them is the loop's stroke, if nearly all of it (80%) lies on or within 13 pixels of the line: a loop lying on the line, not a
    digit's bowl that the line only crosses (a 0 or an 8 cut through the middle reaches far from it); and if
    its ink joins a stroke that leaves the line by 0.3 digit heights (the 6's stem; the paper's edge and its
    shadow, two ragged lines with paper between them, never leave it).
    """
    keep = np.zeros_like(ink)
    n, paper, stats, _ = cv2.connectedComponentsWithStats((ink == 0).astype(np.uint8), connectivity=4)
    height, width = ink.shape
    along, across = (stats[:, 2], stats[:, 3]) if horizontal else (stats[:, 3], stats[:, 2])
    enclosed = ((stats[:, 0] > 0) & (stats[:, 1] > 0) & (stats[:, 0] + stats[:, 2] < width)
                & (stats[:, 1] + stats[:, 3] < height))
    small = np.flatnonzero(enclosed & (along <= digit_height) & (across <= 0.4 * digit_height))
    if not len(small) or not line_ink.any():
        return keep
    _, pieces, piece_stats, _ = cv2.connectedComponentsWithStats((ink > 0).astype(np.uint8), connectivity=8)
    holes = np.isin(paper, small).astype(np.uint8) * 255
    groups = cv2.dilate(holes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    near = cv2.dilate(line_ink, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 27) if horizontal else (27, 1)))
    ring = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13))
    m, group, group_stats, _ = cv2.connectedComponentsWithStats(groups, connectivity=8)
    for g in range(1, m):
        x, y, w, h = (int(v) for v in group_stats[g, :4])
        if not 0.2 * digit_height <= (w if horizontal else h) <= digit_height:
            continue
        window = (slice(max(0, y - 8), y + h + 8), slice(max(0, x - 8), x + w + 8))
        loop = ((group[window] == g) & (holes[window] > 0)).astype(np.uint8)
        inside = np.unique(paper[window][loop > 0])
        widest = int(along[inside].max()) if len(inside) else 0
        deepest = int(across[inside].max()) if len(inside) else 0
        if loop.sum() < 20 or widest < 0.2 * digit_height or deepest < 4:
            continue  # specks of paper in a rough edge or a line's ragged ink, not a loop's inside
        stroke = (cv2.dilate(loop, ring) > 0) & (ink[window] > 0)
        if (near[window][stroke] > 0).mean() >= 0.8 and (line_ink[window][stroke] > 0).any() and _leaves_line(
                pieces, piece_stats, np.unique(pieces[window][stroke]), near, horizontal, 0.3 * digit_height):
            keep[window][stroke] = 255
    return cv2.bitwise_and(line_ink, keep)


def _leaves_line(pieces: np.ndarray, stats: np.ndarray, ids: np.ndarray, near: np.ndarray, horizontal: bool,
                 reach: float) -> bool:
    """Does the ink of the pieces ``ids`` (labels of ``pieces``) reach at least ``reach`` pixels away from the
    line's neighbourhood ``near``, across the line (a 6's stem rising from its loop)?"""
    for i in ids[ids > 0]:
        x, y, w, h = (int(v) for v in stats[i, :4])
        off = (pieces[y : y + h, x : x + w] == i) & (near[y : y + h, x : x + w] == 0)
        lines = np.flatnonzero(off.any(axis=1 if horizontal else 0))
        if len(lines) and lines[-1] - lines[0] + 1 >= reach:
            return True
    return False


def _digit_strokes_on(ink: np.ndarray, line_ink: np.ndarray, horizontal: bool, digit_height: float) -> np.ndarray:
    """The part of ``line_ink`` that is a digit's: a stroke along it (:func:`strokes_along`) or a loop on it
    (:func:`loops_on_line`)."""
    return cv2.bitwise_or(strokes_along(ink, line_ink, horizontal, digit_height),
                          loops_on_line(ink, line_ink, horizontal, digit_height))


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
        if digit_height:  # strokes and loops lying on the line stay (the scale of the writing says how thick one can be)
            line_ink = cv2.bitwise_and(line_ink, cv2.bitwise_not(_digit_strokes_on(ink, line_ink, horizontal, digit_height)))
        cleaned = cv2.bitwise_and(ink, cv2.bitwise_not(line_ink))
        close = (1, 2 * reach + 3) if horizontal else (2 * reach + 3, 1)  # strokes crossing the band, joined again
        repaired = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, close))
        ink = cv2.bitwise_or(cleaned, cv2.bitwise_and(repaired, line_ink))
        lines = cv2.bitwise_or(lines, line_ink)
    return ink, lines


def _line_remnants(ink: np.ndarray, band: np.ndarray, digit_height: float, thick_limit: float,
                   horizontal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pieces of a line left where it wobbled or broke: thin pieces lying (80% or more) on the line's band
    continued by 1.7 digit heights either way (a piece that long would be a line itself). Returns (ink
    without them, them)."""
    reach = int(round(1.7 * digit_height))
    along = (2 * reach + 1, 13) if horizontal else (13, 2 * reach + 1)
    continued = cv2.dilate(band, cv2.getStructuringElement(cv2.MORPH_RECT, along)) > 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    remnants = np.zeros_like(ink)
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if (h if horizontal else w) > thick_limit:
            continue
        piece = labels[y : y + h, x : x + w] == i
        if continued[y : y + h, x : x + w][piece].mean() >= 0.8:
            remnants[y : y + h, x : x + w][piece] = 255
    return cv2.bitwise_and(ink, cv2.bitwise_not(remnants)), remnants


SPANNED = 0.65  # a run is one digit's stroke if the digit's other ink lies along this share of it (a 5's bar overhangs)


def _stroke_of_one_digit(ink: np.ndarray, runs: np.ndarray, box: np.ndarray, run: int, digit_height: float,
                         horizontal: bool) -> bool:
    """Is the long run ``run`` (of the labelled ``runs``, its stats ``box``) a stroke of one digit-sized piece of
    ink rather than a line: all its ink in one piece, as tall as half a digit or more and at most three digits
    long, whose other ink lies along :data:`SPANNED` of the run (a wide digit's top, the bars of two digits
    written into each other, an X over a digit: the rewritten 5's bar reaches a quarter past its body)? A line's fragment touching a digit sticks out past the digit's other ink,
    and a line through digits or dashes joins them into a piece longer than three digits."""
    x, y, w, h = (int(v) for v in box[:4])
    pad = 2
    y0, x0 = max(0, y - pad), max(0, x - pad)
    on_run = (runs[y0 : y + h + pad, x0 : x + w + pad] == run) & (ink[y0 : y + h + pad, x0 : x + w + pad] > 0)
    if not on_run.any():
        return False
    reach = int(3 * digit_height)  # the piece, if digit-sized, lies within three digits of the run
    Y0, X0 = max(0, y - reach), max(0, x - reach)
    window = (ink[Y0 : y + h + reach, X0 : x + w + reach] > 0).astype(np.uint8)
    _, pieces, piece_stats, _ = cv2.connectedComponentsWithStats(window, connectivity=8)
    owners = np.unique(pieces[y0 - Y0 : y0 - Y0 + on_run.shape[0], x0 - X0 : x0 - X0 + on_run.shape[1]][on_run])
    owners = owners[owners > 0]
    if len(owners) != 1:
        return False
    px, py, pw, ph = (int(v) for v in piece_stats[owners[0], :4])
    if px == 0 or py == 0 or px + pw >= window.shape[1] or py + ph >= window.shape[0]:
        return False  # the piece runs past the window: longer than three digits
    if (ph if horizontal else pw) < 0.5 * digit_height or (pw if horizontal else ph) > 3 * digit_height:
        return False
    rest = pieces == owners[0]
    rest[y0 - Y0 : y0 - Y0 + on_run.shape[0], x0 - X0 : x0 - X0 + on_run.shape[1]] &= ~on_run
    lines = np.flatnonzero(rest.any(axis=0 if horizontal else 1))
    if not len(lines):
        return False
    start, end = (x - X0, x - X0 + w) if horizontal else (y - Y0, y - Y0 + h)
    return min(end, lines[-1] + 1) - max(start, lines[0]) >= SPANNED * (end - start)


def remove_drawn_lines(ink: np.ndarray, digit_height: float, known: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Remove lines that are not straight or not whole: drawn by hand (wobbly, broken at the crossings),
    dashed, dotted or thick; return (ink without them, their mask).

    A line is a run of ink at least 1.7 digit heights long, within a few pixels of one direction
    (horizontal or vertical) and no thicker than a third of a digit: the ink is first smeared
    across the direction (so that a wobble of a few pixels or a row of dots still forms one run),
    then opened along it. No digit stroke is that long and straight. Where a digit's stroke
    crosses the line, the gap left by removing the line is closed again across it, as in
    :func:`remove_grid_lines`. Thin pieces left on a line's course (where it wobbled, or between
    the parts :func:`remove_grid_lines` took, ``known``) go with it.

    A page with no line in a direction but a wide digit (the tops of a crossed-out digit and its rewrite,
    written into each other) has long runs too: where every run of the direction is a stroke of one
    digit-sized piece (:func:`_stroke_of_one_digit`), none is taken. On a page with lines, a run like that is
    more likely a line's broken piece touching a digit, and goes.
    """
    length = int(round(1.7 * digit_height))
    thick_limit = max(6.0, digit_height / 3)
    lines = np.zeros_like(ink)
    for horizontal in (True, False):
        smear = (1, 7) if horizontal else (7, 1)  # (width, height) of the kernel: across the line
        along = (length, 1) if horizontal else (1, length)
        gaps = (9, 1) if horizontal else (1, 9)  # dots and dashes: close the gaps along the line first
        joined = cv2.morphologyEx(cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_RECT, smear)), cv2.MORPH_CLOSE,
                                  cv2.getStructuringElement(cv2.MORPH_RECT, gaps))
        runs = cv2.morphologyEx(joined, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, along))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
        across = stats[1:, 3] if horizontal else stats[1:, 2]
        thin = np.flatnonzero(across <= thick_limit + 6) + 1  # +6: the smear
        straight = np.zeros_like(ink)
        if known is not None and known.any():  # the straight lines found before, in this direction
            kernel = (15, 1) if horizontal else (1, 15)
            straight = cv2.morphologyEx(known, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel))
        if len(thin) and not straight.any() and all(
                _stroke_of_one_digit(ink, labels, stats[j], j, digit_height, horizontal) for j in thin):
            thin = []  # no line this way on the page: every long run is a stroke of one digit-sized piece
        band = cv2.bitwise_or(np.isin(labels, thin).astype(np.uint8) * 255, straight)
        if not band.any():
            continue
        line_ink = cv2.bitwise_and(ink, band)
        line_ink = cv2.bitwise_and(line_ink, cv2.bitwise_not(_digit_strokes_on(ink, line_ink, horizontal, digit_height)))
        cleaned = cv2.bitwise_and(ink, cv2.bitwise_not(line_ink))
        cleaned, remnants = _line_remnants(cleaned, band, digit_height, thick_limit, horizontal)
        line_ink = cv2.bitwise_or(line_ink, remnants)
        close = (1, int(thick_limit) + 9) if horizontal else (int(thick_limit) + 9, 1)
        repaired = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, close))
        ink = cv2.bitwise_or(cleaned, cv2.bitwise_and(repaired, line_ink))
        lines = cv2.bitwise_or(lines, line_ink)
    return ink, lines
