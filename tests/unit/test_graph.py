"""netplumb graph: the SVG is well-formed, deterministic and shows every object (golden)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from netplumb.graph.svg import GHost, GNet, render

GOLDEN = Path(__file__).parent / "golden" / "graph_article.svg"

NETS = [GNet("netplumb", "np0", ("10.89.0.0/16",)), GNet("demo", "br1", ("10.2.0.0/16",))]
HOSTS = [
    GHost(
        "webserver2",
        "running",
        (("np0", "eth0", "10.89.0.4"),),
        (("mongodb", "mongo"),),
        ("8080/tcp <- :8081",),
    ),
    GHost("mongodb", "running", (("np0", "eth0", "10.89.0.2"),), (), ()),
    GHost(
        "webserver1",
        "exited",
        (("np0", "eth0", "10.89.0.3"), ("br1", "eth1", "10.2.0.11/16")),
        (("mongodb", "mongo"),),
        ("8080/tcp <- :8080",),
    ),
]


def test_graph_matches_the_golden_file() -> None:
    svg = render(NETS, HOSTS)
    if os.environ.get("NETPLUMB_UPDATE_GOLDEN"):
        GOLDEN.write_text(svg)
    assert svg == GOLDEN.read_text()


def test_graph_is_well_formed_and_shows_everything() -> None:
    svg = render(NETS, HOSTS)
    root = ET.fromstring(svg)
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for name in ("mongodb", "webserver1", "webserver2"):
        assert name in texts
    assert "eth1 10.2.0.11/16" in texts and "8080/tcp <- :8081" in texts
    assert any(t.startswith("br1  network demo") for t in texts)
    assert texts.count("mongo") == 2  # one arrow per link
    # the order hosts and networks come in does not change the picture
    assert render(list(reversed(NETS)), list(reversed(HOSTS))) == svg


def test_names_are_escaped() -> None:
    svg = render([], [GHost("a<b", "running", (), (), ('x"&y',))])
    ET.fromstring(svg)
    assert "a&lt;b" in svg and "x&quot;&amp;y" in svg


def test_graph_as_png_is_a_picture_of_the_svg(tmp_path: Path) -> None:
    from netplumb.graph.svg import to_png

    out = tmp_path / "system.png"
    to_png(render(NETS, HOSTS), str(out))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    root = ET.fromstring(render(NETS, HOSTS))
    assert (width, height) == (
        int(float(root.get("width", "0"))),
        int(float(root.get("height", "0"))),
    )


def test_graph_png_to_a_place_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    import pytest

    from netplumb.errors import NetplumbError
    from netplumb.graph.svg import to_png

    with pytest.raises(NetplumbError) as info:
        to_png(render(NETS, HOSTS), str(tmp_path / "missing" / "x.png"))
    assert str(info.value).startswith(f"cannot write PNG {tmp_path}/missing/x.png: ")
    assert "\n" not in str(info.value)
