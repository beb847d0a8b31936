"""Pre-train the MNIST CNN from scratch and print test accuracy and wall time as JSON.

    .venv/bin/python Code/scripts/benchmark_pretrain.py [--epochs 8] [--batch-size 256] [--max-lr 0.2]

Re-measures the figures quoted in the README (>= 99.7% target, <= 5 minutes on 2 CPU cores).
It does not touch the shipped checkpoint unless --save is given.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_transfer import model as model_mod  # noqa: E402
from mnist_transfer import training  # noqa: E402


def main() -> None:
    defaults = training.PretrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(defaults):
        if f.name == "widths":
            parser.add_argument("--widths", type=int, nargs=4, default=list(defaults.widths))
        elif f.type in ("bool", bool):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes"),
                                default=getattr(defaults, f.name))
        else:
            kind = type(getattr(defaults, f.name))
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=getattr(defaults, f.name))
    parser.add_argument("--save", action="store_true", help="overwrite the shipped checkpoint and its JSON")
    args = vars(parser.parse_args())
    save = args.pop("save")
    args["widths"] = tuple(args["widths"])
    config = training.PretrainConfig(**args)
    model, metrics = training.pretrain(config, model_mod.pick_device(), progress=False)
    if save:
        model_mod.save_pretrained(model, metrics)
    metrics.pop("history")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
