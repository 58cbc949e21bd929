"""Moving MNIST: exact bounces independent of the frame rate, the official .npz layout, IDX digits."""

import gzip

import numpy as np
import pytest

from srvp.config import DataConfig
from srvp.data import build_train_dataset, load_test_set
from srvp.data.idx import load_embedded_digits, load_mnist_digits, read_idx, write_idx
from srvp.data.moving_mnist import make_test_set, render, trajectory
from srvp.data.npz import load_sequences_npz, save_sequences_npz
from srvp.errors import DataError


@pytest.mark.parametrize("deterministic", [True, False])
def test_trajectories_do_not_depend_on_the_frame_rate(deterministic):
    for seed in range(50):
        coarse = trajectory(np.random.default_rng(seed), 40, 36, 4, deterministic)
        for k in (2, 3, 4):
            fine = trajectory(np.random.default_rng(seed), 39 * k + 1, 36, 4, deterministic, frame_dt=1 / k)
            np.testing.assert_allclose(fine[::k], coarse, atol=1e-6)


def test_deterministic_bounce_is_an_exact_reflection():
    # start at row 30 moving +4 in a frame whose limit is 32: hits the wall at t = 0.5, then comes back
    traj = trajectory(np.random.default_rng(0), 3, 32, 4, True, start=(30, 10), velocity=(4, -3))
    np.testing.assert_allclose(traj[:, :2], [[30, 10], [30, 7], [26, 4]])
    np.testing.assert_allclose(traj[:, 2:], [[4, -3], [-4, -3], [-4, -3]])
    # a corner: both axes bounce within the same step
    traj = trajectory(np.random.default_rng(0), 2, 32, 4, True, start=(1, 1), velocity=(-2, -2))
    np.testing.assert_allclose(traj[1], [1, 1, 2, 2])


def test_stochastic_trajectories_stay_inside_with_bounded_integer_speeds():
    rng = np.random.default_rng(0)
    for _ in range(100):
        traj = trajectory(rng, 50, 36, 4, False)
        assert traj[:, :2].min() >= 0 and traj[:, :2].max() <= 36
        assert np.all(np.abs(traj[:, 2:]) <= 4) and np.all(traj[:, 2:] == np.round(traj[:, 2:]))
        # between frames a digit moves by at most its speed (bounces only shorten the displacement)
        assert np.all(np.abs(np.diff(traj[:, :2], axis=0)) <= 4 + 1e-9)


def test_deterministic_speed_magnitudes_are_kept():
    traj = trajectory(np.random.default_rng(3), 100, 36, 4, True)
    assert np.all(np.abs(traj[:, 2:]) == np.abs(traj[0, 2:]))


def test_render_adds_digits_and_saturates():
    digit = np.full((28, 28), 200, dtype=np.uint8)
    traj = np.array([[0.0, 0.0, 0, 0]])
    frame = render([digit, digit], [traj, traj + [[10, 10, 0, 0]]])
    assert frame.shape == (1, 1, 64, 64) and frame.dtype == np.uint8
    assert frame[0, 0, 5, 5] == 200 and frame[0, 0, 15, 15] == 255 and frame[0, 0, 35, 35] == 200
    assert frame[0, 0, 50, 50] == 0


def test_training_clips_are_a_pure_function_of_seed_and_index():
    cfg = DataConfig(digits="embedded", seq_len=12)
    a, b = build_train_dataset(cfg, seed=5), build_train_dataset(cfg, seed=5)
    assert a[7].shape == (12, 1, 64, 64) and str(a[7].dtype) == "torch.uint8"
    assert (a[7] == b[7]).all() and not (a[7] == a[8]).all()
    assert not (a[7] == build_train_dataset(cfg, seed=6)[7]).all()


def test_test_set_uses_test_digits_and_official_layout(tmp_path):
    digits = load_embedded_digits("test")
    data = make_test_set(digits, n_sequences=30, n_frames=25, num_digits=2, max_speed=4, deterministic=False)
    assert data["sequences"].shape == (25, 30, 64, 64) and data["sequences"].dtype == np.uint8
    assert data["latents"].shape == (25, 30, 2, 4) and data["digits"].shape == (30, 2, 28, 28)
    # the first frame shows the recorded digits at the recorded positions
    i = 3
    r, c = data["latents"][0, i, 0, :2]
    assert (data["sequences"][0, i, r:r + 28, c:c + 28] >= data["digits"][i, 0]).all()
    save_sequences_npz(tmp_path / "t.npz", data)
    seq = load_sequences_npz(tmp_path / "t.npz")
    assert seq.shape == (30, 25, 1, 64, 64)
    np.testing.assert_array_equal(seq[:, :, 0], data["sequences"].transpose(1, 0, 2, 3))
    cfg = DataConfig(digits="embedded", test_sequences=30, test_set=str(tmp_path / "t.npz"))
    np.testing.assert_array_equal(load_test_set(cfg), seq)


def test_embedded_digits_are_disjoint_between_splits():
    train, test = load_embedded_digits("train"), load_embedded_digits("test")
    assert train.shape == (4000, 28, 28) and test.shape == (1000, 28, 28)
    train_keys = {d.tobytes() for d in train}
    assert sum(d.tobytes() in train_keys for d in test) <= 5  # MNIST itself has a few exact duplicates


def test_real_mnist_test_digits(shared_dir):
    images = read_idx(shared_dir / "data" / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(shared_dir / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,) and labels.max() == 9
    np.testing.assert_array_equal(load_mnist_digits(shared_dir / "data" / "mnist", "test"), images)


def test_idx_round_trip_and_corrupt_files(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    cases = {"trunc": raw[:-10], "magic": b"\x01\x02" + raw[2:], "empty": b"", "header": raw[:6],
             "huge": raw[:4] + (2**31).to_bytes(4, "big") + raw[8:]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as info:
            read_idx(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "notgz.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="gzip"):
        read_idx(tmp_path / "notgz.gz")


def test_missing_digits_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="digits directory not found"):
        build_train_dataset(DataConfig(digits=str(tmp_path / "nope")), seed=0)
    with pytest.raises(DataError, match="no train-images"):
        build_train_dataset(DataConfig(digits=str(tmp_path)), seed=0)


def test_corrupt_npz_is_a_clear_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="bad.npz"):
        load_sequences_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "float.npz", sequences=np.zeros((3, 2, 8, 8), dtype=np.float32))
    with pytest.raises(DataError, match="uint8"):
        load_sequences_npz(tmp_path / "float.npz")
    np.savez(tmp_path / "obj.npz", sequences=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="obj.npz"):
        load_sequences_npz(tmp_path / "obj.npz")
    np.savez(tmp_path / "nokey.npz", frames=np.zeros((3, 2, 8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match="no 'sequences'"):
        load_sequences_npz(tmp_path / "nokey.npz")


def test_download_verifies_checksums_and_keeps_nothing_bad(tmp_path, shared_dir):
    import shutil

    from srvp.data.idx import MNIST_FILES, download_mnist

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in MNIST_FILES:
        src = shared_dir / "data" / "mnist" / name
        if src.exists():
            shutil.copy(src, mirror / name)  # the real test files: correct checksums
        else:
            (mirror / name).write_bytes(b"not the real file")
    out = tmp_path / "mnist"
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: download failed.*checksum"):
        download_mnist(out, mirrors=(mirror.as_uri() + "/",), progress=False)
    assert not any(out.iterdir())  # no partial or unverified file left behind
    # the real files are accepted
    real = {n: md5 for n, md5 in MNIST_FILES.items() if n.startswith("t10k")}
    import srvp.data.idx as idx

    original = idx.MNIST_FILES
    idx.MNIST_FILES = real
    try:
        download_mnist(out, mirrors=(mirror.as_uri() + "/",), progress=False)
    finally:
        idx.MNIST_FILES = original
    assert sorted(p.name for p in out.iterdir()) == sorted(real)


def test_test_set_command_writes_the_official_layout(tmp_path):
    from srvp.cli.main import main

    out = tmp_path / "smmnist_test.npz"
    assert main(["data", "mnist", "test-set", "--out", str(out), "--digits", "embedded", "--sequences", "6",
                 "--frames", "9"]) == 0
    with np.load(out) as data:
        assert data["sequences"].shape == (9, 6, 64, 64) and data["latents"].shape == (9, 6, 2, 4)
    assert main(["data", "mnist", "test-set", "--out", str(tmp_path / "x.npz"), "--digits", str(tmp_path / "no"),
                 "--sequences", "2"]) == 2
    assert not (tmp_path / "x.npz").exists()


def test_authors_kth_layout_is_sequence_first(tmp_path):
    seq = np.random.default_rng(0).integers(0, 256, (3, 7, 64, 64), dtype=np.uint8)  # (N, T, H, W)
    np.savez_compressed(tmp_path / "svg_test_set_40.npz", sequences=seq, persons=np.array([21, 22, 23]),
                        actions=np.array(["boxing"] * 3))
    np.testing.assert_array_equal(load_sequences_npz(tmp_path / "svg_test_set_40.npz")[:, :, 0], seq)
