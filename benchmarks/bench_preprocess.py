"""Throughput of the shared preprocessing (rfsense.data.preprocess), per modality.

    .venv/bin/python benchmarks/bench_preprocess.py                 # batch 32, 3 repeats
    .venv/bin/python benchmarks/bench_preprocess.py --repeats 5 --json out.json

Rows:
- `<modality> batched`: one `preprocess` call on a batch of --batch samples (what the packer does).
- `<modality> per-sample`: the same samples, one call each (cost of not batching).
- `wifi hampel` / `wifi lowpass`: the two WiFi stages alone, batched (Hampel: sorting network; low-pass:
  scipy's sosfiltfilt, and `wifi lowpass operator` the FFT form the numpy kernel uses).
- `..., compiled`: the runtime's compiled kernels (numba, the `fast` extra; rows only where it is installed).
- `wifi hampel partition`: the same Hampel via sliding_window_view + np.partition (the obvious
  vectorisation, identical output) for comparison.
- `wifi naive`: the textbook baseline: a Python loop over channels and time steps for Hampel
  (as CSIKit's `filters.hampel`) plus a per-channel `sosfiltfilt`, on --naive-samples samples.

Prints a table, then the same numbers as JSON (also written to --json if given), then the headline
(batched WiFi vs the naive loop, and the preprocessing floor of an XRF55 pack) last; --results writes this
benchmark's section of RESULTS.md. Timings are the median over repeats after one warm-up; the machine is
shared, so compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, median_seconds, write_section  # noqa: E402

from rfsense.data.preprocess import PreprocessConfig, WifiPrep, compiled, hampel, preprocess  # noqa: E402
from rfsense.data.preprocess.kernels import butter_lowpass, lowpass_filtfilt  # noqa: E402
from rfsense.modalities import MODALITIES, SHAPES  # noqa: E402

XRF55_SAMPLES = 42_900


def make_batch(modality: str, b: int, seed: int = 0) -> np.ndarray:
    """Realistic-looking input: CSI amplitude with spikes, wrapped phase with pi jumps, heatmaps (all finite:
    NaN repair is the quality checks' job, timed with the runtime)."""
    rng = np.random.default_rng(seed)
    shape = (b, *SHAPES[modality])
    if modality == "wifi":
        t = np.arange(shape[-1]) / 200.0
        x = 20 + 3 * np.sin(2 * np.pi * rng.uniform(0.2, 3, shape[:2] + (1,)) * t) + rng.normal(0, 0.5, shape)
        x[rng.random(shape) < 0.002] += 30  # impulsive outliers for the Hampel step
        return x
    if modality == "rfid":
        walk = np.cumsum(rng.normal(0, 0.2, shape), axis=-1)
        x = np.mod(walk + np.pi * (rng.random(shape) < 0.05), 2 * np.pi)
        return x
    return rng.exponential(100.0, shape).astype(np.float32)




def naive_hampel(x: np.ndarray, k: int, sigmas: float) -> np.ndarray:
    """Per-channel, per-time-step Python loop (the shape of most published Hampel code)."""
    out = x.copy()
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        p = np.pad(row, k, mode="reflect")
        for i in range(len(row)):
            w = p[i : i + 2 * k + 1]
            med = np.median(w)
            mad = np.median(np.abs(w - med))
            if abs(row[i] - med) > sigmas * 1.4826 * mad:
                out[idx + (i,)] = med
    return out


def partition_hampel(x: np.ndarray, k: int, sigmas: float, chunk: int = 64) -> np.ndarray:
    """The obvious vectorisation: sliding_window_view + two np.partition passes (exact, same output)."""
    t_len = x.shape[-1]
    rows = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, t_len)
    padded = np.pad(rows, ((0, 0), (k, k)), mode="reflect")
    out = np.empty_like(rows)
    for i in range(0, len(rows), chunk):
        w = np.partition(sliding_window_view(padded[i : i + chunk], 2 * k + 1, axis=-1), k, axis=-1)
        med = w[..., k].copy()
        mad = np.partition(np.abs(w - med[..., None]), k, axis=-1)[..., k]
        xi = rows[i : i + chunk]
        out[i : i + chunk] = np.where(np.abs(xi - med) > np.float32(sigmas * 1.4826) * mad, med, xi)
    return out.reshape(x.shape)


def naive_wifi(x: np.ndarray, cfg: WifiPrep) -> np.ndarray:
    y = naive_hampel(x, cfg.hampel_window, cfg.hampel_sigmas)
    sos = butter_lowpass(cfg.order, cfg.lowpass_hz or 20.0, cfg.fs)
    for idx in np.ndindex(y.shape[:-1]):
        y[idx] = signal.sosfiltfilt(sos, y[idx])
    return y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--naive-samples", type=int, default=1, help="samples for the slow WiFi baseline (0 skips it)"
    )
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--results", action="store_true", help="write this benchmark's section of RESULTS.md")
    args = ap.parse_args()
    cfg = PreprocessConfig()
    rows: list[dict[str, object]] = []

    def add(name: str, n: int, seconds: float, note: str = "") -> None:
        rows.append(
            {"name": name, "samples": n, "seconds": seconds, "samples_per_s": n / seconds, "note": note}
        )

    for m in MODALITIES:
        x = make_batch(m, args.batch)
        add(f"{m} batched", args.batch, median_seconds(lambda x=x, m=m: preprocess(m, x, cfg), args.repeats))
        add(
            f"{m} per-sample",
            args.batch,
            median_seconds(lambda x=x, m=m: [preprocess(m, x[i : i + 1], cfg) for i in range(len(x))], args.repeats),
        )

    x = make_batch("wifi", args.batch)
    x = np.nan_to_num(x, nan=20.0)
    add(
        "wifi hampel",
        args.batch,
        median_seconds(lambda: hampel(x, cfg.wifi.hampel_window, cfg.wifi.hampel_sigmas), args.repeats),
    )
    k, sig = cfg.wifi.hampel_window, cfg.wifi.hampel_sigmas
    add(
        "wifi hampel partition",
        args.batch,
        median_seconds(lambda: partition_hampel(x, k, sig), args.repeats),
        "sliding_window_view + np.partition",
    )
    sos = butter_lowpass(cfg.wifi.order, cfg.wifi.lowpass_hz or 20.0, cfg.wifi.fs)
    add("wifi lowpass", args.batch, median_seconds(lambda: signal.sosfiltfilt(sos, x, axis=-1), args.repeats),
        "scipy sosfiltfilt")
    lp = (cfg.wifi.order, cfg.wifi.lowpass_hz or 20.0, cfg.wifi.fs)
    add("wifi lowpass operator", args.batch, median_seconds(lambda: lowpass_filtfilt(x, *lp), args.repeats),
        "FFT form, the numpy kernel")
    if compiled.warm_up(k):  # numba installed (the fast extra): the runtime's compiled kernels, same results
        xw = make_batch("wifi", args.batch)
        add("wifi batched, compiled", args.batch,
            median_seconds(lambda: preprocess("wifi", xw, cfg, fast=True), args.repeats), "numba: both filters per block of rows")
        add("wifi hampel, compiled", args.batch, median_seconds(lambda: hampel(x, k, sig, fast=True), args.repeats),
            "numba, bit-identical")
        add("wifi lowpass, compiled", args.batch,
            median_seconds(lambda: lowpass_filtfilt(x, *lp, fast=True), args.repeats), "numba, = sosfiltfilt bits")
    if args.naive_samples > 0:
        xn = x[: args.naive_samples]
        t0 = time.perf_counter()
        naive_wifi(xn, cfg.wifi)  # too slow to repeat
        add("wifi naive", len(xn), time.perf_counter() - t0, "Python loop Hampel + per-channel sosfiltfilt")

    head = (
        f"preprocess throughput (batch {args.batch}, median of {args.repeats}; numpy {np.__version__}, "
        f"scipy {scipy.__version__}, {platform.machine()})"
    )
    lines = [f"{'row':<24} {'samples':>8} {'seconds':>9} {'samples/s':>10} {'42.9k pack':>11}"]
    for r in rows:
        pack_min = XRF55_SAMPLES / float(r["samples_per_s"]) / 60  # type: ignore[arg-type]
        lines.append(
            f"{r['name']:<24} {r['samples']:>8} {r['seconds']:>9.3f} {r['samples_per_s']:>10.1f} "
            f"{pack_min:>8.1f} min  {r['note']}"
        )
    by_name = {r["name"]: float(r["samples_per_s"]) for r in rows}  # type: ignore[arg-type]
    all_three = 1.0 / sum(1.0 / by_name[f"{m} batched"] for m in MODALITIES)  # samples/s, all modalities
    headline = (
        f"preprocessing all three modalities: {all_three:.1f} samples/s batched in one process "
        f"({XRF55_SAMPLES / all_three / 60:.0f} min of CPU for XRF55's 42.9k samples)"
    )
    if "wifi naive" in by_name:
        headline += f"; wifi batched {by_name['wifi batched'] / by_name['wifi naive']:.0f}x the naive per-channel loop"
    result = {
        "batch": args.batch,
        "repeats": args.repeats,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "rows": rows,
        "headline": headline,
    }
    print(head)
    print("\n".join(lines))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if args.results:
        cmd = (f"python benchmarks/bench_preprocess.py --batch {args.batch} --repeats {args.repeats} "
               f"--naive-samples {args.naive_samples} --results")
        write_section("preprocess", f"## Preprocessing (bench_preprocess)\n\n`{cmd}`\n\n{machine_line()}\n\n{head}\n\n"
                                    "```\n" + "\n".join(lines) + f"\n```\n\n{headline}\n")
    print(headline)


if __name__ == "__main__":
    main()
