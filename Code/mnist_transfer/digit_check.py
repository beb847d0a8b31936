"""Before anything is written: is every single digit one clean copy of its label?

:mod:`.sheet_check` asks whether a sheet's labels fit as a whole. This stage looks at each digit
on its own, always against the other copies of the same label by the same writer (the same sheet,
or the same folder), so that a writer whose style the pre-trained model reads poorly still passes:

* **not one clean digit**: crossed out with an X (also told by its strokes from corner to corner,
  :func:`crossed_out`), scribbled over, two digits on top of each other,
  or a crossed-out digit and its rewrite merged into one cell. All of them carry far more ink (in
  the 28x28 image, where every stroke is brought to the same width, ink is stroke length) than the
  writer's other copies of that digit: ``excess = (ink - median) / max(median, INK_FLOOR)``.
* **two digits in one cell** (sheets, :func:`two_in_one`): measured on the page, where nothing is shrunk: much
  wider than the writer's other copies of the label and with much longer strokes. A flat digit is only
  wide, a big one only long.
* **cut off at the page's edge** (sheets): the digit's box touches the edge of the page and is
  shorter than the other digits of the sheet.
* **a row that is not the layout's digits** (sheets whose rows are sequences, :func:`alien_rows`): a row of
  letters or a scribble, one a cell, as written in a table, which the reader takes for digits. The model
  reads at most 20% of the row as labelled and at least 85% of the other rows. Measured: the rows of the
  31 UNIPEN sheets, the corpus, the students' sheets and the sample are read as labelled at 70% at the
  least (the sample's weakest row); a row of letters in a table at 0%.
* **read as another digit** (sheets): read by the model as another of the writer's digits at 0.8 or more,
  and looking more like the writer's copies of that digit than the other copies of its own label
  (:func:`read_as_another`, as a folder's "filed under" check): listed, never refused. It is how a digit
  shows that lost a stroke (a 6 whose loop is gone, read as a 1 at 0.91). Measured: 0 of the 3720
  digits of the UNIPEN sheets, 0 of 6278 of the real scans, the sample, the corpus and the students'
  sheets (before the line removal kept a loop lying on a table's line, 1: that 6).
* **swapped with a neighbour** (sheets): two neighbours in a row with different labels, A's cell
  read as B's label and B's cell as A's, each confidently, and each looking more like the writer's
  other copies of the digit the model reads than of its own label.
* **filed under the wrong folder** (folders of cut digits): an image the model confidently reads as
  another folder's digit, and that looks more like that folder's images than like its own folder's;
  refused when very sure, or when an image of that other folder is in the same way read as this one's
  digit (a 3 filed under 8/ and an 8 under 3/).

The clear cases are refused (:class:`SheetError` naming row and column, or the file, and the fix;
``annotated`` shows the digits); the others come back as warnings (:class:`Flag`, listed in
``sheet_check.Check.flagged``). Labels are never changed: the model only points at digits to look at.

Measured with the shipped pre-trained model (``tests/test_digit_check.py`` holds the tests):

* The ten UNIPEN writers (:func:`.handwriting.writer_images`), every digit: as folders (all of a
  writer's 426-928 digits) 0 of 5246 refused, 12 listed (0.23%); in sheets of 12 rows of 0..9 (31
  sheets) 0 of 3720 refused, 8 listed (0.22%). No swap or filing flag at all. The largest ink excess
  of any of their digits: 0.73; of a wide one measured as if as tall as the others: 0.75.
* The 32 rendered sheets of the corpus (:func:`.handwriting.corpus`, ``tests/test_sheet_corpus.py``;
  pens, papers, photos, pen lifts): 0 of 32 sheets refused, 6 of 2844 digits listed.
* The real scans of ``Code/data/real_sheets`` (11 sheets, 974 digits): 0 refused, 13 listed (at
  most 3 on a sheet); largest excess 0.62, 0.79 for a wide, loopy 9. The shipped sample sheet: 0
  flags. ``Code/data/second_dataset`` (157 images): 0 refused, 1 listed.
* So the refusals start well above all of that: :data:`EXCESS_REFUSE` and :data:`WIDE_REFUSE` 0.90
  (with :data:`INK_REFUSE`, so that a short plain 1 never counts); :data:`SWAP_REFUSE` 0.8 on both
  neighbours, :data:`FILED_REFUSE` 0.95 (or a pair exchanged, each at :data:`FILED_WARN` 0.8).
* Hostile digits from the same ink: an X drawn with the digit's own pen over a real 2, 3, 5, 7 adds
  0.80, 0.78, 0.40, 0.57 of ink, too little for the ink rule alone; its strokes run from corner to corner, so
  both diagonals of the digit's box are inked (:func:`diagonal_cover` 1.0, where the writer's other copies
  reach 0.4-0.7): all four refused as crossed out (:func:`crossed_out`), and so is an X over a UNIPEN 4 in
  ``tests/test_hostile_round2.py``. Of the ten UNIPEN writers' 5246 digits, 2 have both diagonals inked
  where their group does not (two 8s of W09, 3-4% more ink): none refused; a crossed-out UNIPEN
  digit and its rewrite joined in one image 0.95-1.68 (refused). The same pair from the real scan,
  shrunk to fit, has no more ink than the writer's other 5s (a flat 5 alone looks the same at 28x28);
  on the page it is twice as wide with 2.6 times their stroke length, which no real digit is
  (:func:`two_in_one`): refused as two digits in one cell.
  Two exchanged neighbours of the real scan are read as each other at 0.84 and 0.90 (refused); a
  scan cut through the last row is refused as cut off; a 3 filed under 8/ and an 8 under 3/ of
  the second dataset are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from . import data, evaluation, paths
from .layout import Digit, SheetError, SheetLayout, SheetResult
from .mnist_style import to_mnist
from .sheet_reading import IMAGE_SUFFIXES, digit_mask, read_image

INK_LEVEL = 128  # a pixel of a 28x28 digit counts as ink from this value
INK_FLOOR = 80  # the median ink of a digit group counts as at least this (a plain 1 is short: extra flags vary much)
WIDE = 1.4  # this many times as wide for its height as the writer's other copies: maybe two digits in one cell
WIDE_RAW = 0.15  # ... and at least this much more ink even as it is (shrunk to fit 20 pixels)
WIDE_REFUSE = 0.9  # a wide digit is refused from this excess (measured as if as tall as the others)
MIN_GROUP = 4  # copies of a label needed to judge one of them against the others
EXCESS_REFUSE = 0.9  # this much more ink than the writer's other copies, and ...
INK_REFUSE = 140  # ... at least this much ink in all (a plain 1 has 50): refused
EXCESS_WARN = 0.45  # listed as a warning
UNSURE = 0.6  # the model's top probability below this: it is unsure what the digit shows
EDGE = 2  # page pixels: a box this close to the page's edge touches it
SHORT = 0.85  # a digit at the edge shorter than this share of the sheet's median height is cut off
SWAP_REFUSE = 0.8  # both neighbours read as each other's label at least this confidently: refused
SWAP_WARN = 0.5
FILED_REFUSE = 0.95  # a folder image read as another folder's digit this confidently, and looking like it
FILED_WARN = 0.8
X_COVER = 0.95  # both diagonals of a digit's ink box inked along this share of their length: an X over it, and ...
X_GROUP = 0.7  # ... the writer's other copies of the label cover theirs at most this much (an 8 covers both), and ...
X_INK = 0.2  # ... at least this much more ink than those copies: refused as crossed out
ROW_ALIEN = 0.2  # a row of a row_is_sequence sheet with at most this share read as labelled, ...
ROW_REST = 0.85  # ... where the other rows have at least this share: not digits of the layout (refused)
PAIR_WIDE = 1.4  # a sheet digit this many times as wide as the writer's other copies, and as wide for its height, ...
PAIR_LENGTH = 1.2  # ... with strokes this much longer (in page pixels) than theirs: two digits in one cell (refused)
PAIR_FLOOR = 0.6  # their median stroke length counts as at least this share of the sheet's (a plain 1 is short)
LOOKS_LIKE = 0.03  # "looks more like the other digit": similarity to its copies higher by this much
FILED_LOOKS_LIKE = 0.06  # ... by this much for a refusal


@dataclass
class Flag:
    """One digit to look at: where it is, its label, what the pre-trained model reads, how sure, why."""

    row: int | None  # 1-based; None for a digit from a folder
    col: int | None
    file: str | None  # the image's path within its folder; None for a sheet's digit
    label: int
    read_as: int
    confidence: float  # the model's probability of ``read_as`` (0..1)
    reason: str
    refused: bool = False
    source: str = ""
    image: np.ndarray | None = field(default=None, repr=False)  # the 28x28 digit

    @property
    def where(self) -> str:
        if self.file is not None:
            return f"'{self.file}'"
        return f"row {self.row}, column {self.col}"


def probabilities(model, digits: list[Digit]) -> np.ndarray:
    """The pre-trained model's probabilities ``[N, 10]`` for the digits."""
    if not digits:
        return np.zeros((0, 10), np.float32)
    return evaluation.predict(model, torch.from_numpy(np.stack([d.image for d in digits]))).numpy()


def _extents(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height and width (pixels) of the ink of each 28x28 digit."""
    ink = np.asarray(images) >= INK_LEVEL
    size = []
    for axis in (2, 1):
        lines = ink.any(axis)
        size.append(np.array([np.ptp(np.nonzero(r)[0]) + 1 if r.any() else 20 for r in lines]))
    return size[0], size[1]


def ink_amounts(images: np.ndarray, per_height: bool = False) -> np.ndarray:
    """The length of the strokes of each 28x28 digit: its ink pixels (every stroke has MNIST's width there).

    ``per_height``: as if the digit were 20 pixels tall. The longer side of a digit is 20 pixels in
    the 28x28 image, so a wide piece (two digits merged into one cell) is shrunk; this undoes that.
    """
    amount = (np.asarray(images) >= INK_LEVEL).reshape(len(images), -1).sum(1).astype(float)
    if per_height:
        heights, _ = _extents(images)
        amount = amount * 20.0 / np.clip(heights, 8, 20)
    return amount


def _vectors(images: np.ndarray) -> np.ndarray:
    """Blurred, centred, unit-length pixel vectors: their dot product is the likeness of two digits."""
    out = np.zeros((len(images), 28 * 28), np.float32)
    for k, image in enumerate(images):
        v = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.5).ravel()
        v -= v.mean()
        out[k] = v / (np.linalg.norm(v) + 1e-6)
    return out


def _likeness(vectors: np.ndarray, i: int, members: np.ndarray, top: int = 3) -> float:
    """How much digit ``i`` looks like the digits ``members`` (mean of its ``top`` best matches, itself excluded)."""
    members = members[members != i]
    if len(members) == 0:
        return -1.0
    sims = vectors[members] @ vectors[i]
    return float(np.sort(sims)[-min(top, len(sims)):].mean())


def ink_excess(images: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None,
               wide_out: list | None = None) -> np.ndarray:
    """Each digit's ink beyond the median of its group (same label, same sheet or folder), as a share.

    A digit at least :data:`WIDE` times as wide (for its height) as the group's median, with at least
    :data:`WIDE_RAW` more ink already, is measured as if it were as tall as the others
    (:func:`ink_amounts` ``per_height``): two digits in one cell (their
    indices are appended to ``wide_out``). NaN where the group has fewer than :data:`MIN_GROUP` copies
    (nothing to compare with).
    """
    labels = np.asarray(labels)
    groups = np.zeros(len(labels), int) if groups is None else np.asarray(groups)
    ink, tall = ink_amounts(images), ink_amounts(images, per_height=True)
    heights, widths = _extents(images)
    aspect = widths / np.maximum(heights, 1)
    excess = np.full(len(labels), np.nan)
    for key in set(zip(groups.tolist(), labels.tolist())):
        members = np.where((groups == key[0]) & (labels == key[1]))[0]
        if len(members) < MIN_GROUP:
            continue
        median = float(np.median(ink[members]))
        raw = (ink[members] - median) / max(median, INK_FLOOR)
        # wide, and more ink even as it is shrunk: two digits in one cell (a flat digit alone has less ink)
        wide = (aspect[members] >= WIDE * float(np.median(aspect[members]))) & (raw >= WIDE_RAW)
        if wide_out is not None:
            wide_out.extend(members[wide].tolist())
        excess[members] = np.where(wide, (tall[members] - median) / max(median, INK_FLOOR), raw)
    return excess


def diagonal_cover(images: np.ndarray, samples: int = 24) -> np.ndarray:
    """How far both diagonals of each digit's ink box are inked (the smaller share of the two, within a pixel):
    near 1 for a digit crossed out with an X from corner to corner. 0 for a narrow digit (a 1), whose
    diagonals are its own stroke."""
    out = np.zeros(len(images))
    t = np.linspace(0.05, 0.95, samples)
    for k, image in enumerate(np.asarray(images)):
        ink = image >= INK_LEVEL
        ys, xs = np.nonzero(ink)
        if len(xs) == 0:
            continue
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        if x1 - x0 < 0.5 * (y1 - y0):
            continue
        near = cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        out[k] = min(near[np.round(ay + t * (by - ay)).astype(int), np.round(ax + t * (bx - ax)).astype(int)].mean()
                     for (ax, ay), (bx, by) in (((x0, y0), (x1, y1)), ((x1, y0), (x0, y1))))
    return out


def crossed_out(images: np.ndarray, labels: np.ndarray, excess: np.ndarray, groups=None) -> np.ndarray:
    """Digits crossed out with an X: both diagonals inked (:func:`diagonal_cover` at least :data:`X_COVER`) where
    the writer's other copies of the label do not (median at most :data:`X_GROUP`), with :data:`X_INK` more ink.
    Measured on the ten UNIPEN writers (5246 digits): 2 digits have such diagonals where their group does not
    (two 8s of W09), with 3-4% more ink than the writer's other 8s; none is marked."""
    labels = np.asarray(labels)
    groups = np.zeros(len(labels), int) if groups is None else np.asarray(groups)
    cover = diagonal_cover(images)
    marked = np.zeros(len(labels), bool)
    for key in set(zip(groups.tolist(), labels.tolist())):
        members = np.where((groups == key[0]) & (labels == key[1]))[0]
        if len(members) >= MIN_GROUP and np.median(cover[members]) <= X_GROUP:
            marked[members] = (cover[members] >= X_COVER) & (np.nan_to_num(excess[members]) >= X_INK)
    return marked


def unclean_flags(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, groups=None) -> list[tuple[int, bool, str]]:
    """``(index, refused, reason)`` for digits that are not one clean digit (see the module's text)."""
    wide: list = []
    excess = ink_excess(images, labels, groups, wide)
    crossed = crossed_out(images, labels, excess, groups)
    ink = ink_amounts(images, per_height=True)  # the guard against a short plain 1: any digit this long
    out = []
    for i, e in enumerate(excess):
        if np.isnan(e) or (e < EXCESS_WARN and not crossed[i]):
            continue
        unsure = float(probs[i].max()) < UNSURE
        if crossed[i]:
            out.append((i, True, f"not one clean digit: crossed out, strokes from corner to corner through it like an X, and "
                                 f"{100 * e:.0f}% more ink than the writer's other {labels[i]}s"))
            continue
        if i in wide:  # wide digits of real writers reach 0.80 measured so: a clearer case is asked for
            refused = e >= WIDE_REFUSE
        else:
            refused = e >= EXCESS_REFUSE and ink[i] >= INK_REFUSE
        unsure_note = " (the pre-trained model is unsure what it shows)" if unsure else ""
        out.append((i, bool(refused),
                    f"not one clean digit: {100 * e:.0f}% more ink than the writer's other {labels[i]}s - crossed out, "
                    f"scribbled over, or written over another digit{unsure_note}" if refused else
                    f"{100 * e:.0f}% more ink than the writer's other {labels[i]}s{unsure_note}: look at it - crossed out, "
                    "scribbled over, written over another digit, or only written with longer or more strokes (ink is "
                    "measured with every stroke brought to one width, so a bigger digit has no more)"))
    return out


def two_in_one(digits: list[Digit]) -> list[tuple[int, str]]:
    """Sheet digits that are two digits in one cell, measured on the page before shrinking to 28x28: at least
    :data:`PAIR_WIDE` times as wide as the median of the writer's other copies of the label (and as wide for
    its height), with strokes at least :data:`PAIR_LENGTH` longer (:attr:`.Digit.strokes`, pen width divided
    out) than their median, which counts as at least :data:`PAIR_FLOOR` of the sheet's median digit (so that
    a 1 with a flag and a base among plain 1s is not two digits). ``(index, reason)`` each; digits whose
    stroke length is not known (cut digits) are skipped.

    A flat digit is wide with strokes no longer, a big one long but as tall as it is wide; a crossed-out
    digit and its rewrite side by side is both. Measured on the 6278 digits of the corpus, the real scans,
    the students' sheets and the sample: among the wide ones the longest strokes are 0.93 more than their
    group's (a 1 with a flag and a base among the plain 1s of a sheet of 1s; 0.66 for any other digit); the
    crossed-out 5 of the real scan and its rewrite, 1.62. None of the 6278 is refused.
    """
    out = []
    labels = np.array([d.label for d in digits])
    length = np.array([d.strokes for d in digits], float)
    boxes = np.array([d.box for d in digits], float).reshape(-1, 4)
    known = length > 0
    sheet_median = float(np.median(length[known])) if known.any() else 0.0
    for label in np.unique(labels):
        members = np.flatnonzero((labels == label) & known)
        if len(members) < MIN_GROUP:
            continue
        width, aspect = boxes[members, 2], boxes[members, 2] / np.maximum(boxes[members, 3], 1)
        excess = length[members] / max(float(np.median(length[members])), PAIR_FLOOR * sheet_median) - 1
        wider = width / np.median(width)
        pair = (wider >= PAIR_WIDE) & (aspect >= PAIR_WIDE * np.median(aspect)) & (excess >= PAIR_LENGTH)
        for k in np.flatnonzero(pair):
            out.append((int(members[k]), f"not one clean digit: {wider[k]:.1f} times as wide as the writer's other "
                                         f"{label}s, with {100 * excess[k]:.0f}% longer strokes - two digits in one "
                                         "cell (a digit crossed out and written again beside it, or two digits written "
                                         "into each other?)"))
    return out


def _flag(d: Digit, probs: np.ndarray, i: int, reason: str, refused: bool, folder: bool, read_as: int | None = None) -> Flag:
    read_as = int(np.argmax(probs[i])) if read_as is None else int(read_as)
    return Flag(None if folder else d.row + 1, None if folder else d.col + 1, d.source if folder else None,
                int(d.label), read_as, float(probs[i][read_as]), reason, refused, "" if folder else d.source, d.image)


def alien_rows(digits: list[Digit], probs: np.ndarray) -> list[tuple[int, str]]:
    """Rows that are not the layout's digits at all (letters, a scribble, a row written in another order), on a
    sheet whose rows each hold a sequence of different digits: ``(index of the row's first digit not read as
    labelled, reason)`` for each row of five or more read as labelled at most :data:`ROW_ALIEN`, where the
    other rows (but for any others so read, which are then named too; at least half the rows) are read so at
    least :data:`ROW_REST`.

    A writer the model reads poorly is never refused so: the other rows must be read well. And a label the
    model confuses for this writer (a 7 read as a 1) costs every row one digit, not one row all of them.
    Not for rows of one digit each (``row_is_digit``): there one confused label is one whole row.
    """
    read = probs.argmax(1) == np.array([d.label for d in digits])
    rows = np.array([d.row for d in digits])
    shares = {r: float(read[rows == r].mean()) for r in np.unique(rows).tolist()}
    alien = [r for r, share in shares.items() if share <= ROW_ALIEN and (rows == r).sum() >= 5]
    others = ~np.isin(rows, alien)  # the rest: the rows that are not themselves alien (two rows of letters, say)
    out = []
    for r in alien:
        mine = rows == r
        rest = float(read[others].mean()) if others.sum() >= 5 else 0.0
        if rest >= ROW_REST and len(shares) - len(alien) >= len(shares) / 2:
            first = int(np.flatnonzero(mine & ~read)[0])
            out.append((first, f"row {r + 1} is not the layout's digits: the pre-trained model reads {int(read[mine].sum())} "
                               f"of its {int(mine.sum())} as labelled, and {100 * rest:.0f}% of the other rows' digits "
                               "(a row of letters or a scribble, or digits written in another order?)"))
    return out


def sheet_flags(result: SheetResult, layout: SheetLayout, probs: np.ndarray) -> list[Flag]:
    """Every digit of one read sheet to look at (refused or warned), in reading order."""
    digits = result.digits
    if not digits:
        return []
    images = np.stack([d.image for d in digits])
    labels = np.array([d.label for d in digits])
    flags: dict[int, Flag] = {}

    def add(i, reason, refused, read_as=None):
        if i in flags:  # one digit, several reasons: keep the strongest first, and say both
            old = flags[i]
            old.reason += "; " + reason
            old.refused = old.refused or refused
            return
        flags[i] = _flag(digits[i], probs, i, reason, refused, False, read_as)

    for i, reason in two_in_one(digits):
        add(i, reason, True)
    for i, refused, reason in unclean_flags(images, labels, probs):
        add(i, reason, refused)

    height, width = result.page.shape[:2]
    boxes = np.array([d.box for d in digits])
    at_edge = ((boxes[:, 0] <= EDGE) | (boxes[:, 1] <= EDGE) | (boxes[:, 0] + boxes[:, 2] >= width - EDGE)
               | (boxes[:, 1] + boxes[:, 3] >= height - EDGE))
    inside = boxes[~at_edge]
    if at_edge.any():
        ref_h = float(np.median(inside[:, 3])) if len(inside) else float(np.median(boxes[:, 3]))
        for i in np.where(at_edge)[0]:
            short = boxes[i, 3] < SHORT * ref_h
            add(int(i), f"cut off at the page's edge (its box touches the edge of the photo"
                        + (f" and it is {100 * boxes[i, 3] / ref_h:.0f}% as tall as the other digits)" if short else ")"),
                bool(short))

    if layout.order == "row_is_sequence":
        for i, reason in alien_rows(digits, probs):
            add(i, reason, True)

    vectors = _vectors(images)
    cells = {(d.row, d.col): k for k, d in enumerate(digits)}
    for (r, c), i in cells.items():
        j = cells.get((r, c + 1))
        if j is None or labels[i] == labels[j]:
            continue
        a, b = int(labels[i]), int(labels[j])
        pi, pj = float(probs[i][b]), float(probs[j][a])
        if min(pi, pj) < SWAP_WARN:
            continue
        explained = (_likeness(vectors, i, np.where(labels == b)[0]) > _likeness(vectors, i, np.where(labels == a)[0])
                     and _likeness(vectors, j, np.where(labels == a)[0]) > _likeness(vectors, j, np.where(labels == b)[0]))
        refused = explained and min(pi, pj) >= SWAP_REFUSE
        add(i, f"swapped with its right neighbour (row {r + 1}, column {c + 2}): the pre-trained model reads this "
               f"cell (labelled {a}) as {b} at {pi:.2f} and the neighbour (labelled {b}) as {a} at {pj:.2f}"
               + ("" if explained else ", though they do not look like the writer's other copies of those digits"),
            refused, b)
        add(j, f"swapped with its left neighbour (row {r + 1}, column {c + 1}): read as {a} at {pj:.2f}, the "
               f"neighbour as {b} at {pi:.2f}", refused, a)
    for i, (b, p, _) in read_as_another(labels, probs, vectors).items():
        if i not in flags:  # a swap says more
            a = int(labels[i])
            add(i, f"the pre-trained model reads it as a {b} at {p:.2f}, and it looks more like the writer's {b}s than "
                   f"the other {a}s: is a stroke of it missing (lost on a table's line, or cut off), or is another digit "
                   "written in its place?", False, b)
    return [flags[i] for i in sorted(flags, key=lambda k: (digits[k].row, digits[k].col))]


def read_as_another(labels: np.ndarray, probs: np.ndarray, vectors: np.ndarray) -> dict[int, tuple[int, float, float]]:
    """Digits the model reads as another label of the same writer at :data:`FILED_WARN` or more, and that look
    more like the writer's copies of that label than like the other copies of their own (by :data:`LOOKS_LIKE`):
    index -> (read as, probability, likeness margin). Else it is the writer's own way of writing its label,
    which the model reads poorly, and nothing is said."""
    present = set(labels.tolist())
    out = {}
    for i, label in enumerate(labels.tolist()):
        b = int(np.argmax(probs[i]))
        p = float(probs[i][b])
        if b == label or b not in present or p < FILED_WARN:
            continue
        margin = _likeness(vectors, i, np.where(labels == b)[0]) - _likeness(vectors, i, np.where(labels == label)[0])
        if margin >= LOOKS_LIKE:
            out[i] = (b, p, margin)
    return out


def folder_flags(digits: list[Digit], probs: np.ndarray) -> list[Flag]:
    """Every image of a folder of cut digits to look at (refused or warned)."""
    if not digits:
        return []
    images = np.stack([d.image for d in digits])
    labels = np.array([d.label for d in digits])
    flags: dict[int, Flag] = {}
    for i, refused, reason in unclean_flags(images, labels, probs):
        flags[i] = _flag(digits[i], probs, i, reason, refused, True)
    misfiled = read_as_another(labels, probs, _vectors(images))
    for i, (b, p, margin) in misfiled.items():
        d = digits[i]
        partners = [digits[j].source for j, (bj, _, _) in misfiled.items() if labels[j] == b and bj == d.label]
        refused = (p >= FILED_REFUSE and margin >= FILED_LOOKS_LIKE) or bool(partners)
        reason = (f"filed under {d.label}/ but the pre-trained model reads it as {b} at {p:.2f}, and it looks more "
                  f"like the images in {b}/ than like the others in {d.label}/"
                  + (f" (and '{partners[0]}' in {b}/ looks like a {d.label}: the two exchanged?)" if partners else ""))
        if i in flags:
            flags[i].reason += "; " + reason
            flags[i].refused = flags[i].refused or refused
        else:
            flags[i] = _flag(d, probs, i, reason, refused, True, b)
    return [flags[i] for i in sorted(flags)]


# --------------------------------------------------------------------------- folders of cut digits


def _has_alpha(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            return img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (img.mode == "P" and "transparency" in img.info)
    except (OSError, ValueError, SyntaxError):
        return False  # read_image names the file


def read_digit_image(path: Path) -> np.ndarray:
    """One cut digit's file as BGR; transparency (ink only in the alpha channel, as tablet apps save it) is
    composited onto white first (:func:`.data.flattened`)."""
    path = Path(path)
    if path.is_file() and _has_alpha(path):
        try:
            return data.read_flattened(path)
        except (OSError, ValueError, SyntaxError):
            pass  # read_image says what is wrong with it
    return read_image(path)


def digits_from_folder(folder: Path) -> list[Digit]:
    """Already-cut digit images labelled by sub-folder (``<folder>/<digit>/*.png``) or by the first character
    of their name, as :func:`.sheet_reading.digits_from_folder` reads them, with two differences: a
    transparent image is flattened onto white (:func:`read_digit_image`), and the operating system's
    files (``.DS_Store``, ``._*`` copies, ``Thumbs.db``; :func:`.paths.is_os_file`) are skipped as the
    loader skips them. Any file that cannot be read or shows no digit is named with its path.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SheetError(f"Digit folder '{folder}' does not exist.")
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not paths.is_os_file(p, folder)):
        if not re.fullmatch(r"[0-9]", sub.name):
            raise SheetError(f"'{sub}' is not a digit folder: class folders must be named 0 to 9, one digit each. "
                             "Rename or remove it.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not paths.is_os_file(p, folder))
    if not files:
        raise SheetError(f"'{folder}' holds no .png/.jpg images.")
    out = []
    for i, path in enumerate(files):
        name = path.parent.name if path.parent != folder else path.stem[:1]
        if not (len(name) == 1 and name.isdigit()):
            raise SheetError(f"Cannot tell the label of '{path.relative_to(folder)}': put it in a folder named by its "
                             "digit (0..9) or start its file name with the digit.")
        gray = cv2.cvtColor(read_digit_image(path), cv2.COLOR_BGR2GRAY)
        out.append(Digit(to_mnist(digit_mask(gray, str(path))), int(name), path.relative_to(folder).as_posix(), 0, i))
    return out


# --------------------------------------------------------------------------- showing them


def gallery(flags: list[Flag], size: int = 84, per_row: int = 8) -> np.ndarray:
    """The flagged digits side by side (BGR), each captioned with where it is, its label and what the model reads."""
    if not flags:
        return np.full((size, size, 3), 255, np.uint8)
    rows = (len(flags) + per_row - 1) // per_row
    tile_w, tile_h = size + 60, size + 44
    out = np.full((rows * tile_h, min(len(flags), per_row) * tile_w, 3), 255, np.uint8)
    for k, f in enumerate(flags):
        y, x = (k // per_row) * tile_h, (k % per_row) * tile_w
        if f.image is not None:
            tile = cv2.resize(255 - f.image, (size, size), interpolation=cv2.INTER_NEAREST)
            out[y + 4 : y + 4 + size, x + 30 : x + 30 + size] = tile[..., None]
        colour = (0, 0, 220) if f.refused else (0, 140, 230)
        cv2.rectangle(out, (x + 29, y + 3), (x + 30 + size, y + 4 + size), colour, 2)
        where = f"r{f.row} c{f.col}" if f.file is None else f.file[-16:]
        cv2.putText(out, where, (x + 4, y + size + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(out, f"{f.label} read {f.read_as} {f.confidence:.2f}", (x + 4, y + size + 38),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return out


def annotate(result: SheetResult, flags: list[Flag]) -> np.ndarray:
    """The sheet's annotated page with the flagged digits circled (red: refused, orange: warned)."""
    page = result.annotated.copy()
    boxes = {(d.row + 1, d.col + 1): d.box for d in result.digits}
    for f in flags:
        x, y, w, h = boxes[(f.row, f.col)]
        colour = (0, 0, 230) if f.refused else (0, 150, 255)
        cv2.rectangle(page, (x - 6, y - 6), (x + w + 6, y + h + 6), colour, 4)
    return page


def _fix(flag: Flag, folder: bool) -> str:
    if folder:
        if "filed under" in flag.reason:
            return f"move it to {flag.read_as}/ if it is a {flag.read_as}, or replace it"
        return "remove it or replace it with a clean copy of the digit"
    if "swapped with" in flag.reason:
        return "write that row again with the digits in the layout's order"
    if "not the layout's digits" in flag.reason:
        return "write that row again with the layout's digits in order, or correct the layout"
    if "cut off" in flag.reason:
        return "photograph or scan the whole sheet, with a margin of paper around the writing"
    return ("write the row again on a fresh line (or cover the digit with correction tape and write it again in its "
            "place)")


def refusal(flags: list[Flag], source: str, folder: bool) -> str:
    """The refusal for the clear cases among ``flags`` (call only when one is refused)."""
    refused = [f for f in flags if f.refused]
    listed = "; ".join(f"{f.where} (labelled {f.label}): {f.reason} - {_fix(f, folder)}" for f in refused[:6])
    more = f"; and {len(refused) - 6} more" if len(refused) > 6 else ""
    return (f"{source}: {len(refused)} digit{'s' if len(refused) > 1 else ''} would be written with a label "
            f"{'they do' if len(refused) > 1 else 'it does'} not carry, or {'are' if len(refused) > 1 else 'is'} "
            f"not one clean digit: {listed}{more}. Nothing was written.")


def check_sheet(result: SheetResult, layout: SheetLayout, model, source: str) -> list[Flag]:
    """The per-digit check of one read sheet: the warnings, or :class:`SheetError` for the clear cases."""
    flags = sheet_flags(result, layout, probabilities(model, result.digits))
    if any(f.refused for f in flags):
        raise SheetError(refusal(flags, source, folder=False), annotate(result, flags))
    return flags


def check_folder(digits: list[Digit], model, source: str) -> list[Flag]:
    """The per-digit check of a folder of cut digits: the warnings, or :class:`SheetError` for the clear cases."""
    flags = folder_flags(digits, probabilities(model, digits))
    if any(f.refused for f in flags):
        raise SheetError(refusal(flags, source, folder=True), gallery([f for f in flags if f.refused]))
    return flags
