"""Models by name and the Hub layout: save -> load is exact, tampered or mismatched files are refused with one line
and nothing executed, unknown names and missing offline repositories are one-line errors, the authors' folders load
as they are, and the shipped model predicts better than a blank frame."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp import SRVP, Predictor, RunConfig
from srvp.cli.main import main
from srvp.errors import CheckpointError
from srvp.pretrained import SHIPPED, WEIGHTS_FILE, available, load_pretrained, save_pretrained
from srvp.training.checkpoint import atomic_torch_save, make_checkpoint, read_checkpoint
from tests.conftest import tiny_model_config

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "official-srvp"


def tiny_predictor(seed: int = 0) -> Predictor:
    torch.manual_seed(seed)
    cfg = RunConfig(model=tiny_model_config())
    model = SRVP(cfg.model)
    for p in model.parameters():  # weights far from their initial values, so that a wrong load shows
        p.data.add_(0.05 * torch.randn_like(p))
    return Predictor(model, cfg, device="cpu")


def predictions(predictor: Predictor) -> torch.Tensor:
    torch.manual_seed(5)
    clip = torch.rand(2, 3, 1, 64, 64)
    with torch.no_grad():
        return predictor.predict(clip, horizon=3, n_samples=2)


def test_save_then_load_gives_bit_identical_predictions(tmp_path):
    predictor = tiny_predictor()
    folder = predictor.save_pretrained(tmp_path / "model", card="# tiny\n")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not list(tmp_path.glob(".model.partial-*"))  # the staging folder was renamed into place
    loaded = Predictor.from_pretrained(folder, device="cpu")
    assert loaded.config == predictor.config
    assert torch.equal(predictions(loaded), predictions(predictor))
    record = load_pretrained(folder)
    assert isinstance(record.model, SRVP) and record.config == predictor.config and not record.model.training


def test_half_precision_storage_is_half_the_size_and_close(tmp_path):
    predictor = tiny_predictor()
    full = save_pretrained(predictor.model, predictor.config, tmp_path / "fp32")
    half = save_pretrained(predictor.model, predictor.config, tmp_path / "fp16", dtype="float16")
    assert (half / WEIGHTS_FILE).stat().st_size < 0.6 * (full / WEIGHTS_FILE).stat().st_size
    a, b = load_pretrained(full).model.state_dict(), load_pretrained(half).model.state_dict()
    for k, v in a.items():
        assert b[k].dtype == v.dtype
        if v.is_floating_point():
            assert torch.allclose(v, b[k], rtol=1e-3, atol=1e-4), k


def test_training_checkpoint_and_hub_folder_convert_both_ways(tmp_path, capsys):
    predictor = tiny_predictor()
    checkpoint = tmp_path / "run.pt"
    atomic_torch_save(make_checkpoint(predictor.model, predictor.config, 7), checkpoint)
    assert main(["pretrained", "convert", str(checkpoint), str(tmp_path / "hub"), "--dtype", "float32"]) == 0
    assert main(["pretrained", "convert", str(tmp_path / "hub"), str(tmp_path / "back.pt")]) == 0
    back = read_checkpoint(tmp_path / "back.pt")
    assert back["step"] == 7 and "optimizer" not in back
    for k, v in predictor.model.state_dict().items():
        assert torch.equal(back["model"][k], v), k
    assert main(["pretrained", "convert", str(checkpoint), str(tmp_path / "hub")]) == 2  # no silent overwrite
    assert "already exists" in capsys.readouterr().err


def _rewrite_header(path: Path, edit) -> None:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n:])


@pytest.mark.parametrize("tamper", ["offsets", "shape", "garbage", "truncated", "flipped-value"])
def test_tampered_weights_are_refused_with_one_line(tmp_path, tamper, capsys):
    folder = tiny_predictor().save_pretrained(tmp_path / "model")
    weights = folder / WEIGHTS_FILE
    key = next(k for k in json.loads(weights.read_bytes()[8:8 + struct.unpack("<Q", weights.read_bytes()[:8])[0]])
               if k != "__metadata__")
    if tamper == "offsets":
        _rewrite_header(weights, lambda h: h[key].update(data_offsets=[0, 10 ** 9]))
    elif tamper == "shape":
        _rewrite_header(weights, lambda h: h[key].update(shape=[3, 3]))
    elif tamper == "garbage":
        weights.write_bytes(struct.pack("<Q", 40) + b"{import os; os.system('touch pwned')}" + b"\0" * 64)
    elif tamper == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:  # one byte of the tensor data (a well-formed file whose values changed)
        data = bytearray(weights.read_bytes())
        data[-3] ^= 0x40
        weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as error:
        load_pretrained(folder)
    assert "\n" not in str(error.value) and str(folder) in str(error.value)
    assert main(["predict", "--checkpoint", str(folder), "--input", str(tmp_path / "none.gif")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_a_config_that_does_not_match_the_weights_is_refused(tmp_path):
    folder = tiny_predictor().save_pretrained(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["state_dim"] = 9  # other shapes
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match"):
        load_pretrained(folder)
    config["model"]["state_dim"] = tiny_model_config().state_dim
    config["model"]["obs_scale"] = 0.5  # same shapes, another model: caught by the weights' own record
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match"):
        load_pretrained(folder)


def test_unknown_names_and_missing_offline_repositories_are_one_line_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(CheckpointError) as error:
        load_pretrained("no-such-model")
    assert "known names" in str(error.value) and all(name in str(error.value) for name in SHIPPED)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="offline") as error:
        load_pretrained("someone/srvp-model-that-is-not-cached")
    assert "\n" not in str(error.value)
    assert main(["predict", "--checkpoint", "someone/srvp-model-that-is-not-cached", "--input", "x.gif"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_cached_hub_repository_loads_offline(tmp_path, monkeypatch):
    """A repository in the Hub cache (laid out as huggingface_hub lays it) loads with HF_HUB_OFFLINE=1."""
    predictor = tiny_predictor()
    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-srvp"
    commit = "0" * 40
    save_pretrained(predictor.model, predictor.config, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    loaded = Predictor.from_pretrained("someone/tiny-srvp", device="cpu")
    assert torch.equal(predictions(loaded), predictions(predictor))


def test_pretrained_list_names_every_shipped_model(capsys):
    assert main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out
    for name, model in SHIPPED.items():
        assert name in out and str(model.path) in out


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="the authors' checkpoints are not next to the checkout")
def test_the_authors_folder_loads_as_it_is_and_imports_to_the_hub_layout(tmp_path, capsys):
    folder = OFFICIAL / "dcgan-mmnist"
    vectors = np.load(folder / "vectors.npz")
    x_cond = torch.from_numpy(vectors["x_cond"]).transpose(0, 1)
    expected = torch.from_numpy(vectors["prediction"]).transpose(0, 1)
    assert main(["import-official", str(folder), "--out", str(tmp_path / "hub")]) == 0
    for source in (folder, tmp_path / "hub"):
        model = load_pretrained(source).model
        with torch.no_grad():
            prediction = model.predict(x_cond, expected.shape[1], use_mean=True)[:, 0].clamp(0, 1)
        assert (prediction - expected).abs().max() < 1e-4, source


@pytest.mark.skipif(not available(), reason="no shipped model installed")
@pytest.mark.parametrize("name", [m.name for m in available()])
def test_the_shipped_model_loads_offline_and_beats_a_blank_frame(name, monkeypatch):
    from srvp.data import load_test_set, to_float
    from srvp.evaluation.metrics import psnr

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    predictor = Predictor.from_pretrained(name, device="cpu")
    cfg = predictor.config.data
    cfg.test_sequences = 8
    clips = to_float(torch.as_tensor(load_test_set(cfg)))
    cond, horizon = cfg.cond_frames, cfg.test_seq_len - cfg.cond_frames
    torch.manual_seed(0)
    with torch.no_grad():
        futures = predictor.predict(clips[:, :cond], horizon=horizon, n_samples=10)
    truth = clips[:, cond:]
    best = psnr(futures, truth.unsqueeze(1).expand_as(futures)).mean(-1).max(1).values  # (B,)
    blank = psnr(torch.zeros_like(truth), truth).mean(-1)
    # the card: +0.49 dB best of 20 on 100 clips; here best of 10 on 8 clips (measured +0.4 to +0.5)
    assert best.mean() > blank.mean() + 0.2


# ----------------------------------------------------------------------------------------------------------------
# Overwriting: only what srvp wrote, never a user's files (reliability issue 21, item 1)
# ----------------------------------------------------------------------------------------------------------------


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (relative path -> bytes, None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_pretrained(folder).model.state_dict()


def test_overwrite_refuses_a_folder_with_anything_srvp_did_not_write(tmp_path, capsys):
    from srvp.errors import SrvpError

    checkpoint = tmp_path / "run.pt"
    atomic_torch_save(make_checkpoint(tiny_predictor().model, tiny_predictor().config, 3), checkpoint)
    users = tmp_path / "users"
    (users / "photos").mkdir(parents=True)
    (users / "notes.txt").write_text("keep me")
    (users / "photos" / "a.jpg").write_bytes(b"\xff\xd8 a photo")
    model_plus = save_pretrained(tiny_predictor().model, tiny_predictor().config, tmp_path / "model_plus")
    (model_plus / "notes.txt").write_text("mine")
    authors = tmp_path / "authors"  # the authors' layout: a config.json that srvp did not write
    authors.mkdir()
    (authors / "config.json").write_text('{"nx": 64}')
    (authors / "model.pt").write_bytes(b"weights")
    user_pt = tmp_path / "mine.pt"
    user_pt.write_bytes(b"a file of the user that happens to end in .pt")
    for out, fragment in ((users, "no config.json of an earlier run"), (model_plus, "'notes.txt' is not an output"),
                          (authors, "config.json was not written by srvp"), (user_pt, "not an srvp checkpoint")):
        before = _tree(tmp_path)
        assert main(["pretrained", "convert", str(checkpoint), str(out), "--overwrite"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"srvp pretrained: error: {out}: ") and fragment in err[0], err
        if out.is_dir():
            with pytest.raises(SrvpError, match=fragment):
                tiny_predictor(1).save_pretrained(out, overwrite=True)
        assert _tree(tmp_path) == before  # exactly as it was, and no staging folder left beside it


def test_overwrite_replaces_a_model_folder_and_nothing_else(tmp_path, monkeypatch, capsys):
    old, new = tiny_predictor(0), tiny_predictor(1)
    checkpoint = tmp_path / "new.pt"
    atomic_torch_save(make_checkpoint(new.model, new.config, 9), checkpoint)
    (tmp_path / "beside.txt").write_text("a neighbour")
    folder = old.save_pretrained(tmp_path / "model", card="# old\n")
    assert main(["pretrained", "convert", str(checkpoint), str(folder), "--overwrite"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # the new run's files
    assert all(torch.equal(v, new.model.state_dict()[k]) for k, v in _weights(folder).items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beside.txt", "model", "new.pt"]

    # "." (the current directory) and a Python caller: the files are replaced inside; the process stays in it
    monkeypatch.chdir(folder)
    inode = Path.cwd().stat().st_ino
    old.save_pretrained(".", overwrite=True, card="# again\n")
    assert all(torch.equal(v, old.model.state_dict()[k]) for k, v in _weights(folder).items())
    assert main(["pretrained", "convert", str(checkpoint), ".", "--overwrite"]) == 0, capsys.readouterr().err
    assert Path.cwd().stat().st_ino == inode and Path(".").resolve() == folder.resolve()
    assert sorted(p.name for p in Path(".").iterdir()) == ["config.json", "model.safetensors"]  # no staging left
    assert all(torch.equal(v, new.model.state_dict()[k]) for k, v in _weights(Path(".")).items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beside.txt", "model", "new.pt"]

    # ".." holds the current directory (and beside.txt): refused, nothing changed
    before = _tree(tmp_path)
    assert main(["pretrained", "convert", str(checkpoint), "..", "--overwrite"]) == 2
    assert "..: the folder holds other files" in capsys.readouterr().err and _tree(tmp_path) == before

    # an srvp checkpoint named as OUT.pt is replaced
    target = tmp_path / "old.pt"
    atomic_torch_save(make_checkpoint(old.model, old.config, 1), target)
    assert main(["pretrained", "convert", str(folder), str(target), "--overwrite"]) == 0
    assert all(torch.equal(v, new.model.state_dict()[k]) for k, v in read_checkpoint(target)["model"].items())


# ----------------------------------------------------------------------------------------------------------------
# Sharded weights: the Hub's model-0000N-of-0000M.safetensors + model.safetensors.index.json (issue 22)
# ----------------------------------------------------------------------------------------------------------------

SHARD = 48 * 1024  # the tiny model holds 183 KB of weights, its largest tensor 40 KB: four or five shards


def _shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("model-*-of-*.safetensors"))


def test_sharded_weights_are_written_and_read_back_bit_identically(tmp_path):
    from srvp.pretrained import INDEX_FILE, SHARD_NAME

    predictor = tiny_predictor()
    folder = save_pretrained(predictor.model, predictor.config, tmp_path / "sharded", step=3, max_shard_bytes=SHARD)
    shards = _shards(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", INDEX_FILE, *(p.name for p in shards)])
    assert len(shards) >= 3 and all(SHARD_NAME.match(p.name) for p in shards)
    assert [p.name for p in shards] == [f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                                        for i in range(1, len(shards) + 1)]
    assert all(p.stat().st_size <= SHARD for p in shards), [p.stat().st_size for p in shards]
    index = json.loads((folder / INDEX_FILE).read_text())
    state = predictor.model.state_dict()
    assert set(index["weight_map"]) == set(state) and set(index["weight_map"].values()) == {p.name for p in shards}
    assert index["metadata"]["total_size"] == sum(v.numel() * v.element_size() for v in state.values())
    loaded = load_pretrained(folder)
    assert loaded.step == 3 and loaded.config == predictor.config
    back = loaded.model.state_dict()
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in state.items())
    assert torch.equal(predictions(Predictor.from_pretrained(folder, device="cpu")), predictions(predictor))
    # the same digest as one file of the same weights; weights that fit one shard stay one model.safetensors
    single = save_pretrained(predictor.model, predictor.config, tmp_path / "single")
    whole = save_pretrained(predictor.model, predictor.config, tmp_path / "fits", max_shard_bytes=1 << 20)
    assert sorted(p.name for p in whole.iterdir()) == ["config.json", "model.safetensors"]
    digest = _header(single / WEIGHTS_FILE)["__metadata__"]["srvp_content_sha256"]
    assert all(_header(p)["__metadata__"]["srvp_content_sha256"] == digest for p in shards)
    assert index["metadata"]["srvp_content_sha256"] == digest
    # half precision shards, and a path to one shard or to the index loads the folder
    half = save_pretrained(predictor.model, predictor.config, tmp_path / "half", dtype="float16",
                           max_shard_bytes=SHARD // 2)
    for source in (half, _shards(half)[0], half / INDEX_FILE):
        assert all(torch.allclose(load_pretrained(source).model.state_dict()[k], v, rtol=1e-3, atol=1e-4)
                   for k, v in state.items() if v.is_floating_point())
    with pytest.raises(Exception, match="max_shard_bytes"):
        save_pretrained(predictor.model, predictor.config, tmp_path / "bad", max_shard_bytes=0)


def _header(path: Path) -> dict:
    data = path.read_bytes()
    return json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])


@pytest.mark.parametrize("tamper", ["missing-shard", "flipped-value", "moved-tensor", "foreign-shard", "path-escape",
                                    "no-weight-map"])
def test_damaged_sharded_weights_are_refused_with_one_line(tmp_path, tamper, capsys):
    from srvp.pretrained import INDEX_FILE

    predictor = tiny_predictor()
    folder = save_pretrained(predictor.model, predictor.config, tmp_path / "model", max_shard_bytes=SHARD)
    shards, index_path = _shards(folder), folder / INDEX_FILE
    index = json.loads(index_path.read_text())
    if tamper == "missing-shard":
        shards[1].unlink()
    elif tamper == "flipped-value":
        data = bytearray(shards[-1].read_bytes())
        data[-3] ^= 0x40
        shards[-1].write_bytes(bytes(data))
    elif tamper == "moved-tensor":
        key = next(k for k, v in index["weight_map"].items() if v == shards[0].name)
        index["weight_map"][key] = shards[1].name
        index_path.write_text(json.dumps(index))
    elif tamper == "foreign-shard":  # the same layout from another model's save
        other = save_pretrained(tiny_predictor(1).model, predictor.config, tmp_path / "other", max_shard_bytes=SHARD)
        shards[1].write_bytes((other / shards[1].name).read_bytes())
    elif tamper == "path-escape":
        index["weight_map"] = {k: "../" + v for k, v in index["weight_map"].items()}
        index_path.write_text(json.dumps(index))
    else:
        index_path.write_text(json.dumps({"metadata": {}}))
    with pytest.raises(CheckpointError) as error:
        load_pretrained(folder)
    assert "\n" not in str(error.value) and str(folder) in str(error.value)
    assert main(["predict", "--checkpoint", str(folder), "--input", str(tmp_path / "none.gif")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_overwrite_switches_between_one_file_and_shards_and_keeps_users_files(tmp_path, monkeypatch):
    from srvp.errors import SrvpError
    from srvp.pretrained import INDEX_FILE

    old, new = tiny_predictor(0), tiny_predictor(1)
    folder = save_pretrained(old.model, old.config, tmp_path / "model", max_shard_bytes=SHARD, card="# old\n")
    n_shards = len(_shards(folder))
    save_pretrained(new.model, new.config, folder, overwrite=True)  # sharded -> one file: no shard left
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert all(torch.equal(v, new.model.state_dict()[k]) for k, v in _weights(folder).items())
    save_pretrained(old.model, old.config, folder, overwrite=True, max_shard_bytes=SHARD)  # and back
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", INDEX_FILE,
                                                               *(p.name for p in _shards(folder))])
    assert len(_shards(folder)) == n_shards
    monkeypatch.chdir(folder)  # in place (the current directory): the old shards are removed one by one
    new.save_pretrained(".", overwrite=True)
    assert sorted(p.name for p in Path(".").iterdir()) == ["config.json", "model.safetensors"]
    save_pretrained(old.model, old.config, ".", overwrite=True, max_shard_bytes=SHARD)
    assert sorted(p.name for p in Path(".").iterdir()) == sorted(["config.json", INDEX_FILE,
                                                                  *(p.name for p in _shards(Path(".")))])
    assert all(torch.equal(v, old.model.state_dict()[k]) for k, v in _weights(Path(".")).items())
    (folder / "notes.txt").write_text("mine")  # a user's file beside the shards: refused, nothing changed
    before = _tree(folder)
    with pytest.raises(SrvpError, match="'notes.txt' is not an output"):
        save_pretrained(new.model, new.config, folder, overwrite=True, max_shard_bytes=SHARD)
    assert _tree(folder) == before


def test_the_papers_model_fits_three_files_of_16_mib(tmp_path):
    """benchmarks/gpu_check.py returns at most 8 files of 16 MiB from a GPU machine: the paper's SM-MNIST model
    (40.7 MiB in float32) is packed into three shards, read back bit-identically."""
    from srvp.config import preset
    from srvp.models import build_model
    from srvp.pretrained import SHARD_BYTES_16MIB

    cfg = preset("smmnist-cpu")
    torch.manual_seed(0)
    model = build_model(cfg.model)
    folder = save_pretrained(model, cfg, tmp_path / "model", max_shard_bytes=SHARD_BYTES_16MIB)
    shards = _shards(folder)
    assert len(shards) == 3 and all(p.stat().st_size <= SHARD_BYTES_16MIB for p in shards)
    back = load_pretrained(folder).model.state_dict()
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())


def test_a_folder_of_a_cached_hub_repository_loads_in_either_layout(tmp_path, monkeypatch, shared_dir):
    """owner/name/folder (or subfolder=) reads one model of a repository holding several, in the Hub layout or in the
    authors' (config.json + model.pt, as the public mirror of their models holds them), offline from the cache; a
    folder the repository does not have, or one that leaves it, is a one-line error."""
    import shutil

    predictor = tiny_predictor()
    cache = tmp_path / "hub"
    repo = cache / "models--someone--mirror"
    commit = "1" * 40
    snapshot = repo / "snapshots" / commit
    save_pretrained(predictor.model, predictor.config, snapshot / "tiny")
    authors = shared_dir / "data" / "official-srvp" / "vgg-kth"
    (snapshot / "kth").mkdir(parents=True)
    for name in ("config.json", "model.pt"):
        shutil.copy(authors / name, snapshot / "kth" / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert torch.equal(predictions(Predictor.from_pretrained("someone/mirror/tiny", device="cpu")),
                       predictions(predictor))
    assert torch.equal(predictions(Predictor.from_pretrained("someone/mirror", subfolder="tiny", device="cpu")),
                       predictions(predictor))
    kth = load_pretrained("someone/mirror/kth")
    direct = load_pretrained(authors)
    assert kth.config.data.dataset == "kth" and kth.source == "someone/mirror (folder kth)"
    for k, v in direct.model.state_dict().items():
        assert torch.equal(kth.model.state_dict()[k], v), k
    # offline, a folder the cached snapshot lacks may exist upstream: not cached, with the command that fetches it
    with pytest.raises(CheckpointError, match=r"someone/mirror, folder bair: .*not in the local cache \(offline\).*"
                                              r"download someone/mirror --include 'bair/\*'"):
        load_pretrained("someone/mirror/bair")
    with pytest.raises(CheckpointError, match="must stay inside the repository"):
        load_pretrained("someone/mirror", subfolder="../../etc")
    # online, the Hub's answer without that folder means the repository has none
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *args, **kwargs: str(snapshot))
    with pytest.raises(CheckpointError, match="someone/mirror, folder bair: the repository has no folder 'bair'"):
        load_pretrained("someone/mirror/bair")
