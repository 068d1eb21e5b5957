#!/usr/bin/env python3
"""Draw the `curve` lines of benches/lab.sh (TARGETS="...") as an SVG: time
to target (c1m lab and the C programs) and bytes per connection (kernel,
and c1m's user space), each against the target. No dependencies.

    python3 benches/curve_svg.py curve.txt curve.svg

A line looks like
    curve target=100000 reached=yes verified=100000 time_s=2.6 rate=38000
          kernel_B=5600 user_B=60 c_time_s=2.4 c_rate=41000 c_kernel_B=5500 ratio=1.08
(one line; values that could not be measured are "n/a" and are left out).
"""
import sys


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.startswith("curve "):
                continue
            row = {}
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                try:
                    row[key] = float(value)
                except ValueError:
                    pass
            if "target" in row:
                rows.append(row)
    return sorted(rows, key=lambda r: r["target"])


W, H, PAD = 360, 260, 50


def panel(x0, title, rows, series, unit):
    """One chart: `series` is [(key, colour, label)], drawn against target."""
    pts = [(r["target"], r[k]) for k, _, _ in series for r in rows if k in r]
    if not pts:
        return f'<text x="{x0 + PAD}" y="{H / 2}">{title}: nothing measured</text>'
    xmax = max(p[0] for p in pts) or 1
    ymax = max(p[1] for p in pts) * 1.1 or 1
    sx = lambda x: x0 + PAD + (W - 2 * PAD) * x / xmax
    sy = lambda y: H - PAD + -(H - 2 * PAD) * y / ymax
    out = [
        f'<text x="{x0 + W / 2}" y="20" text-anchor="middle" font-weight="bold">{title}</text>',
        f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(xmax)}" y2="{sy(0)}" stroke="black"/>',
        f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(0)}" y2="{sy(ymax)}" stroke="black"/>',
        f'<text x="{x0 + W / 2}" y="{H - 10}" text-anchor="middle">connections</text>',
        f'<text x="{sx(0) - 5}" y="{sy(ymax)}" text-anchor="end">{ymax:,.0f}</text>',
        f'<text x="{sx(0) - 5}" y="{sy(0)}" text-anchor="end">0 {unit}</text>',
    ]
    for r in rows:
        out.append(
            f'<text x="{sx(r["target"])}" y="{sy(0) + 15}" text-anchor="middle">{r["target"] / 1e6:g}M</text>'
        )
    for i, (key, colour, label) in enumerate(series):
        line = [(sx(r["target"]), sy(r[key])) for r in rows if key in r]
        if not line:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in line)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in line]
        out.append(f'<text x="{sx(0) + 10}" y="{sy(ymax) + 15 * (i + 1)}" fill="{colour}">{label}</text>')
    return "\n".join(out)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: curve_svg.py CURVE_LINES_FILE OUT.svg")
    rows = parse(sys.argv[1])
    if not rows:
        sys.exit(f"{sys.argv[1]}: no `curve` lines")
    body = [
        panel(0, "time to target (s)", rows,
              [("time_s", "#c0392b", "c1m lab"), ("c_time_s", "#2c3e50", "C programs")], "s"),
        panel(W, "bytes per connection", rows,
              [("kernel_B", "#c0392b", "kernel (c1m lab)"), ("c_kernel_B", "#2c3e50", "kernel (C)"),
               ("user_B", "#27ae60", "user (c1m serve + flood)")], "B"),
    ]
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" '
           f'font-family="sans-serif" font-size="11">\n<rect width="100%" height="100%" fill="white"/>\n'
           + "\n".join(body) + "\n</svg>\n")
    with open(sys.argv[2], "w") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
