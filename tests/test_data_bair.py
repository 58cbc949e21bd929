"""BAIR end to end: TFRecord files in the real framing holding tf.train.Example messages, checked against independent
implementations (a bit-by-bit CRC32C, TensorBoard's TFRecord writer, the protobuf runtime with the Example schema)."""

from __future__ import annotations

import io
import struct

import imageio.v3 as iio
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tensorboard.summary.writer.record_writer import RecordWriter

from srvp.cli.main import main
from srvp.config import DataConfig
from srvp.data import build_train_dataset, load_test_set, load_val_set
from srvp.data.bair import find_files
from srvp.data.storage import VideoStore, split_train_val
from srvp.data.tfrecord import make_example, masked_crc32c, parse_example, read_records, write_records
from srvp.errors import DataError

T = 30


# ----------------------------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------------------------


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one bit at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def example_class():
    """tf.train.Example built with the protobuf runtime from its schema (example.proto / feature.proto)."""
    f = descriptor_pb2.FileDescriptorProto(name="srvp_test_example.proto", package="srvptest", syntax="proto3")
    label_rep = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    label_opt = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    types = descriptor_pb2.FieldDescriptorProto
    for name, tp in (("BytesList", types.TYPE_BYTES), ("FloatList", types.TYPE_FLOAT), ("Int64List", types.TYPE_INT64)):
        m = f.message_type.add(name=name)
        m.field.add(name="value", number=1, type=tp, label=label_rep)
    feature = f.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (field, tp) in enumerate((("bytes_list", "BytesList"), ("float_list", "FloatList"),
                                          ("int64_list", "Int64List")), start=1):
        feature.field.add(name=field, number=number, type=types.TYPE_MESSAGE, type_name=f".srvptest.{tp}",
                          label=label_opt, oneof_index=0)
    features = f.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=types.TYPE_STRING, label=label_opt)
    entry.field.add(name="value", number=2, type=types.TYPE_MESSAGE, type_name=".srvptest.Feature", label=label_opt)
    features.field.add(name="feature", number=1, type=types.TYPE_MESSAGE,
                       type_name=".srvptest.Features.FeatureEntry", label=label_rep)
    example = f.message_type.add(name="Example")
    example.field.add(name="features", number=1, type=types.TYPE_MESSAGE, type_name=".srvptest.Features",
                      label=label_opt)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("srvptest.Example"))


Example = example_class()


def bair_example(frames: np.ndarray, encoding: str, rng: np.random.Generator) -> bytes:
    """A softmotion30_44k-like example (protobuf runtime): frames (T, 64, 64, 3) stored raw, as PNG or JPEG, plus
    the other keys of the real files."""
    ex = Example()
    for t, frame in enumerate(frames):
        if encoding == "raw":
            data = frame.tobytes()
        else:
            buffer = io.BytesIO()
            iio.imwrite(buffer, frame, extension=".png" if encoding == "png" else ".jpg")
            data = buffer.getvalue()
        ex.features.feature[f"{t}/image_aux1/encoded"].bytes_list.value.append(data)
        ex.features.feature[f"{t}/image_main/encoded"].bytes_list.value.append(b"\x00" * 10)
        ex.features.feature[f"{t}/action"].float_list.value.extend(rng.normal(size=4).tolist())
        ex.features.feature[f"{t}/endeffector_pos"].float_list.value.extend(rng.normal(size=3).tolist())
    return ex.SerializeToString()


def write_tfrecord_reference(path, records) -> None:
    """TFRecord framing written by TensorBoard's RecordWriter (its own CRC32C), not by our code."""
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        for record in records:
            writer.write(record)


def smooth_frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """Frames (n, 64, 64, 3) that survive JPEG approximately: smooth gradients with a per-frame offset."""
    y, x = np.mgrid[:64, :64]
    base = np.stack([x * 2, y * 2, (x + y)], axis=-1)
    offsets = rng.integers(0, 60, size=(n, 1, 1, 3))
    return np.clip(base[None] + offsets, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------
# Format tests
# ----------------------------------------------------------------------------------------------------------------


def test_crc32c_matches_the_standard_and_a_bitwise_implementation():
    assert crc32c_bitwise(b"123456789") == 0xE3069283  # the CRC-32C check value
    rng = np.random.default_rng(0)
    for n in (0, 1, 8, 100, 1000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        crc = crc32c_bitwise(data)
        assert masked_crc32c(data) == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_record_framing_matches_tensorboard(tmp_path):
    records = [b"", b"a", bytes(range(256)) * 50]
    write_tfrecord_reference(tmp_path / "ref.tfrecords", records)
    assert list(read_records(tmp_path / "ref.tfrecords")) == records
    write_records(tmp_path / "ours.tfrecords", records)
    assert (tmp_path / "ours.tfrecords").read_bytes() == (tmp_path / "ref.tfrecords").read_bytes()


def test_example_parsing_matches_protobuf():
    ex = Example()
    ex.features.feature["0/image_aux1/encoded"].bytes_list.value.extend([b"\x00\xff" * 700, b""])
    ex.features.feature["0/action"].float_list.value.extend([1.5, -2.25, 1e-3])
    ex.features.feature["ids"].int64_list.value.extend([0, -3, 2**40, -(2**62)])
    ex.features.feature["empty"].bytes_list.SetInParent()
    parsed = parse_example(ex.SerializeToString())
    assert parsed["0/image_aux1/encoded"] == [b"\x00\xff" * 700, b""]
    np.testing.assert_allclose(parsed["0/action"], [1.5, -2.25, 1e-3], rtol=1e-7)
    assert parsed["ids"] == [0, -3, 2**40, -(2**62)]
    assert parsed["empty"] == []
    ours = make_example({"a": [b"xyz"], "b": [0.5, 2.0], "c": [-1, 5]})
    back = Example.FromString(ours)
    assert list(back.features.feature["a"].bytes_list.value) == [b"xyz"]
    assert list(back.features.feature["b"].float_list.value) == [0.5, 2.0]
    assert list(back.features.feature["c"].int64_list.value) == [-1, 5]


# ----------------------------------------------------------------------------------------------------------------
# Conversion end to end
# ----------------------------------------------------------------------------------------------------------------

TRAIN_FILES = {"traj_0_to_2.tfrecords": ("raw", 3), "traj_3_to_4.tfrecords": ("png", 2),
               "traj_10_to_11.tfrecords": ("jpeg", 2)}


@pytest.fixture(scope="module")
def bair(tmp_path_factory):
    rng = np.random.default_rng(1)
    source = tmp_path_factory.mktemp("bair_source")
    frames = {}
    for split, files in (("train", TRAIN_FILES), ("test", {"traj_0_to_3.tfrecords": ("raw", 4)})):
        folder = source / "softmotion30_44k" / split
        folder.mkdir(parents=True)
        for name, (encoding, count) in files.items():
            videos = [smooth_frames(rng, T) if encoding == "jpeg" else rng.integers(0, 256, (T, 64, 64, 3), np.uint8)
                      for _ in range(count)]
            write_tfrecord_reference(folder / name, [bair_example(v, encoding, rng) for v in videos])
            for k, v in enumerate(videos):
                frames[f"{split}/{name}/{k:03d}"] = (v, encoding)
    out = tmp_path_factory.mktemp("bair_out")
    assert main(["data", "bair", "convert", str(source), "--out", str(out), "--no-progress"]) == 0
    return source, out, frames


def test_conversion_keeps_frames_order_and_values(bair):
    _, out, frames = bair
    train = VideoStore(out, "train")
    # natural file order: traj_3_to_4 before traj_10_to_11
    assert train.names == [f"{f}/{k:03d}" for f, n in (("traj_0_to_2.tfrecords", 3), ("traj_3_to_4.tfrecords", 2),
                                                         ("traj_10_to_11.tfrecords", 2)) for k in range(n)]
    assert train.frames.shape == (7 * T, 3, 64, 64)
    for split in ("train", "test"):
        store = VideoStore(out, split)
        for i, name in enumerate(store.names):
            source, encoding = frames[f"{split}/{name}"]
            expected = source.transpose(0, 3, 1, 2)
            if encoding == "jpeg":
                assert np.abs(store.video(i).astype(int) - expected).mean() < 3
            else:
                np.testing.assert_array_equal(store.video(i), expected)


def test_splits_and_loaders(bair):
    _, out, frames = bair
    cfg = DataConfig(dataset="bair", data_dir=str(out), seq_len=12, test_seq_len=30, val_sequences=4)
    test = load_test_set(cfg)
    assert test.shape == (4, 30, 3, 64, 64) and test.dtype == np.uint8
    for i in range(4):
        np.testing.assert_array_equal(test[i], frames[f"test/traj_0_to_3.tfrecords/{i:03d}"][0].transpose(0, 3, 1, 2))
    store = VideoStore(out, "train")
    train_ids, val_ids = split_train_val(store.names, 0.05, 42)
    assert len(val_ids) == 1
    dataset = build_train_dataset(cfg, seed=0)
    for index in range(10):
        clip = dataset[index].numpy()
        assert clip.shape == (12, 3, 64, 64)
        matches = [(i, s) for i in train_ids for s in range(T - 12 + 1)
                   if np.array_equal(store.video(i)[s:s + 12], clip)]
        assert len(matches) == 1  # a window of exactly one training video, never of the validation video
    val = load_val_set(cfg, seed=5)
    # distinct windows only: the held-out 30-frame video holds one 30-frame window (a warning says so)
    assert val.shape[1:] == (30, 3, 64, 64) and 1 <= len(val) <= 4 and len({c.tobytes() for c in val}) == len(val)
    np.testing.assert_array_equal(val[0], store.video(val_ids[0]))


def test_rerun_skips_and_verify_reports(bair, capsys):
    source, out, _ = bair
    assert main(["data", "bair", "convert", str(source), "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out.count("already converted, skipping") == 2
    assert main(["data", "bair", "verify", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train: 7 videos, 210 frames of 3x64x64 uint8" in printed and "test: 4 videos, 120 frames" in printed


@pytest.mark.parametrize("damage, message", [
    ("data_crc", "broken data checksum at record 1"),
    ("length_crc", "broken length checksum at record 0"),
    ("truncate", "truncated TFRecord data at record 1"),
    ("missing_key", "missing key '0/image_aux1/encoded'"),
])
def test_bad_records_are_one_line_errors_naming_the_file(tmp_path, capsys, damage, message):
    rng = np.random.default_rng(2)
    folder = tmp_path / "softmotion30_44k"
    (folder / "test").mkdir(parents=True)
    (folder / "train").mkdir()
    records = [bair_example(rng.integers(0, 256, (3, 64, 64, 3), np.uint8), "raw", rng) for _ in range(2)]
    if damage == "missing_key":
        records[0] = make_example({"0/image_main/encoded": [b"x"]})
    write_tfrecord_reference(folder / "train" / "bad.tfrecords", records)
    write_tfrecord_reference(folder / "test" / "ok.tfrecords", records[1:])
    path = folder / "train" / "bad.tfrecords"
    data = bytearray(path.read_bytes())
    first = 12 + struct.unpack("<Q", data[:8])[0] + 4
    if damage == "data_crc":
        data[first + 12 + 100] ^= 1
    elif damage == "length_crc":
        data[0] ^= 1
    elif damage == "truncate":
        data = data[:first + 500]
    path.write_bytes(bytes(data))
    assert main(["data", "bair", "convert", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.tfrecords" in err and message in err
    assert not (tmp_path / "out" / "train").exists()
    with pytest.raises(DataError):
        VideoStore(tmp_path / "out", "train")


def test_missing_folders(tmp_path):
    with pytest.raises(DataError, match="no TFRecord files"):
        find_files(tmp_path)
    assert main(["data", "bair", "convert", str(tmp_path), "--out", str(tmp_path / "o")]) == 2


def test_short_training_run_on_converted_bair(bair, tmp_path):
    _, out, _ = bair
    run_dir = tmp_path / "run"
    assert main(["train", "--preset", "bair", "--data-dir", str(out), "--filters", "4", "--batch-size", "2",
                 "--steps", "2", "--decay-steps", "0", "--seq-len", "6", "--test-seq-len", "8",
                 "--val-interval", "2", "--val-sequences", "2", "--val-samples", "1", "--out-dir", str(run_dir),
                 "--no-progress"]) == 0
    assert (run_dir / "best.pt").is_file() and (run_dir / "config.json").is_file()
