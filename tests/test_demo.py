"""The web page (``srvp demo``): the functions the page calls, without a browser (bad inputs give the command
line's messages, limits hold, nothing is written outside the server's folder, no request can name a file of the
server, messages and summaries name no server path, the server's folders stay bounded), then the running server
through its HTTP API (a request naming a server path is refused; SIGTERM removes its files) and the page itself in a
real browser (Debian's chromium driven by Selenium): upload a clip, predict, see the animations and plots."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from srvp.errors import ConfigError, DataError

pytest.importorskip("gradio", reason="the demo needs the gradio package (pip install 'srvp[demo]')")

from srvp import demo  # noqa: E402
from tests.test_predict import moving_square, save_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("demo") / "tiny.pt")


@pytest.fixture
def uploads(tmp_path) -> Path:
    """Where Gradio would have put the request's uploads."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture
def state(checkpoint, tmp_path, uploads) -> demo.DemoState:
    return demo.DemoState({"tiny": str(checkpoint)}, workdir=tmp_path / "server", upload_dirs=(uploads,))


@pytest.fixture
def clip(uploads) -> Path:
    path = uploads / "clip.npy"
    np.save(path, moving_square(30))
    return path


def test_a_prediction_writes_the_pages_files_inside_the_server_folder(state, clip):
    state.workdir.mkdir()
    result = demo.predict_clip(state, "tiny", clip, cond_frames=3, horizon=4, samples=3, dt="1/2", use_mean=False,
                               seed=1)
    files = result["files"]
    assert {"samples.gif", "grid.png", "per_step.png", "summary.json"} <= set(files)
    assert all(Path(p).resolve().is_relative_to(state.workdir.resolve()) for p in files.values())
    assert result["summary"]["frames_per_sample"] == 8  # dt = 1/2: every intermediate frame decoded
    preview = demo.conditioning_preview(state, "tiny", clip, 3, 4)
    assert Path(preview).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("settings, message", [
    (dict(cond_frames=1), "--cond-frames 1: the model needs at least k=2"),
    (dict(samples=500), "--samples 500 must be between 1 and 50"),
    (dict(horizon=0), "--horizon 0 must be between 1 and 10000"),
    (dict(dt="1/3.5"), "dt="),
])
def test_bad_settings_give_the_command_lines_messages(state, clip, settings, message):
    state.workdir.mkdir()
    values = dict(cond_frames=3, horizon=4, samples=2, dt="training step", use_mean=False, seed=0)
    values.update(settings)
    with pytest.raises((ConfigError, DataError), match=message.replace("[", r"\[")):
        demo.predict_clip(state, "tiny", clip, **values)


def test_uploads_are_bounded_and_zips_extracted_safely(state, tmp_path, uploads, monkeypatch):
    state.workdir.mkdir()
    with pytest.raises(DataError, match="upload a clip"):
        demo.clip_input(state, None)
    archive = uploads / "frames.zip"
    buffer = io.BytesIO()
    import imageio.v2 as imageio

    with zipfile.ZipFile(buffer, "w") as z:
        for t, frame in enumerate(moving_square(6)):
            z.writestr(f"clip/frames/{t:02d}.png", imageio.imwrite("<bytes>", frame, format="PNG"))
        z.writestr("../../escape.png", b"not written outside")
        z.writestr("notes.txt", b"ignored")
    archive.write_bytes(buffer.getvalue())
    folder = demo.clip_input(state, archive)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{t:02d}.png" for t in range(6)] + ["escape.png"]
    assert folder.resolve().is_relative_to(state.workdir.resolve())
    assert not (tmp_path / "escape.png").exists() and not (tmp_path.parent / "escape.png").exists()
    monkeypatch.setattr(demo, "MAX_ZIP_FILES", 3)
    with pytest.raises(DataError, match="at most 3"):
        demo.clip_input(state, archive)
    monkeypatch.setattr(demo, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(DataError, match="uploads are limited"):
        demo.clip_input(state, archive)
    (uploads / "bad.zip").write_bytes(b"PK\x03\x04 not a zip")
    monkeypatch.setattr(demo, "MAX_UPLOAD_BYTES", 2**20)
    with pytest.raises(DataError, match="not a readable zip"):
        demo.clip_input(state, uploads / "bad.zip")


def test_only_offered_models_load(state):
    with pytest.raises(ConfigError, match="unknown model '/etc/passwd'; choose one of tiny"):
        state.predictor("/etc/passwd")


def test_the_pages_error_text_is_the_message_not_a_trace():
    assert demo.page_message(ConfigError("--samples 0 must be positive")) == "--samples 0 must be positive"
    assert "Traceback" not in demo.page_message(RuntimeError("boom"))
    assert "internal error" in demo.page_message(KeyError())


# ----------------------------------------------------------------------------------------------------------------
# No request names a file of the server; no message or summary names a path of it (issue 21, item 2)
# ----------------------------------------------------------------------------------------------------------------


def test_no_function_of_the_page_reads_a_file_that_was_not_uploaded(state, clip, tmp_path, uploads):
    state.workdir.mkdir()
    secret = tmp_path / "server-only" / "secret.npy"  # a valid clip the server can read, outside the uploads
    secret.parent.mkdir()
    np.save(secret, moving_square(30, seed=5))
    (uploads / "link.npy").symlink_to(secret)  # a link from the upload folder does not lead out of it
    settings = dict(cond_frames=3, horizon=2)
    attempts = {
        "upload": lambda p: demo.clip_input(state, p),
        "page": lambda p: demo.page_predict(state, "tiny", p, 0, False, samples=1, dt="training step",
                                            use_mean=False, seed=0, **settings),
        "predict": lambda p: demo.predict_clip(state, "tiny", Path(p), samples=1, dt="training step",
                                               use_mean=False, seed=0, **settings),
        "preview": lambda p: demo.conditioning_preview(state, "tiny", Path(p), **settings),
        "swap": lambda p: demo.swap_clips(state, "tiny", clip, Path(p), seed=0, **settings),
        "interpolate": lambda p: demo.interpolate_clips(state, "tiny", Path(p), clip, steps=2, **settings),
    }
    paths = [str(secret), str(tmp_path / "server-only" / "missing.npy"), str(uploads / ".." / "server-only" /
             "secret.npy"), str(uploads / "link.npy"), "server-only/secret.npy", "/etc/hostname"]
    for name, attempt in attempts.items():
        messages = set()
        for path in paths:
            with pytest.raises(DataError) as refused:
                attempt(path)
            text = demo.page_message(refused.value, state)
            assert "server-only" not in text and str(tmp_path) not in text and "hostname" not in text, (name, text)
            messages.add(text)
        assert len(messages) == 1, (name, messages)  # the same refusal whether the file exists or not
    assert not any(state.workdir.rglob("secret*"))


def test_messages_and_summaries_name_no_path_of_the_server(state, clip, tmp_path):
    state.workdir.mkdir()
    result = demo.predict_clip(state, "tiny", clip, cond_frames=3, horizon=2, samples=2, dt="training step",
                               use_mean=False, seed=0)
    written = Path(result["files"]["summary.json"]).read_text()
    assert result["summary"]["input"] == "clip.npy" and result["summary"]["checkpoint"] == "tiny"
    assert str(tmp_path) not in written and str(tmp_path) not in json.dumps(result["summary"])
    with pytest.raises(DataError) as short:  # a reader's message names the file by its full path...
        demo.predict_clip(state, "tiny", clip, cond_frames=40, horizon=2, samples=1, dt="training step",
                          use_mean=False, seed=0)
    assert str(clip) in str(short.value)
    shown = demo.page_message(short.value, state)  # ...which the page shows as the file's name
    assert shown.startswith("clip.npy: the clip has 30 frame(s)") and str(tmp_path) not in shown
    state.choices["runs/kth/best.pt"] = str(tmp_path / "runs" / "kth" / "best.pt")
    text = demo.page_message(DataError(f"{tmp_path}/runs/kth/best.pt: not a readable checkpoint"), state)
    assert text == "runs/kth/best.pt: not a readable checkpoint"
    assert demo.page_message(DataError("'/srv/data/x.npy' and /srv/y.gif: bad; --dt 1/2"), state) == \
        "'x.npy' and y.gif: bad; --dt 1/2"
    assert list(demo.model_choices([str(tmp_path / "uploads" / "clip.npy")]))[-1] == "uploads/clip.npy"


# ----------------------------------------------------------------------------------------------------------------
# Tiny uploads that decode to gigabytes; the server's folders (issue 21, item 3)
# ----------------------------------------------------------------------------------------------------------------


def test_a_tiny_zip_of_huge_frames_is_refused_fast_before_decoding(state, uploads, monkeypatch):
    from PIL import ImageFile

    from tests.test_malformed_inputs import one_bit_png

    state.workdir.mkdir()
    archive = uploads / "bomb.zip"
    png = one_bit_png(12_000, 12_000)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for t in range(6):
            z.writestr(f"{t}.png", png)
    assert archive.stat().st_size < 3000  # 6 x 144 megapixels in under 3 KB
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: pytest.fail("a frame was decoded"))
    start = time.monotonic()
    with pytest.raises(DataError, match="12000x12000 pixels") as refused:
        demo.page_predict(state, "tiny", archive, 0, False, 3, 2, 1, "training step", False, 0)
    assert time.monotonic() - start < 10
    assert demo.page_message(refused.value, state).startswith("0.png: frames of 12000x12000 pixels (144 megapixels)")


def test_the_servers_folders_stay_bounded_and_go_when_it_stops(state, clip):
    for _ in range(3 * demo.KEEP_FOLDERS):
        demo.conditioning_preview(state, "tiny", clip, 3, 2)
    assert len(list(state.workdir.iterdir())) <= demo.KEEP_FOLDERS
    state.close()
    assert not state.workdir.exists()


# ----------------------------------------------------------------------------------------------------------------
# In a real browser
# ----------------------------------------------------------------------------------------------------------------


def _browser_missing() -> str | None:
    for exe, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(exe) is None:
            return f"no {exe}: install Debian's {package} (make test does it as root)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing (pip install -e '.[dev]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo(checkpoint: Path, root: Path) -> tuple[subprocess.Popen, str]:
    """``srvp demo`` in a process of its own, with its temporary folders (``TMPDIR``, ``GRADIO_TEMP_DIR``) under
    ``root`` and its output in ``root/server.log``; returns the process and the page's URL once the page answers."""
    for name in ("tmp", "gradio"):
        (root / name).mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1", TMPDIR=str(root / "tmp"),
               GRADIO_TEMP_DIR=str(root / "gradio"))
    log = root / "server.log"
    with open(log, "wb") as output:  # a file, not a pipe that nobody reads and that would stop the server when full
        server = subprocess.Popen([sys.executable, "-m", "srvp.cli.main", "demo", "--checkpoint", str(checkpoint),
                                   "--port", str(port)], stdout=output, stderr=subprocess.STDOUT, env=env, cwd=root)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while not demo.page_answers(url, wait=1.0):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the demo did not start: {log.read_text()[-2000:]}")
    time.sleep(1.0)  # Gradio's own start-up check runs after the page first answers: the server must outlive it
    if server.poll() is not None:
        pytest.fail(f"the demo stopped after starting: {log.read_text()[-2000:]}")
    return server, url


@pytest.fixture(scope="module")
def live_demo(checkpoint, tmp_path_factory):
    """A running ``srvp demo`` offering the tiny checkpoint: (URL, the model's label, its folder)."""
    root = tmp_path_factory.mktemp("live")
    server, url = start_demo(checkpoint, root)
    yield url, "/".join(checkpoint.resolve().parts[-2:]), root
    server.terminate()
    server.wait(timeout=60)


def api_call(url: str, api: str, data: list) -> str:
    """One request to an endpoint of the page's HTTP API, as any program can send it (no client library, which
    would upload a local file itself): the event stream of its answer."""
    import httpx

    posted = httpx.post(f"{url}/gradio_api/call/{api}", json={"data": data}, timeout=60)
    posted.raise_for_status()
    return httpx.get(f"{url}/gradio_api/call/{api}/{posted.json()['event_id']}", timeout=300).text


def file_data(path: str | Path) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def server_path_requests(label: str, path: str | Path) -> dict[str, list]:
    """A request of every endpoint that names the server path ``path`` where an upload goes."""
    return {"run_predict": [label, file_data(path), 0, False, 3, 2, 1, "training step", False, 0, "psnr"],
            "run_predict (a plain string)": [label, str(path), 0, False, 3, 2, 1, "training step", False, 0, "psnr"],
            "show_clip": [label, file_data(path), 0, False, 3, 2],
            "run_swap": [label, file_data(path), file_data(path), 3, 2, 0],
            "run_interpolate": [label, file_data(path), file_data(path), 3, 2, 2]}


class _SlowPage:
    """A local HTTP server whose every answer takes ``delay`` seconds (a page on a loaded machine)."""

    def __init__(self, delay: float):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):  # noqa: N802 (the name http.server calls)
                time.sleep(delay)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_launch_check_accepts_what_gradios_accepts_and_waits_for_a_slow_page():
    """demo.page_answers replaces gradio.networking.url_ok during launch: the same verdict where Gradio's is right
    (a page that answers, a port that does not), and patience where Gradio gives up on a running server."""
    from gradio import networking

    fast, slow = _SlowPage(0.0), _SlowPage(3.5)
    try:
        assert networking.url_ok(fast.url) and demo.page_answers(fast.url, wait=5)
        assert not networking.url_ok(slow.url)  # Gradio's one 3-second try: it would stop the demo here
        assert demo.page_answers(slow.url, wait=20)
    finally:
        fast.close()
        slow.close()
    closed = f"http://127.0.0.1:{_free_port()}/"
    assert not networking.url_ok(closed)
    started = time.monotonic()
    assert not demo.page_answers(closed, wait=1.5) and time.monotonic() - started < 10


def test_the_running_server_refuses_every_request_that_names_a_server_path(live_demo, tmp_path):
    from gradio_client import Client, handle_file

    url, label, _ = live_demo
    secret = tmp_path / "secret.npy"  # a valid clip that the server process can read
    np.save(secret, moving_square(30, seed=7))
    missing = tmp_path / "absent.npy"  # as long as the secret's name (an echo of a long value is shortened alike)
    for name, data in server_path_requests(label, secret).items():
        answer = api_call(url, name.split()[0], data)
        assert "event: error" in answer and "event: complete" not in answer, (name, answer[:500])
        assert "frames" not in answer and str(tmp_path.parent) not in answer.replace(str(secret), ""), answer
        other = api_call(url, name.split()[0], server_path_requests(label, missing)[name])
        assert other.replace("absent.npy", "secret.npy") == answer  # nothing says whether the file exists
    # every input of every endpoint is a value or an upload: none is a text field that could carry a path
    client = Client(url, verbose=False)
    api = client.view_api(return_format="dict", print_info=False)
    components = {p["component"] for e in api["named_endpoints"].values() for p in e["parameters"]}
    assert components <= {"Dropdown", "File", "Number", "Checkbox", "Slider", "Radio"}, components
    assert not api.get("unnamed_endpoints")
    # the same request with the clip uploaded works, and its summary names the clip, not where the server keeps it
    clip = tmp_path / "clip.npy"
    np.save(clip, moving_square(30))
    outputs = client.predict(label, handle_file(str(clip)), 0, False, 3, 2, 1, "training step", False, 0, "psnr",
                             api_name="/run_predict")
    summary = json.loads(outputs[4])
    assert summary["input"] == "clip.npy" and summary["checkpoint"] == label and "/" not in summary["input"]


def test_the_server_removes_its_files_when_stopped(checkpoint, tmp_path):
    from gradio_client import Client, handle_file

    server, url = start_demo(checkpoint, tmp_path)
    try:
        clip = tmp_path / "clip.npy"
        np.save(clip, moving_square(30))
        Client(url, verbose=False).predict("/".join(checkpoint.resolve().parts[-2:]), handle_file(str(clip)), 0,
                                           False, 3, 2, api_name="/show_clip")
        assert list((tmp_path / "tmp").glob("srvp-demo-*/preview-*/conditioning.png"))
        assert any(p.stat().st_size for p in (tmp_path / "gradio").rglob("*") if p.is_file())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert list((tmp_path / "tmp").iterdir()) == []  # the server's folder is gone
    assert not [p for p in (tmp_path / "gradio").rglob("*") if p.is_file() and p.stat().st_size]  # Gradio's copies


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_the_page_in_a_browser_uploads_predicts_and_shows_the_results(live_demo, tmp_path):
    import imageio.v2 as imageio
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, label, _ = live_demo
    clip = tmp_path / "clip.gif"
    imageio.mimsave(clip, list(moving_square(30)), format="GIF", duration=200)
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,2400", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.get(url + "/")
        upload = WebDriverWait(driver, 60).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#clip-upload input[type=file]")))
        upload.send_keys(str(clip))
        time.sleep(5)  # the upload to the server (the page gives no element that says it has finished)
        driver.find_element(By.CSS_SELECTOR, "#predict").click()
        plot = WebDriverWait(driver, 180).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#per-step img")))
        for element in ("#preview img", "#animation img", "#grid img"):
            assert driver.find_element(By.CSS_SELECTOR, element).get_attribute("src")
        assert driver.execute_script("return arguments[0].naturalWidth", plot) > 100
        assert "Traceback" not in driver.page_source
        # the endpoint the page has just used, asked for a file of the server instead of the upload: refused
        answer = api_call(url, "run_predict", server_path_requests(label, clip)["run_predict"])
        assert "event: error" in answer and "not uploaded by a user" in answer, answer[:500]
    finally:
        if driver is not None:
            driver.save_screenshot(str(tmp_path / "demo.png"))
            driver.quit()
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_the_pages_controls_offer_only_what_is_accepted(state, clip, uploads):
    """Every control's range is what the request accepts for the chosen model (issue 21, item 7): conditioning
    frames from the model's k, step sizes only for an Euler-step model, seeds 0 to MAX_SEED; the Swap and
    Interpolate tabs have controls of their own; every button first clears the results it replaces, in the browser
    (a listener without an endpoint), so that a failed request leaves no earlier result on screen."""
    import gradio as gr

    from srvp.config import MAX_SEED

    state.workdir.mkdir()
    app = demo.build_app(state)
    k = state.predictor("tiny").content_frames
    controls = [b for b in app.blocks.values() if isinstance(b, (gr.Slider, gr.Number))]
    conditioning = [b for b in controls if b.label.startswith("conditioning frames")]
    seeds = [b for b in controls if b.label.startswith("seed")]
    assert len(conditioning) == 3 and len(seeds) == 2 and {(b.minimum, b.maximum) for b in seeds} == {(0, MAX_SEED)}
    fns = list(app.fns.values()) if isinstance(app.fns, dict) else list(app.fns)
    runs = {f.fn.__name__: f for f in fns if f.fn is not None}
    # when the page loads and when the model changes, the sliders take the model's range and dt its choices
    limits = [f for f in fns if f.fn is not None and f.fn.__name__ == "limits"]
    assert {t[1] for f in limits for t in f.targets} == {"load", "change"}
    shown = {b._id for b in limits[0].outputs}
    assert {b._id for b in conditioning} <= shown
    *sliders, dt_choices = limits[0].fn("tiny")
    assert [(u["minimum"], u["maximum"]) for u in sliders] == [(k, demo.MAX_DEMO_COND)] * 3
    assert [c if isinstance(c, str) else c[0] for c in dt_choices["choices"]] == ["training step", *demo.DT_CHOICES]
    # the ranges Gradio checks on the server hold every model's (k >= 1); the function checks this model's k
    assert {(b.minimum, b.maximum) for b in conditioning} == {(1, demo.MAX_DEMO_COND)}
    inputs = {name: {b._id for b in f.inputs} for name, f in runs.items()}
    assert not {b._id for b in conditioning + seeds} & inputs["run_predict"] & (inputs["run_swap"] | inputs[
        "run_interpolate"])  # no control of the Predict tab drives another tab
    for name in ("show_clip", "run_predict", "run_swap", "run_interpolate"):
        clears = [f for f in fns if f.fn is None and f.targets == runs[name].targets]
        assert len(clears) == 1 and [b._id for b in clears[0].outputs] == [b._id for b in runs[name].outputs], name
        assert clears[0].js.startswith("() => [null"), clears[0].js
    assert demo.model_limits(state.predictor("tiny"))["dt_choices"] == ["training step", *demo.DT_CHOICES]
    from srvp.api import Predictor
    from srvp.models import build_model
    from tests.conftest import tiny_model_config

    gru = Predictor(build_model(tiny_model_config(transition="gru")), device="cpu")
    assert demo.model_limits(gru)["dt_choices"] == ["training step"]  # no Euler step: no smaller step offered
    # the ends of the ranges are accepted; one past them is refused with the command line's message
    demo.predict_clip(state, "tiny", clip, cond_frames=k, horizon=1, samples=1, dt="1/4", use_mean=False,
                      seed=MAX_SEED)
    with pytest.raises(ConfigError, match="--seed=4294967296 must be an integer from 0 to 4294967295"):
        demo.predict_clip(state, "tiny", clip, cond_frames=k, horizon=1, samples=1, dt="1", use_mean=False,
                          seed=MAX_SEED + 1)
    with pytest.raises(ConfigError, match=f"--cond-frames {k - 1}: the model needs at least k={k}"):
        demo.predict_clip(state, "tiny", clip, cond_frames=k - 1, horizon=1, samples=1, dt="1", use_mean=False,
                          seed=0)


def test_the_pages_metric_choice_is_the_metric_tables(state, monkeypatch):
    """The Predict tab's "best / worst sample by" offers every metric of the table that needs no network."""
    import gradio as gr

    from srvp.evaluation.metrics import METRICS, Metric

    monkeypatch.setitem(METRICS, "mae", Metric("mae", "MAE", higher_is_better=False, digits=3,
                                               score=lambda p, t: (p - t).abs().mean(dim=(-3, -2, -1))))
    state.workdir.mkdir()
    radios = [b for b in demo.build_app(state).blocks.values() if isinstance(b, gr.Radio)]
    assert [[c if isinstance(c, str) else c[0] for c in r.choices] for r in radios] == [["psnr", "ssim", "mae"]]


def test_swap_and_interpolation_from_the_page(state, clip, uploads):
    state.workdir.mkdir()
    other = uploads / "other.npy"
    np.save(other, moving_square(30, seed=3))
    swapped = demo.swap_clips(state, "tiny", clip, other, cond_frames=3, horizon=2, seed=0)
    assert {"swap.gif", "grid.png", "summary.json"} <= set(swapped["files"])
    assert swapped["summary"]["mode"] == "swap-content"
    paths = demo.interpolate_clips(state, "tiny", clip, other, cond_frames=3, horizon=2, steps=3)
    assert {"interpolation.gif", "grid.png"} <= set(paths["files"]) and paths["summary"]["steps"] == 3
    with pytest.raises(ConfigError, match="--steps 50"):
        demo.interpolate_clips(state, "tiny", clip, other, cond_frames=3, horizon=2, steps=50)
