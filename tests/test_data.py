import gzip
import shutil

import pytest
import torch

from mnist_transfer import data, evaluation, paths


def test_mnist_loads_offline_with_expected_shapes():
    x, y = data.load_mnist("train")
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (60000,) and set(y.unique().tolist()) == set(range(10))
    x, y = data.load_mnist("test")
    assert x.shape == (10000, 28, 28)
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def mnist_copy(tmp_path):
    target = tmp_path / "MNIST"
    shutil.copytree(paths.MNIST_DIR, target)
    return target


def test_corrupt_mnist_file_names_the_file_and_the_fix(mnist_copy):
    victim = mnist_copy / "raw" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte\.gz is corrupt.*git checkout"):
        data.load_mnist("test", mnist_dir=mnist_copy)


def test_missing_mnist_file_names_the_file(mnist_copy):
    (mnist_copy / "raw" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte\.gz is missing"):
        data.load_mnist("train", mnist_dir=mnist_copy)


def test_normalize_matches_mnist_statistics():
    x, _ = data.load_mnist("test")
    z = data.normalize(x[:2000])
    assert z.shape == (2000, 1, 28, 28)
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05


def test_missing_dataset_folder_says_which_notebook_makes_it(tmp_path):
    with pytest.raises(data.DataError, match="notebook 01"):
        data.load_split(tmp_path / "Training Set")


def test_sealed_test_set_is_evaluated_once_per_model(pretrained):
    x, y = data.load_mnist("test")
    sealed = evaluation.SealedTestSet({"x": x[:20], "y": y[:20], "files": [str(i) for i in range(20)]})
    with pytest.raises(RuntimeError, match="only after the final evaluation"):
        sealed.images(["0"])  # no peeking before the evaluation
    frame = sealed.evaluate(pretrained, "pre-trained")
    assert len(frame) == 20 and sealed.evaluations == ["pre-trained"]
    with pytest.raises(RuntimeError, match="once per final model"):
        sealed.evaluate(pretrained, "pre-trained")


def _rewrite(path, transform):
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    with gzip.open(path, "wb") as handle:
        handle.write(transform(raw))


def test_idx_file_of_the_wrong_kind_is_named(tmp_path):
    victim = tmp_path / "t10k-images-idx3-ubyte.gz"
    shutil.copy(paths.MNIST_DIR / "raw" / victim.name, victim)
    _rewrite(victim, lambda raw: (0x0801).to_bytes(4, "big") + raw[4:])  # a labels header on an images file
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte\.gz is not an IDX file of the expected kind"):
        data._read_idx(victim, 0x0803)


def test_truncated_idx_file_is_named_with_the_fix(tmp_path):
    victim = tmp_path / "t10k-labels-idx1-ubyte.gz"
    shutil.copy(paths.MNIST_DIR / "raw" / victim.name, victim)
    _rewrite(victim, lambda raw: raw[:-10])
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte\.gz is truncated: 9990 values.*git checkout"):
        data._read_idx(victim, 0x0801)
