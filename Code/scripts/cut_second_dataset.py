"""Cut the second shipped dataset (Code/data/second_dataset/) from the scans digit_<d>.jpg of
Huizerd/PatternRecognition (MIT licence; see the dataset's README and LICENSE).

    python Code/scripts/cut_second_dataset.py SCANS_DIR OUT_DIR

writes OUT_DIR/<d>/<d>_<k>.png (the first 16 digits of each scan in reading order) and OUT_DIR/montage.png to
check every crop by eye. The shipped folder is this output with three crops dropped after that check (6 number 6,
9 numbers 1 and 8), renumbered, and scaled to 64 pixels high.
"""

import sys
from pathlib import Path

import cv2
import numpy as np

PER_DIGIT = 16


def digit_boxes(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes of the digits on one scan in reading order (rows top to bottom, left to right in a row)."""
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    grown = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 25)))  # a digit's strokes together
    n, _, stats, _ = cv2.connectedComponentsWithStats(grown)
    boxes = [tuple(int(v) for v in stats[i, :4]) for i in range(1, n) if stats[i, 3] > 50 and stats[i, 4] > 1500]
    height = np.median([b[3] for b in boxes])
    boxes = sorted((b for b in boxes if 0.55 * height < b[3] < 1.8 * height and b[2] < 1.6 * height),
                   key=lambda b: b[1] + b[3] / 2)
    rows: list[list] = []
    for box in boxes:
        if rows and abs(box[1] + box[3] / 2 - (rows[-1][-1][1] + rows[-1][-1][3] / 2)) < 0.6 * height:
            rows[-1].append(box)
        else:
            rows.append([box])
    return [b for row in rows for b in sorted(row)]


def main(scans: Path, out: Path) -> None:
    tiles = []
    for digit in range(10):
        gray = cv2.imread(str(scans / f"digit_{digit}.jpg"), cv2.IMREAD_GRAYSCALE)
        (out / str(digit)).mkdir(parents=True, exist_ok=True)
        for k, (x, y, w, h) in enumerate(digit_boxes(gray)[:PER_DIGIT]):
            crop = gray[max(0, y - 8):y + h + 8, max(0, x - 8):x + w + 8]
            cv2.imwrite(str(out / str(digit) / f"{digit}_{k + 1:02d}.png"), crop)
            tiles.append(cv2.resize(crop, (64, 64)))
    cv2.imwrite(str(out / "montage.png"), np.vstack([np.hstack(tiles[i:i + PER_DIGIT])
                                                     for i in range(0, len(tiles), PER_DIGIT)]))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
