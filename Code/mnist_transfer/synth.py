"""Synthetic handwritten digit sheets: the shipped sample, and test sheets with known labels.

Nobody on this project can write on paper for it, so a handwriting font plays "one writer".
Each glyph gets its own slant, size, rotation, baseline drift, stroke width and elastic
distortion, so the twelve copies of a digit differ as a person's do, and the writer's own
traits are drawn in (a continental 1 with a long flag and a base, a 7 with a bar and a serif). The page then goes through a
simulated phone camera: perspective tilt, uneven light and a shadow, paper texture, blur,
sensor noise and JPEG compression.

This module is for making inputs only; :mod:`.sheet_reading` never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import paths
from .sheet_reading import SheetLayout

SAMPLE_FONT = paths.FONTS_DIR / "BecauseWeMentor-Regular.otf"
TEST_FONTS = tuple(
    paths.FONTS_DIR / name
    for name in (
        "BecauseWeBuild-Regular.otf",
        "BecauseWeConnect-Regular.otf",
        "BecauseWeCreate-Regular.otf",
        "BecauseWeLearn-Regular.otf",
        "BecauseWeOrganize-Regular.otf",
        "Breip.ttf",
    )
)

A4_RATIO = 297 / 210


@dataclass
class WriterStyle:
    """How one synthetic person writes."""

    font: Path = SAMPLE_FONT
    flagged_one: bool = True  # a 1 with an up-stroke flag and a base line
    crossed_seven: bool = True  # a 7 with a bar through the stem and a serif
    slant_deg: float = 12.0  # mean forward slant
    jitter: float = 1.5  # how much the copies of a digit vary (1 = modest, 1.5 = the sample writer)
    pen_px: float = 0.0  # extra pen width in page pixels (0 = the font's own)


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary mask (for a uniform stroke, mean distance = width / 4)."""
    ink = mask > 0
    if not ink.any():
        return 0.0
    dist = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)
    return 4.0 * float(dist[ink].mean())


def _render_font_digit(font: ImageFont.FreeTypeFont, digit: int) -> np.ndarray:
    size = font.size
    canvas = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), str(digit), font=font, fill=255)
    mask = np.asarray(canvas)
    ys, xs = np.nonzero(mask > 127)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].copy()


def _add_traits(mask: np.ndarray, digit: int, style: WriterStyle, rng: np.random.Generator) -> np.ndarray:
    """Draw the writer's traits onto a glyph (white on black, cropped), each copy a little different."""
    h, w = mask.shape
    width = max(2, int(round(_stroke_width(mask))))
    pad = h // 2
    out = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    ink_cols = np.nonzero(mask[int(h * 0.4) : int(h * 0.8)].max(0) > 127)[0]
    stem_x = pad + (int(ink_cols.mean()) if len(ink_cols) else w // 2)
    vary = lambda: rng.uniform(0.8, 1.2)  # noqa: E731
    line = lambda p, q: cv2.line(out, tuple(map(int, p)), tuple(map(int, q)), 255, width, cv2.LINE_AA)  # noqa: E731
    if digit == 1 and style.flagged_one:  # a long up-stroke (continental 1) and a base
        top = pad + 1
        line((stem_x, top), (stem_x - h * 0.42 * vary(), top + h * 0.30 * vary()))
        base = pad + h - 1
        line((stem_x - h * 0.25 * vary(), base), (stem_x + h * 0.25 * vary(), base))
    if digit == 7 and style.crossed_seven:  # a bar through the stem and a serif on the top bar
        y = pad + int(h * 0.5)
        line((stem_x - h * 0.28 * vary(), y), (stem_x + h * 0.22 * vary(), y))
        rows = np.nonzero(mask[: max(1, h // 5)].max(1) > 127)[0]
        left = np.nonzero(mask[: max(1, h // 5)].max(0) > 127)[0]
        if len(rows) and len(left):
            x0, y0 = pad + left.min(), pad + rows.mean()
            line((x0, y0), (x0 - h * 0.02, y0 + h * 0.22 * vary()))
    ys, xs = np.nonzero(out > 127)
    return out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _elastic(mask: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float) -> np.ndarray:
    h, w = mask.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, gx + dx, gy + dy, cv2.INTER_LINEAR, borderValue=0)


def handwritten_glyph(
    digit: int, height_px: int, style: WriterStyle, rng: np.random.Generator
) -> np.ndarray:
    """One handwritten copy of ``digit``: a white-on-black uint8 mask about ``height_px`` tall."""
    j = style.jitter
    font = ImageFont.truetype(str(style.font), size=int(height_px * 1.4))
    glyph = _add_traits(_render_font_digit(font, digit), digit, style, rng)
    h, w = glyph.shape
    scale = height_px * rng.uniform(1 - 0.12 * j, 1 + 0.08 * j) / h
    aspect = rng.uniform(1 - 0.1 * j, 1 + 0.1 * j)
    slant = np.tan(np.radians(style.slant_deg + rng.normal(0, 4 * j)))
    angle = np.radians(rng.normal(0, 4 * j))
    pad = int(max(h, w) * 0.6)
    glyph = cv2.copyMakeBorder(glyph, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    centre = np.array(glyph.shape[::-1], dtype=np.float64) / 2
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shear = np.array([[1.0, -slant], [0.0, 1.0]])
    lin = rot @ shear @ np.diag([scale * aspect, scale])
    out_size = int(height_px * 2.2)
    offset = np.array([out_size / 2, out_size / 2]) - lin @ centre
    matrix = np.hstack([lin, offset[:, None]])
    warped = cv2.warpAffine(glyph, matrix, (out_size, out_size), flags=cv2.INTER_LINEAR, borderValue=0)
    warped = _elastic(warped, rng, alpha=height_px * 0.035 * j, sigma=height_px * 0.12)
    extra = (style.pen_px + rng.normal(0, 0.8 * j)) * height_px / 160  # pen changes scale with the writing
    radius = int(round(abs(extra) / 2))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        warped = cv2.dilate(warped, kernel) if extra > 0 else cv2.erode(warped, kernel)
        if not (warped > 127).any():  # eroded away: fall back to the font's pen
            warped = cv2.warpAffine(glyph, matrix, (out_size, out_size), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(warped > 127)
    return warped[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def render_page(
    layout: SheetLayout,
    style: WriterStyle,
    seed: int,
    page_width: int = 2480,
    grid_lines: bool = False,
    blank_cells: tuple[tuple[int, int], ...] = (),
    double_cells: tuple[tuple[int, int], ...] = (),
) -> tuple[np.ndarray, list[dict]]:
    """A flat, clean A4 page (grayscale, 255 = paper) with the digits of ``layout`` written on it.

    Returns the page and the ground truth: one dict per written digit with its row,
    column, label and the box (x, y, w, h) in page pixels. ``blank_cells`` are left empty
    and ``double_cells`` get two small digits side by side (bad input, for the tests).
    """
    rng = np.random.default_rng(seed)
    page_h = int(page_width * A4_RATIO)
    page = np.full((page_h, page_width), 255, np.uint8)
    margin_x, margin_top, margin_bottom = int(page_width * 0.08), int(page_h * 0.07), int(page_h * 0.05)
    cell_w = (page_width - 2 * margin_x) / layout.cols
    cell_h = (page_h - margin_top - margin_bottom) / layout.rows
    if grid_lines:
        line = max(2, page_width // 600)
        shade = int(rng.integers(120, 190))
        for r in range(layout.rows + 1):
            y = int(margin_top + r * cell_h)
            cv2.line(page, (margin_x, y), (page_width - margin_x, y), shade, line)
        for c in range(layout.cols + 1):
            x = int(margin_x + c * cell_w)
            cv2.line(page, (x, margin_top), (x, int(margin_top + layout.rows * cell_h)), shade, line)
    pen = int(rng.integers(20, 60))
    height = int(min(cell_h, cell_w * 1.4) * 0.62)
    truth = []
    drift = 0.0
    for r in range(layout.rows):
        drift = 0.0
        for c in range(layout.cols):
            label = layout.label_at(r, c)
            drift = 0.7 * drift + rng.normal(0, 0.03 * cell_h * style.jitter)
            if (r, c) in blank_cells:
                continue
            glyph = handwritten_glyph(label, height, style, rng)
            if (r, c) in double_cells:
                glyph = handwritten_glyph(label, int(height * 0.6), style, rng)
                second = handwritten_glyph((label + 1) % 10, int(height * 0.6), style, rng)
                gap = np.zeros((max(glyph.shape[0], second.shape[0]), int(cell_w * 0.3)), np.uint8)
                pad = lambda g: np.pad(g, ((0, gap.shape[0] - g.shape[0]), (0, 0)))  # noqa: E731
                glyph = np.hstack([pad(glyph), gap, pad(second)])
            gh, gw = glyph.shape
            if gh > cell_h * 0.9 or gw > cell_w * 0.9:
                f = min(cell_h * 0.9 / gh, cell_w * 0.9 / gw)
                glyph = cv2.resize(glyph, (max(1, int(gw * f)), max(1, int(gh * f))), interpolation=cv2.INTER_AREA)
                gh, gw = glyph.shape
            cx = margin_x + (c + 0.5) * cell_w + rng.normal(0, 0.05 * cell_w)
            cy = margin_top + (r + 0.55) * cell_h + drift
            x0 = int(np.clip(cx - gw / 2, margin_x + 0.05 * cell_w + c * cell_w, margin_x + (c + 0.95) * cell_w - gw))
            y0 = int(np.clip(cy - gh / 2, margin_top + r * cell_h + 0.05 * cell_h, margin_top + (r + 0.95) * cell_h - gh))
            region = page[y0 : y0 + gh, x0 : x0 + gw]
            alpha = glyph.astype(np.float32) / 255.0
            region[:] = (region * (1 - alpha) + pen * alpha).astype(np.uint8)
            truth.append({"row": r, "col": c, "label": label, "box": (x0, y0, gw, gh)})
    return page, truth


def _cover_frame(dst: np.ndarray, centre: tuple[float, float], out_w: int, out_h: int) -> np.ndarray:
    """Grow the page outline ``dst`` about ``centre`` until it covers the whole frame (no table visible)."""
    frame = [(0.0, 0.0), (out_w - 1.0, 0.0), (out_w - 1.0, out_h - 1.0), (0.0, out_h - 1.0)]
    while min(cv2.pointPolygonTest(dst.reshape(-1, 1, 2), pt, True) for pt in frame) < 2:
        dst = ((dst - centre) * 1.01 + centre).astype(np.float32)
    return dst


def photograph(
    page: np.ndarray,
    seed: int,
    megapixels: float = 12.0,
    tilt: float = 1.0,
    fill_frame: bool = False,
    return_matrix: bool = False,
    fast: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Simulate a phone photo of ``page`` lying on a table: returns a BGR uint8 image.

    Perspective (``tilt`` scales how oblique), a warm uneven light with a soft shadow,
    paper texture, a slight blur, sensor noise and JPEG compression. ``page`` is grayscale
    (255 = paper) or BGR (coloured ink). ``fill_frame``: the camera is so close that the paper
    fills the whole frame (its edges, and the page's outer margin, fall outside the photo).
    ``return_matrix``: also return the 3x3 perspective matrix from page to photo pixels.
    ``fast``: the same effects computed more cheaply (the shadow blurred at low resolution,
    float32 noise): a few times faster, other pixels than the default for the same seed.
    """
    rng = np.random.default_rng(seed)
    out_w = int(round(np.sqrt(megapixels * 1e6 * 3 / 4)))
    out_h = int(round(out_w * 4 / 3))
    ph, pw = page.shape[:2]
    normal = (lambda shape: rng.standard_normal(shape, np.float32)) if fast else (lambda shape: rng.normal(0, 1, shape))
    texture = cv2.GaussianBlur(normal((ph, pw)).astype(np.float32), (0, 0), 2) * 6
    if page.ndim == 2:
        paper = np.clip(page.astype(np.float32) * 0.93 + texture, 0, 255)
        paper_bgr = np.dstack([paper * 0.97, paper * 0.99, paper]).astype(np.float32)
    else:
        paper = np.clip(page.astype(np.float32) * 0.93 + texture[..., None], 0, 255)
        paper_bgr = paper * np.float32([0.97, 0.99, 1.0])
    fill = rng.uniform(0.70, 0.82)
    cx, cy = out_w / 2 + rng.normal(0, out_w * 0.02), out_h / 2 + rng.normal(0, out_h * 0.02)
    half_w = out_w * fill / 2
    half_h = half_w * ph / pw
    if half_h > out_h * 0.46:
        half_h = out_h * 0.46
        half_w = half_h * pw / ph
    corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    corners += rng.normal(0, out_w * 0.025 * tilt, corners.shape)
    angle = np.radians(rng.normal(0, 3 * tilt))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (corners @ rot.T + [cx, cy]).astype(np.float32)
    if fill_frame:
        dst = _cover_frame(dst, (cx, cy), out_w, out_h)
    src = np.float32([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]])
    matrix = cv2.getPerspectiveTransform(src, dst)
    table_colour = np.array(rng.uniform([40, 60, 80], [90, 110, 140]), np.float32)
    table = np.empty((out_h, out_w, 3), np.float32)
    table[:] = table_colour
    table += cv2.GaussianBlur(rng.normal(0, 1, (-(-out_h // 4), -(-out_w // 4))).astype(np.float32), (0, 0), 3)[
        ..., None
    ].repeat(4, 0).repeat(4, 1)[:out_h, :out_w] * 8
    warped = cv2.warpPerspective(paper_bgr, matrix, (out_w, out_h), flags=cv2.INTER_AREA)
    inside = cv2.warpPerspective(np.ones((ph, pw), np.float32), matrix, (out_w, out_h), flags=cv2.INTER_AREA)
    image = warped * inside[..., None] + table * (1 - inside[..., None])
    if fast:  # the same light field, by broadcasting
        yy, xx = np.arange(out_h, dtype=np.float32)[:, None], np.arange(out_w, dtype=np.float32)[None, :]
    else:
        yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    gx, gy = rng.normal(0, 1, 2)
    light = 1.0 - 0.18 * ((gx * (xx / out_w - 0.5) + gy * (yy / out_h - 0.5)) + 0.5) * rng.uniform(0.5, 1)
    shadow = np.zeros((out_h, out_w), np.float32)
    sx = int(rng.uniform(0.1, 0.9) * out_w)
    pts = np.array([[sx, 0], [sx + out_w * 0.5, 0], [sx + out_w * 0.2, out_h], [sx - out_w * 0.3, out_h]], np.int32)
    cv2.fillPoly(shadow, [pts], 1.0)
    if fast:  # a blur this wide loses nothing when done at an eighth of the size
        small = cv2.resize(shadow, (out_w // 8, out_h // 8), interpolation=cv2.INTER_AREA)
        shadow = cv2.resize(cv2.GaussianBlur(small, (0, 0), out_w * 0.005), (out_w, out_h))
    else:
        shadow = cv2.GaussianBlur(shadow, (0, 0), out_w * 0.04)
    light = light * (1 - rng.uniform(0.15, 0.35) * shadow)
    image = image * light[..., None]
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.3))
    if fast:
        image += normal(image.shape) * np.float32(3.0)
    else:
        image += rng.normal(0, 3.0, image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(80, 92))])
    photo = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return (photo, matrix) if return_matrix else photo


def scan(page: np.ndarray, seed: int) -> np.ndarray:
    """Simulate a flat-bed scan: the page itself (grayscale or BGR), slightly blurred and noisy, as BGR."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(page.astype(np.float32), (0, 0), 0.7) + rng.normal(0, 2.0, page.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def make_sheet(
    layout: SheetLayout | None = None,
    style: WriterStyle | None = None,
    seed: int = 0,
    grid_lines: bool = False,
    camera: bool = True,
    page_width: int = 2480,
    megapixels: float = 12.0,
    **bad_input,
) -> tuple[np.ndarray, list[dict]]:
    """A whole synthetic sheet (BGR image) and its ground truth (``bad_input``: see :func:`render_page`)."""
    layout = layout or SheetLayout()
    style = style or WriterStyle()
    page, truth = render_page(layout, style, seed, page_width=page_width, grid_lines=grid_lines, **bad_input)
    image = photograph(page, seed + 1, megapixels=megapixels) if camera else scan(page, seed + 1)
    return image, truth
