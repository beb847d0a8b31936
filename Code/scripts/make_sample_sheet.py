"""Generate the shipped synthetic sample sheet (and its ground truth).

    .venv/bin/python Code/scripts/make_sample_sheet.py [--seed 2026] [--out Code/sheets/sample_sheet.jpg]

The sheet stands in for a real photo of handwritten digits, which nobody on this project could
write: one handwriting font (BecauseWeMentor, OFL) plays one writer who puts a flag and a base on
the 1 and crosses the 7; every glyph varies in slant, size, rotation, baseline, pen width and
elastic distortion; the page is then "photographed" (perspective, uneven light and a shadow,
paper texture, blur, noise, JPEG). Replace it with your own photo: see README.md.
"""

import argparse
import csv
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_transfer import paths, synth  # noqa: E402
from mnist_transfer.sheet_reading import SheetLayout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=paths.SHEETS_DIR / "sample_sheet.jpg")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        sys.exit(f"{args.out} exists; pass --force to overwrite it (it may be your own photo).")
    image, truth = synth.make_sheet(SheetLayout(), synth.WriterStyle(), seed=args.seed, camera=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    truth_path = args.out.with_name(args.out.stem + "_truth.csv")
    with open(truth_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["row", "col", "label"])
        writer.writeheader()
        for t in truth:
            writer.writerow({"row": t["row"] + 1, "col": t["col"] + 1, "label": t["label"]})
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]}) and {truth_path}")


if __name__ == "__main__":
    main()
