import contextlib
import sys
import time
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


class _Clock:
    seconds = None


@contextlib.contextmanager
def _cpu_clock():
    """CPU seconds this process spends in the block, with OpenCV and torch on one thread each.

    Time limits use this, not wall time: when other processes share the 2 cores, the wall time of
    the same sheet went from 1.3 s to 6 s, while the CPU time of one thread barely moves.
    """
    import cv2
    import torch

    threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    clock, start = _Clock(), time.process_time()
    try:
        yield clock
    finally:
        clock.seconds = time.process_time() - start
        cv2.setNumThreads(threads[0])
        torch.set_num_threads(threads[1])


@pytest.fixture
def cpu_clock():
    """``with cpu_clock() as clock: ...`` then ``clock.seconds``: CPU seconds of the block on one thread (:func:`_cpu_clock`)."""
    return _cpu_clock
