"""Time the sheet pipeline on the shipped 12-megapixel sample photo; print JSON.

    .venv/bin/python Code/scripts/benchmark_sheet.py [--repeat 5] [--image Code/sheets/sample_sheet.jpg]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_transfer import paths, sheet_reading  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=paths.SHEETS_DIR / "sample_sheet.jpg")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    image = sheet_reading.read_image(args.image)
    read_seconds = time.perf_counter() - start
    timings = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = sheet_reading.process_sheet(image)
        timings.append(time.perf_counter() - start)
    print(json.dumps({
        "image": args.image.name, "megapixels": round(image.shape[0] * image.shape[1] / 1e6, 1),
        "digits": len(result.digits), "read_seconds": round(read_seconds, 3),
        "process_seconds_median": round(statistics.median(timings), 3), "process_seconds_max": round(max(timings), 3),
    }))


if __name__ == "__main__":
    main()
