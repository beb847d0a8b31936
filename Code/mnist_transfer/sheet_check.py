"""Before anything is written: does the pre-trained model agree that the digits carry their labels?

The reader (:mod:`.sheet_reading`) gives every digit the label its row and column have in the
layout. If the photo is upside down, turned by 90 degrees, or the layout's ``digits`` are in
another order than written, every label is wrong and nothing in the reader can tell. The
shipped pre-trained model can: on a correctly labelled sheet it agrees with most labels (about
60% even for a writer whose style it reads poorly), on an upside-down one with almost none.

:func:`read_checked_sheet` therefore reads a sheet, measures the model's agreement, and when it
is implausibly low (below :data:`PLAUSIBLE`) reads the sheet again turned by 90, 180 and 270
degrees, each with the layout as given and transposed, and then mirrored back (a photo flipped left
to right or upside down, as some front cameras and scanning apps save it). If one reading is
clearly plausible it is used and the correction is said (``result.notes``; a mirrored photo is
named "mirrored"); otherwise the sheet is refused with the likely cause, unless
``accept_implausible=True``. Labels always come from the layout, never from the model: the model
only decides whether the layout fits the photo.

A sheet the reader refuses for a row one digit short is refused all the same, but where the model
reads that row's digits as the row with one digit left out, the problem names that digit and its
column (:func:`missing_by_reading`): from the places alone, the row's end only looks empty.

Then every digit is checked on its own by :mod:`.digit_check` (crossed out, scribbled over, cut
off at the page's edge, swapped with a neighbour; for folders: filed under another digit's
folder): the clear cases are refused naming the row and column (or the file), the others are
listed in ``Check.flagged``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from . import digit_check, evaluation, paths
from .sheet_reading import Digit, SheetError, SheetLayout, SheetResult, process_sheet, process_sheets

PLAUSIBLE = 0.45  # chance is 10%; a correctly labelled real writer the model reads poorly: about 60%
BETTER_BY = 0.25  # a corrected reading must beat the one as given by this much
ROTATIONS = {0: None, 90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
MIRRORS = {"": None, "left-right": 1, "up-down": 0}  # cv2.flip codes: flip around the vertical / horizontal axis


@dataclass
class Check:
    """The model's verdict on one sheet (or folder) of labelled digits."""

    source: str
    agreement: float  # share of digits the model reads as their label
    rotation: int = 0  # degrees clockwise the image was turned before reading
    layout: SheetLayout | None = None  # the layout used (as given, or transposed)
    corrected: bool = False
    accepted: bool = True
    message: str = ""
    mirrored: str = ""  # "left-right" or "up-down": the photo was mirrored and was read flipped back
    flagged: list = field(default_factory=list)  # digit_check.Flag: digits to look at (row, col, file, label,
    # read_as, confidence, reason); the clear cases never get here, they are refused


def model_predictions(model, digits: list[Digit]) -> np.ndarray:
    """The model's reading of every digit (predicted labels, int array)."""
    x = torch.from_numpy(np.stack([d.image for d in digits]))
    return evaluation.predict(model, x).argmax(1).numpy()


def agreement(model, digits: list[Digit]) -> tuple[float, np.ndarray]:
    """(share of digits read as their label, predictions)."""
    if not digits:
        return 0.0, np.zeros(0, int)
    predicted = model_predictions(model, digits)
    return float(np.mean(predicted == np.array([d.label for d in digits]))), predicted


def missing_by_reading(err: SheetError, layout: SheetLayout, model) -> SheetError:
    """The refusal, with every row that is one digit short and whose digits the model reads as the row's labels
    with one left out (the rest moved up one place) named by that digit: "row 2: the 5 is missing at column 6".

    Where the digits stand says only that the row is short (its last column looks empty, or one piece looks
    like two digits touching); which digit is missing only a reading of them can say. Named only when one
    place fits best: every digit but at most one read as its label with that digit left out, and fewer with
    any other left out (a row of one digit, all alike, never is); and only where no piece is 1.6 times as
    wide as the row's median (two digits touching, which the model reads as one of them). Leaving out a
    neighbour instead changes the label of one digit only, the one between them: its reading places the gap.
    """
    problems = list(err.problems)
    changed = False
    for r, short in sorted(err.short_rows.items()):
        expected = [layout.label_at(r, c) for c in range(layout.cols_in(r))]
        widths = np.array([b[2] for b in short.boxes], float)
        if len(short.images) != len(expected) - 1 or len(short.images) < 3 or widths.max() >= 1.6 * np.median(widths):
            continue  # a piece as wide as two digits touching: the model reading it as one of them says nothing
        read = evaluation.predict(model, torch.from_numpy(np.stack(short.images))).argmax(1).numpy()
        fits = [int(np.sum(read == np.array(expected[:j] + expected[j + 1:]))) for j in range(len(expected))]
        j = int(np.argmax(fits))
        if fits[j] < len(read) - 1 or fits.count(fits[j]) > 1:
            continue
        boxes = short.boxes
        left = boxes[j - 1][0] + boxes[j - 1][2] if j > 0 else boxes[0][0] - boxes[0][2]
        right = boxes[j][0] if j < len(boxes) else boxes[-1][0] + 2 * boxes[-1][2]
        y0, y1 = min(b[1] for b in boxes), max(b[1] + b[3] for b in boxes)
        text = (f"row {r + 1}: the {expected[j]} is missing at column {j + 1}; the pre-trained model reads the row's "
                f"{len(read)} digits as {' '.join(map(str, read))}, which is the row without its {expected[j]} (the "
                f"digits after it moved up one place); write the row again as {' '.join(map(str, expected))}, or "
                "correct the layout")
        problems = [((int(min(left, right)), int(y0), max(1, int(abs(right - left))), int(y1 - y0)), text)
                    if t == short.text else (box, t) for box, t in problems]
        changed = True
    return err.retold(problems) if changed else err


def label_pattern(digits: list[Digit], predicted: np.ndarray) -> str:
    """A likely cause in the labels themselves: the model consistently reads label L as another digit.

    Returns e.g. "the model reads the digits labelled 0, 1, 2, 3 as 9, 8, 7, 6" when at least
    three labels are each read mostly (half or more) as one other digit, or '' when not.
    """
    labels = np.array([d.label for d in digits])
    mapping = {}
    for label in sorted(set(labels.tolist())):
        reads = predicted[labels == label]
        if len(reads) < 3:
            continue
        value, count = np.unique(reads, return_counts=True)
        top = int(value[np.argmax(count)])
        if top != label and count.max() >= 0.5 * len(reads):
            mapping[label] = top
    if len(mapping) < 3:
        return ""
    return (f"the model consistently reads the digits labelled {', '.join(map(str, mapping))} as "
            f"{', '.join(map(str, mapping.values()))}")


def _turned(image: np.ndarray, rotation: int, mirror: str = "") -> np.ndarray:
    """The image flipped back (``mirror``), then turned by ``rotation`` degrees clockwise."""
    if MIRRORS[mirror] is not None:
        image = cv2.flip(image, MIRRORS[mirror])
    return image if ROTATIONS[rotation] is None else cv2.rotate(image, ROTATIONS[rotation])


def _alternatives(layout: SheetLayout):
    """Every other (rotation, mirror, layout) to try: turned by 90/180/270 degrees, layout as given or
    transposed (turned by a quarter also transposed with its digits reversed); then mirrored back (left-right or up-down, and left-right with a quarter turn: together
    every mirror image of the sheet)."""
    layouts = [layout] if layout.transposed() == layout else [layout, layout.transposed()]
    # Turned by a quarter, the rows of one orientation are the columns of the other read from the far end: a
    # sideways photo described as it shows (rows of 9s down to 0s) is upright with each row 0..9, the transposed
    # layout's digits reversed.
    flipped = [SheetLayout(rows=t.rows, cols=t.cols, order=t.order, digits=tuple(reversed(t.digits)))
               for t in layouts[1:] if len(set(t.digits)) > 1]
    for rotation in (180, 90, 270, 0):  # upside down is the most common mistake
        for candidate in layouts + (flipped if rotation in (90, 270) else []):
            if (rotation, candidate) != (0, layout):
                yield rotation, "", candidate
    for rotation, mirror in ((0, "left-right"), (0, "up-down"), (90, "left-right"), (270, "left-right")):
        for candidate in layouts:
            yield rotation, mirror, candidate


def _same_shape(rotation: int, candidate: SheetLayout, read: SheetLayout) -> bool:
    """Can ``candidate`` fit a sheet that was read whole as ``read`` once it is turned by ``rotation``? A quarter
    turn exchanges rows and columns; half a turn or a mirror keeps them."""
    rows, cols = (read.cols, read.rows) if rotation in (90, 270) else (read.rows, read.cols)
    return (candidate.rows, candidate.cols) == (rows, cols)


def _how(rotation: int, layout: SheetLayout, given: SheetLayout, mirror: str = "") -> str:
    parts = []
    if mirror:
        parts.append(f"flipped back {mirror} (the photo is mirrored{' left to right' if mirror == 'left-right' else ' upside down'}"
                     ": turn off the mirroring of a front camera or scanning app, or flip the image back before "
                     "saving it)")
    if rotation:
        parts.append(f"turned by {rotation} degrees clockwise" + (" (the photo was upside down)" if rotation == 180 else ""))
    if layout != given:
        parts.append(f"with the layout transposed to {layout.describe()}")
    return " and ".join(parts)


def read_checked_sheet(image: np.ndarray, layout: SheetLayout, model, source: str = "sheet",
                       accept_implausible: bool = False) -> tuple[SheetResult, Check]:
    """Read one sheet and check its labels with ``model``; correct a turned or mirrored photo or a transposed layout.

    Raises :class:`SheetError` when the sheet cannot be read in any orientation, or when the
    model rejects its labels wholesale and no orientation is clearly better (unless
    ``accept_implausible``; the result then carries a warning in ``notes``), or when a single
    digit is clearly not one clean copy of its label (:func:`.digit_check.check_sheet`: naming
    "row R, column C", with the digits circled in ``annotated``). The digits to look at that are
    not refused are listed in ``Check.flagged``.
    """
    result, check = _read_oriented(image, layout, model, source, accept_implausible)
    check.flagged = digit_check.check_sheet(result, check.layout or layout, model, source)
    if check.flagged:  # said in the check's message (the notes say what was corrected or ignored)
        check.message += (f"; {len(check.flagged)} digit{'s' if len(check.flagged) > 1 else ''} to look at (written "
                          "with the layout's label): "
                          + "; ".join(f"{f.where} (labelled {f.label}, read as {f.read_as} at {f.confidence:.2f}): "
                                      f"{f.reason}" for f in check.flagged))
    return result, check


def _read_oriented(image: np.ndarray, layout: SheetLayout, model, source: str,
                   accept_implausible: bool) -> tuple[SheetResult, Check]:
    """:func:`read_checked_sheet` without the per-digit check."""
    first_error = None
    try:
        result = process_sheet(image, layout, source=source)
        score, predicted = agreement(model, result.digits)
    except SheetError as err:
        if err.cause in ("page", "local"):  # no page, too dark; a stray mark, a row cut off: turning will not help
            raise missing_by_reading(err, layout, model) from None
        first_error, result, score, predicted = err, None, -1.0, np.zeros(0, int)
    if score >= PLAUSIBLE:
        return result, Check(source, score, 0, layout, message=f"{source}: the pre-trained model reads "
                                                               f"{100 * score:.0f}% of the digits as labelled")
    best = None
    for rotation, mirror, candidate in _alternatives(layout):
        if result is not None and not _same_shape(rotation, candidate, layout):
            continue  # read whole as given, the sheet has the layout's rows and columns: turned, it has those
        try:
            other = process_sheet(_turned(image, rotation, mirror), candidate, source=source)
        except SheetError:
            continue
        other_score, _ = agreement(model, other.digits)
        if best is None or other_score > best[0]:
            best = (other_score, rotation, mirror, candidate, other)
        if other_score >= 0.8:  # clearly the right way round: no need to try the rest
            break
    if best is not None and best[0] >= PLAUSIBLE and best[0] >= max(score, 0.0) + BETTER_BY:
        other_score, rotation, mirror, candidate, other = best
        as_given = f"{100 * score:.0f}% as photographed" if score >= 0 else "it could not be read as photographed"
        note = (f"{source}: read {_how(rotation, candidate, layout, mirror)}: the pre-trained model then reads "
                f"{100 * other_score:.0f}% of the digits as labelled ({as_given}).")
        other.notes.append(note)
        return other, Check(source, other_score, rotation, candidate, corrected=True, message=note, mirrored=mirror)
    if first_error is not None:
        raise missing_by_reading(first_error, layout, model)
    tried = f"{100 * best[0]:.0f}%" if best is not None else "no other reading fits the layout"
    pattern = label_pattern(result.digits, predicted)
    causes = (f"{pattern} - are the `digits` of the layout in the order they were written on the sheet, and is "
              "the order (row_is_sequence or row_is_digit) right" if pattern else
              "a layout that does not match the sheet (rows and columns, the order of the digits), or a photo "
              "too blurred or cut badly to show the digits")
    message = (f"{source}: the pre-trained model reads only {100 * score:.0f}% of the digits as the labels the "
               f"layout ({layout.describe()}) gives them; chance is 10%, and even a writer the model reads poorly "
               f"gets about 60%. Turned by 90, 180 or 270 degrees, mirrored back, or with the layout transposed, "
               f"the best is "
               f"{tried}. Likely cause: {causes}.")
    if not accept_implausible:
        raise SheetError(message + " Nothing was written. Correct the layout in the parameters cell; if you are "
                                   "sure it is right, set ACCEPT_IMPLAUSIBLE = True.", result.annotated)
    result.notes.append("WARNING (accepted with ACCEPT_IMPLAUSIBLE): " + message)
    return result, Check(source, score, 0, layout, accepted=True, message=result.notes[-1])


def read_checked_sheets(sheets: list[tuple[Path, SheetLayout]], model, accept_implausible: bool = False,
                        on_error_dir: Path | None = paths.FIGURES_DIR) -> tuple[list[Digit], list[SheetResult], list[Check]]:
    """:func:`read_checked_sheet` for every sheet of a dataset; nothing is kept unless all pass.

    On a refusal the annotated page is saved as ``sheet_errors_<stem>.png`` (never over a
    dataset figure) and the error re-raised. Every digit gets ``sheet``, a name unique among
    these sheets.
    """
    checks = []

    def read(image, layout, source):
        result, check = read_checked_sheet(image, layout, model, source, accept_implausible)
        checks.append(check)
        return result

    digits, results = process_sheets(sheets, on_error_dir, read=read)
    return digits, results, checks


def check_digits(digits: list[Digit], model, source: str, accept_implausible: bool = False) -> Check:
    """The same check for a folder of cut digits (labelled by folder): refuse labels the model rejects wholesale,
    then check every image on its own (:func:`.digit_check.check_folder`: a clear case is refused naming the
    file, e.g. an image "filed under" the wrong folder; the others are listed in ``Check.flagged``)."""
    check = _check_folder_labels(digits, model, source, accept_implausible)
    check.flagged = digit_check.check_folder(digits, model, source)
    if check.flagged:
        check.message += (f"; {len(check.flagged)} image{'s' if len(check.flagged) > 1 else ''} to look at: "
                          + "; ".join(f"{f.where} (labelled {f.label}, read as {f.read_as} at {f.confidence:.2f}): "
                                      f"{f.reason}" for f in check.flagged))
    return check


def _check_folder_labels(digits: list[Digit], model, source: str, accept_implausible: bool) -> Check:
    score, predicted = agreement(model, digits)
    message = f"{source}: the pre-trained model reads {100 * score:.0f}% of the digits as labelled"
    if score >= PLAUSIBLE:
        return Check(source, score, message=message)
    pattern = label_pattern(digits, predicted)
    message = (f"{source}: the pre-trained model reads only {100 * score:.0f}% of the digits as the labels of their "
               f"folders (chance is 10%, a writer it reads poorly about 60%)"
               + (f"; {pattern}: are the images in the right folders?" if pattern else
                  ": are the images in the right folders, upright, and each one digit?"))
    if not accept_implausible:
        raise SheetError(message + " Nothing was written. Fix the folders; if you are sure they are right, set "
                                   "ACCEPT_IMPLAUSIBLE = True.")
    return Check(source, score, message="WARNING (accepted with ACCEPT_IMPLAUSIBLE): " + message)
