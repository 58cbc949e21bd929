"""Output folders (``srvp predict --out``, ``srvp evaluate --out``, ``srvp pretrained convert OUT``): a command only
ever replaces what an earlier run of the same command wrote there (recognised by its files), or an empty folder; a
folder with anything else in it is refused with one line and left exactly as it was; ``.`` (the current directory)
works and leaves no hidden folder behind (reliability issue 21, items 1 and 6). The model folders of
``srvp pretrained`` are tested in tests/test_pretrained.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import srvp.files as file_helpers
from srvp.cli.main import main
from srvp.data.npz import save_sequences_npz
from srvp.errors import ConfigError
from srvp.evaluation.report import REPORT_FILES
from srvp.files import replaceable_names, staged_output_dir
from tests.test_predict import moving_square, save_tiny_checkpoint


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A tiny checkpoint, a clip and a test set of 3 sequences (official layout (T, N, H, W))."""
    folder = tmp_path_factory.mktemp("inputs")
    clip = folder / "clip.npy"
    np.save(clip, moving_square(8, 64, 64)[..., 0])
    test_set = folder / "test.npz"
    rng = np.random.default_rng(0)
    save_sequences_npz(test_set, {"sequences": (rng.random((6, 3, 64, 64)) * 255).astype(np.uint8)})
    return save_tiny_checkpoint(folder / "tiny.pt"), clip, test_set


def predict_argv(inputs, out: str, samples: int = 2) -> list[str]:
    checkpoint, clip, _ = inputs
    return ["predict", "--checkpoint", str(checkpoint), "--input", str(clip), "--out", out, "--samples", str(samples),
            "--horizon", "2", "--cond-frames", "2"]


def evaluate_argv(inputs, out: str) -> list[str]:
    checkpoint, _, test_set = inputs
    return ["evaluate", "--checkpoint", str(checkpoint), "--test-set", str(test_set), "--samples", "1", "--no-elbo",
            "--no-progress", "--horizon", "2", "--out", out]


def tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_the_current_directory_as_out_is_replaced_in_place_and_leaves_nothing_hidden(inputs, command, tmp_path,
                                                                                      monkeypatch, capsys):
    argv = predict_argv if command == "predict" else evaluate_argv
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    inode = work.stat().st_ino
    for samples in (3, 1):  # twice into ".": the second run replaces the first one's files (fewer samples: fewer)
        args = argv(inputs, ".") if command == "evaluate" else predict_argv(inputs, ".", samples)
        assert main(args) == 0, capsys.readouterr().err
        capsys.readouterr()  # what a successful run printed (evaluate names its protocol) is not the error below
        assert Path.cwd().stat().st_ino == inode  # the process is still in its folder, not in a deleted one
        names = sorted(os.listdir("."))
        assert not [n for n in names if n.startswith(".")], names  # no hidden staging or "old" folder
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    if command == "predict":
        assert names == ["grid.png", "per_step.png", "sample_00.gif", "summary.json"]
    else:
        assert set(names) <= set(REPORT_FILES) and "results.json" in names  # the list covers what evaluate writes
    (work / "notes.txt").write_text("the user's")
    before = tree(work)
    assert main(argv(inputs, ".")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'notes.txt' is not an output of an earlier run" in err[0], err
    assert tree(work) == before


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_folder_with_other_files_is_refused_and_left_as_it_was(inputs, command, tmp_path, capsys):
    argv = predict_argv if command == "predict" else evaluate_argv
    marker = "summary.json" if command == "predict" else "results.json"
    cases = {
        "users": {"notes.txt": b"keep me", "sub/photo.jpg": b"\xff\xd8"},
        "marker-not-ours": {marker: b'{"anything": 1}', "data.csv": b"1,2"},
        "marker-not-json": {marker: b"my own notes", "x.txt": b"1"},
        "a-folder-named-like-an-output": {},
    }
    for name, files in cases.items():
        out = tmp_path / name
        out.mkdir()
        for rel, data in files.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
    assert main(argv(inputs, str(tmp_path / "a-folder-named-like-an-output"))) == 0  # an earlier run's folder...
    capsys.readouterr()
    (tmp_path / "a-folder-named-like-an-output" / "grid.png").unlink(missing_ok=True)
    (tmp_path / "a-folder-named-like-an-output" / "grid.png").mkdir()  # ...in which a listed name is now a folder
    (tmp_path / "a-folder-named-like-an-output" / "grid.png" / "mine.txt").write_text("keep me")
    if command == "evaluate":
        (tmp_path / "a-folder-named-like-an-output" / "results.md").unlink()
        (tmp_path / "a-folder-named-like-an-output" / "results.md").mkdir()
    before = tree(tmp_path)
    for name in cases:
        out = tmp_path / name
        assert main(argv(inputs, str(out))) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"srvp {command}: error: {out}: the folder holds other files"), err
    assert tree(tmp_path) == before


def test_the_helper_replaces_only_recognised_files_and_cleans_after_a_failure(tmp_path):
    out = tmp_path / "out"

    def listed(folder: Path) -> list[str]:
        return json.loads((folder / "m.json").read_text())["files"]

    with staged_output_dir(out, "m.json", earlier=listed) as s:
        (s / "a.txt").write_text("1")
        (s / "m.json").write_text('{"files": ["a.txt"]}')
    assert sorted(os.listdir(out)) == ["a.txt", "m.json"]
    with pytest.raises(KeyboardInterrupt), staged_output_dir(out, "m.json", earlier=listed) as s:
        (s / "b.txt").write_text("half")
        raise KeyboardInterrupt
    assert sorted(os.listdir(out)) == ["a.txt", "m.json"] and sorted(os.listdir(tmp_path)) == ["out"]
    with pytest.raises(ConfigError, match="'a.txt' is not an output"):  # the marker lists nothing of it
        replaceable_names(out, "m.json")
    (tmp_path / "link").symlink_to(out)  # a link to an output folder: the folder it names is replaced, not the link
    with staged_output_dir(tmp_path / "link", "m.json", earlier=lambda f: ["a.txt"]) as s:
        (s / "m.json").write_text("{}")
    assert (tmp_path / "link").is_symlink() and sorted(os.listdir(out)) == ["m.json"]


def test_exchange_paths_swaps_two_folders_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("A")
    (b / "f").write_text("B")
    if not file_helpers.exchange_paths(a, b):
        pytest.skip("this system has no renameat2 RENAME_EXCHANGE (the helper renames twice there)")
    assert (a / "f").read_text() == "B" and (b / "f").read_text() == "A"
    with pytest.raises(FileNotFoundError):
        file_helpers.exchange_paths(a, tmp_path / "absent")


def test_a_kill_after_the_swap_leaves_the_new_output_and_never_no_folder(tmp_path, monkeypatch):
    """Replacing an output folder: the moment after the swap (the old folder not yet removed) already shows the new
    output; the fallback of two renames is used only where the swap is impossible."""
    out = tmp_path / "out"
    with staged_output_dir(out, "m.json", earlier=lambda f: []) as s:
        (s / "m.json").write_text('"old"')
    if not file_helpers.exchange_paths(out, out):  # a folder with itself: a no-op that says whether the swap exists
        pytest.skip("this system has no renameat2 RENAME_EXCHANGE")
    seen = []

    def killed(path, *args, **kwargs):  # SIGKILL right after the swap, before the old folder is removed
        seen.append((out / "m.json").read_text())
        raise KeyboardInterrupt

    monkeypatch.setattr(file_helpers.shutil, "rmtree", killed)
    monkeypatch.setattr(file_helpers.os, "replace", lambda *a: pytest.fail("renamed instead of swapped"))
    with pytest.raises(KeyboardInterrupt), staged_output_dir(out, "m.json", earlier=lambda f: []) as s:
        (s / "m.json").write_text('"new"')
    assert seen and set(seen) == {'"new"'} and (out / "m.json").read_text() == '"new"'
