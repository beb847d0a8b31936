"""The ink stage's line removal on drawn shapes: a stroke lying along a table's line stays, the line goes.

The sheets that need it (a 7's bar or a 6's loop written on a hand-ruled cell's line) are read in
``tests/test_student_layouts.py`` (trait ``table_pen``); these tests pin the rule itself.
"""

import cv2
import numpy as np

from mnist_transfer import ink


def _canvas():
    """A 200x400 ink mask: a horizontal line 4 px thick at y=100, a vertical one crossing it at x=300, and a
    stroke 5 px thick (a 7's bar, as long as a digit is tall) lying on the horizontal line from x=60 to x=120, 3 px
    above its middle, its stem leaving it upwards (below the line, a stem crossing it is closed again across it)."""
    mask = np.zeros((200, 400), np.uint8)
    mask[98:102, :] = 255  # the line
    mask[:, 298:302] = 255  # a line crossing it
    mask[95:100, 60:120] = 255  # the bar, half on the line
    mask[40:100, 110:115] = 255  # ... and a stem
    return mask


def test_run_across_measures_the_ink_through_each_pixel_across_the_line():
    mask = _canvas()
    runs = ink._run_across(mask, horizontal=True)
    assert runs[100, 20] == 4  # the line alone
    assert runs[100, 80] == 7  # the bar and the line: 95..101
    assert runs[50, 300] == 200  # along the vertical line, every pixel of the column
    assert runs[0, 0] == 0  # no ink
    assert ink._run_across(mask, horizontal=False)[50, 300] == 4  # across the vertical line


def test_a_stroke_lying_on_a_line_is_kept_and_a_crossing_line_is_not():
    mask = _canvas()
    line = np.zeros_like(mask)
    line[98:102, :] = 255
    line &= mask
    kept = ink.strokes_along(mask, line, horizontal=True, digit_height=60.0) > 0
    assert kept[98:102, 70:110].mean() > 0.9  # under the bar, the line's ink goes with the bar
    assert not kept[:, :50].any() and not kept[:, 130:290].any()  # the bare line is a line
    assert not kept[:, 290:310].any()  # where the other line crosses: as thick across, but not along
    longer = mask.copy()
    longer[95:100, 150:250] = 255  # 1.7 digit heights of thick line: the line's own, not a digit's stroke
    kept = ink.strokes_along(longer, line & longer, horizontal=True, digit_height=60.0) > 0
    assert kept[98:102, 70:110].mean() > 0.9 and not kept[:, 130:295].any()


def test_drawn_lines_are_removed_and_the_bar_on_them_survives():
    mask = _canvas()
    cleaned, lines = ink.remove_drawn_lines(mask, digit_height=60.0)
    assert cleaned[98:102, 200:290].sum() == 0 and cleaned[98:102, 5:50].sum() == 0  # the line is gone
    assert cleaned[:, 298:302].sum() == 0  # and so is the one crossing it
    n, labels, stats, _ = cv2.connectedComponentsWithStats((cleaned > 0).astype(np.uint8), connectivity=8)
    big = stats[1:, cv2.CC_STAT_AREA].argmax() + 1
    x, y, w, h = stats[big, :4]
    assert abs(x - 60) <= 2 and y == 40 and w >= 55 and y + h >= 99  # bar and stem in one piece, the bar whole


def _wide_pair(mask: np.ndarray, x: int) -> None:
    """Two 5-like shapes written into each other at ``x`` (each 40 px wide, 60 tall, pen 4 px): their top bars
    join into one stroke 110 px long (1.8 digit heights), straight enough to pass for a line drawn by hand."""
    for left in (x, x + 70):
        mask[100:104, left : left + 40] = 255  # the top bar
        mask[100:130, left : left + 4] = 255  # the stem down
        cv2.ellipse(mask, (left + 20, 140), (20, 18), 0, -150, 150, 255, 4)  # the bowl
    mask[100:104, x + 40 : x + 70] = 255  # the bars joined


def test_a_wide_digit_s_top_on_a_page_without_lines_is_kept():
    mask = np.zeros((300, 600), np.uint8)
    _wide_pair(mask, 100)
    cv2.circle(mask, (450, 140), 25, 255, 4)  # another digit
    cleaned, lines = ink.remove_drawn_lines(mask, digit_height=60.0)
    assert not lines.any() and np.array_equal(cleaned, mask)


def test_a_line_s_piece_touching_a_digit_goes_and_so_does_a_wide_run_on_a_page_with_lines():
    """Where the page has a line this way, a long run that is one piece with a digit is a line's piece."""
    mask = np.zeros((300, 600), np.uint8)
    _wide_pair(mask, 100)
    mask[250:253, 20:580] = 255  # a line drawn under the row
    cleaned, lines = ink.remove_drawn_lines(mask, digit_height=60.0)
    assert not cleaned[250:253].any() and lines[100:104, 150:160].all()  # both runs went: the page has lines
    alone = np.zeros((300, 600), np.uint8)
    cv2.circle(alone, (200, 140), 25, 255, 4)
    alone[163:166, 200:320] = 255  # a short line's piece leaving the digit's bottom, 2 digit heights long
    cleaned, lines = ink.remove_drawn_lines(alone, digit_height=60.0)
    assert lines[163:166, 240:320].any() and not cleaned[163:166, 240:320].any()  # the digit does not span it


def test_a_loop_lying_flat_on_a_line_is_kept_and_a_bowl_the_line_crosses_is_not():
    """A 6 whose flat loop sits on a drawn line (the line through the loop's middle) keeps its loop; a 0 cut
    through its middle by the line loses the line inside it; two ragged parallel lines with paper between
    them (the paper's edge and its shadow) are not a loop."""
    mask = np.zeros((300, 600), np.uint8)
    mask[150:153, 10:590] = 255  # the line
    cv2.ellipse(mask, (150, 150), (22, 8), 0, 0, 360, 255, 4)  # the 6's loop, flat on the line
    cv2.line(mask, (130, 150), (160, 95), 255, 4)  # ... and its stem rising from it
    cv2.ellipse(mask, (350, 150), (20, 32), 0, 0, 360, 255, 4)  # a 0 the line runs through
    cleaned, lines = ink.remove_drawn_lines(mask, digit_height=60.0)
    assert cleaned[140:147, 135:165].any() and cleaned[153:160, 135:165].any()  # the loop's top and bottom
    assert not cleaned[150:153, 250:300].any()  # the line beside them is gone
    assert not cleaned[150:153, 340:360].any()  # inside the 0, the line is gone
    edge = np.zeros((300, 600), np.uint8)
    for x in (300, 309):
        edge[10:290, x : x + 3] = 255
    for y in range(10, 290, 30):
        edge[y : y + 8, 300:312] = 255  # bridges: strips of paper enclosed between them, 22 px long, 6 across
    cv2.circle(edge, (150, 150), 25, 255, 4)
    keep = ink.loops_on_line(edge, edge & (np.arange(600) >= 299)[None, :].astype(np.uint8) * 255,
                             horizontal=False, digit_height=60.0)
    assert not keep.any()
