"""The authors' trained models by name (issue 23): ``authors-smmnist``, ``authors-kth``, ... resolve through a Hugging
Face cache laid out as ``huggingface_hub`` writes it, offline, and reproduce the outputs the authors' code gave for
the same files; a configuration that is not the name's model, a pickle that asks for code and an uncached model
offline are one-line errors; ``srvp pretrained list`` shows the shipped models and the authors' side by side.

The cached folders are built from the authors' checkpoints in ``../shared/data/official-srvp/`` (small models of the
same architectures, written by the official code, with its outputs in ``vectors.npz``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp import Predictor
from srvp.cli.main import main
from srvp.errors import CheckpointError
from srvp.pretrained import AUTHORS, AUTHORS_MIRROR, SHIPPED, available, hub_cli, load_pretrained
from tests.test_checkpoint_safety import MarkerPayload, assert_one_line_error
from tests.test_import_official import OFFICIAL, TOLERANCE, time_first_to_batch_first

pytestmark = pytest.mark.skipif(not OFFICIAL.is_dir(), reason=f"{OFFICIAL} is absent")

#: the authors' checkpoint in the shared folder that stands for each name (same options as the paper's model but the
#: layer widths), and the edits of its config.json that make it that name's model
STAND_INS = {
    "authors-smmnist": ("dcgan-mmnist", {}),
    "authors-mmnist-deterministic": ("dcgan-mmnist", {"deterministic": True}),
    "authors-kth": ("vgg-kth", {}),
    "authors-bair": ("vgg-bair", {}),
}
COMMIT = "c0ffee" + "0" * 34


def write_hub_cache(cache: Path, repo: str, files: dict[str, bytes], commit: str = COMMIT) -> Path:
    """A repository in a Hugging Face cache as ``huggingface_hub`` writes it: ``models--owner--name/blobs/<hash>``,
    ``snapshots/<commit>/<path>`` relative symbolic links to the blobs, ``refs/main`` holding the commit. Returns the
    snapshot folder."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    for name, data in files.items():
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


def authors_files(name: str, config_edits: dict | None = None, model_pt: bytes | None = None) -> dict[str, bytes]:
    """The mirror's two files of ``name`` made from its stand-in (config.json edited, model.pt replaced if given)."""
    source, edits = STAND_INS.get(name, ("vgg-kth", {}))
    options = {**json.loads((OFFICIAL / source / "config.json").read_text()), **edits, **(config_edits or {})}
    folder = AUTHORS[name].folder
    return {f"{folder}/config.json": json.dumps(options, indent=1).encode(),
            f"{folder}/model.pt": model_pt if model_pt is not None else (OFFICIAL / source / "model.pt").read_bytes()}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache in tmp_path, with HF_HUB_OFFLINE=1: nothing may come from the network."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # read by huggingface_hub when it is imported
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.mark.parametrize("name", list(STAND_INS))
def test_a_cached_authors_model_loads_by_name_and_reproduces_the_authors_outputs(name, hub_cache):
    source = STAND_INS[name][0]
    other = "bair" if name != "authors-bair" else "kth"  # another folder of the repository, not this model's
    write_hub_cache(hub_cache, AUTHORS_MIRROR, {**authors_files(name), f"{other}/config.json": b"{}"})
    predictor = Predictor.from_pretrained(name, device="cpu")

    vectors = np.load(OFFICIAL / source / "vectors.npz")
    x_cond = time_first_to_batch_first(vectors["x_cond"])
    expected = {k: time_first_to_batch_first(vectors[k]) for k in ("reconstruction", "prediction")}
    horizon = expected["prediction"].shape[1]
    with torch.no_grad():
        reconstruction = predictor.reconstruct(x_cond)
        prediction = predictor.predict(x_cond, horizon, use_mean=True)[:, 0]
    assert (reconstruction - expected["reconstruction"]).abs().max() < TOLERANCE
    assert (prediction - expected["prediction"]).abs().max() < TOLERANCE

    # the paper's test protocol travels with the name
    protocol = AUTHORS[name].protocol
    data = predictor.config.data
    assert (data.cond_frames, data.test_seq_len - data.cond_frames) == (protocol.cond_frames, protocol.predicted)
    assert data.dataset == ("mmnist" if name == "authors-mmnist-deterministic" else protocol.dataset)
    assert load_pretrained(name).source == f"{name} ({AUTHORS_MIRROR}, folder {AUTHORS[name].folder})"


def test_only_the_named_models_two_files_are_asked_for(hub_cache, monkeypatch):
    """The download asks the Hub for that folder's config.json and model.pt only, never the whole mirror."""
    import huggingface_hub

    snapshot = write_hub_cache(hub_cache, AUTHORS_MIRROR, authors_files("authors-kth"))
    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, revision, allow_patterns))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    load_pretrained("authors-kth")
    assert calls == [(AUTHORS_MIRROR, None, ["kth/config.json", "kth/model.pt"])]


@pytest.mark.parametrize("name,edit,field", [
    ("authors-kth", {"ny": 20}, "ny=20"),
    ("authors-kth", {"skipco": False}, "skipco=False"),
    ("authors-bair", {"nc": 1}, "nc=1"),
    ("authors-smmnist", {"archi": "vgg"}, "archi='vgg'"),
    ("authors-smmnist", {"deterministic": True}, "deterministic=True"),
    ("authors-mmnist-deterministic", {"deterministic": False}, "deterministic=False"),
    ("authors-kth", {"n_euler_steps": 1}, "n_euler_steps=1"),
    ("authors-kth", {"nt_cond": 5}, "nt_cond=5"),
])
def test_a_configuration_that_is_not_the_names_model_is_refused_before_the_weights_are_read(
        name, edit, field, hub_cache, tmp_path, capsys):
    marker = tmp_path / "pwned"
    payload = tmp_path / "payload.pt"
    torch.save({"trap": MarkerPayload(marker)}, payload)  # never opened: the config is checked first
    write_hub_cache(hub_cache, AUTHORS_MIRROR, authors_files(name, edit, model_pt=payload.read_bytes()))
    with pytest.raises(CheckpointError) as error:
        load_pretrained(name)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{name}: ") and field in message
    key = field.split("=")[0]
    assert f"{key}={AUTHORS[name].options[key]!r}" in message  # the expected value beside the found one
    rc = main(["predict", "--checkpoint", name, "--input", str(tmp_path / "clip.npy")])
    assert_one_line_error(rc, capsys.readouterr().err, name, field)
    assert not marker.exists()


def test_the_folder_of_another_model_under_a_name_is_refused(hub_cache):
    """The mirror's kth folder holding the SM-MNIST model (a mix-up upstream) is not taken for the KTH model."""
    smmnist = authors_files("authors-smmnist")
    write_hub_cache(hub_cache, AUTHORS_MIRROR, {k.replace("mmnist/stochastic", "kth"): v for k, v in smmnist.items()})
    with pytest.raises(CheckpointError, match=r"^authors-kth: .*dataset='smmnist'.*dataset='kth'"):
        load_pretrained("authors-kth")


def test_a_pickle_that_asks_for_code_is_refused_through_the_cache(hub_cache, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    state = torch.load(OFFICIAL / "vgg-bair" / "model.pt", weights_only=True)
    state["trap"] = MarkerPayload(marker)
    torch.save(state, evil)
    write_hub_cache(hub_cache, AUTHORS_MIRROR, authors_files("authors-bair", model_pt=evil.read_bytes()))
    with pytest.raises(CheckpointError, match="refused to load") as error:
        Predictor.from_pretrained("authors-bair", device="cpu")
    assert "\n" not in str(error.value) and "bair/model.pt" in str(error.value)
    rc = main(["evaluate", "--checkpoint", "authors-bair", "--out", str(tmp_path / "eval")])
    assert_one_line_error(rc, capsys.readouterr().err, "refused to load")
    assert not marker.exists() and not (tmp_path / "eval").exists()
    torch.load(evil, weights_only=False)  # the payload is live: an unrestricted load would have run it
    assert marker.exists()


@pytest.mark.parametrize("cached", [False, True])
def test_offline_and_not_cached_is_one_line_with_the_download_command(cached, hub_cache, capsys):
    if cached:  # another of the authors' models is cached: the snapshot exists, without this folder
        write_hub_cache(hub_cache, AUTHORS_MIRROR, authors_files("authors-kth"))
    command = f"{hub_cli()} download {AUTHORS_MIRROR} bair/config.json bair/model.pt"
    with pytest.raises(CheckpointError) as error:
        load_pretrained("authors-bair")
    message = str(error.value)
    assert "\n" not in message and message.startswith("authors-bair: ") and AUTHORS_MIRROR in message
    assert command in message and "not in the local Hugging Face cache" in message
    assert all(m.name in message for m in available())  # what works now
    rc = main(["predict", "--checkpoint", "authors-bair", "--input", "clip.npy"])
    assert_one_line_error(rc, capsys.readouterr().err, command)
    with pytest.raises(CheckpointError, match=f"{command} --revision v1;"):
        load_pretrained("authors-bair", revision="v1")


def test_the_hub_cli_named_is_the_installed_ones():
    import huggingface_hub

    major, minor = (int(p) for p in huggingface_hub.__version__.split(".")[:2])
    assert hub_cli() == ("hf" if (major, minor) >= (0, 34) else "huggingface-cli")
    assert (Path(sys.executable).parent / hub_cli()).exists()  # the program the message names is installed


def test_the_authors_options_for_each_name_are_the_papers(shared_dir):
    """The registry's values against the paper's appendix C (architecture, latent sizes, k, observation scale
    sqrt(nu), step size) and the authors' stand-in configs, field by field."""
    paper = (shared_dir / "paper" / "srvp-paper.txt").read_text()
    assert "for Moving MNIST, y and z have size 20; for KTH and BAIR, y and z have size 50" in " ".join(paper.split())
    for name, (source, edits) in STAND_INS.items():
        options = {**json.loads((OFFICIAL / source / "config.json").read_text()), **edits}
        for key, value in AUTHORS[name].options.items():
            assert options.get(key, False) == value, (name, key)
    assert AUTHORS["authors-kth"].options["obs_scale"] ** 2 == pytest.approx(4e-2)  # nu = 4 x 10^-2
    assert AUTHORS["authors-bair"].options["obs_scale"] ** 2 == pytest.approx(0.5, abs=0.01)  # nu = 1/2
    human = AUTHORS["authors-human"]  # the authors' README: --ny 50 --nz 50 --archi vgg --skipco --nt_cond 8 ...
    assert (human.options["archi"], human.options["nc"], human.options["ny"], human.options["skipco"],
            human.options["nt_cond"], human.options["nt_inf"]) == ("vgg", 3, 50, True, 8, 3)
    assert (human.protocol.cond_frames, human.protocol.predicted) == (8, 45)  # test.py --nt_gen 53


def test_cli_predict_and_evaluate_by_name_in_a_fresh_process(hub_cache, tmp_path):
    """``srvp predict --checkpoint authors-bair`` and ``srvp evaluate --checkpoint authors-smmnist`` as a user runs
    them: HF_HUB_OFFLINE=1 and HF_HUB_CACHE in the environment of a new process."""
    write_hub_cache(hub_cache, AUTHORS_MIRROR, {**authors_files("authors-bair"), **authors_files("authors-smmnist")})
    clip = tmp_path / "clip.npy"
    x_cond = np.load(OFFICIAL / "vgg-bair" / "vectors.npz")["x_cond"][:, 0]  # (T, C, H, W) in [0, 1]
    np.save(clip, (x_cond.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache), "HF_HOME": str(hub_cache.parent)}
    srvp = [sys.executable, "-m", "srvp.cli.main"]
    done = subprocess.run([*srvp, "predict", "--checkpoint", "authors-bair", "--input", str(clip), "--horizon", "3",
                           "--samples", "2", "--out", str(tmp_path / "pred")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert summary["checkpoint"] == "authors-bair"
    done = subprocess.run([*srvp, "evaluate", "--checkpoint", "authors-smmnist", "--samples", "2", "--max-sequences",
                           "2", "--no-progress", "--no-elbo", "--out", str(tmp_path / "eval")], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "5 conditioning -> 20 predicted frames, best of 2 samples (the paper's smmnist protocol)" in done.stderr
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["settings"]


def test_pretrained_list_shows_shipped_and_authors_models_side_by_side(hub_cache, capsys):
    write_hub_cache(hub_cache, AUTHORS_MIRROR, authors_files("authors-kth"))
    assert main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line and not line.startswith(" ")}
    for name, model in SHIPPED.items():
        size = sum(p.stat().st_size for p in model.path.iterdir() if p.is_file()) / 2**20
        assert f"{size:.1f} MiB" in rows[name] and rows[name].endswith(" installed")
        assert f"\n    installed in {model.path}\n" in out
    kth_bytes = sum(len(data) for data in authors_files("authors-kth").values())
    assert f"{kth_bytes / 2**20:.1f} MiB" in rows["authors-kth"] and rows["authors-kth"].endswith(" cached")
    snapshot = hub_cache / f"models--{AUTHORS_MIRROR.replace('/', '--')}" / "snapshots" / COMMIT
    assert f"\n    cached in {snapshot / 'kth'}\n" in out and f"\n    {hub_cache}" in out
    for name, model in AUTHORS.items():
        assert f"{model.repo}, folder {model.folder}" in rows[name]
        assert f"{name}: {model.description.split(':')[0]}" in " ".join(out.split())  # what it is, below
        if name != "authors-kth":
            assert rows[name].split()[-2:] == ["not", "cached"] and "unknown" in rows[name]


def _official_name(key: str) -> str:
    """Our parameter name -> the authors' (the inverse of srvp.models.official.convert_state_dict)."""
    import re

    from srvp.models.official import _MLPS, _PREFIXES

    m = re.match(r"^(\w+)\.net\.(\d+)\.(weight|bias)$", key)
    theirs = {ours: official for official, ours in _MLPS.items()}
    if m and m.group(1) in theirs:
        return f"{theirs[m.group(1)]}.module.{int(m.group(2)) // 2}.0.{m.group(3)}"
    return next((official + key[len(ours):] for official, ours in _PREFIXES if key.startswith(ours)), key)


def test_authors_human_by_name_takes_the_readme_model_and_the_8_to_45_protocol(hub_cache):
    """No checkpoint of the authors' Human3.6M code is at hand: a model of that configuration (the README's options,
    narrower layers), saved under the authors' names, loads by name from the cache with the same outputs."""
    from srvp.models import build_model
    from srvp.models.official import config_from_official, convert_state_dict

    options = {"dataset": "human", "archi": "vgg", "skipco": True, "nc": 3, "nx": 64, "ny": 50, "nz": 50,
               "n_euler_steps": 2, "res_gain": 1.2, "nt_cond": 8, "nt_inf": 3, "obs_scale": 0.2, "seq_len": 16,
               "nf": 8, "nhx": 32, "nh_inf": 32, "nlayers_inf": 3, "nh_res": 32, "nlayers_res": 4}
    torch.manual_seed(0)
    model = build_model(config_from_official(options).model).eval()
    theirs = {_official_name(k): v for k, v in model.state_dict().items()}
    assert convert_state_dict(theirs).keys() == model.state_dict().keys()
    buffer = Path(hub_cache.parent / "model.pt")
    torch.save(theirs, buffer)
    write_hub_cache(hub_cache, AUTHORS_MIRROR, {"human/config.json": json.dumps(options).encode(),
                                                "human/model.pt": buffer.read_bytes()})
    predictor = Predictor.from_pretrained("authors-human", device="cpu")
    data = predictor.config.data
    assert (data.dataset, data.cond_frames, data.test_seq_len, data.seq_len) == ("videos", 8, 53, 16)
    x = torch.rand(1, 8, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(predictor.predict(x, 2, use_mean=True)[:, 0], model.predict(x, 2, use_mean=True)[:, 0])
    with pytest.raises(CheckpointError, match=r"^authors-human: .*nt_cond=10 .*nt_cond=8"):
        write_hub_cache(hub_cache, AUTHORS_MIRROR, {"human/config.json": json.dumps({**options, "nt_cond": 10})
                                                    .encode(), "human/model.pt": buffer.read_bytes()}, "f" * 40)
        load_pretrained("authors-human")
