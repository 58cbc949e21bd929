"""A web page to see futures (``srvp demo``, Gradio): choose a model, give a clip, watch its samples.

The page is a thin layer over the prediction task, as the command line is: every prediction is a
:class:`~srvp.tasks.predict.PredictRequest` run by :func:`srvp.tasks.predict.run` (the readers, checks, messages and
files of ``srvp predict``), into a temporary folder of the server. What a request can do is bounded:

- models: only the shipped names and the paths given to ``srvp demo --checkpoint`` (a request never names a file
  to load, so it cannot make the server unpickle anything);
- files: a request never names a file of the server. A clip is an upload, which Gradio has placed in its upload
  folder (anything else is refused: :meth:`DemoState.upload`), or a generated test clip chosen by its index; no
  hidden field carries a path from one step to the next (each button derives the clip again from its inputs);
- uploads: at most ``MAX_UPLOAD_BYTES``; a zip of frames is extracted by :func:`extract_frames` (image files only,
  flat names, at most ``MAX_ZIP_FILES`` files and ``MAX_ZIP_BYTES`` uncompressed), never outside its folder; every
  frame is measured from its header against the pixel budgets of :mod:`srvp.io` before it is decoded;
- settings: the same bounds as the command line (samples, horizon), and at most ``MAX_DEMO_SAMPLES`` samples;
  every control offers only values the chosen model accepts (:func:`model_limits`: conditioning frames from its k,
  step sizes only for a model with an Euler step), each tab has its own controls, and a request clears the
  previous results first, so that an error never leaves them on screen as if they were its own;
- messages and ``summary.json`` name clips and models by their names, never by a path of the server
  (:func:`page_message`);
- disk: each request writes into its own folder of the server's temporary folder, of which the
  ``KEEP_FOLDERS`` most recent are kept (Gradio has copied what the page shows into its own cache, which it empties
  of files older than ``CACHE_SECONDS``); the temporary folder is removed when the server stops (Ctrl-C, SIGTERM).

The functions below the page (:func:`predict_clip`, :func:`swap_clips`, :func:`interpolate_clips`,
:func:`test_clip`, :func:`extract_frames`) take plain values and return plain values, so that they are tested
without a browser; :func:`build_app` wires them to Gradio components.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srvp.api import Predictor
from srvp.config import MAX_SEED, StepSize
from srvp.data import load_test_set
from srvp.errors import ConfigError, DataError, SrvpError
from srvp.evaluation.metrics import METRICS, pixel_metrics
from srvp.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_clip
from srvp.pretrained import available
from srvp.tasks.predict import PredictOutputs, PredictRequest, select_window
from srvp.tasks.predict import run as predict
from srvp.visualization import save_grid_png

MAX_UPLOAD_BYTES = 50 * 2**20
MAX_ZIP_FILES = 2000
MAX_ZIP_BYTES = 200 * 2**20
MAX_DEMO_SAMPLES = 50
KEEP_FOLDERS = 16  # request folders kept in the server's temporary folder (a request makes at most 3)
CACHE_SECONDS = 3600  # Gradio's copies of uploads and results are deleted after an hour (checked every 10 min)
MAX_DEMO_COND, MAX_DEMO_HORIZON, MAX_DEMO_STEPS = 20, 100, 20  # the sliders' upper ends
DT_CHOICES = tuple(StepSize(n).label for n in (1, 2, 3, 4))  # "1", "1/2", "1/3", "1/4"
#: uploads offered by the page: the clips srvp.io reads, and zips of frames (whose members are read as a folder is:
#: srvp.io.IMAGE_SUFFIXES)
UPLOAD_SUFFIXES = (*VIDEO_SUFFIXES, ".npy", ".zip")
#: how the page's requests differ from srvp predict's defaults: one animation, enlarged
PAGE_OUTPUTS = {"side_by_side": True, "scale": 2}


def gradio_upload_folder() -> Path:
    """The folder where Gradio stores uploaded files (``GRADIO_TEMP_DIR``, else ``<tmp>/gradio``): the only place a
    clip of a request may come from."""
    try:
        from gradio.utils import get_upload_folder
    except ImportError:  # no Gradio: nothing can be uploaded
        return Path(tempfile.gettempdir()) / "gradio"
    return Path(get_upload_folder())


@dataclass
class DemoState:
    """The server's models (loaded once each), its temporary folder and the folders uploads may come from."""

    choices: dict[str, str]  # label shown on the page -> what srvp.pretrained.load_pretrained takes
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="srvp-demo-")))
    loaded: dict[str, Any] = field(default_factory=dict)
    upload_dirs: tuple[Path, ...] = field(default_factory=lambda: (gradio_upload_folder(),))

    def predictor(self, label: str):
        if label not in self.choices:
            raise ConfigError(f"unknown model {label!r}; choose one of {', '.join(self.choices)}")
        if label not in self.loaded:
            self.loaded[label] = Predictor.from_pretrained(self.choices[label], device="cpu")
        return self.loaded[label]

    def new_folder(self, prefix: str) -> Path:
        """A new folder for one request's files; the oldest beyond the ``KEEP_FOLDERS`` most recent are removed."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        folders = sorted((p for p in self.workdir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime_ns)
        for old in folders[:max(0, len(folders) - KEEP_FOLDERS + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.workdir))

    def upload(self, path: str | Path | None, what: str = "clip") -> Path:
        """The file of an upload, refused unless it lies in Gradio's upload folder (``upload_dirs``) and within the
        size limit; the messages never name a path of the server."""
        if path is None or str(path) == "":
            raise DataError(f"{what}: upload a clip (video, GIF, .npy or a zip of frames) or pick a test clip")
        path = Path(str(path))
        resolved = path.resolve()
        if not path.is_absolute() or not any(resolved.is_relative_to(d.resolve()) for d in self.upload_dirs):
            raise DataError(f"{what}: not a file uploaded to this page; upload the clip with the page")
        if not resolved.is_file():
            raise DataError(f"{what}: the upload did not arrive")
        size = resolved.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise DataError(f"{path.name}: {size / 2**20:.0f} MiB; uploads are limited to "
                            f"{MAX_UPLOAD_BYTES // 2**20} MiB")
        return resolved

    def clip(self, path: str | Path, what: str = "clip") -> Path:
        """``path`` if it is a file this server may read for a request: an upload (see :meth:`upload`) or a file
        it wrote itself (a test clip, a zip's frames); anything else is refused without naming it."""
        resolved = Path(str(path)).resolve()
        if not any(resolved.is_relative_to(d.resolve()) for d in (*self.upload_dirs, self.workdir)):
            raise DataError(f"{what}: not a file uploaded to this page; upload the clip with the page")
        return resolved

    def close(self) -> None:
        """Remove the server's temporary folder (when it stops)."""
        shutil.rmtree(self.workdir, ignore_errors=True)


def model_choices(extra: list[str] | None = None) -> dict[str, str]:
    """The shipped models that are installed, then the checkpoints given on the command line, labelled by their
    last two path components (the page shows no full path of the server)."""
    choices = {m.name: m.name for m in available()}
    for given in extra or []:
        path = Path(given).expanduser()
        label = base = "/".join(path.resolve().parts[-2:]) if path.exists() else str(given)  # a Hub id: as it is
        while label in choices:
            label = f"{base} ({sum(1 for k in choices if k == base or k.startswith(base + ' (')) + 1})"
        choices[label] = str(given)
    if not choices:
        raise ConfigError("no model to offer: no shipped model is installed; pass --checkpoint PATH")
    return choices


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
    """The clip path a :class:`PredictRequest` takes for an upload (a zip becomes a folder of frames named like it)."""
    path = state.upload(upload, what)
    if path.suffix.lower() == ".zip":
        return extract_frames(path, state.new_folder("frames-") / path.stem)
    return path


def test_clip(state: DemoState, model: str, index: int) -> Path:
    """Test clip ``index`` of the model's dataset (generated Moving MNIST for SM-MNIST models), saved as ``.npy``."""
    predictor = state.predictor(model)
    if predictor.config.data.dataset not in ("smmnist", "mmnist"):
        raise DataError(f"{model}: test clips are generated for Moving MNIST models only; upload a clip")
    index = int(index)
    if not 0 <= index < 1000:
        raise ConfigError(f"test clip {index}: choose an index from 0 to 999")
    # a copy: the cached model's configuration stays as it was validated
    clip = load_test_set(dataclasses.replace(predictor.config.data, test_sequences=index + 1))[index]  # (T, C, H, W)
    path = state.new_folder("test-") / f"test_clip_{index}.npy"
    np.save(path, clip[:, 0] if clip.shape[1] == 1 else clip.transpose(0, 2, 3, 1))
    return path


def model_limits(predictor) -> dict[str, Any]:
    """What the page's controls may offer for a model: conditioning frames from its k (``content_frames``) to
    ``MAX_DEMO_COND``, and the step sizes it accepts (below the training step only with an Euler-step
    transition)."""
    k = predictor.content_frames
    dts = ["training step", *DT_CHOICES] if predictor.model.supports_dt else ["training step"]
    return {"cond_min": k, "cond_max": max(MAX_DEMO_COND, k), "cond_value": max(k, 5), "dt_choices": dts}


def _dt(text: str) -> StepSize | None:
    return None if text in (None, "", "training step") else StepSize.parse(str(text))


def _result(outputs: PredictOutputs) -> dict[str, Any]:
    files = {name: str(path) for name, path in outputs.paths.items()}
    return {"summary": outputs.summary, "files": files, "folder": str(outputs.folder)}


def _shown(*clips: Path) -> dict[str, str]:
    """What ``summary.json`` says instead of each clip's path on the server: its name (an upload's file name)."""
    return {str(c): c.name for c in clips}


def predict_clip(state: DemoState, model: str, clip: Path, cond_frames: int, horizon: int, samples: int, dt: str,
                 use_mean: bool, seed: int, metric: str = "psnr") -> dict[str, Any]:
    """``srvp predict`` on ``clip`` with the page's settings: the side-by-side animation (conditioning | truth, then
    every sample), the grid (best, worst and a random sample by ``metric``; intermediate frames marked), the
    per-step plot when the clip holds a ground truth, and ``summary.json``."""
    clip = state.clip(clip)
    if not 1 <= int(samples) <= MAX_DEMO_SAMPLES:
        raise ConfigError(f"--samples {int(samples)} must be between 1 and {MAX_DEMO_SAMPLES} on the demo page")
    predictor = state.predictor(model)
    request = PredictRequest(str(clip), model, cond_frames=int(cond_frames), horizon=int(horizon),
                             samples=int(samples), dt=_dt(dt), mean=bool(use_mean), seed=int(seed), metric=metric,
                             **PAGE_OUTPUTS)
    return _result(predict(predictor, request, state.new_folder("predict-") / "out", _shown(clip)))


def swap_clips(state: DemoState, model: str, dynamics: Path, content: Path, cond_frames: int, horizon: int,
               seed: int) -> dict[str, Any]:
    """Figure 8: the dynamics of one clip drawn with the content of another (``srvp predict --swap-content``)."""
    dynamics, content = state.clip(dynamics, "dynamics clip"), state.clip(content, "content clip")
    request = PredictRequest(str(dynamics), model, swap_content=str(content), cond_frames=int(cond_frames),
                             horizon=int(horizon), samples=1, seed=int(seed), **PAGE_OUTPUTS)
    return _result(predict(state.predictor(model), request, state.new_folder("swap-") / "out",
                           _shown(dynamics, content)))


def interpolate_clips(state: DemoState, model: str, clip_a: Path, clip_b: Path, cond_frames: int, horizon: int,
                      steps: int) -> dict[str, Any]:
    """Figure 9: trajectories from initial states interpolated between two clips (``--interpolate``)."""
    clip_a, clip_b = state.clip(clip_a, "clip A"), state.clip(clip_b, "clip B")
    if not 2 <= int(steps) <= MAX_DEMO_STEPS:
        raise ConfigError(f"--steps {int(steps)} must be between 2 and {MAX_DEMO_STEPS} on the demo page")
    request = PredictRequest(str(clip_a), model, interpolate=str(clip_b), cond_frames=int(cond_frames),
                             horizon=int(horizon), steps=int(steps), **PAGE_OUTPUTS)
    return _result(predict(state.predictor(model), request, state.new_folder("interpolate-") / "out",
                           _shown(clip_a, clip_b)))


def conditioning_preview(state: DemoState, model: str, clip: Path, cond_frames: int, horizon: int) -> str:
    """PNG of the conditioning frames as the model sees them (after crop and resize)."""
    clip = state.clip(clip)
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


def page_clip(state: DemoState, model: str, upload: str | Path | None, test_index: int, use_test: bool) -> Path:
    """The clip of a request on the Predict tab: the upload, or the test clip of that index."""
    return test_clip(state, model, test_index) if use_test else clip_input(state, upload)


def page_predict(state: DemoState, model: str, upload: str | Path | None, test_index: int, use_test: bool,
                 cond_frames: int, horizon: int, samples: int, dt: str, use_mean: bool, seed: int,
                 metric: str = "psnr") -> tuple[str, dict[str, Any]]:
    """What the Predict button does: the clip from the request's own inputs (no path kept between requests),
    its conditioning preview and :func:`predict_clip`."""
    clip = page_clip(state, model, upload, test_index, use_test)
    preview = conditioning_preview(state, model, clip, cond_frames, horizon)
    return preview, predict_clip(state, model, clip, cond_frames, horizon, samples, dt, use_mean, seed, metric)


# --------------------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------------------

_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s/'\":,;()\[\]]+/)*([^\s/'\":,;()\[\]]+)")


def page_message(error: BaseException, state: DemoState | None = None) -> str:
    """What the page shows for a failed request: the command line's one-line message for the user's mistakes, with
    every path of the server replaced by its last component (a model by its label), so that a message reveals
    neither the server's folders nor whether a file exists there."""
    if isinstance(error, SrvpError):
        text = str(error)
    elif isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        text = "out of memory: lower the number of samples or the horizon"
    else:
        text = f"internal error ({type(error).__name__}); the server log has the details"
    for label, source in (state.choices.items() if state is not None else ()):
        if label != source:
            text = text.replace(source, label)
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1), text)


def _guard(gr: Any, state: DemoState) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator for the page's event functions: an error is shown on the page as its one-line message
    (:func:`page_message`), never as a stack trace (the server log keeps those of internal errors)."""

    def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if not isinstance(e, SrvpError):
                    import traceback

                    traceback.print_exc()
                raise gr.Error(page_message(e, state), print_exception=False) from None
        wrapper.__name__ = fn.__name__
        return wrapper
    return guarded


def _cleared(outputs: list) -> dict[str, Any]:
    """A listener that empties ``outputs`` in the browser when the button is pressed (no request to the server,
    no API endpoint): the results of a failed request are then empty, not those of the previous one."""
    return {"fn": None, "inputs": None, "outputs": outputs, "js": f"() => [{', '.join(['null'] * len(outputs))}]"}


@dataclass
class _Page:
    """What the tabs of the page share: Gradio, the server's state, the error guard, the first model's limits."""

    gr: Any
    state: DemoState
    guarded: Callable[[Callable[..., Any]], Callable[..., Any]]
    first: dict[str, Any]
    #: one request at a time (concurrency_id): memory is bounded and a request never removes another's folder
    once: dict[str, Any] = field(default_factory=lambda: {"concurrency_id": "srvp", "concurrency_limit": 1})

    # The controls show the chosen model's limits (set when the page loads and when the model changes); their
    # static ranges, which Gradio checks on the server for every session, are those of any model (k >= 1).
    def conditioning_slider(self) -> Any:
        return self.gr.Slider(1, self.first["cond_max"], value=self.first["cond_value"], step=1,
                              label="conditioning frames (at least the model's k)")

    def horizon_slider(self, value: int) -> Any:
        return self.gr.Slider(1, MAX_DEMO_HORIZON, value=value, step=1, label="horizon (frames to predict)")

    def seed_box(self) -> Any:
        return self.gr.Number(label=f"seed (0 to {MAX_SEED})", value=0, precision=0, minimum=0, maximum=MAX_SEED)

    def bind(self, button: Any, fn: Callable[..., Any], inputs: list, outputs: list) -> None:
        """``button`` first clears ``outputs`` in the browser, then runs ``fn`` (guarded) on the server."""
        button.click(**_cleared(outputs))
        button.click(self.guarded(fn), inputs, outputs, **self.once)


def _predict_tab(page: _Page, model: Any) -> list[Any]:
    """The Predict tab; returns its controls that follow the chosen model (conditioning frames, dt)."""
    gr, state = page.gr, page.state
    with gr.Row():
        upload = gr.File(label="clip: video, GIF, .npy or a zip of frames", file_types=list(UPLOAD_SUFFIXES),
                         elem_id="clip-upload")
        with gr.Column():
            use_test = gr.Checkbox(label="use a generated Moving MNIST test clip instead", value=False)
            test_index = gr.Number(label="test clip index", value=0, precision=0, minimum=0, maximum=999)
            show = gr.Button("Show the conditioning frames", elem_id="show-clip")
    preview = gr.Image(label="conditioning frames as the model sees them", type="filepath", elem_id="preview")
    with gr.Row():
        cond_frames, horizon = page.conditioning_slider(), page.horizon_slider(20)
        samples = gr.Slider(1, MAX_DEMO_SAMPLES, value=10, step=1, label="samples")
        dt = gr.Dropdown(["training step", *DT_CHOICES], value="training step",
                         label="Euler step dt (smaller: intermediate frames)")
    with gr.Row():
        use_mean = gr.Checkbox(label="means instead of random draws", value=False)
        seed = page.seed_box()
        metric = gr.Radio(list(pixel_metrics()), value="psnr", label="best / worst sample by")
        go = gr.Button("Predict", variant="primary", elem_id="predict")
    animation = gr.Image(label="conditioning | ground truth, then each sample", type="filepath", elem_id="animation")
    grid = gr.Image(label="best, worst and a random sample (red bars: intermediate frames)", type="filepath",
                    elem_id="grid")
    plot = gr.Image(label=f"{' and '.join(METRICS[m].label for m in pixel_metrics())} per predicted frame",
                    type="filepath", elem_id="per-step")
    summary = gr.Code(label="summary.json", language="json")
    downloads = gr.File(label="downloads", file_count="multiple")

    def show_clip(model, upload, test_index, use_test, cond_frames, horizon):
        clip = page_clip(state, model, upload, test_index, use_test)
        return conditioning_preview(state, model, clip, cond_frames, horizon)

    def run_predict(model, upload, test_index, use_test, cond_frames, horizon, samples, dt, use_mean, seed, metric,
                    progress=gr.Progress()):  # noqa: B008 (Gradio's way of asking for a progress bar)
        progress(0.1, desc="sampling futures")
        preview, result = page_predict(state, model, upload, test_index, use_test, cond_frames, horizon, samples, dt,
                                       use_mean, seed, metric)
        progress(1.0, desc="done")
        files = result["files"]
        animation = next(v for k, v in files.items() if k.endswith((".gif", ".mp4")))
        return (preview, animation, files.get("grid.png"), files.get("per_step.png"),
                json.dumps(result["summary"], indent=1), list(files.values()))

    clip_inputs = [model, upload, test_index, use_test, cond_frames, horizon]
    page.bind(show, show_clip, clip_inputs, [preview])
    page.bind(go, run_predict, [*clip_inputs, samples, dt, use_mean, seed, metric],
              [preview, animation, grid, plot, summary, downloads])
    return [cond_frames, dt]


def _swap_tab(page: _Page, model: Any) -> Any:
    """The Swap content tab (figure 8); returns its conditioning-frames slider."""
    gr, state = page.gr, page.state
    with gr.Row():
        dyn = gr.File(label="dynamics from this clip")
        con = gr.File(label="content from this clip")
    with gr.Row():
        cond, horizon, seed = page.conditioning_slider(), page.horizon_slider(10), page.seed_box()
    go = gr.Button("Swap", variant="primary")
    outputs = [gr.Image(type="filepath", label="dynamics | content | swapped"),
               gr.Image(type="filepath", label="grid"), gr.File(file_count="multiple", label="downloads")]

    def run_swap(model, upload_a, upload_b, cond_frames, horizon, seed):
        result = swap_clips(state, model, clip_input(state, upload_a, "dynamics clip"),
                            clip_input(state, upload_b, "content clip"), cond_frames, horizon, seed)
        return result["files"]["swap.gif"], result["files"]["grid.png"], list(result["files"].values())

    page.bind(go, run_swap, [model, dyn, con, cond, horizon, seed], outputs)
    return cond


def _interpolate_tab(page: _Page, model: Any) -> Any:
    """The Interpolate tab (figure 9); returns its conditioning-frames slider."""
    gr, state = page.gr, page.state
    with gr.Row():
        clip_a = gr.File(label="clip A")
        clip_b = gr.File(label="clip B")
    with gr.Row():
        cond, horizon = page.conditioning_slider(), page.horizon_slider(10)
        steps = gr.Slider(2, MAX_DEMO_STEPS, value=5, step=1, label="interpolated trajectories")
    go = gr.Button("Interpolate", variant="primary")
    outputs = [gr.Image(type="filepath", label="A | interpolations | B"), gr.Image(type="filepath", label="grid"),
               gr.File(file_count="multiple", label="downloads")]

    def run_interpolate(model, upload_a, upload_b, cond_frames, horizon, steps):
        result = interpolate_clips(state, model, clip_input(state, upload_a, "clip A"),
                                   clip_input(state, upload_b, "clip B"), cond_frames, horizon, steps)
        return (result["files"]["interpolation.gif"], result["files"]["grid.png"], list(result["files"].values()))

    page.bind(go, run_interpolate, [model, clip_a, clip_b, cond, horizon, steps], outputs)
    return cond


def build_app(state: DemoState):
    """The Gradio Blocks of the page. Every input is a plain value or an upload (Gradio accepts only files in its
    upload folder for a ``gr.File`` input, and :meth:`DemoState.upload` checks it again); no event takes a path."""
    import gradio as gr

    labels = list(state.choices)
    page = _Page(gr, state, _guard(gr, state), model_limits(state.predictor(labels[0])))

    def limits(model):
        """The controls' ranges for the chosen model (conditioning frames, step sizes)."""
        m = model_limits(state.predictor(model))
        cond = gr.update(minimum=m["cond_min"], maximum=max(m["cond_max"], page.first["cond_max"]),
                         value=m["cond_value"])
        return cond, cond, cond, gr.update(choices=m["dt_choices"], value="training step")

    with gr.Blocks(title="srvp: stochastic video prediction", delete_cache=(600, CACHE_SECONDS)) as app:
        gr.Markdown("# srvp — futures of a clip\nStochastic Latent Residual Video Prediction (Franceschi et al.). "
                    "Give a clip, draw samples of its future; the same as `srvp predict` on the command line.")
        model = gr.Dropdown(labels, value=labels[0], label="model")
        with gr.Tab("Predict"):
            cond_frames, dt = _predict_tab(page, model)
        with gr.Tab("Swap content (figure 8)"):
            swap_cond = _swap_tab(page, model)
        with gr.Tab("Interpolate (figure 9)"):
            int_cond = _interpolate_tab(page, model)
        limited = [cond_frames, swap_cond, int_cond, dt]
        app.load(page.guarded(limits), [model], limited, **page.once)
        model.change(page.guarded(limits), [model], limited, **page.once)
    return app


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # Gradio's launch stops its server on it, then launch() below removes its files


#: How long the page may take to answer its first request before the demo gives up.
FIRST_ANSWER_SECONDS = 60.0
#: The answers that mean the page is served (Gradio's list: 401/30x with authentication or a redirect).
_SERVED_STATUSES = (200, 401, 301, 302, 303, 307, 308)


def page_answers(url: str, wait: float = FIRST_ANSWER_SECONDS) -> bool:
    """Whether ``url`` answers a HEAD request within ``wait`` seconds: the check that Gradio's ``launch`` makes
    (``gradio.networking.url_ok``), written again because Gradio's gives the page one 3-second try and, when it
    times out, stops a server that is running with "When localhost is not accessible, a shareable link must be
    created": on a 2-core machine with four busy processes the first page took longer (the demo's tests failed so in
    CI). The same request and the same accepted answers, for up to ``wait`` seconds (tests/test_demo.py pins both
    against Gradio's)."""
    import httpx

    deadline = time.monotonic() + wait
    while True:
        try:
            answer = httpx.head(url, timeout=max(1.0, min(10.0, deadline - time.monotonic())), verify=False)
            if answer.status_code in _SERVED_STATUSES:
                return True
        except (ConnectionError, httpx.ConnectError, httpx.TimeoutException):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def launch(state: DemoState, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Serve the page (blocking) on ``host:port``; uploads are limited to :data:`MAX_UPLOAD_BYTES`. When it stops
    (Ctrl-C or SIGTERM) the server's temporary folder is removed, and Gradio deletes its copies of the files."""
    app = build_app(state)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    import gradio.networking

    gradio_check, gradio.networking.url_ok = gradio.networking.url_ok, page_answers
    try:
        app.queue(default_concurrency_limit=1).launch(
            server_name=host, server_port=port, share=share, max_file_size=MAX_UPLOAD_BYTES,
            allowed_paths=[str(state.workdir)], show_error=True, inbrowser=False)
    except ValueError as error:
        if "localhost is not accessible" not in str(error):
            raise
        raise ConfigError(f"the page at http://{host}:{port} did not answer within {FIRST_ANSWER_SECONDS:.0f} s "
                          "(an HTTP proxy for local addresses? set no_proxy=localhost,127.0.0.1)") from None
    finally:
        gradio.networking.url_ok = gradio_check
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        state.close()
