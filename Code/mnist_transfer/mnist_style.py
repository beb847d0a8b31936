"""MNIST normalisation: one digit's ink -> a 28x28 image prepared the way MNIST's were.

Used by every source of digits (sheet photos, folders of cut digits, pen strokes), so all
of them reach the model in the same form: white digit on black, scaled into a 20x20 box
keeping its aspect ratio, anti-aliased, and shifted by whole pixels so that its centre of
mass sits at the centre of the 28x28 image; the stroke is brought to MNIST's width first.
"""

from __future__ import annotations

import cv2
import numpy as np

INK_THRESHOLD = 40  # a pixel of a saved 28x28 digit counts as ink above this (JPEG noise is below)


def stroke_width(mask: np.ndarray) -> float:
    """The mean width of the strokes of a (non-empty) ink mask, in pixels: four times the mean distance of its
    ink from the paper (a stroke w pixels wide has a mean distance of about w/4; calibrated against MNIST)."""
    ink = cv2.copyMakeBorder((mask > 0).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    return 4.0 * float(dist[ink > 0].mean())


def to_mnist(mask: np.ndarray, target_stroke: float = 2.8) -> np.ndarray:
    """One digit's binary ink mask (any size, 255 = ink) -> a 28x28 MNIST-style uint8 image.

    As in MNIST: the digit is scaled to fit a 20x20 box keeping its aspect ratio, with
    anti-aliasing (area resampling), then placed in 28x28 so that its centre of mass is at
    the centre. The stroke is thickened or thinned first so that it ends about
    ``target_stroke`` pixels wide in the 28x28 image, like MNIST's pens.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("An empty digit mask cannot be normalised.")
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    stroke = stroke_width(crop)
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
