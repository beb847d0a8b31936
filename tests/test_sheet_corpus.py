"""The sheet reader on real handwriting: 32 sheets of ten UNIPEN writers drawn the way people write.

Every layout (12 x 10 of 0..9, a digit a row, 8 x 10, 9 rows of 1..9, pairs of 6-row sheets) and
every trait (drift, uneven spacing, wobble, pen lifts, ballpoint/marker, blue/black ink, ruled
tables thin and thick, lined paper, scans, photos, paper filling the frame, shadows, uneven
light, specks) is covered (see :func:`mnist_transfer.handwriting.corpus`). Each sheet is read
and checked with the pre-trained model exactly as notebook 01 does; every digit must land in
its true (row, column, label), or the sheet be refused with a message naming the cause. None
may be mislabelled.
"""

import numpy as np
import pytest

from mnist_transfer import dataset_writing, handwriting, mnist_style, sheet_check, sheet_reading
from mnist_transfer.sheet_reading import SheetError

SPECS = handwriting.corpus()


def placement_errors(result, truth):
    """Digits whose box centre (in the photo's pixels) is not inside the true box of that (row, column, label)."""
    errors = []
    for d, (x, y) in zip(result.digits, result.image_centres()):
        hits = [t for t in truth if t["box"][0] <= x <= t["box"][0] + t["box"][2]
                and t["box"][1] <= y <= t["box"][1] + t["box"][3]]
        if len(hits) != 1 or (hits[0]["row"], hits[0]["col"], hits[0]["label"]) != (d.row, d.col, d.label):
            errors.append((d.row, d.col, d.label, [(t["row"], t["col"], t["label"]) for t in hits]))
    return errors


@pytest.fixture(scope="module")
def outcomes(pretrained):
    """Every corpus sheet read and checked: name -> (result or None, message, errors, seconds)."""
    out = {}
    for spec in SPECS:
        image, truth = handwriting.render_sheet(spec)
        try:
            result, check = sheet_check.read_checked_sheet(image, spec.layout, pretrained, source=spec.name)
        except SheetError as err:
            out[spec.name] = (None, str(err), [], None)
            continue
        out[spec.name] = (result, check.message, placement_errors(result, truth), result.seconds)
    return out


def test_corpus_covers_every_layout_writer_and_trait():
    assert len(SPECS) >= 30
    assert len({s.writer for s in SPECS}) >= 5
    assert set().union(*(s.traits for s in SPECS)) == handwriting.ALL_TRAITS
    assert {s.layout for s in SPECS} == set(handwriting.CORPUS_LAYOUTS)


def test_no_corpus_digit_is_mislabelled_and_refusals_name_their_cause(outcomes):
    mislabelled = {name: errors for name, (_, _, errors, _) in outcomes.items() if errors}
    assert mislabelled == {}
    for name, (result, message, _, _) in outcomes.items():
        if result is None:
            assert name in message and any(word in message for word in ("row", "page", "photo", "model"))


def test_corpus_sheets_are_read_whole_and_mnist_style(outcomes):
    read = {name: r for name, (r, _, _, _) in outcomes.items() if r is not None}
    refused = {name: message for name, (r, message, _, _) in outcomes.items() if r is None}
    assert len(read) >= 30, refused  # today all 32 are read; a regression shows up here
    for spec in SPECS:
        result = read.get(spec.name)
        if result is None:
            continue
        assert len(result.digits) == spec.layout.count
        assert {(d.row, d.col) for d in result.digits} == {(r, c) for r in range(spec.layout.rows)
                                                          for c in range(spec.layout.cols)}
        assert all(mnist_style.mnist_style_problems(d.image) == [] for d in result.digits)


def test_no_corpus_sheet_needs_a_correction(outcomes):
    """Every sheet is upright and its layout right: the check must accept them as they are."""
    corrected = [name for name, (r, _, _, _) in outcomes.items() if r is not None and r.notes]
    assert corrected == []


def test_one_sheet_is_read_within_seconds(outcomes, cpu_clock):
    """Seconds a sheet: the slowest (by wall time) is read again on one thread and its CPU time must stay
    under 5 s (about 1.3 s here; wall time reached 6 s while other processes shared the cores)."""
    timed = {name: s for name, (_, _, _, s) in outcomes.items() if s is not None}
    slowest = max(timed, key=timed.get)
    spec = next(s for s in SPECS if s.name == slowest)
    image, _ = handwriting.render_sheet(spec)
    with cpu_clock() as clock:
        sheet_reading.process_sheet(image, spec.layout, source=spec.name)
    assert clock.seconds <= 5.0, f"slowest sheet {slowest}: {timed[slowest]:.2f} s wall, {clock.seconds:.2f} s CPU"


def test_two_six_row_sheets_together_make_the_dataset(outcomes):
    """The corpus's 6 x 10 pairs (one writer, disjoint digits): together 12 of each digit, split 8/2/2."""
    by_name = {s.name: s for s in SPECS}
    pairs = [(a, b) for a, b in zip(SPECS, SPECS[1:]) if a.layout.rows == 6 and b.layout.rows == 6 and a.writer == b.writer]
    assert pairs
    a, b = pairs[0]
    digits = [d for name in (a.name, b.name) for d in outcomes[name][0].digits]
    for k, name in enumerate((a.name, b.name)):
        for d in outcomes[name][0].digits:
            d.sheet = f"{by_name[name].writer}-{k}"
    splits = dataset_writing.split_digits(digits, seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [80, 20, 20]
    assert np.bincount([d.label for d in digits]).tolist() == [12] * 10
