"""PSNR, SSIM, the 95% interval and the Fréchet distance against independent computations (NumPy loops,
scikit-image, SciPy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import structural_similarity

from srvp.evaluation.metrics import (
    confidence_interval,
    frechet_distance,
    frechet_distance_of_features,
    gaussian_window_1d,
    psnr,
    ssim,
)


def _frames(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(shape), rng.random(shape)


def test_psnr_matches_direct_numpy():
    a, b = _frames((2, 3, 3, 16, 20))  # (N, T, C, H, W), colour
    ours = psnr(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = np.zeros((2, 3))
    for n in range(2):
        for t in range(3):
            per_channel = [10 * math.log10(1 / np.mean((a[n, t, c] - b[n, t, c]) ** 2)) for c in range(3)]
            expected[n, t] = np.mean(per_channel)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_psnr_of_identical_frames_is_capped():
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(psnr(x, x), torch.full((2,), 100.0))


def _ssim_direct(x: np.ndarray, y: np.ndarray, size=11, sigma=1.5, k1=0.01, k2=0.03) -> float:
    """SSIM of one channel, window by window (valid positions only), straight from the formula."""
    coords = np.arange(size) - (size - 1) / 2
    g = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * sigma**2))
    g /= g.sum()
    c1, c2 = k1**2, k2**2
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i:i + size, j:j + size], y[i:i + size, j:j + size]
            mx, my = (g * px).sum(), (g * py).sum()
            vx, vy = (g * (px - mx) ** 2).sum(), (g * (py - my) ** 2).sum()
            cxy = (g * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_direct_windowed_formula():
    a, b = _frames((2, 3, 16, 18), seed=1)  # (T, C, H, W)
    b = 0.6 * a + 0.4 * b  # correlated, so SSIM is far from 0
    ours = ssim(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = [np.mean([_ssim_direct(a[t, c], b[t, c]) for c in range(3)]) for t in range(2)]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_ssim_matches_scikit_image_on_interior_pixels():
    a, b = _frames((2, 1, 64, 64), seed=2)
    a = np.clip(a * 0.3 + np.linspace(0, 0.7, 64)[None, None, None, :], 0, 1)  # some structure
    b = np.clip(0.7 * a + 0.3 * b, 0, 1)
    ours = ssim(torch.from_numpy(a).float(), torch.from_numpy(b).float()).numpy()
    pad = 5  # (11 - 1) / 2: the interior where scikit-image's padded windows are valid windows
    for t in range(2):
        _, full = structural_similarity(a[t, 0], b[t, 0], gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=1.0, full=True)
        assert ours[t] == pytest.approx(full[pad:-pad, pad:-pad].mean(), abs=2e-6)


def test_ssim_identical_frames_is_one_and_window_is_normalised():
    x = torch.rand(3, 1, 20, 20)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)
    g = gaussian_window_1d()
    assert g.shape == (11,) and g.sum().item() == pytest.approx(1.0) and g.argmax().item() == 5


def test_frame_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_confidence_interval_definition():
    values = np.random.default_rng(3).normal(5.0, 2.0, size=37)
    mean, half = confidence_interval(values)
    n = len(values)
    m = sum(values) / n
    std = math.sqrt(sum((v - m) ** 2 for v in values) / n)  # population std (ddof = 0)
    assert mean == pytest.approx(m) and half == pytest.approx(1.96 * std / math.sqrt(n))
    per_step_mean, per_step_half = confidence_interval(np.stack([values, 2 * values], axis=1))
    np.testing.assert_allclose(per_step_mean, [m, 2 * m])
    np.testing.assert_allclose(per_step_half, [half, 2 * half])


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(4)
    f1 = rng.normal(size=(60, 6))
    f2 = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6)) + 0.5
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance_of_features(f1, f2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance_of_features(f1, f1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_diagonal_gaussians_closed_form():
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, -2.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
