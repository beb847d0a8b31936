"""Time single fine-tuning runs on the own training set (80 images); print JSON.

    .venv/bin/python Code/scripts/benchmark_finetune.py [--epochs 20]
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_transfer import data, model, training  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    pretrained = model.load_pretrained(model.pick_device())
    own = data.load_own_dataset()
    out = {}
    for n_last in (1, 2, 3, 5):
        for augment in (False, True):
            config = training.FinetuneConfig(n_last=n_last, lr=1e-3, batch_size=16, epochs=args.epochs, augment=augment)
            start = time.perf_counter()
            training.finetune(pretrained, config, own["train"], own["val"], seed=0)
            out[f"n_last={n_last}{' +augment' if augment else ''}"] = round(time.perf_counter() - start, 2)
    print(json.dumps({"epochs": args.epochs, "images": len(own["train"]["y"]), "seconds_per_run": out}))


if __name__ == "__main__":
    main()
