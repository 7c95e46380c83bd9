"""The system as an SVG picture (pure): hosts, bridges, addresses, links and published ports.

Hosts stand in a row of boxes; each network is a horizontal bar below them, labelled with its
bridge and subnets; a host's interface is a vertical line from its box to the bar, labelled
with the address; a link is a dashed arrow from the linking host to its target with the alias;
published ports are listed in the host's box. Deterministic output, so golden tests pin it.
"""

from __future__ import annotations

from netplumb.model.value import Value

BOX_W, BOX_H, GAP, MARGIN = 190, 92, 40, 30
BAR_H, BAR_GAP = 26, 52


class GNet(Value):
    __slots__ = ("bridge", "name", "subnets")
    name: str
    bridge: str
    subnets: tuple[str, ...]

    def __init__(self, name: str, bridge: str, subnets: tuple[str, ...]) -> None:
        self.name = name
        self.bridge = bridge
        self.subnets = subnets
        self._freeze()


class GHost(Value):
    """``interfaces``: (bridge, ifname, address) triples; ``links``: (target, alias) pairs."""

    __slots__ = ("interfaces", "links", "name", "ports", "state")
    name: str
    state: str
    interfaces: tuple[tuple[str, str, str], ...]
    links: tuple[tuple[str, str], ...]
    ports: tuple[str, ...]

    def __init__(
        self,
        name: str,
        state: str,
        interfaces: tuple[tuple[str, str, str], ...],
        links: tuple[tuple[str, str], ...],
        ports: tuple[str, ...],
    ) -> None:
        self.name = name
        self.state = state
        self.interfaces = interfaces
        self.links = links
        self.ports = ports
        self._freeze()


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _text(
    x: float, y: float, s: str, size: int = 12, anchor: str = "start", weight: str = "normal"
) -> str:
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" font-family="monospace" font-size="{size}" '
        f'text-anchor="{anchor}" font-weight="{weight}">{_esc(s)}</text>'
    )


def render(nets: list[GNet], hosts: list[GHost]) -> str:
    """The SVG document for these networks and hosts."""
    hosts = sorted(hosts, key=lambda h: h.name)
    bridges = sorted({b for h in hosts for b, _, _ in h.interfaces} | {n.bridge for n in nets})
    by_bridge = {n.bridge: n for n in nets}
    width = max(2 * MARGIN + len(hosts) * (BOX_W + GAP) - GAP, 480)
    top = MARGIN + 40  # room for link arrows above the boxes
    bar_y = {b: top + BOX_H + 60 + i * BAR_GAP for i, b in enumerate(bridges)}
    height = (max(bar_y.values()) + BAR_H + MARGIN) if bar_y else top + BOX_H + MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        '<defs><marker id="arrow" markerWidth="10" markerHeight="7" refX="9" refY="3.5" '
        'orient="auto"><polygon points="0 0, 10 3.5, 0 7" fill="#555"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for b in bridges:
        y = bar_y[b]
        n = by_bridge.get(b)
        label = f"{b}  network {n.name}  {' '.join(n.subnets)}" if n else f"{b}  (bridge)"
        out.append(
            f'<rect x="{MARGIN}" y="{y}" width="{width - 2 * MARGIN}" height="{BAR_H}" '
            'rx="4" fill="#dbe9f6" stroke="#4a78a8"/>'
        )
        out.append(_text(MARGIN + 8, y + 17, label, 12, weight="bold"))
    x_of: dict[str, float] = {}
    for i, h in enumerate(hosts):
        x = MARGIN + i * (BOX_W + GAP)
        x_of[h.name] = x + BOX_W / 2
        for j, (bridge, ifname, addr) in enumerate(sorted(h.interfaces)):
            lx = x + 24 + j * 28
            out.append(
                f'<line x1="{lx}" y1="{top + BOX_H}" x2="{lx}" y2="{bar_y[bridge]}" '
                'stroke="#4a78a8" stroke-width="2"/>'
            )
            out.append(_text(lx + 4, top + BOX_H + 16 + j * 14, f"{ifname} {addr}", 10))
        fill = "#e8f5e9" if h.state == "running" else "#fbe9e7"
        out.append(
            f'<rect x="{x}" y="{top}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'fill="{fill}" stroke="#333"/>'
        )
        out.append(_text(x + 8, top + 18, h.name, 13, weight="bold"))
        out.append(_text(x + 8, top + 34, h.state, 10))
        for k, port in enumerate(h.ports[:3]):
            out.append(_text(x + 8, top + 52 + k * 13, port, 10))
        if len(h.ports) > 3:
            out.append(_text(x + 8, top + 52 + 3 * 13, f"+{len(h.ports) - 3} more", 10))
    for h in hosts:
        for target, alias in sorted(h.links):
            if target not in x_of:
                continue
            x1, x2 = x_of[h.name], x_of[target]
            mid = (x1 + x2) / 2
            out.append(
                f'<path d="M {x1:.0f} {top} Q {mid:.0f} {top - 40} {x2:.0f} {top}" fill="none" '
                'stroke="#555" stroke-dasharray="5,3" marker-end="url(#arrow)"/>'
            )
            out.append(_text(mid, top - 22, alias, 10, anchor="middle"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_png(svg: str, path: str) -> None:
    """Write the picture as PNG, rendered by librsvg's ``rsvg-convert`` (Debian librsvg2-bin)."""
    import shutil
    import subprocess

    from netplumb.errors import NetplumbError

    tool = shutil.which("rsvg-convert")
    if tool is None:
        raise NetplumbError("cannot write PNG: rsvg-convert not found (apt install librsvg2-bin)")
    done = subprocess.run(
        [tool, "--format", "png", "--output", path],
        input=svg.encode(),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
        raise NetplumbError(f"cannot write PNG {path}: {reason[0]}")
