"""The hand-written TFRecord / tf.train.Example reader (:mod:`srvp.data.tfrecord`) pinned against the ``tfrecord``
PyPI package on files in the real BAIR format (protobuf-built examples in TensorBoard's record framing), and the
measured reason it is kept (see the module docstring) checked: the package does not verify the checksums."""

from __future__ import annotations

import numpy as np
import pytest

from srvp.data.bair import IMAGE_KEY, read_video
from srvp.data.tfrecord import parse_example, read_records
from srvp.errors import DataError
from tests.test_data_bair import Example, bair_example, smooth_frames, write_tfrecord_reference

tfrecord = pytest.importorskip("tfrecord", reason="the tfrecord package is not installed (it is in the dev extra: "
                                                  "pip install -e '.[dev]')")


def other_example() -> bytes:
    """Every feature kind with several values: negative and 64-bit ints, floats, several bytes values (none ending
    in NUL bytes, which NumPy's fixed-width bytes arrays in the package would strip), an empty list."""
    ex = Example()
    ex.features.feature["ids"].int64_list.value.extend([0, -3, 2**40, -(2**62), 2**63 - 1])
    ex.features.feature["action"].float_list.value.extend([1.5, -2.25, 1e-3, 3.4e38])
    ex.features.feature["names"].bytes_list.value.extend([b"\x00\xff" * 700, b"a", b"\xff"])
    ex.features.feature["empty"].bytes_list.SetInParent()
    return ex.SerializeToString()


@pytest.fixture(scope="module")
def bair_file(tmp_path_factory):
    """A softmotion30_44k-like file: raw, PNG and JPEG frames plus the real files' other keys, an example with every
    feature kind, and an empty record."""
    rng = np.random.default_rng(0)
    records = [bair_example(rng.integers(0, 256, (4, 64, 64, 3), np.uint8), "raw", rng),
               bair_example(rng.integers(0, 256, (3, 64, 64, 3), np.uint8), "png", rng),
               bair_example(smooth_frames(rng, 2), "jpeg", rng), other_example(), b""]
    path = tmp_path_factory.mktemp("tfrecord") / "traj_0_to_4.tfrecords"
    write_tfrecord_reference(path, records)
    return path, records


def package_features(value) -> list:
    """A feature as the package returns it (one bytes value unwrapped, else a NumPy array) -> a list of values."""
    if isinstance(value, (bytes, memoryview)):
        return [bytes(value)]
    return value.tolist()


def test_records_match_the_package(bair_file):
    path, records = bair_file
    theirs = [bytes(r) for r in tfrecord.reader.tfrecord_iterator(str(path))]  # views of a reused buffer: copy
    assert list(read_records(path)) == theirs == records


def test_example_features_match_the_package(bair_file):
    path, records = bair_file
    examples = [r for r in read_records(path) if r]
    theirs = list(tfrecord.tfrecord_loader(str(path), None))
    assert len(theirs) == len(examples) + 1  # the package also yields the empty record, as an empty dict
    assert theirs[-1] == {}
    for k, (record, features) in enumerate(zip(examples, theirs)):
        ours = parse_example(record, f"record {k}")
        assert sorted(ours) == sorted(features)
        for key, value in features.items():
            if isinstance(value, np.ndarray) and value.dtype == np.float32:
                np.testing.assert_array_equal(np.asarray(ours[key], np.float32), value, err_msg=key)
            else:
                assert ours[key] == package_features(value), key


def test_bair_frames_match_the_package(bair_file):
    path, _ = bair_file
    record = next(read_records(path))  # the raw-frame example (PNG/JPEG decoding is not the reader's business)
    features = next(iter(tfrecord.tfrecord_loader(str(path), None)))
    frames = [features[IMAGE_KEY.format(t=t)] for t in range(4)]
    expected = np.stack([np.frombuffer(f, np.uint8).reshape(64, 64, 3).transpose(2, 0, 1) for f in frames])
    np.testing.assert_array_equal(read_video(record, "record 0"), expected)


def test_the_package_skips_the_checksums_this_reader_checks(bair_file, tmp_path):
    """The measured reason for keeping our reader. If this fails, the package now verifies CRCs: re-evaluate it
    (and update the docstring of srvp.data.tfrecord)."""
    path, records = bair_file
    data = bytearray(path.read_bytes())
    data[12 + 100] ^= 0xFF  # a byte inside the first record's data
    corrupt = tmp_path / "corrupt.tfrecords"
    corrupt.write_bytes(bytes(data))
    assert sum(1 for _ in tfrecord.reader.tfrecord_iterator(str(corrupt))) == len(records)
    with pytest.raises(DataError, match="broken data checksum at record 0"):
        list(read_records(corrupt))
