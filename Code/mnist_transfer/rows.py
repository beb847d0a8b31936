"""Stage 3, the rows: connected pieces of ink, chained into rows of writing, grouped into digits.

Also where touching digits are cut (:func:`split_piece`, :func:`touching_counts`); whether to cut
is decided by the cells stage, from the layout's count.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .layout import Box


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
    """Link every anchor to its nearest neighbour on the right that shares its height band.

    The neighbours are sought among the anchors whose left edges lie within reach, all at once
    (a page of printed text has thousands of pieces).
    """
    order = sorted(range(len(anchors)), key=lambda i: anchors[i].box[0])
    successor: dict[int, int] = {}
    taken: dict[int, tuple[float, int]] = {}
    boxes = np.array([anchors[i].box for i in order], float).reshape(-1, 4)  # in the order of their left edges
    x0, y0, w, h = boxes.T if len(boxes) else (np.zeros(0),) * 4
    cx, x1, y1 = x0 + w / 2, x0 + w, y0 + h
    widest = float(w.max()) if len(w) else 0.0
    for i in order:  # (i itself fails the test cx > its own cx)
        a = anchors[i].box
        best = None
        start = int(np.searchsorted(x0, a[0] - widest, side="left"))  # further left: its centre is left of a's
        stop = int(np.searchsorted(x0, a[0] + a[2] + 3.0 * height, side="right"))
        gap = np.maximum(x0[start:stop], a[0]) - np.minimum(x1[start:stop], a[0] + a[2])
        overlap = np.minimum(y1[start:stop], a[1] + a[3]) - np.maximum(y0[start:stop], a[1])
        ok = ((cx[start:stop] > anchors[i].cx) & (gap <= 3.0 * height) & (gap >= -0.5 * np.minimum(w[start:stop], a[2]))
              & (overlap >= 0.25 * np.minimum(h[start:stop], a[3])))
        if ok.any():
            m = int(np.argmin(np.where(ok, gap, np.inf)))  # the first of the nearest, as a loop in this order finds it
            best = (float(gap[m]), order[start + m])
        if best is not None:
            gap, j = best
            if j not in taken or gap < taken[j][0]:
                if j in taken:
                    successor.pop(taken[j][1], None)
                taken[j] = (gap, i)
                successor[i] = j
    chains, seen, followers = [], set(), set(successor.values())
    for i in order:
        if i in seen or i in followers:
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
    """Join chains that continue each other (a row broken by a wide gap or a digit written high).

    Repeatedly the closest pair (a's last piece, b's first) whose lines meet within half a digit
    height midway between them, compared all pairs at once; every chain's line is fitted once and
    again only when it grows, so that a page of printed text (hundreds of chains) takes well under
    a second.
    """
    chains = [sorted(c, key=lambda p: p.cx) for c in chains]
    lines = [_line_of(c) for c in chains]
    while len(chains) > 1:
        first_cx = np.array([c[0].cx for c in chains])
        last_cx = np.array([c[-1].cx for c in chains])
        first_left = np.array([c[0].box[0] for c in chains], float)
        last_right = np.array([c[-1].box[0] + c[-1].box[2] for c in chains], float)
        slope, intercept = (np.array(v) for v in zip(*lines))
        mid = (last_cx[:, None] + first_cx[None, :]) / 2
        mismatch = np.abs((slope[:, None] * mid + intercept[:, None]) - (slope[None, :] * mid + intercept[None, :]))
        ok = (first_cx[None, :] > last_cx[:, None]) & (last_right[:, None] - first_left[None, :] <= 0.5 * height)
        ok &= mismatch <= 0.5 * height
        np.fill_diagonal(ok, False)
        if not ok.any():
            break
        gap = np.where(ok, first_cx[None, :] - last_cx[:, None], np.inf)
        i, j = divmod(int(np.argmin(gap)), len(chains))  # the first of the closest, as a loop over (i, j) finds it
        chains[i] = chains[i] + chains[j]
        lines[i] = _line_of(chains[i])
        del chains[j], lines[j]
    return chains


def _tail_or_hat(a: Piece, b: Piece, height: float) -> bool:
    """A short stroke just above or below a digit, over it (a 9's tail under a tall loop, a 5's hat): one digit
    up to 2 digit heights tall, if the stroke is no taller than 0.8 of a digit and the gap under 0.25 of one."""
    small = a if a.box[3] < b.box[3] else b
    return (_union(a.box, b.box)[3] <= 2.0 * height and small.box[3] <= 0.8 * height
            and _y_overlap(a.box, b.box) > -0.25 * height and -_x_gap(a.box, b.box) >= 0.5 * min(a.box[2], b.box[2]))


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
                if (union[3] > 1.6 * digit_height and not _tail_or_hat(a, b, digit_height)) or union[2] > 1.8 * digit_height:
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


def _attach_near(rest: list[Piece], rows: list[list[Piece]], lines, digit_height: float) -> list[Piece]:
    """Give every piece near a row (within its span and half a digit height of its line) to the closest row.

    From the rows outwards: a row's span grows with every piece it takes. Returns the pieces left over.
    """
    stray = rest
    changed = True
    while rest and changed:
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
    return stray


def _row_through(p: Piece, lines, digit_height: float) -> int | None:
    """The row whose centre line, continued, passes through a digit-sized piece's middle (within 0.3 of a
    digit height), wherever along the row it is; None if no row's line does."""
    best = None
    for k, (slope, intercept) in enumerate(lines):
        off = abs(p.cy - (slope * p.cx + intercept))
        if off <= 0.3 * digit_height and (best is None or off < best[0]):
            best = (off, k)
    return None if best is None else best[1]


def find_rows(pieces: list[Piece], digit_height: float, min_chain: int = 3) -> tuple[list[list[Piece]], list[Piece]]:
    """The rows of writing, top to bottom, each a list of pieces; and pieces that belong to no row.

    Rows are chains of neighbouring pieces (each linked to the nearest one on its right whose
    height band it shares), joined where a row continues after a wide gap; every other piece (a
    digit written high, a hat, a crossbar) then goes to the row whose line passes closest, and a
    digit-sized piece set apart from its row (a wider gap after the second column) to the row
    whose line runs through its middle. No column grid is assumed.
    """
    pieces = _stack_pieces(pieces, digit_height)
    anchors = [p for p in pieces if p.box[3] >= 0.45 * digit_height]
    chains = _chain(anchors, digit_height)
    rows = _join_chains([c for c in chains if len(c) >= min_chain], digit_height)
    in_rows = {id(p) for r in rows for p in r}
    rest = [p for p in pieces if id(p) not in in_rows]
    lines = [_line_of(r) for r in rows]
    stray = _attach_near(rest, rows, lines, digit_height)
    on_line = [(p, k) for p in stray if p.box[3] >= 0.45 * digit_height
               and (k := _row_through(p, lines, digit_height)) is not None]
    if on_line:  # digits set apart from their row (a wider gap after the second column): on its line, far along it
        for p, k in on_line:
            rows[k].append(p)
        taken = {id(p) for p, _ in on_line}
        stray = _attach_near([p for p in stray if id(p) not in taken], rows, lines, digit_height)
    rows = [sorted(r, key=lambda p: p.cx) for r in rows]
    rows.sort(key=lambda r: float(np.median([p.cy for p in r])))
    return rows, stray


# --------------------------------------------------------------------------- 5. digits


def _same_digit(a: Piece, b: Piece, height: float, stroke: float) -> bool:
    """Are two pieces of one row strokes of one digit? (see :func:`group_digits`)"""
    union = _union(a.box, b.box)
    if union[3] > 1.6 * height and not _tail_or_hat(a, b, height):
        return False
    if union[2] > 1.8 * height:  # some people write their 5s half again as wide as tall
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


def group_digits(row: list[Piece], stroke: float, height: float | None = None) -> list[Piece]:
    """The pieces of one row grouped into digits, left to right, relative to the row's digit size.

    Two pieces are one digit, if together no taller than 1.6 and no wider than 1.8 of the row's
    digit heights, when they overlap sideways by half the narrower one (a hat, a crossbar, a
    two-stroke 4); when the gap between them is no wider than a pen lift (1.5 stroke widths, at
    most an eighth of a digit height); or when one is a short flat stroke within a fifth of a
    digit height of the other's upper part (a 5's hat or a 7's bar written apart). Anything
    else stays a mark of its own, so that a stray mark is named, not merged into a digit. ``height``:
    the digit height to judge by, when the pieces are too few to tell it (one table cell's).
    """
    height = height or float(np.median([p.box[3] for p in row if p.box[3] >= 0.45 * max(q.box[3] for q in row)]))
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


# --------------------------------------------------------------------------- touching digits


def split_piece(piece: Piece, parts: int, labels: np.ndarray,
                shares: list[float] | None = None) -> tuple[list[Piece], list[tuple[int, int, int]]]:
    """Cut one piece holding ``parts`` touching digits into that many, at the weakest ink between them.

    Each cut is the column of weakest ink within a third of a digit's width of where an even
    division would put it: the least ink in the column plus half the height the column's ink
    spans (where two digits touch, little ink over a short span; the middle of a 0 has as little
    ink as the joint, but spread over the digit's whole height). With ``shares`` (the parts' expected
    widths, e.g. a narrow 1 and a wide 2 from the other rows' columns), the cuts are sought around where
    those widths put them, within a third of the narrower neighbour. Returns the parts, left to right,
    each boxed tightly around its own ink, and the cuts as ``(x, y_top, y_bottom)`` on the page.
    """
    x, y, w, h = piece.box
    mask = np.isin(labels[y : y + h, x : x + w], piece.ids)
    rows = np.arange(h)[:, None]
    inked = mask.any(0)
    span = np.where(inked, np.where(mask, rows, -1).max(0) - np.where(mask, rows, h).min(0) + 1, 0)
    profile = np.convolve(mask.sum(0) + 0.5 * span, np.ones(3) / 3, mode="same")
    step = w / parts
    cuts = [x]
    if shares is not None:
        widths = w * np.asarray(shares, float) / float(np.sum(shares))
        ends = np.cumsum(widths)
    for j in range(1, parts):
        if shares is not None:
            reach = min(widths[j - 1], widths[j]) / 3
            lo, hi = int(round(ends[j - 1] - reach)), int(round(ends[j - 1] + reach))
        else:
            lo, hi = int(round(j * step - step / 3)), int(round(j * step + step / 3))
        lo, hi = max(lo, cuts[-1] - x + 1), min(hi, w - 1)
        middle = ends[j - 1] if shares is not None else j * step
        cuts.append(x + lo + int(np.argmin(profile[lo:hi])) if hi > lo else x + int(round(middle)))
    cuts.append(x + w)
    out = []
    for x0, x1 in zip(cuts[:-1], cuts[1:]):
        ys = np.flatnonzero(mask[:, x0 - x : x1 - x].any(1))
        top, bottom = (y + int(ys[0]), y + int(ys[-1]) + 1) if len(ys) else (y, y + h)
        out.append(Piece((x0, top, max(1, x1 - x0), bottom - top), int(mask[:, x0 - x : x1 - x].sum()), list(piece.ids)))
    return out, [(c, y, y + h) for c in cuts[1:-1]]


def touching_counts(digits: list[Piece], wanted: int) -> list[int] | None:
    """How many digits each piece of a row holds, when the row has fewer pieces than ``wanted``; else None.

    A piece about k times as wide as the row's typical digit (the median width) holds k digits
    (1.6 times or more counts as two). Only if the pieces so counted hold exactly ``wanted``
    digits is the answer given: the count of the layout decides, never the widths alone.
    """
    if not digits or len(digits) >= wanted:
        return None
    widths = np.array([d.box[2] for d in digits], float)
    typical = float(np.median(widths))
    ratios = widths / max(typical, 1.0)
    counts = [max(1, int(np.floor(r + 0.4))) if r >= 1.6 else 1 for r in ratios]
    return counts if sum(counts) == wanted else None
