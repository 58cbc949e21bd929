"""The README as written: each of its Python blocks runs on its own, in a fresh namespace and an empty folder, as a
reader would paste it (reliability issue 21, item 8: the second block used `torch`, `frames` and `Predictor`
from the first)."""

from __future__ import annotations

import re

import pytest
import torch

from tests.conftest import REPO

BLOCKS = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.S | re.M)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_python_block_of_the_readme_runs_on_its_own(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    exec(compile(BLOCKS[index], f"README.md, Python block {index + 1}", "exec"), {"__name__": "__readme__"})


def test_the_documented_file_types_are_the_ones_read(capsys):
    """One list of the video and image files read (srvp.io), given by the --help texts and docs/datasets.md (they
    used to differ from each other and from the reader)."""
    from srvp.cli.main import main
    from srvp.data import videos
    from srvp.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, suffix_list

    wanted = [suffix_list(VIDEO_SUFFIXES), suffix_list(IMAGE_SUFFIXES)]
    assert ".gif" in VIDEO_SUFFIXES and (videos.VIDEO_EXTENSIONS, videos.IMAGE_EXTENSIONS) == (VIDEO_SUFFIXES,
                                                                                              IMAGE_SUFFIXES)
    docs = " ".join((REPO / "docs" / "datasets.md").read_text().split())
    for command in (["predict", "--help"], ["data", "videos", "convert", "--help"]):
        assert main(command) == 0
        shown = " ".join(capsys.readouterr().out.split())
        for text in wanted:
            assert text in shown, (command, text)
    for text in wanted:
        assert text in docs, text


def test_the_readme_shows_what_srvp_pretrained_list_prints(tmp_path, monkeypatch, capsys):
    """The README's `srvp pretrained list` block is the command's output with nothing in the Hugging Face cache (the
    installation folder and the cache shown as a reader's would be)."""
    from pathlib import Path

    import huggingface_hub.constants as constants

    import srvp
    from srvp.cli.main import main

    shown = re.search(r"^```console\n\$ srvp pretrained list\n(.*?)^```", (REPO / "README.md").read_text(),
                      flags=re.S | re.M)
    assert shown, "README.md has no `srvp pretrained list` block"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["pretrained", "list"]) == 0
    printed = capsys.readouterr().out.replace(str(Path(srvp.__file__).parent), ".../site-packages/srvp")
    assert printed.replace(str(tmp_path / "hub"), "~/.cache/huggingface/hub") == shown.group(1)
