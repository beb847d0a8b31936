"""Write the corpus of handwritten test sheets (real writers' digits) with their ground truth, to look at.

    .venv/bin/python Code/scripts/make_sheet_corpus.py [OUT_DIR (default: sheet_corpus in the system temp folder)] [--n 32]
    .venv/bin/python Code/scripts/make_sheet_corpus.py OUT_DIR --students   # the students' sheets of issue 15

For every sheet of :func:`mnist_transfer.handwriting.corpus`: ``NN_<name>.png`` (scans) or ``.jpg``
(photos, already JPEG-compressed by the camera simulation) and ``NN_<name>.json`` (the spec and one
record per digit: row, col, label, writer, UNIPEN index, box in the image, box on the flat page),
plus ``index.json`` (all sheets, traits and render times) and ``README.txt`` (the data's licence).
``--students``: instead, the sheets of :func:`mnist_transfer.student_sheets.students_corpus` (the sheets
tests/test_student_layouts.py reads), whose records also list the marks that are not digits.
Not for git: the images are remade, the same bytes, from the specs in a few seconds.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_transfer import handwriting, student_sheets  # noqa: E402

ATTRIBUTION = """Digits drawn from the pen strokes of ten UNIPEN writers (category 1a):
UNIPEN project of on-line data exchange (Guyon, Schomaker, Plamondon, Liberman, Janet, ICPR 1994),
train_r01_v07, doi:10.5281/zenodo.1195803, licensed CC BY 4.0. Rendered by mnist_transfer.handwriting.
"""


def _render(spec, students: bool):
    """(image, truth, marks) of one sheet; the corpus sheets have no marks."""
    if students:
        return student_sheets.render_sheet(spec)
    return (*handwriting.render_sheet(spec), [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=Path(tempfile.gettempdir()) / "sheet_corpus")
    parser.add_argument("--n", type=int, default=32, help="number of sheets (the corpus only)")
    parser.add_argument("--students", action="store_true", help="the students' sheets of issue 15 instead")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    specs = student_sheets.students_corpus() if args.students else handwriting.corpus(args.n)
    index = []
    for k, spec in enumerate(specs):
        start = time.perf_counter()
        image, truth, marks = _render(spec, args.students)
        seconds = time.perf_counter() - start
        stem = f"{k:02d}_{spec.name}"
        image_name = stem + (".png" if spec.capture == "scan" else ".jpg")
        quality = [] if spec.capture == "scan" else [cv2.IMWRITE_JPEG_QUALITY, 95]
        cv2.imwrite(str(args.out / image_name), image, quality)
        fields = dataclasses.asdict(spec)
        record = {"image": image_name, "spec": fields, "traits": sorted(spec.traits), "digits": truth}
        if args.students:
            record["marks"] = marks
        (args.out / f"{stem}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        index.append({"image": image_name, "writer": spec.writer, "layout": fields["layout"],
                      "traits": sorted(spec.traits), "render_s": round(seconds, 3)})
        size = f"{image.shape[1]}x{image.shape[0]}"
        print(f"{image_name:45s} {size}  {seconds:.2f} s  {' '.join(sorted(spec.traits))}")
    (args.out / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    (args.out / "README.txt").write_text(ATTRIBUTION, encoding="utf-8")
    print(f"wrote {len(index)} sheets to {args.out}")


if __name__ == "__main__":
    main()
