"""The diagrams in images/: referenced ones exist, and all are fresh output of make_images.py."""

import importlib.util
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from course_lib import viz

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_IMAGE = re.compile(r"""<img\s[^>]*?src\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def load_make_images():
    spec = importlib.util.spec_from_file_location("make_images", IMAGES / "make_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_references(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return MARKDOWN_IMAGE.findall(text) + HTML_IMAGE.findall(text)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("images")
    # A notebook-style rcParams change must not leak into the diagrams.
    with plt.rc_context():
        viz.use_course_style()
        written = load_make_images().main(out_dir)
    return out_dir, written


def test_reference_patterns_find_links():
    sample = '![a](../images/x.png) text <img src="../images/y.png" width=300>'
    assert MARKDOWN_IMAGE.findall(sample) == ["../images/x.png"]
    assert HTML_IMAGE.findall(sample) == ["../images/y.png"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_referenced_image_exists(path):
    for reference in image_references(path):
        if reference.startswith(("http://", "https://", "data:", "attachment:")):
            continue
        target = (path.parent / reference).resolve()
        assert target.is_file(), f"{path.name} shows {reference}, which does not exist"


def test_make_images_writes_exactly_the_committed_pngs(generated):
    out_dir, written = generated
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in out_dir.glob("*.png"))
    assert {"pad_three_places.png", "broadcast_pad_mask.png", "mask_conventions.png"} <= set(names)
    committed = sorted(p.name for p in IMAGES.glob("*.png"))
    assert committed == names, "images/ and make_images.py disagree on which PNGs exist"


def test_committed_pngs_are_fresh(generated):
    out_dir, written = generated
    stale = [p.name for p in written if (IMAGES / p.name).read_bytes() != p.read_bytes()]
    assert not stale, f"stale images (run `make images` and commit): {stale}"


def test_pngs_have_no_software_chunk(generated):
    _, written = generated
    for path in written:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG"), path.name
        assert b"Software" not in data, f"{path.name} names the matplotlib version"
