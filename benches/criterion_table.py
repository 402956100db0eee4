#!/usr/bin/env python3
"""Turns criterion results of `benches/stages.rs` into the BENCHMARKS.md tables.

  criterion_table.py collect CRITERION_DIR > run.json   # medians of one run
  criterion_table.py table run1.json run2.json ...       # median over runs, ratios, targets
"""
import json
import statistics
import sys
from pathlib import Path

SIZES = ["small", "typical", "large", "huge"]
STAGES = ["floor_ignored_any", "decode", "plan", "encode", "hot_path", "naive_baseline"]


def collect(criterion_dir):
    medians = {}
    for size in SIZES:
        for stage in STAGES:
            path = Path(criterion_dir) / f"admission_{size}" / stage / "new" / "estimates.json"
            if path.exists():
                estimate = json.loads(path.read_text())["median"]["point_estimate"]
                medians[f"{size}/{stage}"] = estimate  # nanoseconds
    json.dump(medians, sys.stdout, indent=1)


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def table(runs):
    data = [json.loads(Path(r).read_text()) for r in runs]
    med = {k: statistics.median(d[k] for d in data if k in d) for k in data[0]}
    sizes = json.loads(Path(runs[0]).with_name("sizes.json").read_text()) if Path(runs[0]).with_name("sizes.json").exists() else {}
    print(f"Median of {len(runs)} runs (each value: criterion median).\n")
    print("| size | review bytes | floor (IgnoredAny) | decode | plan | encode | hot path | naive baseline | baseline / hot path | hot path / floor | hot path ns/byte |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in SIZES:
        get = lambda stage: med.get(f"{size}/{stage}", float("nan"))
        hot = get("hot_path")
        nbytes = sizes.get(size)
        per_byte = f"{hot / nbytes:.2f}" if nbytes else "-"
        print(f"| {size} | {nbytes or '-'} | {fmt(get('floor_ignored_any'))} | {fmt(get('decode'))} | {fmt(get('plan'))} "
              f"| {fmt(get('encode'))} | {fmt(hot)} | {fmt(get('naive_baseline'))} "
              f"| {get('naive_baseline') / hot:.1f}× | {hot / get('floor_ignored_any'):.2f}× | {per_byte} |")
    if len(runs) > 1:
        print("\nSpread over runs (hot path, max/min):",
              ", ".join(f"{s} {max(d[f'{s}/hot_path'] for d in data) / min(d[f'{s}/hot_path'] for d in data):.3f}" for s in SIZES))


if __name__ == "__main__":
    if sys.argv[1] == "collect":
        collect(sys.argv[2])
    else:
        table(sys.argv[2:])
