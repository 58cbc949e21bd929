"""Property-based tests (hypothesis): every valid configuration of the data generators and loaders yields clips of
the declared shape, dtype and range, as a pure function of (seed, index); configurations survive every round trip
(dict, JSON, command line) and invalid ones fail only with a ConfigError."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from srvp.config import PRESETS, RunConfig, add_config_arguments, apply_overrides, preset
from srvp.data.idx import load_embedded_digits
from srvp.data.moving_mnist import FRAME_SIZE, MovingMNIST, make_sequence, trajectory
from srvp.data.pendulum import Pendulum
from srvp.data.storage import MemoryStore, StoreClipDataset, StoreWriter, VideoStore
from srvp.errors import ConfigError, DataError
from srvp.io import fit_frames, read_clip

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DIGITS = load_embedded_digits("train")[:200]
seeds = st.integers(0, 2**32 - 1)
indices = st.integers(0, 2**40)


# ----------------------------------------------------------------------------------------------------------------
# Moving MNIST
# ----------------------------------------------------------------------------------------------------------------


@FEW
@given(num_digits=st.integers(1, 3), max_speed=st.integers(0, 5), seq_len=st.integers(2, 30),
       deterministic=st.booleans(), seed=seeds, index=indices)
def test_moving_mnist_clips_have_the_declared_shape_and_are_pure_functions(num_digits, max_speed, seq_len,
                                                                           deterministic, seed, index):
    dataset = MovingMNIST(DIGITS, seq_len, num_digits, max_speed, deterministic, seed)
    clip = dataset[index]
    assert clip.shape == (seq_len, 1, FRAME_SIZE, FRAME_SIZE) and clip.dtype == torch.uint8
    assert torch.equal(clip, MovingMNIST(DIGITS, seq_len, num_digits, max_speed, deterministic, seed)[index])
    # Every digit stays whole inside the frame: with one digit each frame holds exactly the digit's pixels.
    frames, latents, chosen = make_sequence(np.random.default_rng([seed, index]), DIGITS, seq_len, 1, max_speed,
                                            deterministic)
    assert np.array_equal(frames.reshape(seq_len, -1).sum(1, dtype=np.int64),
                          np.full(seq_len, DIGITS[chosen[0]].sum(dtype=np.int64)))
    assert latents[..., :2].min() >= 0 and latents[..., :2].max() <= FRAME_SIZE - DIGITS.shape[1]
    if num_digits > 1:  # digits add up and saturate: never more than the sum of the digits drawn
        full, _, idx = make_sequence(np.random.default_rng([seed, index]), DIGITS, seq_len, num_digits, max_speed,
                                     deterministic)
        total = sum(DIGITS[i].sum(dtype=np.int64) for i in idx)
        assert (full.reshape(seq_len, -1).sum(1, dtype=np.int64) <= total).all()


@FEW
@given(max_speed=st.integers(0, 5), frames=st.integers(2, 30), n=st.integers(1, 4), deterministic=st.booleans(),
       seed=seeds)
def test_trajectories_do_not_depend_on_the_frame_rate(max_speed, frames, n, deterministic, seed):
    """At integer times, a trajectory sampled every 1/n is the trajectory sampled every 1 (same generator), with
    positions always inside the frame and integer speeds bounded by max_speed."""
    limit = FRAME_SIZE - 28
    coarse = trajectory(np.random.default_rng(seed), frames, limit, max_speed, deterministic, 1.0)
    fine = trajectory(np.random.default_rng(seed), (frames - 1) * n + 1, limit, max_speed, deterministic, 1.0 / n)
    np.testing.assert_allclose(fine[::n], coarse, atol=1e-6)
    assert fine[:, :2].min() >= 0 and fine[:, :2].max() <= limit
    assert np.abs(fine[:, 2:]).max(initial=0) <= max_speed and np.array_equal(fine[:, 2:], np.rint(fine[:, 2:]))


# ----------------------------------------------------------------------------------------------------------------
# Pendulum
# ----------------------------------------------------------------------------------------------------------------


@FEW
@given(seq_len=st.integers(1, 30), seed=seeds, index=indices)
def test_pendulum_clips_have_the_declared_shape_and_are_pure_functions(seq_len, seed, index):
    clip = Pendulum(seq_len, seed)[index]
    assert clip.shape == (seq_len, 1, 16, 16) and clip.dtype == torch.uint8
    assert torch.equal(clip, Pendulum(seq_len, seed)[index])
    # The bob is visible in every frame: the brightest pixel stands well above the noise (std 0.05 * 255).
    assert (clip.reshape(seq_len, -1).max(dim=1).values >= 150).all()


# ----------------------------------------------------------------------------------------------------------------
# Stored videos
# ----------------------------------------------------------------------------------------------------------------


@st.composite
def video_collections(draw):
    channels = draw(st.sampled_from([1, 3]))
    size = draw(st.integers(1, 8))
    lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=5))
    rng = np.random.default_rng(draw(seeds))
    videos = [rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8) for n in lengths]
    seq_len = draw(st.integers(1, max(lengths)))
    return videos, seq_len


@FEW
@given(collection=video_collections(), seed=seeds, indices=st.lists(indices, min_size=1, max_size=4))
def test_store_clips_are_windows_of_long_enough_videos(collection, seed, indices):
    videos, seq_len = collection
    store = MemoryStore([f"v{i}" for i in range(len(videos))], videos)
    dataset = StoreClipDataset(store, seq_len, seed)
    for index in indices:
        clip = dataset[index].numpy()
        assert clip.shape == (seq_len, *videos[0].shape[1:]) and clip.dtype == np.uint8
        assert np.array_equal(clip, StoreClipDataset(store, seq_len, seed)[index].numpy())
        windows = [v[s:s + seq_len] for v in videos if len(v) >= seq_len for s in range(len(v) - seq_len + 1)]
        assert any(np.array_equal(clip, w) for w in windows)


@settings(max_examples=10, deadline=None)
@given(collection=video_collections(), seed=seeds, index=indices)
def test_written_store_reads_back_the_same_frames_and_clips(collection, seed, index):
    videos, seq_len = collection
    names = [f"v{i}" for i in range(len(videos))]
    with tempfile.TemporaryDirectory() as tmp:
        with StoreWriter(tmp, "train", videos[0].shape[1:]) as writer:
            for name, video in zip(names, videos):
                writer.add_video(name, video)
            writer.commit()
        stored = VideoStore(tmp, "train")
        assert stored.names == names
        for i, video in enumerate(videos):
            assert np.array_equal(stored.video(i), video)
        from_disk = StoreClipDataset(stored, seq_len, seed)[index]
        in_memory = StoreClipDataset(MemoryStore(names, videos), seq_len, seed)[index]
        assert torch.equal(from_disk, in_memory)
        del stored, from_disk  # release the memory map before the directory goes


# ----------------------------------------------------------------------------------------------------------------
# User clips (.npy) and fitting them to a model
# ----------------------------------------------------------------------------------------------------------------

PIXEL_TYPES = {"uint8": 255, "uint16": 65535, "float32": 1.0, "float64": 1.0, "bool": 1}


@FEW
@given(frames=st.integers(1, 5), height=st.integers(1, 9), width=st.integers(1, 9),
       layout=st.sampled_from(["THW", "THWC", "TCHW"]), channels=st.sampled_from([1, 3, 4]),
       dtype=st.sampled_from(sorted(PIXEL_TYPES)), seed=seeds)
def test_npy_clips_of_any_layout_and_pixel_type_read_as_unit_floats(frames, height, width, layout, channels, dtype,
                                                                    seed):
    rng = np.random.default_rng(seed)
    top = PIXEL_TYPES[dtype]
    grey = rng.random((frames, height, width)) * top
    colour = rng.random((frames, height, width, channels)) * top
    array = {"THW": grey, "THWC": colour, "TCHW": colour.transpose(0, 3, 1, 2)}[layout]
    array = (array > 0.5).astype(bool) if dtype == "bool" else array.astype(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.npy"
        np.save(path, array)
        try:
            clip = read_clip(path)
        except DataError as e:  # only a layout that cannot be told apart may be refused
            assert layout != "THW" and "ambiguous" in str(e), e
            assert {array.shape[1], array.shape[-1]} <= {1, 3, 4}
            return
    expected_channels = 1 if layout == "THW" else min(channels, 3)
    assert clip.shape == (frames, expected_channels, height, width) and clip.dtype == torch.float32
    assert clip.min() >= 0.0 and clip.max() <= 1.0
    reference = array if layout != "TCHW" else array.transpose(0, 2, 3, 1)
    reference = reference[..., None] if layout == "THW" else reference[..., :3]
    np.testing.assert_allclose(clip.numpy().transpose(0, 2, 3, 1), reference.astype(np.float64) / top, atol=1e-6)


@FEW
@given(height=st.integers(1, 40), width=st.integers(1, 40), channels=st.sampled_from([1, 3, 4]),
       to_channels=st.sampled_from([1, 3]), size=st.integers(1, 32), crop=st.booleans(), seed=seeds)
def test_fit_frames_gives_the_model_shape_in_unit_range(height, width, channels, to_channels, size, crop, seed):
    frames = torch.from_numpy(np.random.default_rng(seed).random((2, channels, height, width), dtype=np.float32))
    fitted = fit_frames(frames, size, to_channels, crop)
    assert fitted.shape == (2, to_channels, size, size)
    assert torch.isfinite(fitted).all() and fitted.min() >= 0.0 and fitted.max() <= 1.0


# ----------------------------------------------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------------------------------------------

SECTIONS = {"model": RunConfig().model, "data": RunConfig().data, "train": RunConfig().train}


def _value_strategy(field: dataclasses.Field, default):
    choices = field.metadata.get("choices")
    if choices:
        return st.sampled_from(choices)
    if field.name == "dt":
        return st.integers(1, 5).map(lambda n: 1.0 / n)
    if field.name == "channels":  # 1 or 3: any other count is refused (ModelConfig.validate)
        return st.sampled_from((1, 3))
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(0, 10**6)
    if isinstance(default, float):
        return st.floats(0.0, 1e4, allow_nan=False, allow_infinity=False)
    return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@st.composite
def config_dicts(draw):
    """A preset with some fields replaced by values of the right type (not all of them valid)."""
    data = preset(draw(st.sampled_from(sorted(PRESETS)))).to_dict()
    for section, instance in SECTIONS.items():
        for field in dataclasses.fields(instance):
            if field.metadata.get("family") not in (None, data["model"]["model"]):
                continue  # an option of the other model family is refused whatever its value
            if draw(st.integers(0, 4)) == 0:
                data[section][field.name] = draw(_value_strategy(field, getattr(instance, field.name)))
    return data


def _command_line(cfg: RunConfig) -> list[str]:
    argv = []
    for section in SECTIONS:
        for name, value in cfg.to_dict()[section].items():
            text = ("true" if value else "false") if isinstance(value, bool) else repr(value) \
                if isinstance(value, float) else str(value)
            argv.append(f"--{name.replace('_', '-')}={text}")
    return argv


# most drawn dicts are invalid combinations (assume() discards them): without the health check's exemption the test
# failed in about 2 runs of 5, before and after the seed and channel bounds
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=config_dicts())
def test_valid_configs_survive_dict_json_and_command_line_round_trips(data):
    try:
        cfg = RunConfig.from_dict(data)
    except ConfigError:
        assume(False)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    assert apply_overrides(RunConfig(), parser.parse_args(_command_line(cfg))) == cfg


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=5)


@settings(max_examples=80, deadline=None)
@given(base=st.sampled_from(sorted(PRESETS)), section=st.sampled_from([*SECTIONS, "extra"]),
       key=st.sampled_from(sorted({f.name for s in SECTIONS.values() for f in dataclasses.fields(s)}) + ["bogus"]),
       value=JSON_VALUES)
def test_any_json_value_in_any_field_is_accepted_or_a_one_line_config_error(base, section, key, value):
    data = preset(base).to_dict()
    data.setdefault(section, {})[key] = value
    try:
        cfg = RunConfig.from_dict(data, "fuzz.json")
    except ConfigError as e:
        assert str(e).startswith("fuzz.json") and "\n" not in str(e)
        return
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip(name):
    cfg = preset(name)
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
