"""Output of the benchmark: the Markdown table, results.json, the sync-time
plot (sync.svg, drawn here so that no plotting package is needed) and
summary.md (machine, ratios kproxy / kube-proxy, how it was measured)."""

import html
import json
import math
import os
import re

# (measurement name, impl, label) in table order; a section header is a str
ROWS = [
    "Full sync: agent start with N Services present -> all N x E backends in the kernel (s)",
    ("full_sync", "kproxy-nftables", "kproxy, nftables"),
    ("full_sync_dataplane", "kproxy-nftables", "kproxy, nftables dataplane alone (bench_nft)"),
    ("full_sync", "kproxy-ebpf", "kproxy, eBPF"),
    ("full_sync", "kube-proxy-nftables", "kube-proxy nftables ruleset, `nft -f`"),
    ("full_sync", "kube-proxy-iptables",
     "kube-proxy iptables ruleset, `iptables-restore --noflush`"),
    ("full_sync_plain", "kube-proxy-iptables",
     "kube-proxy iptables ruleset, `iptables-restore` into an empty namespace"),
    "The API side alone: N Services' list pages -> parsed, decoded, the model built (bench_decode)",
    ("list_decode", "kproxy", "kproxy: list + decode + model (s)"),
    ("list_decode_rss", "kproxy", "kproxy: resident memory holding it all (MiB)"),
    "One endpoint change: API write -> element in the kernel (ms)",
    ("change_p50", "kproxy-nftables", "kproxy, nftables, p50"),
    ("change_p99", "kproxy-nftables", "kproxy, nftables, p99"),
    ("change_dataplane_p50", "kproxy-nftables", "kproxy, nftables dataplane alone, p50"),
    ("change_dataplane_p99", "kproxy-nftables", "kproxy, nftables dataplane alone, p99"),
    ("change_p50", "kproxy-ebpf", "kproxy, eBPF, p50"),
    ("change_p99", "kproxy-ebpf", "kproxy, eBPF, p99"),
    "Agent cost",
    ("agent_peak_rss", "kproxy-nftables", "kproxy, nftables: peak RSS (MiB)"),
    ("agent_sync_cpu", "kproxy-nftables", "kproxy, nftables: CPU for the full sync (s)"),
    ("agent_rest_rss", "kproxy-nftables", "kproxy, nftables: RSS at rest (MiB)"),
    ("agent_peak_rss", "kproxy-ebpf", "kproxy, eBPF: peak RSS (MiB)"),
    ("agent_sync_cpu", "kproxy-ebpf", "kproxy, eBPF: CPU for the full sync (s)"),
    ("agent_rest_rss", "kproxy-ebpf", "kproxy, eBPF: RSS at rest (MiB)"),
    "Datapath: new TCP connections per second (4 in flight), pod -> ClusterIP",
    ("cps", "direct", "straight to the endpoint pods (the limit)"),
    ("cps", "kproxy-nftables", "kproxy, nftables"),
    ("cps", "kproxy-ebpf", "kproxy, eBPF"),
    ("cps", "kube-proxy-iptables", "kube-proxy iptables ruleset (ClusterIP last)"),
    "Datapath: request latency on a new connection, one at a time (ms)",
    ("latency_p50", "direct", "straight to the endpoint pods, p50"),
    ("latency_p99", "direct", "straight to the endpoint pods, p99"),
    ("latency_p50", "kproxy-nftables", "kproxy, nftables, p50"),
    ("latency_p99", "kproxy-nftables", "kproxy, nftables, p99"),
    ("latency_p50", "kproxy-ebpf", "kproxy, eBPF, p50"),
    ("latency_p99", "kproxy-ebpf", "kproxy, eBPF, p99"),
    ("latency_p50", "kube-proxy-iptables", "kube-proxy iptables ruleset, p50"),
    ("latency_p99", "kube-proxy-iptables", "kube-proxy iptables ruleset, p99"),
]

SERIES = [  # the plot: (name, impl, label, colour, dashed)
    ("full_sync", "kproxy-nftables", "kproxy nftables", "#1f77b4", False),
    ("full_sync_dataplane", "kproxy-nftables", "kproxy nftables, dataplane alone", "#1f77b4", True),
    ("full_sync", "kproxy-ebpf", "kproxy eBPF", "#2ca02c", False),
    ("full_sync", "kube-proxy-nftables", "kube-proxy nftables (nft -f)", "#ff7f0e", False),
    ("full_sync", "kube-proxy-iptables", "kube-proxy iptables (restore --noflush)",
     "#d62728", False),
    ("full_sync_plain", "kube-proxy-iptables", "kube-proxy iptables (restore, empty ns)",
     "#d62728", True),
]


def _find(res, name, impl, n):
    for r in res.records:
        if r["name"] == name and r["impl"] == impl and r["services"] == n:
            return r
    return None


def value(res, name, impl, n):
    r = _find(res, name, impl, n)
    return r["value"] if r else None


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "conn/s":
        return f"{v:,.0f}"
    if unit == "MiB":
        return f"{v:.1f}"
    if v == 0:
        return "0"
    digits = max(0, 2 - int(math.floor(math.log10(abs(v)))))
    return f"{v:.{min(digits, 4)}f}"


def ratio(a, b):
    """b / a as "12x", or None."""
    if a is None or b is None or a <= 0:
        return None
    q = b / a
    return f"{q:.0f}x" if q >= 10 else f"{q:.1f}x"


def machine_line(info):
    return (f"{info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, "
            f"kernel {info['kernel']}; {info['nft']}; {info['iptables']}; "
            f"{info['kproxy']}; {info['date']}")


def markdown(res, cfg, info):
    return "\n".join([f"kproxy benchmark ({cfg.scale}): E = {cfg.endpoints} endpoints per "
                      f"Service, median of {cfg.runs} runs, agent run with "
                      "--min-sync-period=0", "", f"Machine: {machine_line(info)}", "",
                      table(res, cfg)])


def table(res, cfg):
    """The table, its notes and the context lines."""
    ns = cfg.services
    head = "| measurement | " + " | ".join(f"N = {n:,}" for n in ns) + " |"
    sep = "| --- | " + " | ".join("---:" for _ in ns) + " |"
    out = [head, sep]
    notes = []
    for row in ROWS:
        if isinstance(row, str):
            out.append(f"| **{row}** |" + " |" * len(ns))
            continue
        name, impl, label = row
        cells = []
        for n in ns:
            r = _find(res, name, impl, n)
            if r is None:
                cells.append("")
                continue
            cell = fmt(r["value"], r["unit"])
            if r.get("note"):
                if r["note"] not in notes:
                    notes.append(r["note"])
                cell += f" [{notes.index(r['note']) + 1}]"
            cells.append(cell)
        if any(cells):
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    if notes:
        out.append("")
        out += [f"[{k}] {note}" for k, note in enumerate(notes, 1)]
    ctx = context_lines(res, cfg)
    if ctx:
        out.append("")
        out += ctx
    if res.context.get("interrupted"):
        out += ["", "**The run did not finish: the figures above are partial.**"]
    return "\n".join(out)


def context_lines(res, cfg):
    out = []
    lists = [(n, res.context.get(("api_list", n))) for n in cfg.services]
    lists = [f"{v:.2f} s at {n:,}" for n, v in lists if v is not None]
    if lists:
        out.append("The API server emulator (Python) takes " + ", ".join(lists) +
                   " to serve every Service and EndpointSlice in pages of 500; kproxy's full "
                   "sync includes that wait, the dataplane-alone row does not.")
    writes = []
    for n in cfg.services:
        v = res.context.get(("api_write_p50", "kproxy-nftables", n))
        if v is not None:
            writes.append(f"{v:.2f} ms at {n:,}")
    if writes:
        out.append("One EndpointSlice write takes the emulator " + ", ".join(writes) +
                   " (p50, until its answer); the change figures start before the write.")
    idle = []
    for n in cfg.services:
        v = res.context.get(("agent_idle_cpu", "kproxy-nftables", n))
        if v is not None:
            idle.append(f"{100 * v:.1f}% at {n:,}")
    if idle:
        out.append("kproxy (nftables) at rest uses " + ", ".join(idle) + " of one CPU.")
    return out


def ratio_lines(res, cfg):
    out = []
    for n in cfg.services:
        kp = value(res, "full_sync", "kproxy-nftables", n)
        parts = []
        for impl, name, label in (("kube-proxy-nftables", "full_sync", "`nft -f`"),
                                  ("kube-proxy-iptables", "full_sync",
                                   "`iptables-restore --noflush`"),
                                  ("kube-proxy-iptables", "full_sync_plain",
                                   "`iptables-restore` into an empty namespace")):
            other = value(res, name, impl, n)
            q = ratio(kp, other)
            if q and other >= kp:
                parts.append(f"{q} faster than {label}")
                continue
            if q:
                parts.append(f"{ratio(other, kp)} slower than {label}")
                continue
            r = _find(res, name, impl, n)
            m = re.match(r"stopped after BENCH_ANCHOR_CAP=(\d+)", (r or {}).get("note") or "")
            if m and kp:
                q = ratio(kp, float(m.group(1)))
                parts.append(f"more than {q} faster than {label} (stopped after "
                             f"{m.group(1)} s)")
        eb = value(res, "full_sync", "kproxy-ebpf", n)
        dp = value(res, "full_sync_dataplane", "kproxy-nftables", n)
        if kp is not None:
            line = f"- {n:,} Services: kproxy (nftables) full sync {fmt(kp, 's')} s"
            if parts:
                line += ", " + ", ".join(parts)
            if dp is not None:
                line += f"; its dataplane alone {fmt(dp, 's')} s"
            if eb is not None:
                line += f"; eBPF mode {fmt(eb, 's')} s"
            out.append(line + ".")
        ch = value(res, "change_p50", "kproxy-nftables", n)
        ch99 = value(res, "change_p99", "kproxy-nftables", n)
        if ch is not None:
            out.append(f"  One endpoint change: {fmt(ch, 'ms')} ms p50, {fmt(ch99, 'ms')} ms p99 "
                       "from the API write to the kernel.")
        d = value(res, "cps", "direct", n)
        dp = []
        for impl, label in (("kproxy-nftables", "kproxy nftables"), ("kproxy-ebpf", "kproxy eBPF"),
                            ("kube-proxy-iptables", "kube-proxy iptables")):
            v = value(res, "cps", impl, n)
            if v is not None and d:
                dp.append(f"{label} {100 * v / d:.0f}%")
        if dp:
            out.append("  New connections per second, as a share of the direct rate: "
                       + ", ".join(dp) + ".")
    return out


def summary(res, cfg, info):
    cmd = "make bench" if cfg.scale == "full" else f"BENCH_SCALE={cfg.scale} make bench"
    out = ["## Benchmark", "",
           f"`{cmd}` on {machine_line(info)}.", "",
           "Ratios from one run (same machine, same Services):", ""]
    out += ratio_lines(res, cfg)
    out += ["", "![full sync time against the number of Services](build/bench/sync.svg)", ""]
    out.append(f"E = {cfg.endpoints} endpoints per Service, median of {cfg.runs} runs; the "
               "agent runs with --min-sync-period=0.")
    out += ["", table(res, cfg)]
    out += ["", "How it is measured: Services and EndpointSlices are created in the API "
            "server emulator before the agent starts; \"all in the kernel\" means a netlink "
            "dump of the kernel's map shows every backend (polled, never taken from the "
            "agent's log). An endpoint change is an EndpointSlice replaced through the API; "
            "its time runs until the element appears in or leaves the kernel's map. The "
            "kube-proxy rulesets are generated for the same Services in kube-proxy's layouts "
            "and loaded into a fresh network namespace. Connections are opened and reset "
            "by a client pod on the same node as the endpoint pods."]
    return "\n".join(out) + "\n"


def svg(res, cfg):
    W, H = 800, 460
    L, R, T, B = 70, 270, 30, 60
    pw, ph = W - L - R, H - T - B
    ns = cfg.services
    pts, stopped = {}, {}
    for name, impl, label, colour, dashed in SERIES:
        p = [(n, value(res, name, impl, n)) for n in ns]
        p = [(n, v) for n, v in p if v is not None and v > 0]
        if p:
            pts[(name, impl)] = p
        # loads stopped at the cap: drawn as an open marker at the cap
        for n in ns:
            r = _find(res, name, impl, n)
            m = re.match(r"stopped after BENCH_ANCHOR_CAP=(\d+)", (r or {}).get("note") or "")
            if r and r["value"] is None and m:
                stopped.setdefault((name, impl), []).append((n, float(m.group(1))))
    vals = [v for p in list(pts.values()) + list(stopped.values()) for _, v in p] or [0.01, 1]
    ylo = 10 ** math.floor(math.log10(min(vals)))
    yhi = 10 ** math.ceil(math.log10(max(vals)))
    if yhi <= ylo:
        yhi = ylo * 10
    xlo, xhi = min(ns), max(ns)
    if xhi == xlo:
        xlo, xhi = xlo / 2, xhi * 2

    def x(n):
        return L + pw * (math.log10(n) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo))

    def y(v):
        span = math.log10(yhi) - math.log10(ylo)
        return T + ph * (1 - (math.log10(v) - math.log10(ylo)) / span)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L + pw / 2}" y="18" text-anchor="middle" font-size="14">Full sync time '
         f'against Services ({cfg.endpoints} endpoints each), log-log</text>']
    d = ylo
    while d <= yhi * 1.0001:
        for m in (1, 2, 5):
            v = d * m
            if v < ylo or v > yhi * 1.0001:
                continue
            yy = y(v)
            o.append(f'<line x1="{L}" y1="{yy:.1f}" x2="{L + pw}" y2="{yy:.1f}" '
                     f'stroke="#ddd" stroke-width="{1 if m == 1 else 0.5}"/>')
            label = f"{v:g} s"
            o.append(f'<text x="{L - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
        d *= 10
    for n in ns:
        xx = x(n)
        o.append(f'<line x1="{xx:.1f}" y1="{T}" x2="{xx:.1f}" y2="{T + ph}" stroke="#ddd"/>')
        o.append(f'<text x="{xx:.1f}" y="{T + ph + 18}" text-anchor="middle">{n:,}</text>')
    o.append(f'<text x="{L + pw / 2}" y="{H - 15}" text-anchor="middle">Services</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    ly = T + 10
    for name, impl, label, colour, dashed in SERIES:
        p = pts.get((name, impl), [])
        if not p and (name, impl) not in stopped:
            continue
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        path = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in p)
        o.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                 f'stroke-width="2"{dash}/>')
        for n, v in p:
            o.append(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                     f'<title>{html.escape(label)}: {v:.4g} s at {n:,}</title></circle>')
        for n, v in stopped.get((name, impl), []):
            o.append(f'<path d="M {x(n) - 5:.1f} {y(v) + 4:.1f} L {x(n):.1f} {y(v) - 5:.1f} '
                     f'L {x(n) + 5:.1f} {y(v) + 4:.1f} Z" fill="white" stroke="{colour}" '
                     f'stroke-width="1.5"><title>{html.escape(label)}: stopped after {v:g} s '
                     f'at {n:,}</title></path>')
            o.append(f'<text x="{x(n) + 8:.1f}" y="{y(v) + 4:.1f}" font-size="10" '
                     f'fill="{colour}">&gt; {v:g} s</text>')
        o.append(f'<line x1="{L + pw + 12}" y1="{ly}" x2="{L + pw + 36}" y2="{ly}" '
                 f'stroke="{colour}" stroke-width="2"{dash}/>')
        o.append(f'<text x="{L + pw + 42}" y="{ly + 4}" font-size="11">'
                 f'{html.escape(label)}</text>')
        ly += 20
    o.append("</svg>")
    return "\n".join(o) + "\n"


def write_all(res, cfg, info, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(res.records, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "sync.svg"), "w") as f:
        f.write(svg(res, cfg))
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(summary(res, cfg, info))
