"""`srvp quickstart` end to end at a tiny size: the files the README lists, a labelled animation and a per-step plot
whose legend names every curve."""

from __future__ import annotations

import numpy as np
from PIL import Image

from srvp.cli.main import main
from srvp.tasks.quickstart import CONDITIONING_COLOUR, PREDICTED_COLOUR, frame_captions


def test_quickstart_writes_every_listed_file(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out-dir", str(out), "--steps", "3", "--samples", "2", "--test-sequences", "2",
                 "--no-progress"]) == 0
    for name in ("best.pt", "last.pt", "config.json", "samples.gif", "samples.png", "evaluation/results.md",
                 "evaluation/results.json", "evaluation/per_step.png", "evaluation/per_step.csv",
                 "evaluation/per_sequence.csv"):
        assert (out / name).is_file(), name
    assert "blank" in capsys.readouterr().out
    gif = Image.open(out / "samples.gif")
    assert gif.n_frames == 15  # 5 conditioning + 10 predicted frames
    frames = []
    for i in (0, 6):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")).astype(int))
    # a left margin with the row labels (dark text on white) beside the 2 x 2-scaled 64-pixel frames of 2 clips
    assert frames[0].shape[1] > 2 * 128 + 40
    margin = frames[0][40:, :30]
    assert (margin < 100).any() and (margin > 250).any()
    # the caption above the frames is blue on conditioning frames and red on predicted ones
    top = [f[:16] for f in frames]
    blue = lambda a: ((a[..., 2] > 150) & (a[..., 0] < 80)).any()  # noqa: E731
    red = lambda a: ((a[..., 0] > 150) & (a[..., 2] < 80)).any()  # noqa: E731
    assert blue(top[0]) and not red(top[0]) and red(top[1]) and not blue(top[1])


def test_frame_captions_mark_conditioning_and_predicted_frames():
    captions = frame_captions(2, 4)
    assert [c for _, c in captions] == [CONDITIONING_COLOUR] * 2 + [PREDICTED_COLOUR] * 2
    assert captions[0][0].startswith("t=1") and "predicted" in captions[3][0]


def test_per_step_legend_names_the_model_and_the_baselines():
    from srvp.evaluation.protocol import SettingScores
    from srvp.evaluation.report import curve_label

    assert curve_label(SettingScores("model", 0.5), 20) == "model, best of 20, dt = 1/2 (95% band)"
    assert curve_label(SettingScores("last frame", None), 20) == "last conditioning frame repeated"
    assert curve_label(SettingScores("blank", None), 20) == "blank (black) frame"
