"""Frame metrics of the paper's protocol (PSNR, SSIM), the table of every metric's facts (:data:`METRICS`), the one
best-of-N rule (:func:`rank_samples`), confidence intervals and the Fréchet distance.

All frame metrics take predictions and targets of shape ``(..., C, H, W)`` with values in [0, 1] (typically
``(N, T, C, H, W)``) and return one score per frame, shape ``(...)``; they are vectorised in torch so that a whole
chunk of samples is scored in one call.

Adding a metric is one entry of :data:`METRICS` (with its function, here, when it needs no pretrained network): the
protocol scores it, the reports title and print it, and ``srvp evaluate --metrics`` (every metric), ``srvp predict
--metric``, the demo and ``srvp compare`` (the metrics without a network) offer it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

#: MSE floor: identical frames score 100 dB instead of an infinite PSNR that would poison every mean.
MIN_MSE = 1e-10

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR per frame ``(...)`` of frames ``(..., C, H, W)`` in [0, 1]: ``10 log10(1 / MSE)`` with the MSE averaged
    over the pixels of each channel, then averaged over channels (the authors' evaluation)."""
    _check_shapes(pred, target)
    mse = (pred.float() - target.float()).pow(2).mean(dim=(-2, -1)).clamp_min(MIN_MSE)
    return (-10.0 * torch.log10(mse)).mean(dim=-1)


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian ``(size,)`` centred on the middle tap; the 2-D SSIM window is its outer product."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-coords.pow(2) / (2 * sigma**2))
    return w / w.sum()


@functools.lru_cache(maxsize=32)
def gaussian_band_matrix(n: int, size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(n, n - size + 1)`` matrix ``B`` with ``B[i + k, i] = g[k]`` (``g`` = :func:`gaussian_window_1d`): ``x @ B``
    filters the last axis of ``x`` (length ``n``) with the Gaussian, keeping the "valid" outputs only."""
    with torch.inference_mode(False):  # cached: a normal tensor, usable inside and outside inference mode
        g = gaussian_window_1d(size, sigma).to(device=device, dtype=dtype)
        out = n - size + 1
        band = torch.zeros(n, out, device=device, dtype=dtype)
        cols = torch.arange(out, device=device)
        for k in range(size):
            band[cols + k, cols] = g[k]
    return band


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, window: int = SSIM_WINDOW,
         sigma: float = SSIM_SIGMA, k1: float = SSIM_K1, k2: float = SSIM_K2) -> torch.Tensor:
    """SSIM per frame ``(...)`` of frames ``(..., C, H, W)``: Gaussian ``window x window`` window of std ``sigma``,
    local statistics without padding ("valid", so only windows fully inside the frame), population (biased)
    variances, the SSIM map averaged over its pixels for each channel, then over channels.

    The Gaussian is separable, so the window is applied as two 1-D filters (a row pass then a column pass) over
    the five local moments at once. torch has no SSIM of its own, hence this implementation; each 1-D pass is a
    product with a banded matrix (:func:`gaussian_band_matrix`) rather than a depthwise convolution, which
    oneDNN ran at about 2 GFLOP/s on CPU (SSIM took 40% of the bf16 evaluation protocol; 2-3x faster this way).
    """
    _check_shapes(pred, target)
    *lead, C, H, W = pred.shape
    if min(H, W) < window:
        raise ValueError(f"SSIM needs frames of at least {window}x{window} pixels, got {H}x{W}")
    x = pred.float().reshape(-1, 1, H, W)
    y = target.float().reshape(-1, 1, H, W)
    moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (M, 5, H, W)
    rows = gaussian_band_matrix(W, window, float(sigma), x.device, x.dtype)
    cols = gaussian_band_matrix(H, window, float(sigma), x.device, x.dtype)
    moments = (moments @ rows).transpose(-1, -2) @ cols  # (M, 5, W', H'): the map, transposed
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.unbind(dim=1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(-2, -1)).reshape(*lead, C).mean(dim=-1)


@dataclass(frozen=True)
class Metric:
    """What the package knows of one metric: every place that scores, ranks, offers or prints it reads this."""

    name: str
    """Key in results, report files and the command line's choices."""
    label: str
    """Name in tables and plots (``PSNR``)."""
    higher_is_better: bool
    """Direction: which sample is the best of N (:func:`rank_samples`) and which table entry is best."""
    digits: int
    """Decimals of a printed mean and interval."""
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    """Per-frame scores ``(...)`` of frames ``(..., C, H, W)`` against targets of the same shape; None for a metric
    computed with a pretrained ``network`` by the protocol."""
    network: str | None = None
    """The pretrained network it needs (``lpips``, ``i3d``; their weight files are the user's), or None."""
    per_frame: bool = True
    """False for a metric of a whole set of videos (FVD), which has no per-frame or best-of-N score."""
    unit: str = ""
    """Unit of a score (``dB``), shown after single values."""

    @property
    def title(self) -> str:
        """Column and plot title with the direction: ``PSNR ↑``, ``LPIPS ↓``."""
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"

    def interval_text(self, mean: float, ci: float) -> str:
        """``mean ± ci`` with the metric's digits."""
        return f"{mean:.{self.digits}f} ± {ci:.{self.digits}f}"


#: every metric, in the order reports list them: the one table of metric facts
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("psnr", "PSNR", higher_is_better=True, digits=2, score=psnr, unit="dB"),
    Metric("ssim", "SSIM", higher_is_better=True, digits=4, score=ssim),
    Metric("lpips", "LPIPS", higher_is_better=False, digits=4, network="lpips"),
    Metric("fvd", "FVD", higher_is_better=False, digits=1, network="i3d", per_frame=False),
)}


def frame_metrics() -> tuple[str, ...]:
    """Names of the metrics scored frame by frame (every sample has a score: best of N applies)."""
    return tuple(name for name, m in METRICS.items() if m.per_frame)


def pixel_metrics() -> tuple[str, ...]:
    """Names of the frame metrics computed from the pixels alone (no pretrained network), which can always be
    computed: what ``srvp predict --metric`` (and its per-step plot), the demo and ``srvp compare`` offer."""
    return tuple(name for name, m in METRICS.items() if m.per_frame and m.network is None)


@dataclass(frozen=True)
class SampleRanking:
    """N samples ranked by one metric (:func:`rank_samples`): ``scores`` ``(..., N)`` one score per sample,
    ``order`` ``(..., N)`` their indices from the best to the worst."""

    scores: torch.Tensor
    order: torch.Tensor

    @property
    def best(self) -> torch.Tensor:
        """Index ``(...)`` of the best sample (the first one among equals)."""
        return self.order[..., 0]

    @property
    def worst(self) -> torch.Tensor:
        """Index ``(...)`` of the worst sample."""
        return self.order[..., -1]

    @property
    def best_score(self) -> torch.Tensor:
        """Score ``(...)`` of the best sample: the best of N."""
        return self.scores.gather(-1, self.order[..., :1]).squeeze(-1)

    @property
    def worst_score(self) -> torch.Tensor:
        """Score ``(...)`` of the worst sample."""
        return self.scores.gather(-1, self.order[..., -1:]).squeeze(-1)


def rank_samples(scores: torch.Tensor | np.ndarray, metric: str) -> SampleRanking:
    """The one best-of-N rule: the samples of ``scores`` ``(..., N)`` (one score per sample, e.g. a metric averaged
    over its frames) ordered from best to worst in ``metric``'s direction (:data:`METRICS`); among equal scores the
    lower index comes first."""
    scores = torch.as_tensor(scores)
    key = -scores if METRICS[metric].higher_is_better else scores
    return SampleRanking(scores, torch.sort(key, dim=-1, stable=True).indices)


def confidence_interval(values: np.ndarray | torch.Tensor, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of the 95% interval over ``axis``: ``mean ± 1.96 std / sqrt(N)`` with the population
    standard deviation (ddof = 0), as the authors report."""
    v = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    n = v.shape[axis]
    if n == 0:
        raise ValueError("confidence_interval of an empty set")
    return v.mean(axis=axis), 1.96 * v.std(axis=axis, ddof=0) / math.sqrt(n)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of a set of feature vectors ``(N, D)`` (float64)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False, ddof=1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between Gaussians: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    ``tr((S1 S2)^(1/2))`` is computed as the sum of the square roots of the eigenvalues of the symmetric PSD
    matrix ``S1^(1/2) S2 S1^(1/2)`` (same eigenvalues as ``S1 S2``), with symmetric eigendecompositions; this is
    stabler than a general matrix square root for the rank-deficient covariances of small test sets.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    evals1, evecs1 = np.linalg.eigh((s1 + s1.T) / 2)
    sqrt_s1 = (evecs1 * np.sqrt(np.clip(evals1, 0, None))) @ evecs1.T
    middle = sqrt_s1 @ s2 @ sqrt_s1
    evals = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(evals, 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)


def frechet_distance_of_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between two whole sets of feature vectors ``(N1, D)`` and ``(N2, D)``."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def _check_shapes(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if pred.dim() < 3:
        raise ValueError(f"expected frames (..., C, H, W), got shape {tuple(pred.shape)}")
