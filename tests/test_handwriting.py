"""Real writers' pen strokes drawn as digits and as whole sheets (mnist_transfer.handwriting)."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from mnist_transfer import handwriting as hw
from mnist_transfer import mnist_style
from mnist_transfer.sheet_reading import SheetLayout

CLEAN = hw.SheetSpec(writer="W03", layout=SheetLayout(rows=6, cols=10), seed=7)
MESSY = replace(CLEAN, drift=True, uneven=True, wobble=True, pen_lifts=True)


def _ink(page: np.ndarray) -> np.ndarray:
    """Pixels clearly darker than the paper (a flat page without lines, shadows or specks)."""
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
    return gray < np.median(gray) - 40


def _inside(mask: np.ndarray, truth) -> np.ndarray:
    covered = np.zeros_like(mask)
    for t in truth:
        x, y, w, h = t["box"]
        covered[y : y + h, x : x + w] = True
    return covered


def test_writers_load_once_with_their_indices():
    writers = hw.load_writers()
    assert hw.load_writers() is writers  # cached
    assert sorted(writers) == [f"W{i:02d}" for i in range(1, 11)]
    assert sum(len(d) for d in writers.values()) == 5246
    for digits in writers.values():
        assert [d.index for d in digits] == list(range(len(digits)))
        assert all(0 <= d.label <= 9 and d.strokes and d.strokes[0].shape[1] == 2 for d in digits)


def test_separate_strokes_stay_separate_and_pen_lifts_cut_gaps():
    five = [[[10, 10], [10, 30], [30, 35], [30, 55], [5, 60]], [[18, 0], [40, 0]]]  # hat apart from the body
    mask = hw.draw_digit(five, 100, 6)
    assert cv2.connectedComponents((mask > 0).astype(np.uint8))[0] - 1 == 2
    assert abs(mask.shape[0] - 100) <= 2  # normalised to the asked height, pen included
    line = [[[0, 0], [0, 100]]]
    assert cv2.connectedComponents((hw.draw_digit(line, 100, 6) > 0).astype(np.uint8))[0] - 1 == 1
    cut = hw.draw_digit(line, 100, 6, np.random.default_rng(0), pen_lift_gaps=1)
    assert cv2.connectedComponents((cut > 0).astype(np.uint8))[0] - 1 == 2


def test_digit_images_are_mnist_style_for_every_writer_and_deterministic():
    rng = np.random.default_rng(0)
    for writer, digits in hw.load_writers().items():
        indices = rng.choice(len(digits), 40, replace=False)
        images, labels, used = hw.writer_images(writer, indices)
        assert images.shape == (40, 28, 28) and images.dtype == np.uint8
        assert list(used) == list(indices) and list(labels) == [digits[i].label for i in indices]
        for image in images:
            assert mnist_style.mnist_style_problems(image) == []
    strokes = hw.load_writers()["W05"][3].strokes
    assert np.array_equal(hw.digit_image(strokes), hw.digit_image(strokes))


def test_digit_image_is_fast(cpu_clock):
    digits = hw.load_writers()["W01"][:500]
    with cpu_clock() as clock:
        for d in digits:
            hw.digit_image(d.strokes)
    assert clock.seconds / len(digits) < 0.006  # about 1 ms here; room for a slower CI machine


@pytest.mark.parametrize("spec", [CLEAN, MESSY], ids=["clean", "messy"])
def test_strokes_lie_inside_their_own_truth_boxes(spec):
    page, truth = hw.render_page(spec)
    ink = _ink(page)
    assert len(truth) == spec.layout.count
    assert not (ink & ~_inside(ink, truth)).any()  # no ink outside the boxes
    boxes = [t["box"] for t in truth]
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    owners = []
    for i in range(1, n):  # every stroke (piece of ink) lies within exactly one digit's box
        x, y, w, h = stats[i, :4]
        owner = [k for k, (bx, by, bw, bh) in enumerate(boxes)
                 if bx <= x and by <= y and x + w <= bx + bw and y + h <= by + bh]
        assert len(owner) == 1, f"ink piece {stats[i]} lies in boxes {owner}"
        owners.append(owner[0])
    assert sorted(set(owners)) == list(range(len(boxes)))  # and every box holds ink
    if spec.pen_lifts:  # the same sheet without pen lifts is in fewer pieces: the gaps are there
        whole = _ink(hw.render_page(replace(spec, pen_lifts=False))[0]).astype(np.uint8)
        assert n - 1 > cv2.connectedComponents(whole, connectivity=8)[0] - 1 + 0.2 * len(boxes)


def test_truth_records_respect_layout_writer_and_indices():
    writer = hw.load_writers()["W04"]
    keep = tuple(d.index for d in writer if d.index % 2 == 0)  # the odd ones are held out
    layout = SheetLayout(rows=9, cols=10, order="row_is_digit", digits=tuple(range(1, 10)))
    spec = replace(CLEAN, writer="W04", indices=keep, layout=layout)
    _, truth = hw.render_page(spec)
    assert {(t["row"], t["col"]) for t in truth} == {(r, c) for r in range(9) for c in range(10)}
    assert all(t["label"] == spec.layout.label_at(t["row"], t["col"]) == writer[t["index"]].label for t in truth)
    assert all(t["writer"] == "W04" and t["index"] in keep for t in truth)
    assert len({t["index"] for t in truth}) == len(truth)  # no digit written twice
    with pytest.raises(ValueError, match="needs"):
        hw.render_page(replace(spec, indices=keep[:30]))


def test_same_spec_same_bytes_other_seed_other_sheet():
    spec = replace(MESSY, capture="photo", ink="blue", shadow=True, specks=True)
    a, truth_a = hw.render_sheet(spec)
    b, truth_b = hw.render_sheet(spec)
    assert a.tobytes() == b.tobytes() and truth_a == truth_b
    c, _ = hw.render_sheet(replace(spec, seed=spec.seed + 1))
    assert a.shape != c.shape or a.tobytes() != c.tobytes()


def test_photo_boxes_are_on_the_written_digits():
    spec = replace(CLEAN, capture="photo")
    image, truth = hw.render_sheet(spec)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(int)
    h, w = gray.shape
    for t in truth:
        x, y, bw, bh = t["box"]
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h
        cell = gray[y : y + bh, x : x + bw]
        assert np.percentile(cell, 2) < np.median(cell) - 60  # ink in the box
    border = np.concatenate([gray[:5].ravel(), gray[-5:].ravel(), gray[:, :5].ravel(), gray[:, -5:].ravel()])
    assert np.median(border) < 140  # the table shows around the paper
    filled, _ = hw.render_sheet(replace(spec, capture="photo_fill"))
    g = cv2.cvtColor(filled, cv2.COLOR_BGR2GRAY)
    assert min(g[:5].mean(), g[-5:].mean(), g[:, :5].mean(), g[:, -5:].mean()) > 140  # paper to every edge


def _long_lines(page: np.ndarray, axis: int) -> np.ndarray:
    """Rows (axis=1) or columns (axis=0) of the page where printed lines run for 40% of the page."""
    dark = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) < 215
    return dark.mean(axis=axis) > 0.4


def test_ruled_and_lined_paper_have_their_lines():
    plain, _ = hw.render_page(CLEAN)
    assert not _long_lines(plain, 1).any()
    for paper in ("table_thin", "table_thick"):
        page, truth = hw.render_page(replace(CLEAN, paper=paper))
        rows, cols = _long_lines(page, 1), _long_lines(page, 0)
        assert rows.any() and cols.any()
        dark = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) < 215
        assert not dark[:, :20].any() and not dark[:, -20:].any() and not dark[:20].any()  # lines end in the page
        ys = np.nonzero(rows)[0]
        assert len(np.split(ys, np.nonzero(np.diff(ys) > 1)[0] + 1)) == CLEAN.layout.rows + 1
    thin, thick = (hw.render_page(replace(CLEAN, paper=p))[0] for p in ("table_thin", "table_thick"))
    assert _long_lines(thick, 1).sum() > 1.5 * _long_lines(thin, 1).sum()
    lined, _ = hw.render_page(replace(CLEAN, paper="lined"))
    gray = cv2.cvtColor(lined, cv2.COLOR_BGR2GRAY)
    assert (gray[:, 200:-5] < 235).mean(axis=1).__gt__(0.9).sum() >= CLEAN.layout.rows  # edge-to-edge lines


def test_ink_colour_and_pen_width():
    blue, truth = hw.render_page(replace(CLEAN, ink="blue"))
    black, _ = hw.render_page(CLEAN)
    b, g, r = (blue[_ink(blue)].astype(int)).T
    assert b.mean() > r.mean() + 40
    k = black[_ink(black)].astype(int)
    assert abs(k[:, 0].mean() - k[:, 2].mean()) < 15
    marker, _ = hw.render_page(replace(CLEAN, pen="marker"))

    def width(page):
        ink = _ink(page)
        return float(cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)[ink].mean())

    assert width(marker) > 1.5 * width(black)


def test_specks_shadow_and_uneven_light():
    spec = CLEAN
    page, truth = hw.render_page(spec)
    dusty, truth_d = hw.render_page(replace(spec, specks=True))
    assert truth == truth_d
    outside = lambda p: (_ink(p) & ~_inside(_ink(p), truth)).sum()  # noqa: E731
    assert outside(page) == 0 and outside(dusty) > 0
    paper = lambda p: cv2.cvtColor(p, cv2.COLOR_BGR2GRAY)[~_inside(_ink(p), truth)]  # noqa: E731
    spread = lambda p: np.percentile(paper(p), 98) - np.percentile(paper(p), 2)  # noqa: E731
    assert spread(page) < 5
    assert spread(hw.render_page(replace(spec, shadow=True))[0]) > 60
    assert spread(hw.render_page(replace(spec, uneven_light=True))[0]) > 25


def test_rows_drift_and_spacing_is_uneven():
    def row_stats(spec):
        _, truth = hw.render_page(replace(spec, layout=SheetLayout()))
        bottoms = np.array([[t["box"][1] + t["box"][3] for t in truth if t["row"] == r] for r in range(12)], float)
        starts = np.array([min(t["box"][0] for t in truth if t["row"] == r) for r in range(12)], float)
        slope = np.abs(np.polyfit(np.arange(10), bottoms.T, 1)[0]).mean()
        return slope, np.ptp(starts)

    straight, aligned = row_stats(CLEAN)
    tilted, ragged = row_stats(replace(CLEAN, drift=True, uneven=True))
    assert straight < 0.8 and tilted > 2.0  # px per digit: a few degrees of tilt
    assert ragged > aligned + 20


def test_corpus_covers_every_layout_and_trait():
    specs = hw.corpus()
    assert specs == hw.corpus()  # deterministic
    assert len(specs) >= 30 and len({s.writer for s in specs}) >= 5
    assert set().union(*(s.traits for s in specs)) == hw.ALL_TRAITS
    layouts = {s.layout for s in specs}
    assert SheetLayout() in layouts and SheetLayout(rows=10, cols=12, order="row_is_digit") in layouts
    assert any(lay.digits == tuple(range(1, 10)) and lay.rows == 9 for lay in layouts)
    assert any((lay.rows, lay.cols) not in ((12, 10), (10, 12)) and len(lay.digits) == 10 for lay in layouts)
    pairs = [(a, b) for a, b in zip(specs, specs[1:]) if a.writer == b.writer and a.indices and b.indices]
    assert pairs
    for a, b in pairs:  # together 12 of each digit, none written twice
        labels = [hw.load_writers()[a.writer][i].label for i in a.indices + b.indices]
        assert not set(a.indices) & set(b.indices) and sorted(labels) == sorted(list(range(10)) * 12)
    for spec in specs:  # every page fits (no digit off the page, no two digits overlapping)
        assert len(hw.render_page(spec)[1]) == spec.layout.count


def test_rendering_a_sheet_takes_seconds_at_most(cpu_clock):
    """About 0.5-1.1 s a sheet on 2 cores; the limit catches a slowdown of several times, not a busy machine."""
    corpus = hw.corpus()
    specs = [s for s in corpus if s.capture != "scan"][:4] + [s for s in corpus if s.capture == "scan"][:1]
    hw.render_sheet(specs[0])  # warm up
    for spec in specs:  # CPU time on one thread: other busy processes hardly change it
        with cpu_clock() as clock:
            image, truth = hw.render_sheet(spec)
        assert clock.seconds < 3.0, (spec.name, clock.seconds)
        assert len(truth) == spec.layout.count


# --------------------------------------------------------------------------- students' sheets (issue 15)

from mnist_transfer import student_sheets as ss  # noqa: E402

STUDENT = ss.StudentSpec(writer="W06", layout=SheetLayout(rows=6, cols=10), seed=5)


def _pieces_in(ink: np.ndarray, box) -> int:
    x, y, w, h = box
    return cv2.connectedComponents(ink[y : y + h, x : x + w].astype(np.uint8), connectivity=8)[0] - 1


def test_student_sheets_are_deterministic_and_validated():
    spec = replace(STUDENT, capture="photo", desk="wood", touching=True, split_strokes=True, ink="red")
    a, truth_a, marks_a = ss.render_sheet(spec)
    b, truth_b, marks_b = ss.render_sheet(spec)
    assert a.tobytes() == b.tobytes() and truth_a == truth_b and marks_a == marks_b
    assert len(truth_a) == spec.layout.count
    for bad in (dict(desk="wood"), dict(ink="green"), dict(paper="table_pen", touching=True), dict(gap_after=10)):
        with pytest.raises(ValueError):
            replace(STUDENT, **bad)
    assert len(ss.students_corpus()) == len({s.name for s in ss.students_corpus()})  # one file name each


def test_split_strokes_leave_a_gap_in_every_4_5_7_and_9():
    page, truth, _ = ss.render_page(replace(STUDENT, split_strokes=True))
    whole, truth_w, _ = ss.render_page(STUDENT)
    ink, ink_w = _ink(page), _ink(whole)
    split = [t for t in truth if t["label"] in ss.SPLIT_LABELS]
    apart = [_pieces_in(ink, t["box"]) >= 2 for t in split]
    assert np.mean(apart) >= 0.9, f"{sum(apart)} of {len(split)} written apart"
    assert all(_pieces_in(ink, t["box"]) <= _pieces_in(ink_w, w["box"]) + 2 for t, w in zip(truth, truth_w)
               if t["label"] not in ss.SPLIT_LABELS)  # the other digits are as they were


def test_touching_pairs_share_ink_and_are_recorded():
    page, truth, marks = ss.render_page(replace(STUDENT, touching=True))
    pairs = [m for m in marks if m["kind"] == "touching"]
    assert len({m["row"] for m in pairs}) >= 2
    n, labels = cv2.connectedComponents(_ink(page).astype(np.uint8), connectivity=8)
    box = {(t["row"], t["col"]): t["box"] for t in truth}

    def owners(b):
        x, y, w, h = b
        return set(np.unique(labels[y : y + h, x : x + w])) - {0}

    for m in pairs:  # one piece of ink runs through both digits' boxes
        r, (a, b) = m["row"], m["cols"]
        assert owners(box[r, a]) & owners(box[r, b]), m


def test_gap_after_two_columns_is_wider_than_the_others():
    _, truth, _ = ss.render_page(replace(STUDENT, gap_after=2))
    gaps = np.array([[truth[r * 10 + c + 1]["box"][0] - sum(truth[r * 10 + c]["box"][::2]) for c in range(9)]
                     for r in range(6)], float)
    assert np.median(gaps[:, 1]) > 2 * np.median(np.delete(gaps, 1, axis=1))


@pytest.mark.parametrize("framing", ss.FRAMINGS)
def test_desk_shows_where_the_paper_leaves_the_frame(framing):
    image, truth, _ = ss.render_sheet(replace(STUDENT, capture="photo", desk="dark", framing=framing))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(float)
    h, w = gray.shape
    left, right = gray[h // 4 : 3 * h // 4, :8].mean(), gray[h // 4 : 3 * h // 4, -8:].mean()
    if framing == "left":
        assert left < 100 < right
    elif framing == "right":
        assert right < 100 < left
    elif framing == "both":
        assert left < 100 and right < 100
    else:  # paper in exactly one corner of the frame
        corners = [gray[:6, :6].mean(), gray[:6, -6:].mean(), gray[-6:, :6].mean(), gray[-6:, -6:].mean()]
        assert sum(c > 120 for c in corners) == 1, corners
    assert all(0 <= t["box"][0] and t["box"][0] + t["box"][2] <= w for t in truth)


def _lines_outside(page: np.ndarray, truth) -> np.ndarray:
    ink = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) < np.median(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)) - 12
    return ink & ~_inside(ink, truth)


@pytest.mark.parametrize("paper", ss.HAND_TABLES)
def test_hand_ruled_table_is_wobbly_faint_and_broken(paper):
    page, truth, _ = ss.render_page(replace(STUDENT, paper=paper))
    lines = _lines_outside(page, truth)
    n = cv2.connectedComponents(lines.astype(np.uint8), connectivity=8)[0] - 1
    assert n > 7 + 11 + 5  # the 7 + 11 lines are in more pieces than lines
    rows = lines.mean(axis=1)
    peak = int(np.argmax(rows))  # no straight line: a wobbly, curved one spreads over many pixel rows
    assert (rows[max(0, peak - 15) : peak + 16] > 0.03).sum() >= 7
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
    assert np.median(gray[lines]) > (150 if paper == "table_pencil" else 60)  # pencil is faint

    def crossed(box):  # line ink on both sides of the box, inside its height: a ruled line runs through it
        x, y, w, h = box
        return lines[y + 2 : y + h - 2, max(0, x - 3)].any() and lines[y + 2 : y + h - 2, x + w + 2].any()

    assert sum(crossed(t["box"]) for t in truth) >= 1  # some digits run over a line


def test_dashed_table_has_thick_broken_lines():
    page, truth, _ = ss.render_page(replace(STUDENT, paper="table_dashed"))
    lines = _lines_outside(page, truth)
    cols = lines.mean(axis=0)
    long = cols > 0.3
    assert long.sum() >= 2 * 3  # the frame's sides, each 3 px or more
    inner = (cols > 0.12) & (cols < 0.55)  # dashed or dotted verticals: dark for only part of their length
    assert inner.any()


def test_inks_red_pencil_and_fine_ballpoint():
    red, _, _ = ss.render_page(replace(STUDENT, ink="red", pen="marker"))
    b, g, r = red[_ink(red)].astype(int).T
    assert r.mean() > b.mean() + 60
    pencil, truth, _ = ss.render_page(replace(STUDENT, ink="pencil"))
    black, _, _ = ss.render_page(STUDENT)
    darkest = lambda p: np.percentile(cv2.cvtColor(p, cv2.COLOR_BGR2GRAY)[_inside(_ink(black), truth)], 2)  # noqa: E731
    assert darkest(pencil) > darkest(black) + 40
    fine, _, _ = ss.render_page(replace(STUDENT, pen="fine"))

    def width(page):
        ink = _ink(page)
        return float(cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)[ink].mean())

    assert width(fine) < 0.8 * width(black)


@pytest.mark.parametrize("kind", ss.HOSTILE[1:])
def test_hostile_marks_are_where_the_truth_says(kind):
    spec = replace(STUDENT, hostile=kind, hostile_row=2, hostile_col=4 if kind in ("extra_digit", "blot") else -1)
    page, truth, marks = ss.render_page(spec)
    mine = [m for m in marks if m["kind"] == kind]
    assert mine and all(m["row"] == 2 for m in mine)
    in_row = [t for t in truth if t["row"] == 2]
    assert len(in_row) == (0 if kind in ("letters", "scribble") else 10)
    assert _ink(page)[_inside(_ink(page), mine)].any()
    if kind in ("extra_digit", "blot"):
        assert mine[0]["after_col"] == 4
        x = mine[0]["box"][0]
        assert in_row[4]["box"][0] < x < in_row[5]["box"][0]
