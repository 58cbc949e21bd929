"""Does data loading keep up with training? Clips per second from each dataset's training loader versus clips per
second consumed by a training step of that dataset's preset model.

Stores (KTH-, BAIR- and user-video-like) are synthesised at the real frame sizes and typical video lengths with
:class:`~srvp.data.storage.StoreWriter`, so no download is needed; loading goes through the same
``build_train_dataset`` + ``DataLoader`` path as ``srvp train``. The training step is one forward + backward +
Adam step of the preset model (``--step-batch`` clips, fp32), timed after one warm-up step.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_data.py [--clips 2000] [--step-batch 4] [--no-step]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from srvp.config import preset
from srvp.data import build_train_dataset, to_float
from srvp.data.storage import StoreWriter

# dataset -> (preset, frame shape, number of videos, frames per video)
STORES = {
    "kth": ("kth", (1, 64, 64), 480, 400),  # KTH train: ~480 videos of ~300-700 frames
    "bair": ("bair", (3, 64, 64), 2000, 30),  # BAIR train is 43k videos of 30 frames; fewer here
    "videos": ("kth", (3, 64, 64), 20, 600),  # a handful of long user videos
}


def synth_store(root: Path, split: str, frame_shape: tuple[int, int, int], n_videos: int, length: int) -> None:
    rng = np.random.default_rng(0)
    with StoreWriter(root, split, frame_shape, source={"kind": "benchmark"}) as writer:
        for v in range(n_videos):
            writer.add_video(f"v{v:05d}", rng.integers(0, 256, (length, *frame_shape), dtype=np.uint8))
        writer.commit()


def loader_rate(cfg, clips: int, batch: int, workers: int) -> float:
    dataset = build_train_dataset(cfg.data, seed=0)
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, shuffle=False)
    it = iter(loader)
    next(it)  # open memory maps, start workers
    start = time.perf_counter()
    n = 0
    while n < clips:
        n += len(to_float(next(it)))
    return n / (time.perf_counter() - start)


def step_rate(cfg, batch: int) -> float:
    from srvp.models import build_model

    model = build_model(cfg.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    dataset = build_train_dataset(cfg.data, seed=0)
    x = to_float(torch.stack([dataset[i] for i in range(batch)]))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        model.loss(x, out)["total"].backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    step()
    return batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000, help="clips to load per measurement")
    parser.add_argument("--batch", type=int, default=16, help="loader batch size")
    parser.add_argument("--workers", type=int, default=0, help="loader worker processes")
    parser.add_argument("--step-batch", type=int, default=4, help="clips per timed training step")
    parser.add_argument("--no-step", action="store_true", help="only measure the loaders")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, loader batch {args.batch}, "
          f"{args.workers} workers")
    print(f"{'dataset':<10}{'clip (T,C,H,W)':<22}{'loader clips/s':>16}{'train clips/s':>16}{'headroom':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for name, (preset_name, shape, n_videos, length) in STORES.items():
            root = Path(tmp) / name
            synth_store(root, "train", shape, n_videos, length)
            cfg = preset(preset_name)
            cfg.data.dataset, cfg.data.data_dir = ("videos" if name == "videos" else name), str(root)
            if name == "videos":
                cfg.model.channels = 3
                cfg.data.video_size, cfg.data.video_channels = shape[1], shape[0]
            runs.append((name, cfg))
        runs.append(("pendulum", preset("pendulum")))
        for name, cfg in runs:
            rate = loader_rate(cfg, args.clips, args.batch, args.workers)
            clip = (cfg.data.seq_len, *build_train_dataset(cfg.data, 0)[0].shape[1:])
            if args.no_step:
                print(f"{name:<10}{str(clip):<22}{rate:>16.0f}{'-':>16}{'-':>10}", flush=True)
                continue
            train = step_rate(cfg, args.step_batch)
            print(f"{name:<10}{str(clip):<22}{rate:>16.0f}{train:>16.2f}{rate / train:>9.0f}x", flush=True)


if __name__ == "__main__":
    main()
