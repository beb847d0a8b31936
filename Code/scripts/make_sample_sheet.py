"""Generate the shipped sample sheet: one real writer's digits, redrawn as ink and photographed.

    .venv/bin/python Code/scripts/make_sample_sheet.py [--writer W01] [--seed 2026] [--force]

Nobody on this project could write a sheet for it, so the sample is real handwriting of one UNIPEN
writer (pen strokes recorded on a tablet, CC BY 4.0, see Code/data/unipen/README.md): twelve of each
digit, drawn as ballpoint ink on an A4 page in twelve rows of 0..9 the way people write (rows that
drift and bow, uneven spacing, a wobbling baseline), then put through the simulated phone camera
(perspective, uneven light, blur, noise, JPEG). It is not a photograph of paper. The writer's other
digits, none of them on the sheet, are the held-out test (mnist_transfer.heldout).

The ground truth (row, column, label, writer, index of the digit within the writer) is written beside
the photo as <name>_truth.csv. Replace the sheet with your own photo: see README.md.
"""

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_transfer import handwriting, paths  # noqa: E402
from mnist_transfer.sheet_reading import SheetLayout  # noqa: E402

PER_DIGIT = 12


def sheet_indices(writer: str, seed: int) -> tuple[int, ...]:
    """Twelve of each digit of ``writer``, drawn at random (seeded) from all of theirs."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(10):
        mine = [d.index for d in handwriting.load_writers()[writer] if d.label == label]
        chosen += [int(i) for i in rng.choice(mine, PER_DIGIT, replace=False)]
    return tuple(sorted(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writer", default="W01")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=paths.SHEETS_DIR / "sample_sheet.jpg")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        sys.exit(f"{args.out} exists; pass --force to overwrite it (it may be your own photo).")
    spec = handwriting.SheetSpec(
        writer=args.writer, layout=SheetLayout(rows=12, cols=10), seed=args.seed,
        indices=sheet_indices(args.writer, args.seed), drift=True, uneven=True, wobble=True,
        pen="ballpoint", ink="black", paper="plain", capture="photo", uneven_light=True,
        page_width=2480, megapixels=12.0,
    )
    image, truth = handwriting.render_sheet(spec)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    truth_path = args.out.with_name(args.out.stem + "_truth.csv")
    with open(truth_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["row", "col", "label", "writer", "index"])
        writer.writeheader()
        for t in sorted(truth, key=lambda t: (t["row"], t["col"])):
            writer.writerow({"row": t["row"] + 1, "col": t["col"] + 1, "label": t["label"],
                             "writer": t["writer"], "index": t["index"]})
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]}) and {truth_path}")


if __name__ == "__main__":
    main()
