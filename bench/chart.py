"""A small SVG line chart (no plotting library needed): one metric against clients, a line per peer."""

from __future__ import annotations

from typing import Any

COLOURS = {"raw": "#888888", "websockets": "#e0a000", "node": "#3c873a", "tally": "#1f6feb"}


def line_chart(rows: list[dict[str, Any]], title: str, peers: dict[str, Any]) -> str:
    """The summary rows of one scenario and metric, as an SVG document."""
    sizes: list[int] = sorted({int(r["clients"]) for r in rows})
    series = {key: [(r["clients"], r["values"].get(key)) for r in rows] for key in COLOURS}
    values = [v for points in series.values() for _, v in points if v is not None]
    if not sizes or not values:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    width, height, pad = 640, 400, 60
    top = float(max(values)) * 1.1
    span = float(max(sizes) - min(sizes)) or 1.0

    def x(n: int) -> float:
        return pad + (n - min(sizes)) / span * (width - 2 * pad)

    def y(v: float) -> float:
        return height - pad - v / top * (height - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15">{title}</text>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>']  # fmt: skip
    for n in sizes:
        parts.append(f'<text x="{x(n)}" y="{height - pad + 18}" text-anchor="middle">{n:,}</text>')
    for i in range(5):
        v = top * i / 4
        parts.append(f'<text x="{pad - 6}" y="{y(v) + 4}" text-anchor="end">{v:.0f}</text>')
    for index, (key, points) in enumerate(series.items()):
        drawn = [(x(n), y(v)) for n, v in points if v is not None]
        if not drawn:
            continue
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in drawn)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLOURS[key]}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{COLOURS[key]}"/>' for px, py in drawn)
        parts.append(f'<text x="{width - pad - 120}" y="{pad + 16 * index}" fill="{COLOURS[key]}">'
                     f'{peers[key].label}</text>')  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts)
