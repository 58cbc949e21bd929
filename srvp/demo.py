"""A web page to see futures (``srvp demo``, Gradio): choose a model, give a clip, watch its samples.

The page is a thin layer over the command line: every prediction goes through
:func:`srvp.cli.predict.predict_files` (the readers, checks, messages and files of ``srvp predict``), into a
temporary folder of the server. What a request can do is bounded:

- models: only the shipped names and the paths given to ``srvp demo --checkpoint`` (a request never names a file
  to load, so it cannot make the server unpickle anything);
- uploads: at most ``MAX_UPLOAD_BYTES``; a zip of frames is extracted by :func:`extract_frames` (image files only,
  flat names, at most ``MAX_ZIP_FILES`` files and ``MAX_ZIP_BYTES`` uncompressed), never outside its folder;
- settings: the same bounds as the command line (samples, horizon), and at most ``MAX_DEMO_SAMPLES`` samples.

The functions below the page (:func:`predict_clip`, :func:`swap_clips`, :func:`interpolate_clips`,
:func:`test_clip`, :func:`extract_frames`) take plain values and return plain values, so that they are tested
without a browser; :func:`build_app` wires them to Gradio components.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srvp.api import Predictor
from srvp.cli import predict
from srvp.cli.predict import predict_files, select_window
from srvp.config import parse_dt
from srvp.data import load_test_set
from srvp.errors import ConfigError, DataError, SrvpError
from srvp.io import read_clip
from srvp.pretrained import available
from srvp.visualization import save_grid_png

MAX_UPLOAD_BYTES = 50 * 2**20
MAX_ZIP_FILES = 2000
MAX_ZIP_BYTES = 200 * 2**20
MAX_DEMO_SAMPLES = 50
DT_CHOICES = ("1", "1/2", "1/3", "1/4")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class DemoState:
    """The server's models (loaded once each) and its temporary folder."""

    choices: dict[str, str]  # label shown on the page -> what srvp.pretrained.load_pretrained takes
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="srvp-demo-")))
    loaded: dict[str, Any] = field(default_factory=dict)

    def predictor(self, label: str):
        if label not in self.choices:
            raise ConfigError(f"unknown model {label!r}; choose one of {', '.join(self.choices)}")
        if label not in self.loaded:
            self.loaded[label] = Predictor.from_pretrained(self.choices[label], device="cpu")
        return self.loaded[label]

    def new_folder(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.workdir))


def model_choices(extra: list[str] | None = None) -> dict[str, str]:
    """The shipped models that are installed, then the checkpoints given on the command line."""
    choices = {m.name: m.name for m in available()}
    for path in extra or []:
        choices[str(path)] = str(path)
    if not choices:
        raise ConfigError("no model to offer: no shipped model is installed; pass --checkpoint PATH")
    return choices


def _uploaded(path: str | Path | None, what: str) -> Path:
    if path is None or str(path) == "":
        raise DataError(f"{what}: upload a clip (video, GIF, .npy or a zip of frames) or pick a test clip")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what}: the upload did not arrive")
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise DataError(f"{path.name}: {path.stat().st_size / 2**20:.0f} MiB; uploads are limited to "
                        f"{MAX_UPLOAD_BYTES // 2**20} MiB")
    return path


def extract_frames(archive: Path, folder: Path) -> Path:
    """Extract the frame images of a zip into ``folder`` (flat names, image files only, bounded count and size);
    returns the folder. Anything else in the archive is ignored; a bad archive is a one-line :class:`DataError`."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in
                       IMAGE_SUFFIXES and not Path(m.filename).name.startswith(".")]
            if not members:
                raise DataError(f"{archive.name}: the zip holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
            if len(members) > MAX_ZIP_FILES:
                raise DataError(f"{archive.name}: {len(members)} images; at most {MAX_ZIP_FILES}")
            if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                raise DataError(f"{archive.name}: the images take more than {MAX_ZIP_BYTES // 2**20} MiB")
            names = set()
            for m in members:
                name = Path(m.filename).name  # flat: no folder of the archive, no '..'
                if name in names:
                    raise DataError(f"{archive.name}: two frames named {name!r} in different folders")
                names.add(name)
                with z.open(m) as source, open(folder / name, "wb") as target:
                    shutil.copyfileobj(source, target, length=1 << 20)
    except (zipfile.BadZipFile, OSError, RuntimeError) as e:  # RuntimeError: encrypted members
        raise DataError(f"{archive.name}: not a readable zip ({e})") from None
    return folder


def clip_input(state: DemoState, upload: str | Path | None, what: str = "clip") -> Path:
    """The path ``srvp predict --input`` takes for an upload (a zip becomes a folder of frames)."""
    path = _uploaded(upload, what)
    if path.suffix.lower() == ".zip":
        return extract_frames(path, state.new_folder("frames-"))
    return path


def test_clip(state: DemoState, model: str, index: int) -> Path:
    """Test clip ``index`` of the model's dataset (generated Moving MNIST for SM-MNIST models), saved as ``.npy``."""
    predictor = state.predictor(model)
    cfg = predictor.config.data
    if cfg.dataset not in ("smmnist", "mmnist"):
        raise DataError(f"{model}: test clips are generated for Moving MNIST models only; upload a clip")
    index = int(index)
    if not 0 <= index < 1000:
        raise ConfigError(f"test clip {index}: choose an index from 0 to 999")
    cfg.test_sequences = index + 1
    clip = load_test_set(cfg)[index]  # (T, C, H, W) uint8
    path = state.new_folder("test-") / f"test_clip_{index}.npy"
    np.save(path, clip[:, 0] if clip.shape[1] == 1 else clip.transpose(0, 2, 3, 1))
    return path


def _args(**values: Any) -> argparse.Namespace:
    """``srvp predict``'s options with its own defaults (from its parser), then the page's values."""
    parser = argparse.ArgumentParser()
    predict.add_arguments(parser)
    args = parser.parse_args(["--checkpoint", "", "--input", ""])
    args.side_by_side, args.scale, args.device = True, 2, "cpu"  # the page shows one animation, enlarged
    vars(args).update(values)
    return args


def _dt(text: str) -> float | None:
    return None if text in (None, "", "training step") else parse_dt(str(text))


def _result(out: Path, summary: dict) -> dict[str, Any]:
    files = {name: str(out / name) for name in summary["files"]}
    files["summary.json"] = str(out / "summary.json")
    return {"summary": summary, "files": files, "folder": str(out)}


def predict_clip(state: DemoState, model: str, clip: Path, cond_frames: int, horizon: int, samples: int, dt: str,
                 use_mean: bool, seed: int, metric: str = "psnr") -> dict[str, Any]:
    """``srvp predict`` on ``clip`` with the page's settings: the side-by-side animation (conditioning | truth, then
    every sample), the grid (best, worst and a random sample by ``metric``; intermediate frames marked), the
    per-step plot when the clip holds a ground truth, and ``summary.json``."""
    if not 1 <= int(samples) <= MAX_DEMO_SAMPLES:
        raise ConfigError(f"--samples {int(samples)} must be between 1 and {MAX_DEMO_SAMPLES} on the demo page")
    predictor = state.predictor(model)
    out = state.new_folder("predict-") / "out"
    args = _args(checkpoint=model, input=str(clip), cond_frames=int(cond_frames), horizon=int(horizon),
                 samples=int(samples), dt=_dt(dt), mean=bool(use_mean), seed=int(seed), metric=metric, out=str(out))
    summary, out = predict_files(args, predictor)
    return _result(out, summary)


def swap_clips(state: DemoState, model: str, dynamics: Path, content: Path, cond_frames: int, horizon: int,
               seed: int) -> dict[str, Any]:
    """Figure 8: the dynamics of one clip drawn with the content of another (``srvp predict --swap-content``)."""
    out = state.new_folder("swap-") / "out"
    args = _args(checkpoint=model, input=str(dynamics), swap_content=str(content), cond_frames=int(cond_frames),
                 horizon=int(horizon), samples=1, seed=int(seed), out=str(out))
    summary, out = predict_files(args, state.predictor(model))
    return _result(out, summary)


def interpolate_clips(state: DemoState, model: str, clip_a: Path, clip_b: Path, cond_frames: int, horizon: int,
                      steps: int) -> dict[str, Any]:
    """Figure 9: trajectories from initial states interpolated between two clips (``--interpolate``)."""
    if not 2 <= int(steps) <= 20:
        raise ConfigError(f"--steps {int(steps)} must be between 2 and 20")
    out = state.new_folder("interpolate-") / "out"
    args = _args(checkpoint=model, input=str(clip_a), interpolate=str(clip_b), cond_frames=int(cond_frames),
                 horizon=int(horizon), steps=int(steps), out=str(out))
    summary, out = predict_files(args, state.predictor(model))
    return _result(out, summary)


def conditioning_preview(state: DemoState, model: str, clip: Path, cond_frames: int, horizon: int) -> str:
    """PNG of the conditioning frames as the model sees them (after crop and resize)."""
    predictor = state.predictor(model)
    frames = predictor.prepare(read_clip(clip), str(clip.name))[0].cpu()
    cond, truth, start = select_window(frames, int(cond_frames), int(horizon), None, clip.name)
    rows, labels = [cond], [f"conditioning (frames {start + 1}-{start + int(cond_frames)})"]
    if truth is not None:
        rows.append(truth)
        labels.append(f"ground truth ({truth.shape[0]} frames)")
    path = state.new_folder("preview-") / "conditioning.png"
    save_grid_png(path, rows, labels=labels, scale=2)
    return str(path)


# --------------------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------------------


def _message(error: BaseException) -> str:
    """What the page shows for a failed request: the command line's one-line message for the user's mistakes."""
    if isinstance(error, SrvpError):
        return str(error)
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return "out of memory: lower the number of samples or the horizon"
    return f"internal error ({type(error).__name__}); the server log has the details"


def build_app(state: DemoState):
    """The Gradio Blocks of the page."""
    import gradio as gr

    labels = list(state.choices)

    def guarded(fn):
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # shown on the page as a message, never as a stack trace
                if not isinstance(e, SrvpError):
                    import traceback

                    traceback.print_exc()
                raise gr.Error(_message(e), print_exception=False) from None
        wrapper.__name__ = fn.__name__
        return wrapper

    @guarded
    def choose_clip(model, upload, test_index, use_test, cond_frames, horizon):
        path = test_clip(state, model, test_index) if use_test else clip_input(state, upload)
        return str(path), conditioning_preview(state, model, Path(path), cond_frames, horizon)

    @guarded
    def run_predict(model, clip, cond_frames, horizon, samples, dt, use_mean, seed, metric,
                    progress=gr.Progress()):  # noqa: B008 (Gradio's way of asking for a progress bar)
        if not clip:
            raise DataError("clip: upload a clip or pick a test clip first")
        progress(0.1, desc="sampling futures")
        result = predict_clip(state, model, Path(clip), cond_frames, horizon, samples, dt, use_mean, seed, metric)
        progress(1.0, desc="done")
        files = result["files"]
        animation = next(v for k, v in files.items() if k.endswith((".gif", ".mp4")))
        return (animation, files.get("grid.png"), files.get("per_step.png"),
                json.dumps(result["summary"], indent=1), list(files.values()))

    @guarded
    def run_swap(model, upload_a, upload_b, cond_frames, horizon, seed):
        result = swap_clips(state, model, clip_input(state, upload_a, "dynamics clip"),
                            clip_input(state, upload_b, "content clip"), cond_frames, horizon, seed)
        return result["files"]["swap.gif"], result["files"]["grid.png"], list(result["files"].values())

    @guarded
    def run_interpolate(model, upload_a, upload_b, cond_frames, horizon, steps):
        result = interpolate_clips(state, model, clip_input(state, upload_a, "clip A"),
                                   clip_input(state, upload_b, "clip B"), cond_frames, horizon, steps)
        return (result["files"]["interpolation.gif"], result["files"]["grid.png"], list(result["files"].values()))

    with gr.Blocks(title="srvp: stochastic video prediction") as app:
        gr.Markdown("# srvp — futures of a clip\nStochastic Latent Residual Video Prediction (Franceschi et al.). "
                    "Give a clip, draw samples of its future; the same as `srvp predict` on the command line.")
        model = gr.Dropdown(labels, value=labels[0], label="model")
        with gr.Tab("Predict"):
            with gr.Row():
                upload = gr.File(label="clip: video, GIF, .npy or a zip of frames", file_types=[
                    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".npy", ".zip"], elem_id="clip-upload")
                with gr.Column():
                    use_test = gr.Checkbox(label="use a generated Moving MNIST test clip instead", value=False)
                    test_index = gr.Number(label="test clip index", value=0, precision=0, minimum=0, maximum=999)
                    show = gr.Button("Show the conditioning frames", elem_id="show-clip")
            clip = gr.Textbox(visible=False)
            preview = gr.Image(label="conditioning frames as the model sees them", type="filepath",
                               elem_id="preview")
            with gr.Row():
                cond_frames = gr.Slider(1, 20, value=5, step=1, label="conditioning frames")
                horizon = gr.Slider(1, 100, value=20, step=1, label="horizon (frames to predict)")
                samples = gr.Slider(1, MAX_DEMO_SAMPLES, value=10, step=1, label="samples")
                dt = gr.Dropdown(["training step", *DT_CHOICES], value="training step",
                                 label="Euler step dt (smaller: intermediate frames)")
            with gr.Row():
                use_mean = gr.Checkbox(label="means instead of random draws", value=False)
                seed = gr.Number(label="seed", value=0, precision=0)
                metric = gr.Radio(["psnr", "ssim"], value="psnr", label="best / worst sample by")
                go = gr.Button("Predict", variant="primary", elem_id="predict")
            animation = gr.Image(label="conditioning | ground truth, then each sample", type="filepath",
                                 elem_id="animation")
            grid = gr.Image(label="best, worst and a random sample (red bars: intermediate frames)",
                            type="filepath", elem_id="grid")
            plot = gr.Image(label="PSNR and SSIM per predicted frame", type="filepath", elem_id="per-step")
            summary = gr.Code(label="summary.json", language="json")
            downloads = gr.File(label="downloads", file_count="multiple")
            show.click(choose_clip, [model, upload, test_index, use_test, cond_frames, horizon], [clip, preview])
            go.click(choose_clip, [model, upload, test_index, use_test, cond_frames, horizon], [clip, preview]).then(
                run_predict, [model, clip, cond_frames, horizon, samples, dt, use_mean, seed, metric],
                [animation, grid, plot, summary, downloads])
        with gr.Tab("Swap content (figure 8)"):
            with gr.Row():
                dyn = gr.File(label="dynamics from this clip")
                con = gr.File(label="content from this clip")
            swap_go = gr.Button("Swap", variant="primary")
            swap_anim = gr.Image(type="filepath", label="dynamics | content | swapped")
            swap_grid = gr.Image(type="filepath", label="grid")
            swap_files = gr.File(file_count="multiple", label="downloads")
            swap_go.click(run_swap, [model, dyn, con, cond_frames, horizon, seed], [swap_anim, swap_grid, swap_files])
        with gr.Tab("Interpolate (figure 9)"):
            with gr.Row():
                clip_a = gr.File(label="clip A")
                clip_b = gr.File(label="clip B")
            steps = gr.Slider(2, 20, value=5, step=1, label="interpolated trajectories")
            int_go = gr.Button("Interpolate", variant="primary")
            int_anim = gr.Image(type="filepath", label="A | interpolations | B")
            int_grid = gr.Image(type="filepath", label="grid")
            int_files = gr.File(file_count="multiple", label="downloads")
            int_go.click(run_interpolate, [model, clip_a, clip_b, cond_frames, horizon, steps],
                         [int_anim, int_grid, int_files])
    return app


def launch(state: DemoState, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Serve the page (blocking) on ``host:port``; uploads are limited to :data:`MAX_UPLOAD_BYTES`."""
    app = build_app(state)
    app.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, share=share, max_file_size=MAX_UPLOAD_BYTES,
        allowed_paths=[str(state.workdir)], show_error=True, inbrowser=False)
