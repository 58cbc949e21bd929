"""The web page (``srvp demo``): the functions the page calls, without a browser (bad inputs give the command
line's messages, limits hold, nothing is written outside the server's folder), then the page itself in a real
browser (Debian's chromium driven by Selenium): upload a clip, predict, see the animations and plots."""

from __future__ import annotations

import io
import os
import shutil
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
def state(checkpoint, tmp_path) -> demo.DemoState:
    return demo.DemoState({"tiny": str(checkpoint)}, workdir=tmp_path / "server")


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.npy"
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


def test_uploads_are_bounded_and_zips_extracted_safely(state, tmp_path, monkeypatch):
    state.workdir.mkdir()
    with pytest.raises(DataError, match="upload a clip"):
        demo.clip_input(state, None)
    archive = tmp_path / "frames.zip"
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
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not a zip")
    monkeypatch.setattr(demo, "MAX_UPLOAD_BYTES", 2**20)
    with pytest.raises(DataError, match="not a readable zip"):
        demo.clip_input(state, tmp_path / "bad.zip")


def test_only_offered_models_load(state):
    with pytest.raises(ConfigError, match="unknown model '/etc/passwd'; choose one of tiny"):
        state.predictor("/etc/passwd")


def test_the_pages_error_text_is_the_message_not_a_trace():
    assert demo._message(ConfigError("--samples 0 must be positive")) == "--samples 0 must be positive"
    assert "Traceback" not in demo._message(RuntimeError("boom")) and "internal error" in demo._message(KeyError())


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


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_the_page_in_a_browser_uploads_predicts_and_shows_the_results(checkpoint, tmp_path):
    import imageio.v2 as imageio
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    clip = tmp_path / "clip.gif"
    imageio.mimsave(clip, list(moving_square(30)), format="GIF", duration=200)
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1")
    server = subprocess.Popen([sys.executable, "-m", "srvp.cli.main", "demo", "--checkpoint", str(checkpoint),
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                              cwd=tmp_path)
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,2400", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    driver = None
    try:
        deadline = time.monotonic() + 90
        while True:  # the server is up when its port answers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the demo did not start in 90 s"
                time.sleep(0.5)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
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
    finally:
        if driver is not None:
            driver.save_screenshot(str(tmp_path / "demo.png"))
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_swap_and_interpolation_from_the_page(state, clip, tmp_path):
    state.workdir.mkdir()
    other = tmp_path / "other.npy"
    np.save(other, moving_square(30, seed=3))
    swapped = demo.swap_clips(state, "tiny", clip, other, cond_frames=3, horizon=2, seed=0)
    assert {"swap.gif", "grid.png", "summary.json"} <= set(swapped["files"])
    assert swapped["summary"]["mode"] == "swap-content"
    paths = demo.interpolate_clips(state, "tiny", clip, other, cond_frames=3, horizon=2, steps=3)
    assert {"interpolation.gif", "grid.png"} <= set(paths["files"]) and paths["summary"]["steps"] == 3
    with pytest.raises(ConfigError, match="--steps 50"):
        demo.interpolate_clips(state, "tiny", clip, other, cond_frames=3, horizon=2, steps=50)
