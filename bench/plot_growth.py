#!/usr/bin/env python3
"""Draws how a steady pass's cost grows with the cluster (issue 13, point 2) from the table
`bench/pass_cost.py` prints: an SVG with two log-log panels, bytes read from Redis per pass and
wall time per pass, for redis-operator's steady pass, its every-view pass and one
`redis-cli --cluster check` on the same clusters.

Usage: python3 bench/pass_cost.py > OUT; python3 bench/plot_growth.py OUT docs/img/pass-growth.svg
Plain SVG written by hand: no plotting library is needed on the machine.
"""
import math, sys

SERIES = (("steady pass", "#1f77b4"), ("every-view pass", "#ff7f0e"), ("redis-cli --cluster check", "#2ca02c"))


def read_table(path):
    """{nodes: {series: (mb, wall_ms)}} from the rows of pass_cost's table."""
    out = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 12 or not cells[1].isdigit():
            continue
        nodes, kind = int(cells[1]), cells[2]
        mb = float(cells[3].split()[0])
        wall = float(cells[5].split()[0])
        check_mb, check_wall = float(cells[6].split()[0]), float(cells[8].split()[0])
        row = out.setdefault(nodes, {})
        row["steady pass" if kind == "steady" else "every-view pass"] = (mb, wall)
        row["redis-cli --cluster check"] = (check_mb, check_wall)
    if not out:
        raise SystemExit(f"{path}: no rows of bench/pass_cost.py's table found")
    return out


def panel(x0, title, unit, points, index):
    """One log-log panel at horizontal offset x0: a polyline and dots per series."""
    w, h, left, top = 360, 260, 60, 40
    xs = sorted(points)
    ys = [v[index] for row in points.values() for v in row.values() if v[index] > 0]
    lx = (math.log10(min(xs)), math.log10(max(xs)) if max(xs) > min(xs) else math.log10(min(xs)) + 1)
    ly = (math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys))))
    if ly[1] == ly[0]:
        ly = (ly[0], ly[0] + 1)
    px = lambda n: x0 + left + (math.log10(n) - lx[0]) / (lx[1] - lx[0]) * w
    py = lambda v: top + h - (math.log10(v) - ly[0]) / (ly[1] - ly[0]) * h
    svg = [f'<text x="{x0 + left + w / 2}" y="22" text-anchor="middle" font-weight="bold">{title}</text>',
           f'<rect x="{x0 + left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>']
    for e in range(ly[0], ly[1] + 1):
        y = top + h - (e - ly[0]) / (ly[1] - ly[0]) * h
        svg.append(f'<line x1="{x0 + left}" x2="{x0 + left + w}" y1="{y}" y2="{y}" stroke="#eee"/>')
        svg.append(f'<text x="{x0 + left - 6}" y="{y + 4}" text-anchor="end">{10.0 ** e:g}</text>')
    for n in xs:
        svg.append(f'<text x="{px(n)}" y="{top + h + 18}" text-anchor="middle">{n}</text>')
    svg.append(f'<text x="{x0 + left + w / 2}" y="{top + h + 36}" text-anchor="middle">nodes (masters × 1)</text>')
    svg.append(f'<text x="{x0 + 14}" y="{top + h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 {x0 + 14} {top + h / 2})">{unit}</text>')
    for name, colour in SERIES:
        pts = [(px(n), py(points[n][name][index])) for n in xs if name in points[n] and points[n][name][index] > 0]
        if len(pts) > 1:
            svg.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                       + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        svg.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>' for x, y in pts)
    return svg


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: plot_growth.py PASS_COST_OUTPUT OUT.svg")
    points = read_table(sys.argv[1])
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="880" height="385" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']
    svg += panel(0, "Bytes read from Redis per pass", "MB", points, 0)
    svg += panel(440, "Wall time per pass", "ms", points, 1)
    for i, (name, colour) in enumerate(SERIES):
        x = 80 + i * 240
        svg.append(f'<rect x="{x}" y="364" width="14" height="4" fill="{colour}"/>')
        svg.append(f'<text x="{x + 20}" y="370">{name}</text>')
    svg.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
