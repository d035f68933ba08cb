#!/usr/bin/env python3
"""Turns matrix.sh's raw rows into bench/RESULTS.md: medians of interleaved
rounds, ratios against the peers, server CPU per GB, and how to reproduce."""
import csv, os, platform, statistics, subprocess, sys
from collections import defaultdict

raw, out, conns, duration, rounds, count, mb = sys.argv[1:8]
metrics = sys.stdin.read()

rows = list(csv.DictReader(open(raw), delimiter="\t"))
by = defaultdict(list)
for r in rows:
    by[(r["server"], r["workload"])].append(r)

def med(server, workload, field):
    vals = [float(r[field]) for r in by.get((server, workload), []) if r[field] not in ("nan", "")]
    return statistics.median(vals) if vals else float("nan")

def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"

def metric(name):
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            try:
                total += float(line.split()[-1])
            except ValueError:
                pass
    return total

workloads = [
    ("origin 1MiB ranges", "keyframe-origin", ["nginx-origin"]),
    ("origin 4KiB ranges", "keyframe-origin", ["nginx-origin"]),
    ("edge hit 1MiB ranges", "keyframe-edge", ["varnish", "nginx-slice"]),
    ("edge hit 1MiB ranges (keyframe bench)", "keyframe-edge", ["varnish", "nginx-slice"]),
    ("edge hit 4KiB ranges", "keyframe-edge", ["varnish", "nginx-slice"]),
    ("edge cold 1MiB ranges", "keyframe-edge", ["nginx-slice"]),
    ("edge cold 1MiB ranges (keyframe bench)", "keyframe-edge", ["nginx-slice"]),
]

lines = []
w = lines.append
w("# Benchmark results")
w("")
w("Produced by `bash bench/scripts/matrix.sh` (after `cargo build --release`). Every figure is the")
w(f"median of {rounds} interleaved rounds (each server in turn, round after round) on the same data and")
w("the same load generator, so a noisy shared machine affects all servers alike. Ratios are")
w("Keyframe ÷ peer: above 1.0 means Keyframe is faster.")
w("")
w("## Setup")
w("")
w(f"* Machine: {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}; the load generator shares the cores with the server.")
w(f"* Load: `wrk -t1 -c{conns} -d{duration}` with `bench/scripts/random-range.lua` (random offsets, unaligned) over {count} objects of {mb} MiB each, served from page cache. wrk reads 8 KiB per call and tops out near 1 GB/s on one core, so the 1 MiB hits and cold ranges are also driven by `keyframe bench range --threads 1` (`range` or `cold`; hyper, large reads; sampled responses checked byte for byte against the files), marked \"(keyframe bench)\".")
w(f"* Peers: {version('nginx -v 2>&1')}; {version('varnishd -V 2>&1')}; configs in `bench/scripts/conf/` (nginx static origin with sendfile; nginx `slice 1m` + `proxy_cache`; Varnish `malloc`). Keyframe's edge and the caches front the nginx origin; Keyframe's origin serves the same files from a `file://` store. nginx runs one worker process, Keyframe one runtime worker (`--threads 1`; `KF_THREADS` changes it), so wrk has the other core.")
w("* Edge \"hit\" workloads run after every object was fetched twice through each cache; \"cold\" adds a unique query string to each request, so every request is a miss at every cache.")
w("* CPU per GB: user+system CPU seconds of the server's processes during the run, divided by GB served.")
w("")
w("## Results")
w("")
w("| workload | server | req/s | MB/s | p99 ms | CPU s/GB | vs peer |")
w("|---|---|---:|---:|---:|---:|---|")
for workload, ours, peers in workloads:
    for server in [ours] + peers:
        rq, bps = med(server, workload, "req_s"), med(server, workload, "bytes_s")
        p99, cpu = med(server, workload, "p99_ms"), med(server, workload, "cpu_s_per_gb")
        ratio = ""
        if server == ours:
            parts = []
            for p in peers:
                pr, pb = med(p, workload, "req_s"), med(p, workload, "bytes_s")
                if pr == pr and pr > 0:
                    parts.append(f"{rq / pr:.2f}× {p} req/s, {bps / pb:.2f}× bytes/s")
            ratio = "; ".join(parts)
        w(f"| {workload} | {server} | {rq:,.0f} | {bps / 1e6:,.1f} | {p99:.2f} | {cpu:.2f} | {ratio} |")
errors = sum(int(r["non2xx"] or 0) for r in rows)
w("")
w(f"Non-206 responses across all runs: {errors} (wrk stops a thread at the first one).")
up = metric("keyframe_edge_upstream_bytes_total")
served = metric("keyframe_http_response_bytes_total")
misses = metric("keyframe_edge_chunk_misses_total")
if served:
    w("")
    w(f"Keyframe edge over the whole run: {up / 1e9:.2f} GB fetched upstream for {served / 1e9:.2f} GB served "
      f"(offload {1 - up / served:.1%}), {misses:.0f} chunk fetches.")
w("")
w("## Raw rows")
w("")
w("```")
w(open(raw).read().rstrip())
w("```")
# Keep the sections after the matrix's own (other benchmarks, analysis) as they are.
import os
kept = ""
if os.path.exists(out):
    old = open(out).read()
    raw_at = old.find("## Raw rows")
    nxt = old.find("\n## ", raw_at + 1) if raw_at >= 0 else -1
    if nxt >= 0:
        kept = "\n" + old[nxt + 1:]
open(out, "w").write("\n".join(lines) + "\n" + kept)
