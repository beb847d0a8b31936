"""What a sheet is expected to hold and what reading it gives: the layout, the digits, the refusal.

The first stage of the reader (:mod:`.sheet_reading` composes them: :mod:`.layout` -> :mod:`.page` ->
:mod:`.ink` -> :mod:`.rows` -> :mod:`.cells`); every later stage imports only earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

ORDERS = ("row_is_sequence", "row_is_digit")


class SheetError(ValueError):
    """The sheet cannot be turned into a correctly labelled dataset; the message says why."""

    def __init__(self, message: str, annotated: np.ndarray | None = None, cause: str = "",
                 problems: tuple = (), short_rows: dict | None = None, retell=None):
        super().__init__(message)
        self.annotated = annotated
        # "page": no usable page in the photo; "turned": the writing looks turned by 90 degrees; "local": the rows
        # have the layout's shape (or only a row cut off at the photo's edge is wrong) and the problems are marks,
        # missing, extra or touching digits, or ink missing at the edge, which no other orientation removes
        self.cause = cause
        # the reader's problems as (box, text), and each row it found too short: row -> ShortRow; ``retell(problems)``
        # is the same refusal with other problems (worded better by a later check, e.g. with the model's reading)
        self.problems = list(problems)
        self.short_rows = short_rows or {}
        self._retell = retell

    def retold(self, problems: list[tuple[Box, str]]) -> SheetError:
        """The same refusal (source, layout, annotated page) naming ``problems`` instead."""
        if self._retell is None:
            raise ValueError("this refusal cannot be retold")
        return self._retell(problems)


@dataclass(frozen=True)
class ShortRow:
    """A row the reader found with too few digits: its problem's text, and its pieces left to right."""

    text: str
    boxes: tuple  # page pixels, (x, y, w, h) each
    images: tuple  # 28x28 uint8 each, as the digits would have been written


@dataclass(frozen=True)
class SheetLayout:
    """How the digits are laid out on one sheet.

    ``order="row_is_sequence"``: every row holds ``digits`` in order (default: 12 rows of 0..9).
    ``order="row_is_digit"``: row r holds copies of digit ``digits[r]`` (10 rows of 12, or 10 of 10).
    ``digits`` may be a subset, e.g. ``tuple(range(1, 10))`` for 9 rows of 1..9.
    ``row_lengths`` (``row_is_digit`` only): rows of unequal length, e.g. ``(15, 16, 15, 17, 15)``
    for five rows of one digit written as they came; ``cols`` is then the longest row.
    """

    rows: int = 12
    cols: int = 10
    order: str = "row_is_sequence"
    digits: tuple[int, ...] = tuple(range(10))
    row_lengths: tuple[int, ...] = ()

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
        if self.row_lengths:
            if self.order != "row_is_digit":
                raise ValueError("rows of unequal length (row_lengths) need order='row_is_digit'")
            if len(self.row_lengths) != self.rows or min(self.row_lengths) < 1 or max(self.row_lengths) != self.cols:
                raise ValueError(f"row_lengths must give each of the {self.rows} rows at least 1 digit, the longest "
                                 f"row {self.cols} (cols), not {self.row_lengths!r}")

    def cols_in(self, row: int) -> int:
        """How many digits row ``row`` (from 0) holds."""
        return self.row_lengths[row] if self.row_lengths else self.cols

    def digit_counts(self) -> dict[int, int]:
        """How many copies of each digit 0..9 the layout holds (0 for a digit it does not hold)."""
        counts = dict.fromkeys(range(10), 0)
        for r in range(self.rows):
            for c in range(self.cols_in(r)):
                counts[self.label_at(r, c)] += 1
        return counts

    def label_at(self, row: int, col: int) -> int:
        return self.digits[col] if self.order == "row_is_sequence" else self.digits[row]

    @property
    def count(self) -> int:
        return sum(self.cols_in(r) for r in range(self.rows))

    def transposed(self) -> "SheetLayout":
        """The same sheet turned by 90 degrees: rows become columns (12 x 10 of 0..9 <-> 10 x 12, a digit a row).

        Rows of unequal length have no transposed layout: the layout itself is returned.
        """
        if self.row_lengths:
            return self
        order = "row_is_digit" if self.order == "row_is_sequence" else "row_is_sequence"
        return SheetLayout(rows=self.cols, cols=self.rows, order=order, digits=self.digits)

    def describe(self) -> str:
        digits = "".join(map(str, self.digits))
        what = f"each row {digits}" if self.order == "row_is_sequence" else f"row r holds digit r of {digits}"
        if self.row_lengths:
            return f"{self.rows} rows of {', '.join(map(str, self.row_lengths))} digits, {what}"
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
    strokes: float = 0.0  # the length of its strokes in page pixels (ink.stroke_length); 0 = not known (a cut digit)


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
