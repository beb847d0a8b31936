import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Code"))


@pytest.fixture(scope="session")
def pretrained():
    from mnist_transfer import model

    return model.load_pretrained("cpu")


@pytest.fixture(scope="session")
def tiny_own():
    """80/20 MNIST test images standing in for an own dataset (fast, known labels)."""
    from mnist_transfer import data

    x, y = data.load_mnist("test")
    return {"train": {"x": x[:80], "y": y[:80]}, "val": {"x": x[80:100], "y": y[80:100]}}
