"""The table stage's reading of cells on pieces placed by hand (the sheets themselves are in
``tests/test_student_layouts.py``): what a cell holds, what is a line's remnant, and how a problem is named."""

import numpy as np

from mnist_transfer.layout import SheetLayout
from mnist_transfer.rows import Piece
from mnist_transfer.table import Line, Table, read_table

HEIGHT = 60.0  # the writing's digit height
LAYOUT = SheetLayout(rows=1, cols=2, digits=(3, 4))


def _table() -> Table:
    """One row of two 100x100 cells: horizontal lines at y = 0 and 100, vertical ones at x = 0, 100, 200."""
    along = np.array([0.0, 200.0])
    rows = [Line(along, np.array([y, y]), 1.0) for y in (0.0, 100.0)]
    cols = [Line(np.array([0.0, 100.0]), np.array([x, x]), 1.0) for x in (0.0, 100.0, 200.0)]
    return Table(rows, cols)


def _piece(x, y, w, h, k) -> Piece:
    return Piece((x, y, w, h), 3 * (w + h), [k])


def test_a_digit_whose_bar_is_written_apart_near_the_line_keeps_its_bar():
    """A 5 whose top bar is its own stroke, close under the cell's top line: the bar is thin and near the line,
    like a dash of it, but grouped with the 5's body it is a digit's, and it stays."""
    body = _piece(30, 22, 40, 58, 1)
    bar = _piece(28, 8, 45, 6, 2)
    other = _piece(130, 20, 40, 60, 3)
    cells, problems, _ = read_table([body, bar, other], _table(), LAYOUT, stroke=3.0, digit_height=HEIGHT)
    assert problems == [] and sorted(cells[(0, 0)].ids) == [1, 2] and cells[(0, 1)].ids == [3]


def test_a_dash_of_the_line_beside_a_digit_is_not_a_second_digit():
    digit = _piece(130, 20, 40, 60, 3)
    dash = _piece(196, 40, 6, 22, 4)  # on the vertical line at x = 200, in the cell's right edge
    cells, problems, _ = read_table([_piece(30, 20, 40, 60, 1), digit, dash], _table(), LAYOUT, 3.0, HEIGHT)
    assert problems == [] and cells[(0, 1)].ids == [3]


def test_problems_are_named_by_cell_and_a_digit_past_the_frame_is_an_extra_digit():
    two = [_piece(5, 20, 25, 60, 1), _piece(38, 20, 25, 60, 2)]  # two digits in the first cell, apart
    past = _piece(230, 20, 40, 60, 5)  # right of the frame, in the row
    cells, problems, found = read_table(two + [_piece(130, 20, 40, 60, 3), past], _table(), LAYOUT, 3.0, HEIGHT)
    texts = [text for _, text in problems]
    assert cells is None and len(texts) == 2, texts
    assert sorted(found) == [(5, 20, 25, 60), (38, 20, 25, 60), (130, 20, 40, 60)]  # the cells' digits, to draw
    assert texts[0].startswith("row 1, column 3: a mark right of the table's frame") and "an extra digit at column 3" in texts[0]
    assert texts[1].startswith("row 1, column 1: two digits in one cell"), texts


def test_an_empty_cell_is_named():
    cells, problems, _ = read_table([_piece(30, 20, 40, 60, 1)], _table(), LAYOUT, 3.0, HEIGHT)
    assert cells is None and [text[:36] for _, text in problems] == ["row 1, column 2: the cell is empty; "]
