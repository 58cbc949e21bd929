"""Loading a checkpoint never runs code from the file, and a malformed or mismatched checkpoint gets a one-line
error that names the file and what does not match, from Python and from the command line (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp.api import Predictor
from srvp.cli.main import main
from srvp.errors import CheckpointError
from srvp.training.checkpoint import load_checkpoint, read_checkpoint
from tests.test_predict import save_tiny_checkpoint


class MarkerPayload:
    """Unpickling this object creates ``path`` (what a malicious checkpoint would do with arbitrary code)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def clip_file(tmp_path) -> Path:
    path = tmp_path / "clip.npy"
    np.save(path, (np.random.default_rng(0).random((8, 64, 64)) * 255).astype(np.uint8))
    return path


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def assert_one_line_error(rc: int, err: str, *fragments: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_malicious_pickle_is_refused_without_running(tmp_path, clip_file, capsys):
    good = save_tiny_checkpoint(tmp_path / "good.pt")
    state = torch.load(good, weights_only=True)
    state.pop("digest", None)  # edited below as another tool would: the checks under the checksum
    marker = tmp_path / "pwned"
    state["extra"] = {"note": MarkerPayload(marker)}
    evil = tmp_path / "evil.pt"
    torch.save(state, evil)

    with pytest.raises(CheckpointError, match="refused to load") as info:
        load_checkpoint(evil)
    assert str(evil) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="refused to load"):
        Predictor.from_checkpoint(evil, device="cpu")
    rc, err = run_cli(["predict", "--checkpoint", str(evil), "--input", str(clip_file),
                       "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(rc, err, str(evil), "refused to load")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()

    # The official-checkpoint importer is as careful with a state_dict carrying a payload.
    official_like = tmp_path / "model.pt"
    torch.save({"encoder.weight": torch.zeros(2), "trap": MarkerPayload(marker)}, official_like)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"nx": 64, "nc": 1, "nf": 4, "nhx": 16, "ny": 4, "nz": 4, "skipco": False,
                                  "nt_inf": 2, "nh_inf": 16, "nlayers_inf": 2, "nh_res": 16, "nlayers_res": 2,
                                  "archi": "dcgan", "n_euler_steps": 1}))
    rc, err = run_cli(["import-official", "--state-dict", str(official_like), "--config", str(config),
                       "--out", str(tmp_path / "ours.pt")], capsys)
    assert_one_line_error(rc, err, str(official_like), "refused to load")
    assert not marker.exists()

    # The payload is live: an unrestricted load would have run it (so the checks above can fail).
    torch.load(evil, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("damage", ["zero-byte", "truncated", "garbage"])
def test_damaged_file_gets_one_line_error(damage, tmp_path, clip_file, capsys):
    good = save_tiny_checkpoint(tmp_path / "good.pt")
    bad = tmp_path / f"{damage}.pt"
    data = good.read_bytes()
    bad.write_bytes({"zero-byte": b"", "truncated": data[: len(data) // 2], "garbage": b"not a checkpoint" * 9}[damage])
    # bytes that happen to start like a (legacy) pickle are corrupt data, not a refused code payload
    expected = "not a readable checkpoint (truncated or corrupt"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        load_checkpoint(bad)
    rc, err = run_cli(["predict", "--checkpoint", str(bad), "--input", str(clip_file),
                       "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(rc, err, str(bad), expected)


def test_missing_checkpoint(tmp_path, clip_file, capsys):
    rc, err = run_cli(["predict", "--checkpoint", str(tmp_path / "nope.pt"), "--input", str(clip_file)], capsys)
    assert_one_line_error(rc, err, "nope.pt", "not found")


def test_wrong_shapes_name_the_parameter(tmp_path, clip_file, capsys):
    path = save_tiny_checkpoint(tmp_path / "ckpt.pt")
    state = torch.load(path, weights_only=True)
    state.pop("digest", None)  # edited below as another tool would: the checks under the checksum
    key = next(k for k, v in state["model"].items() if k.startswith("transition.") and v.ndim == 2)
    state["model"][key] = torch.zeros(state["model"][key].shape[0] + 1, state["model"][key].shape[1])
    bad = tmp_path / "reshaped.pt"
    torch.save(state, bad)
    rc, err = run_cli(["predict", "--checkpoint", str(bad), "--input", str(clip_file)], capsys)
    assert_one_line_error(rc, err, str(bad), key, "other shapes")


def test_config_that_does_not_match_the_weights(tmp_path, clip_file, capsys):
    path = save_tiny_checkpoint(tmp_path / "ckpt.pt")
    state = torch.load(path, weights_only=True)
    state.pop("digest", None)  # edited below as another tool would: the checks under the checksum
    state["config"]["model"]["state_dim"] += 2
    bad = tmp_path / "mismatch.pt"
    torch.save(state, bad)
    rc, err = run_cli(["predict", "--checkpoint", str(bad), "--input", str(clip_file)], capsys)
    assert_one_line_error(rc, err, str(bad), "do not match", "with other shapes")

    state = torch.load(path, weights_only=True)
    state.pop("digest", None)  # edited below as another tool would: the checks under the checksum
    state["config"]["model"]["skip_connections"] = "maybe"
    invalid = tmp_path / "invalid.pt"
    torch.save(state, invalid)
    rc, err = run_cli(["predict", "--checkpoint", str(invalid), "--input", str(clip_file)], capsys)
    assert_one_line_error(rc, err, str(invalid), "skip_connections")


def test_missing_and_extra_parameters_and_nan(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "ckpt.pt")
    state = torch.load(path, weights_only=True)
    state.pop("digest", None)  # edited below as another tool would: the checks under the checksum
    dropped = sorted(state["model"])[0]
    del state["model"][dropped]
    state["model"]["surprise.weight"] = torch.zeros(1)
    bad = tmp_path / "keys.pt"
    torch.save(state, bad)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    assert "1 missing" in str(info.value) and dropped in str(info.value) and "surprise.weight" in str(info.value)

    state = torch.load(path, weights_only=True)
    state.pop("digest", None)  # edited below as another tool would: the checks under the checksum
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))
    nan = tmp_path / "nan.pt"
    torch.save(state, nan)
    with pytest.raises(CheckpointError, match=f"{key} holds NaN"):
        load_checkpoint(nan)


def test_foreign_file_points_to_import_official(tmp_path):
    plain = tmp_path / "state_dict.pt"
    torch.save({"encoder.weight": torch.zeros(3)}, plain)
    with pytest.raises(CheckpointError, match="import-official"):
        read_checkpoint(plain)


def test_good_checkpoint_loads_identically(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "ckpt.pt", seed=3)
    predictor = Predictor.from_checkpoint(path, device="cpu")
    saved = torch.load(path, weights_only=True)["model"]
    for key, value in predictor.model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def _flip_inside_largest_tensor(path: Path) -> None:
    """Flip one byte in the middle of the largest tensor's data (a zip entry stored uncompressed by torch.save)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["best.pt", "last.pt"])
def test_a_flipped_byte_in_a_checkpoint_is_detected_on_loading(tmp_path, name, clip_file, capsys):
    """torch.load checks no checksum: the content digest written with every checkpoint catches a changed value."""
    from srvp.training.checkpoint import atomic_torch_save, make_checkpoint

    loaded = load_checkpoint(save_tiny_checkpoint(tmp_path / "source.pt"))
    path = tmp_path / name
    atomic_torch_save(make_checkpoint(loaded.model, loaded.config, 5), path)
    assert read_checkpoint(path)["step"] == 5
    _flip_inside_largest_tensor(path)
    with pytest.raises(CheckpointError, match="corrupt checkpoint") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    rc, err = run_cli(["predict", "--checkpoint", str(path), "--input", str(clip_file), "--out",
                       str(tmp_path / "out")], capsys)
    assert rc == 2 and "corrupt checkpoint" in err and not (tmp_path / "out").exists()
