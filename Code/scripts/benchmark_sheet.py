"""Time the sheet reader on the real-handwriting corpus and the shipped sample photo; print a table.

    .venv/bin/python Code/scripts/benchmark_sheet.py [--sheets 32] [--threads 2] [--json out.json]

For every corpus sheet (:func:`mnist_transfer.handwriting.corpus`): the digits found, how many of
them sit in their true (row, column, label), and the seconds :func:`~.sheet_reading.process_sheet`
took (rendering the sheet is not counted). A refused sheet prints its reason. Then the shipped
12-megapixel sample photo, and the eleven real pen-on-paper scans of ``Code/data/real_sheets``
(``--no-real`` skips them), each read with its layout (``live_digits``: 10 x 15, a digit a row;
``digit_<d>``: 5 rows of the counts in ``row_counts.json``). The scans have no true boxes, so for
them "correct" is the number of digits the pre-trained model reads as the label they were given
(labels come from the layout, never from the model), and "found" must equal "expected". Last, the
students' sheets of :func:`mnist_transfer.student_sheets.students_corpus` (``--no-students`` skips
them): photos on a desk, tables, touching digits, strokes apart, each of which must be read whole,
and the hostile ones (a digit too many, letters, a scribble, a blot), each of which must be refused
naming the row they are in (by the reader, or, for one the reader reads whole, by the model's check
before writing, as notebook 01 does; "seconds" is the reader's time).
"""

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import pandas as pd  # noqa: E402

from mnist_transfer import handwriting, paths, sheet_reading  # noqa: E402
from mnist_transfer.sheet_reading import SheetLayout  # noqa: E402

REAL = paths.CODE_DIR / "data" / "real_sheets"


def placement(result, truth) -> int:
    """How many digits have their box centre (in the photo's pixels) inside the true box of their (row, col, label);
    where true boxes overlap (digits written into each other), the one whose centre is nearest counts."""
    correct = 0
    for d, (x, y) in zip(result.digits, result.image_centres()):
        hits = [t for t in truth if t["box"][0] <= x <= t["box"][0] + t["box"][2] and t["box"][1] <= y <= t["box"][1] + t["box"][3]]
        if hits:
            t = min(hits, key=lambda t: (t["box"][0] + t["box"][2] / 2 - x) ** 2 + (t["box"][1] + t["box"][3] / 2 - y) ** 2)
            correct += (t["row"], t["col"], t["label"]) == (d.row, d.col, d.label)
    return correct


def timed_read(image, spec, truth) -> tuple[float, int, int, str]:
    """A rendered sheet read: seconds the reader took, digits found, digits in their true place, refusal ("")."""
    start = time.perf_counter()
    try:
        result = sheet_reading.process_sheet(image, spec.layout, source=spec.name)
        return time.perf_counter() - start, len(result.digits), placement(result, truth), ""
    except sheet_reading.SheetError as err:
        return time.perf_counter() - start, 0, 0, f"REFUSED: {err}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sheets", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads (the target machine has 2 cores)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--no-real", action="store_true", help="skip the real scans")
    parser.add_argument("--no-students", action="store_true", help="skip the students' sheets")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    rows = []
    print(f"{'sheet':32s} {'writer':6s} {'layout':8s} {'expected':>8s} {'found':>5s} {'correct':>7s} {'seconds':>7s}  traits / refusal")
    for spec in handwriting.corpus(args.sheets):
        image, truth = handwriting.render_sheet(spec)
        seconds, found, correct, note = timed_read(image, spec, truth)
        traits = ",".join(sorted(spec.traits - {"plain", "scan", "black", "ballpoint"})) or "clean scan"
        row = {"sheet": spec.name, "writer": spec.writer, "layout": f"{spec.layout.rows}x{spec.layout.cols}",
               "expected": spec.layout.count, "found": found, "correct": correct, "seconds": round(seconds, 3),
               "traits": traits, "refused": note}
        rows.append(row)
        print(f"{row['sheet']:32s} {row['writer']:6s} {row['layout']:8s} {row['expected']:8d} {found:5d} {correct:7d} "
              f"{seconds:7.2f}  {note[:150] or traits}", flush=True)
    image = sheet_reading.read_image(paths.SHEETS_DIR / "sample_sheet.jpg")
    truth = pd.read_csv(paths.SHEETS_DIR / "sample_sheet_truth.csv")
    start = time.perf_counter()
    result = sheet_reading.process_sheet(image)
    seconds = time.perf_counter() - start
    correct = len(set((d.row + 1, d.col + 1, d.label) for d in result.digits) & set(truth[["row", "col", "label"]].itertuples(index=False, name=None)))
    print(f"{'sample_sheet.jpg (12 MP photo)':32s} {'':6s} {'12x10':8s} {120:8d} {len(result.digits):5d} {correct:7d} {seconds:7.2f}")
    times = [r["seconds"] for r in rows]
    print(f"corpus: {sum(r['correct'] == r['expected'] for r in rows)}/{len(rows)} sheets read 100% right, "
          f"{sum(bool(r['refused']) for r in rows)} refused, {sum(r['found'] - r['correct'] for r in rows)} digits misplaced; "
          f"seconds per sheet median {statistics.median(times):.2f}, max {max(times):.2f}")
    if not args.no_real:
        rows += real_scans()
    if not args.no_students:
        rows += students_sheets()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


def real_layouts() -> dict[str, SheetLayout]:
    counts = json.loads((REAL / "row_counts.json").read_text(encoding="utf-8"))
    layouts = {"live_digits": SheetLayout(rows=10, cols=15, order="row_is_digit")}
    for d in range(10):
        lengths = tuple(counts[f"digit_{d}"])
        layouts[f"digit_{d}"] = SheetLayout(rows=5, cols=max(lengths), order="row_is_digit", digits=(d,) * 5,
                                            row_lengths=lengths)
    return layouts


def real_scans() -> list[dict]:
    """The real scans: found, how many the model reads as their label, refused, seconds."""
    from mnist_transfer import model, sheet_check  # torch only here

    pretrained = model.load_pretrained("cpu")
    rows = []
    for name, layout in real_layouts().items():
        image = sheet_reading.read_image(REAL / f"{name}.jpg")
        start = time.perf_counter()
        try:
            result = sheet_reading.process_sheet(image, layout, source=f"{name}.jpg")
            seconds, note = time.perf_counter() - start, ""
            share, _ = sheet_check.agreement(pretrained, result.digits)
            found, correct = len(result.digits), int(round(share * len(result.digits)))
        except sheet_reading.SheetError as err:
            seconds, found, correct, note = time.perf_counter() - start, 0, 0, f"REFUSED: {err}"
        rows.append({"sheet": f"{name}.jpg", "writer": "real", "layout": f"{layout.rows}x{layout.cols}",
                     "expected": layout.count, "found": found, "correct": correct, "seconds": round(seconds, 3),
                     "traits": "real scan", "refused": note})
        print(f"{name + '.jpg (real scan)':32s} {'real':6s} {rows[-1]['layout']:8s} {layout.count:8d} {found:5d} "
              f"{correct:7d} {seconds:7.2f}  {note[:150]}", flush=True)
    times = [r["seconds"] for r in rows]
    print(f"real scans: {sum(r['found'] == r['expected'] for r in rows)}/{len(rows)} read whole, "
          f"{sum(bool(r['refused']) for r in rows)} refused, the model agrees with "
          f"{sum(r['correct'] for r in rows)}/{sum(r['found'] for r in rows)} labels; seconds per sheet median "
          f"{statistics.median(times):.2f}, max {max(times):.2f}")
    return rows


def students_sheets() -> list[dict]:
    """The students' sheets: a trait sheet must be read whole and right, a hostile one refused."""
    from mnist_transfer import model, sheet_check, student_sheets

    pretrained = model.load_pretrained("cpu")
    rows = []
    for spec in student_sheets.students_corpus():
        image, truth, _ = student_sheets.render_sheet(spec)
        seconds, found, correct, note = timed_read(image, spec, truth)
        if spec.hostile and not note:  # read whole (a letter a cell): the model's check before writing must refuse it
            try:
                sheet_check.read_checked_sheet(image, spec.layout, pretrained, spec.name)
            except sheet_reading.SheetError as err:
                note = f"REFUSED by the model's check: {err}"
        expect = "refused" if spec.hostile else "read"
        row = spec.hostile_row + 1
        ok = (bool(re.search(rf"\brow {row}\b|\brows \d+ and {row}\b|\brows {row} and \d+", note)) if spec.hostile
              else correct == spec.layout.count)  # refused naming the hostile row; or read whole and right
        rows.append({"sheet": spec.name, "writer": spec.writer, "layout": f"{spec.layout.rows}x{spec.layout.cols}",
                     "expected": spec.layout.count, "found": found, "correct": correct, "seconds": round(seconds, 3),
                     "traits": ",".join(sorted(spec.traits)), "refused": note, "must_be": expect, "as_expected": ok})
        print(f"{spec.name[:32]:32s} {spec.writer:6s} {rows[-1]['layout']:8s} {spec.layout.count:8d} {found:5d} "
              f"{correct:7d} {seconds:7.2f}  {'ok' if ok else 'NOT ' + expect}: {note.splitlines()[0][:120] if note else ''}",
              flush=True)
    times = [r["seconds"] for r in rows]
    traits = [r for r in rows if r["must_be"] == "read"]
    print(f"students' sheets: {sum(r['as_expected'] for r in traits)}/{len(traits)} read 100% right, "
          f"{sum(r['as_expected'] for r in rows if r['must_be'] == 'refused')}/{len(rows) - len(traits)} hostile refused; "
          f"seconds per sheet median {statistics.median(times):.2f}, max {max(times):.2f}")
    return rows


if __name__ == "__main__":
    main()
