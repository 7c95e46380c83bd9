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
