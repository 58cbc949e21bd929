"""The best-of-N protocol: selection, baselines by hand, step sizes, chunked sampling, ELBO, set-level FVD, the
report files, and a 2-process gloo evaluation identical to a single-process one."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from srvp.evaluation import EvalSettings, evaluate_model, write_report
from srvp.evaluation.lpips import LPIPS
from srvp.evaluation.metrics import frechet_distance_of_features
from srvp.evaluation.weights import MissingWeightsError
from srvp.models.srvp import SRVP
from tests.conftest import REPO, tiny_model_config

COND, HORIZON = 3, 4


def tiny_model(seed: int = 0, **overrides) -> SRVP:
    torch.manual_seed(seed)
    return SRVP(tiny_model_config(**overrides)).eval()


def tiny_sequences(n: int = 5, seed: int = 0) -> np.ndarray:
    """uint8 (N, COND + HORIZON, 1, 64, 64): smooth random blobs, so that SSIM is not trivially 0."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    seq = np.zeros((n, COND + HORIZON, 1, 64, 64))
    for i in range(n):
        cy, cx, vy, vx = rng.uniform(10, 54), rng.uniform(10, 54), rng.uniform(-3, 3), rng.uniform(-3, 3)
        for t in range(COND + HORIZON):
            seq[i, t, 0] = np.exp(-((yy - cy - vy * t) ** 2 + (xx - cx - vx * t) ** 2) / 60.0)
    return (seq * 255).round().astype(np.uint8)


def _np_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([10 * math.log10(1 / np.mean((a[c] - b[c]) ** 2)) for c in range(a.shape[0])]))


def test_best_worst_and_random_samples_are_consistent():
    g = torch.Generator().manual_seed(0)
    lpips = LPIPS()
    for p in lpips.parameters():
        p.copy_(torch.rand(p.shape, generator=g) * 0.1)
    result = evaluate_model(tiny_model(), tiny_sequences(), COND,
                            EvalSettings(n_samples=5, metrics=("psnr", "ssim", "lpips"), batch_size=2, elbo=False),
                            progress=False, networks={"lpips": lpips})
    model = result.settings[0]
    assert model.label == "model dt=1" and [s.name for s in result.settings[1:]] == ["last frame", "blank"]
    for m, higher in (("psnr", True), ("ssim", True), ("lpips", False)):
        samples = model.random[m]  # (N, 5): with 5 samples every sample is kept
        assert samples.shape == (5, 5)
        best, worst = (samples.max(1), samples.min(1)) if higher else (samples.min(1), samples.max(1))
        np.testing.assert_allclose(model.best[m], best, rtol=1e-12)
        np.testing.assert_allclose(model.worst[m], worst, rtol=1e-12)
        np.testing.assert_allclose(samples[np.arange(5), model.best_index[m]], model.best[m], rtol=1e-12)
        np.testing.assert_allclose(model.best_curves[m].mean(1), model.best[m], rtol=1e-6)
        assert model.best_curves[m].shape == (5, HORIZON)
        if higher:
            assert (model.best[m][:, None] >= samples).all()
        else:
            assert (model.best[m][:, None] <= samples).all()


def test_baselines_scored_by_hand():
    seq = tiny_sequences(n=3, seed=1)
    result = evaluate_model(tiny_model(), seq, COND, EvalSettings(n_samples=2, elbo=False), progress=False)
    last, blank = result.settings[1], result.settings[2]
    x = seq.astype(np.float64) / 255
    for i in range(3):
        target = x[i, COND:]
        psnr_last = [_np_psnr(x[i, COND - 1], target[t]) for t in range(HORIZON)]
        psnr_blank = [_np_psnr(np.zeros_like(target[t]), target[t]) for t in range(HORIZON)]
        np.testing.assert_allclose(last.best_curves["psnr"][i], psnr_last, rtol=1e-5)
        np.testing.assert_allclose(blank.best_curves["psnr"][i], psnr_blank, rtol=1e-5)
        assert last.best["psnr"][i] == pytest.approx(np.mean(psnr_last), rel=1e-5)
        ssim_last = []
        for t in range(HORIZON):
            _, full = structural_similarity(x[i, COND - 1, 0], target[t, 0], gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=1.0, full=True)
            ssim_last.append(full[5:-5, 5:-5].mean())
        np.testing.assert_allclose(last.best_curves["ssim"][i], ssim_last, atol=2e-5)


def test_reproducible_seeded_and_independent_of_other_sequences():
    seq = tiny_sequences()
    settings = EvalSettings(n_samples=3, batch_size=2)
    a = evaluate_model(tiny_model(), seq, COND, settings, progress=False)
    torch.manual_seed(123)  # the global RNG state does not matter
    b = evaluate_model(tiny_model(), seq, COND, settings, progress=False)
    c = evaluate_model(tiny_model(), seq, COND, EvalSettings(n_samples=3, batch_size=2, seed=1), progress=False)
    np.testing.assert_array_equal(a.settings[0].best["psnr"], b.settings[0].best["psnr"])
    np.testing.assert_array_equal(a.elbo, b.elbo)
    assert not np.array_equal(a.settings[0].random["psnr"], c.settings[0].random["psnr"])
    state = torch.get_rng_state()
    evaluate_model(tiny_model(), seq[:1], COND, settings, progress=False)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left untouched


def test_settings_validate_and_normalise():
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['psnrr'\]; choose among psnr, ssim, lpips, fvd"):
        EvalSettings(metrics=("psnr", "psnrr"))
    with pytest.raises(ValueError, match="n_samples must be positive, got 0"):
        EvalSettings(n_samples=0)
    assert EvalSettings(dts=[1.0, 0.5]) == EvalSettings(dts=(1.0, 0.5))
    assert EvalSettings(dts=[1.0, 0.5]).dts == (1.0, 0.5)
    assert EvalSettings(metrics=["psnr"]).metrics == ("psnr",)


class SpyModel(SRVP):
    """Records how the protocol calls the model."""

    def __init__(self, config):
        super().__init__(config)
        self.calls: list[tuple[str, int, dict]] = []

    def condition(self, x_cond):
        self.calls.append(("condition", x_cond.shape[0], {}))
        return super().condition(x_cond)

    def sample_futures(self, cond, horizon, n_samples=1, dt=None, use_mean=False, keep_intermediate=False,
                       include_conditioning=False, cond_dt=None):
        self.calls.append(("sample", n_samples, {"dt": dt, "cond_dt": cond_dt, "horizon": horizon}))
        return super().sample_futures(cond, horizon, n_samples, dt, use_mean, keep_intermediate,
                                      include_conditioning, cond_dt)


def test_chunked_sampling_encoder_once_and_step_sizes():
    torch.manual_seed(0)
    model = SpyModel(tiny_model_config(dt=0.5)).eval()
    dts = [1.0, 0.5, 0.25]
    result = evaluate_model(model, tiny_sequences(n=2), COND,
                            EvalSettings(n_samples=7, dts=dts, batch_size=3, elbo=False), progress=False)
    conditions = [c for c in model.calls if c[0] == "condition"]
    samples = [c for c in model.calls if c[0] == "sample"]
    assert len(conditions) == 2  # the encoder runs once per sequence, for every dt and sample
    assert len(samples) == 2 * len(dts) * 3 and max(n for _, n, _ in samples) <= 3
    assert sum(n for _, n, _ in samples) == 2 * len(dts) * 7
    assert {kw["dt"] for _, _, kw in samples} == set(dts)
    assert {kw["cond_dt"] for _, _, kw in samples} == {0.5}  # conditioning inferred with the training step
    assert [s.label for s in result.settings[:3]] == ["model dt=1", "model dt=1/2", "model dt=1/4"]
    # common random numbers: every dt sees the same draws, so a deterministic model gives identical scores
    det = evaluate_model(tiny_model(transition="deterministic"), tiny_sequences(n=2), COND,
                         EvalSettings(n_samples=2, dts=[1.0, 1.0], elbo=False), progress=False)
    np.testing.assert_array_equal(det.settings[0].random["psnr"], det.settings[1].random["psnr"])


def test_elbo_is_per_sequence():
    from srvp.evaluation.protocol import _ELBO_CHUNK, _seed_for

    model = tiny_model()
    seq = tiny_sequences(n=3)
    result = evaluate_model(model, seq, COND, EvalSettings(n_samples=1), progress=False)
    x = torch.from_numpy(seq[1:2]).float() / 255
    torch.manual_seed(_seed_for(0, 1, _ELBO_CHUNK))
    with torch.inference_mode():
        expected = model.loss(x, model(x))["elbo"].item()
    assert result.elbo.shape == (3,) and result.elbo[1] == pytest.approx(expected, rel=1e-5)


class TinyVideoNet(torch.nn.Module):
    """Stand-in for I3D: (B, 3, T, 224, 224) -> (B, 5) features."""

    def __init__(self, frames: int):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3 * frames * 4, 5)

    def forward(self, x):
        pooled = torch.nn.functional.adaptive_avg_pool3d(x, (x.shape[2], 2, 2))
        return self.proj(pooled.flatten(1))


def test_fvd_is_computed_on_the_whole_set():
    seq = tiny_sequences(n=7)
    net = TinyVideoNet(COND + HORIZON)
    result = evaluate_model(tiny_model(), seq, COND,
                            EvalSettings(n_samples=2, metrics=("psnr", "fvd"), elbo=False, fvd_batch_size=3),
                            progress=False, networks={"fvd": net})
    from srvp.evaluation.i3d import i3d_embeddings

    videos = torch.from_numpy(seq).float() / 255
    blank = videos.clone()
    blank[:, COND:] = 0
    last = videos.clone()
    last[:, COND:] = videos[:, COND - 1: COND]
    gt = i3d_embeddings(net, videos, batch_size=7).numpy()
    by_name = {s.label: s for s in result.settings}
    assert by_name["blank"].fvd == pytest.approx(
        frechet_distance_of_features(i3d_embeddings(net, blank, 7).numpy(), gt), rel=1e-4)
    assert by_name["last frame"].fvd == pytest.approx(
        frechet_distance_of_features(i3d_embeddings(net, last, 7).numpy(), gt), rel=1e-4)
    assert by_name["model dt=1"].fvd > 0
    assert "| 1" in write_report_text(result)


def write_report_text(result) -> str:
    from srvp.evaluation.report import markdown_table

    return markdown_table(result)


def test_missing_weights_skip_or_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    seq = tiny_sequences(n=2)
    result = evaluate_model(tiny_model(), seq, COND,
                            EvalSettings(n_samples=1, metrics=("psnr", "lpips", "fvd"), elbo=False), progress=False,
                            missing_weights="skip")
    assert result.metrics == ("psnr",) and set(result.skipped) == {"lpips", "fvd"}
    assert "alexnet-owt-7be5be79.pth" in result.skipped["lpips"] and "i3d_pretrained_400.pt" in result.skipped["fvd"]
    assert all(s.fvd is None and "lpips" not in s.best for s in result.settings)
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        evaluate_model(tiny_model(), seq, COND, EvalSettings(n_samples=1, metrics=("psnr", "lpips")), progress=False)


def test_report_files(tmp_path):
    seq = tiny_sequences(n=4)
    result = evaluate_model(tiny_model(), seq, COND, EvalSettings(n_samples=3, dts=[1.0, 0.5]), progress=False)
    paths = write_report(result, tmp_path / "out", train_seq_len=5)
    summary = json.loads(paths["json"].read_text())
    assert [s["label"] for s in summary["settings"]] == ["model dt=1", "model dt=1/2", "last frame", "blank"]
    psnr = summary["settings"][0]["metrics"]["psnr"]["best"]
    best = result.settings[0].best["psnr"]
    assert psnr["mean"] == pytest.approx(best.mean()) and psnr["ci95"] == pytest.approx(1.96 * best.std() / 2)
    assert summary["elbo"]["mean"] == pytest.approx(result.elbo.mean())
    md = paths["markdown"].read_text()
    assert "model dt=1/2 (best of 3)" in md and "| blank |" in md and "Test ELBO" in md
    rows = paths["per_sequence"].read_text().strip().splitlines()
    # header, sequences x settings x metrics, sequences x reconstruction parts x metrics, ELBO rows
    assert len(rows) == 1 + 4 * 4 * 2 + 4 * 2 * 2 + 4
    assert "posterior reconstruction, whole clip" in md and "posterior reconstruction, conditioning frames" in md
    steps = paths["per_step"].read_text().strip().splitlines()
    # every setting, then the reconstruction over the predicted frames
    assert len(steps) == 1 + 5 * 2 * HORIZON and steps[1].startswith("model dt=1,psnr,4,")
    assert steps[-1].startswith(f"reconstruction,ssim,{COND + HORIZON},")
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_svg_model_with_the_same_interface():
    from srvp.config import ModelConfig
    from srvp.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(model="svg", filters=4, frame_dim=16, noise_dim=3, svg_rnn_hidden=16,
                                    content_frames=2))
    result = evaluate_model(model, tiny_sequences(n=2), COND, EvalSettings(n_samples=2), progress=False)
    assert result.settings[0].best["psnr"].shape == (2,) and np.isfinite(result.elbo).all()


_SHARD_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np, torch, torch.distributed as dist
    sys.path.insert(0, {repo!r})
    from tests.test_protocol import COND, tiny_model, tiny_sequences
    from srvp.evaluation import EvalSettings, evaluate_model
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    result = evaluate_model(tiny_model(), tiny_sequences(n=5), COND,
                            EvalSettings(n_samples=4, dts=[1.0, 0.5], batch_size=3), progress=False)
    if int(os.environ.get("RANK", "0")) == 0:
        arrays = {{"indices": result.indices, "elbo": result.elbo}}
        for s in result.settings:
            for m in s.best:
                for kind in ("best", "worst", "best_index", "random", "best_curves"):
                    arrays[f"{{s.label}}/{{m}}/{{kind}}"] = getattr(s, kind)[m]
        np.savez(sys.argv[1], **arrays)
    if world > 1:
        dist.destroy_process_group()
""")


def test_two_process_gloo_evaluation_equals_single_process(tmp_path):
    script = tmp_path / "shard_eval.py"
    script.write_text(_SHARD_SCRIPT.format(repo=str(REPO)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, sharded = tmp_path / "single.npz", tmp_path / "sharded.npz"
    subprocess.run([sys.executable, str(script), str(single)], check=True, env=env, cwd=tmp_path, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    str(script), str(sharded)], check=True, env=env, cwd=tmp_path, timeout=300,
                   capture_output=True)
    a, b = np.load(single), np.load(sharded)
    assert sorted(a.files) == sorted(b.files) and len(a.files) > 30
    np.testing.assert_array_equal(a["indices"], np.arange(5))
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _checkpoint_and_test_set(directory):
    from srvp.config import RunConfig
    from srvp.data.npz import save_sequences_npz
    from srvp.training.checkpoint import atomic_torch_save, make_checkpoint

    cfg = RunConfig.from_dict({"model": {"filters": 4, "frame_dim": 16, "state_dim": 4, "noise_dim": 3,
                                         "inference_hidden": 16, "forward_hidden": 16, "content_frames": 2},
                               "data": {"cond_frames": COND, "test_seq_len": COND + HORIZON, "seq_len": 5}})
    atomic_torch_save(make_checkpoint(tiny_model(), cfg, step=10), directory / "ck.pt")
    seq = tiny_sequences(n=4)[:, :, 0].transpose(1, 0, 2, 3)  # official layout (T, N, H, W)
    save_sequences_npz(directory / "test.npz", {"sequences": seq})
    return directory / "ck.pt", directory / "test.npz"


def test_cli_evaluate(tmp_path, monkeypatch, capsys):
    from srvp.cli.main import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    ckpt, test_set = _checkpoint_and_test_set(tmp_path)
    common = ["evaluate", "--checkpoint", str(ckpt), "--test-set", str(test_set), "--samples", "2", "--no-progress"]
    assert main([*common, "--dt", "1", "1/2", "--max-sequences", "3", "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "results.json").read_text())
    assert summary["n_sequences"] == 3 and summary["seed"] == EvalSettings.seed == 0
    assert summary["meta"]["checkpoint_step"] == 10
    assert [s["dt"] for s in summary["settings"][:2]] == ["1", "1/2"]
    assert "model dt=1/2 (best of 2)" in capsys.readouterr().out
    # the same numbers as the Python API with the same options, and by default the same seed
    api = evaluate_model(tiny_model(), tiny_sequences(n=3), COND, EvalSettings(n_samples=2, dts=[1.0, 0.5]),
                         progress=False)
    assert summary["settings"][1]["metrics"]["psnr"]["best"]["mean"] == pytest.approx(
        api.settings[1].best["psnr"].mean(), rel=1e-6)
    # a missing weight file: one line naming the file, exit 2; or the metric is skipped
    assert main([*common, "--metrics", "psnr", "lpips", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "alexnet-owt-7be5be79.pth" in err and "--alexnet-weights" in err
    assert not (tmp_path / "b").exists()
    assert main([*common, "--metrics", "psnr", "lpips", "--missing-weights", "skip", "--out", str(tmp_path / "c")]) == 0
    assert "LPIPS skipped" in capsys.readouterr().err
    assert "LPIPS not computed" in (tmp_path / "c" / "results.md").read_text()
    assert main([*common, "--horizon", "9", "--out", str(tmp_path / "d")]) == 2
    assert "fewer than 3 conditioning + 9 predicted" in capsys.readouterr().err


def test_posterior_reconstruction_scores_equal_a_hand_computation():
    """The reconstruction rows: every state from the posterior at its mean, written out step by step from the
    networks (not through ``SRVP.reconstruct``), then PSNR = 10 log10(1 / MSE) per frame and SSIM by scikit-image;
    content from the last k conditioning frames in both parts."""
    model = tiny_model(seed=3).double()
    seq = tiny_sequences(n=2, seed=4)
    result = evaluate_model(model.float(), seq, COND, EvalSettings(n_samples=2, elbo=False, inference_layout=False),
                            progress=False)
    model = model.double()
    k = model.config.content_frames
    for part, n_frames in (("clip", COND + HORIZON), ("conditioning", COND)):
        for i in range(len(seq)):
            x = torch.from_numpy(seq[i, :n_frames]).double().div(255)  # (T, C, H, W)
            with torch.no_grad():
                h = model.frame_encoder(x)[0]  # (T, frame_dim)
                w = model.content_out(model.content_proj(h[COND - k:COND]).sum(0))
                y = model.posterior_y1(h[:k].reshape(-1))[: model.config.state_dim]  # the mean of q(y_1)
                lstm_out, _ = model.posterior_z_lstm(h.unsqueeze(0))
                states = [y]
                for t in range(1, n_frames):
                    z = model.posterior_z(lstm_out[0, t])[: model.config.noise_dim]
                    y = y + model.transition(torch.cat([y, z]))
                    states.append(y)
                frames = model.frame_decoder(torch.cat([w.expand(n_frames, -1), torch.stack(states)], 1), None)
            frames = frames.clamp(0, 1)
            mse = (frames - x).pow(2).mean(dim=(1, 2, 3))
            expected_psnr = (10 * torch.log10(1 / mse)).numpy()
            expected_ssim = [structural_similarity(x[t, 0].numpy(), frames[t, 0].numpy(), data_range=1.0,
                                                   gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                             for t in range(n_frames)]
            np.testing.assert_allclose(result.reconstruction[part]["psnr"][i], expected_psnr, rtol=1e-4)
            np.testing.assert_allclose(result.reconstruction[part]["ssim"][i], expected_ssim, atol=1e-4)
    summary = result.summary()["reconstruction"]
    assert summary["clip"]["psnr"]["mean"] == pytest.approx(result.reconstruction["clip"]["psnr"].mean())
