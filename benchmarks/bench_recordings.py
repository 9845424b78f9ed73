"""Speed of the raw WiFi capture readers (rfsense.data.recordings), in seconds of capture per wall second.

    .venv/bin/python benchmarks/bench_recordings.py                  # 20 s captures, 3 repeats
    .venv/bin/python benchmarks/bench_recordings.py --seconds 60 --results

The vendored captures (examples/recordings) last 0.0001 to 60 s, too short to time. Each is stretched to
--seconds by repeating its records with timestamps moved on by one capture length per copy, so the copy keeps
the capture's own packet rate and per-record content (nexmon's single 4-packet frame is repeated at
--nexmon-rate frames/s, a typical nexmon_csi setting, with a new sequence number per frame). Timed per
reader, median of --repeats after one warm-up:

- `stream`: file -> Stream on the 5300 grid (framing checks, csiread, subcarrier mapping).
- `windows`: the whole `rfsense infer` ingest: file -> every 5 s XRF55 window at 200 Hz (made and dropped).

`x real time` = seconds of capture / wall seconds for `windows`; the issue asks for >= 20x on a 2-core CPU.
`peak MB` = the most memory Python and numpy (csiread's arrays included) held while making the windows, in one
extra untimed run under tracemalloc; the file itself is read whole, so it is part of the peak.
Intel 5300 (the reader the others follow) is timed the same way for comparison. Prints a table, then the
rows as JSON (also to --json), and the headline (the slowest reader) last; --results writes this benchmark's
section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, median_seconds, write_section  # noqa: E402

from rfsense.data.recordings import atheros, esp32, intel5300, nexmon, picoscenes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "examples" / "recordings"
SOURCES = {
    "intel5300": ROOT / "intel5300" / "sample_0x1_ap.dat",
    "atheros": ROOT / "atheros" / "ath_csi_1.dat",
    "nexmon": ROOT / "nexmon" / "example.pcap",
    "esp32": ROOT / "esp32" / "example_csi.csv",
    "picoscenes": ROOT / "picoscenes" / "rx_by_qca9300.csi",
}
READERS: dict[str, tuple[Callable, Callable]] = {  # (one file -> Stream, paths -> windows)
    "intel5300": (lambda p: intel5300.read_intel5300_stream(p)[0], intel5300.read_intel5300),
    "atheros": (atheros.read_atheros_stream, atheros.read_atheros),
    "nexmon": (nexmon.read_nexmon_stream, nexmon.read_nexmon),
    "esp32": (esp32.read_esp32_stream, esp32.read_esp32),
    "picoscenes": (picoscenes.read_picoscenes_stream, picoscenes.read_picoscenes),
}


# Each splitter returns (bytes before the records, [record bytes], [time in us of each record]) and a writer
# that puts a new time (us) into a record copy.
def _intel(data: bytes):
    recs, t, pos = [], [], 0
    while pos < len(data):
        n = struct.unpack_from(">H", data, pos)[0] + 2
        if data[pos + 2] == 0xBB:
            recs.append(data[pos : pos + n])
            t.append(struct.unpack_from("<I", data, pos + 3)[0])
        pos += n
    t = np.asarray(t, dtype=np.int64)
    t = t[0] + np.concatenate([[0], np.cumsum((np.diff(t) + 2**31) % 2**32 - 2**31)])  # unwrap
    return b"", recs, t, lambda r, us, k: _put(r, "<I", 3, us % 2**32)


def _atheros(data: bytes):
    recs, t, pos = [], [], 0
    while pos < len(data):
        n = struct.unpack_from("<H", data, pos)[0] + 2
        recs.append(data[pos : pos + n])
        t.append(struct.unpack_from("<Q", data, pos + 2)[0])
        pos += n
    return b"", recs, np.asarray(t, dtype=np.int64), lambda r, us, k: _put(r, "<Q", 2, us)


def _nexmon(data: bytes):
    recs, t, pos = [], [], 24
    while pos < len(data):
        n = struct.unpack_from("<I", data, pos + 8)[0] + 16
        recs.append(data[pos : pos + n])
        sec, usec = struct.unpack_from("<II", data, pos)
        t.append(sec * 1_000_000 + usec)
        pos += n

    def put(r: bytes, us: int, k: int) -> bytes:
        r = _put(r, "<II", 0, us // 1_000_000, us % 1_000_000)
        seq = struct.unpack_from("<H", r, 16 + 42 + 10)[0]
        return _put(r, "<H", 16 + 42 + 10, (seq + k) % 0x10000)  # a new frame per copy

    return data[:24], recs, np.asarray(t, dtype=np.int64), put


def _picoscenes(data: bytes):
    recs, t, offs, pos = [], [], [], 0
    while pos < len(data):
        n = struct.unpack_from("<I", data, pos)[0] + 4
        cur, seg = pos + 11, 0
        for _ in range(data[pos + 10]):  # walk the segments to RxSBasic's timestamp
            seg_len, name_len = struct.unpack_from("<IB", data, cur)
            if data[cur + 5 : cur + 5 + name_len] == b"RxSBasic":
                seg = cur + 7 + name_len + 2 - pos
            cur += 4 + seg_len
        recs.append(data[pos : pos + n])
        offs.append(seg)
        t.append(struct.unpack_from("<Q", data, pos + seg)[0])
        pos += n
    offset = dict(zip(map(id, recs), offs, strict=True))
    return b"", recs, np.asarray(t, dtype=np.int64), lambda r, us, k: _put(r, "<Q", offset[id(r)], us)


def _esp32(data: bytes):
    lines = data.decode().splitlines()
    t = [int(line.split(",")[18]) for line in lines]

    def put(r: str, us: int, k: int) -> str:
        f = r.split(",")
        f[18] = str(us % 2**32)
        return ",".join(f)

    return "", lines, np.asarray(t, dtype=np.int64), put


SPLIT = {"intel5300": _intel, "atheros": _atheros, "nexmon": _nexmon, "picoscenes": _picoscenes, "esp32": _esp32}


def _put(rec: bytes, fmt: str, off: int, *vals: int) -> bytes:
    buf = bytearray(rec)
    struct.pack_into(fmt, buf, off, *vals)
    return bytes(buf)


def stretch(fmt: str, seconds: float, nexmon_rate: float) -> tuple[bytes, float, int]:
    """The vendored capture repeated to last `seconds` -> (file bytes, capture seconds, records)."""
    head, recs, t_us, put = SPLIT[fmt](SOURCES[fmt].read_bytes())
    t_us = t_us - t_us[0]
    if fmt == "nexmon":
        period = 1e6 / nexmon_rate  # one frame (4 packets) per copy
    else:
        period = float(t_us[-1] + np.median(np.diff(t_us)))  # next copy one median step after the last record
    copies = max(1, int(np.ceil(seconds * 1e6 / period)))
    base = 1_000_000_000  # keep clear of 0 so no counter wraps backwards
    out = [put(r, int(base + k * period + dt), k) for k in range(copies) for r, dt in zip(recs, t_us, strict=True)]
    body = "\n".join(out) + "\n" if fmt == "esp32" else b"".join(out)
    data = (head + body).encode() if fmt == "esp32" else head + body
    n_records = copies * (1 if fmt == "nexmon" else len(recs))
    return data, copies * period / 1e6, n_records




def peak_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="length each capture is stretched to")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nexmon-rate", type=float, default=500.0, help="frames/s of the stretched nexmon capture")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--results", action="store_true", help="write this benchmark's section of RESULTS.md")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, (stream_fn, windows_fn) in READERS.items():
            data, cap_s, n_rec = stretch(fmt, args.seconds, args.nexmon_rate)
            path = Path(tmp) / f"{fmt}{SOURCES[fmt].suffix}"
            path.write_bytes(data)
            n_win = sum(1 for _ in windows_fn([path]))
            t_stream = median_seconds(lambda p=path, f=stream_fn: f(p), args.repeats)
            t_win = median_seconds(lambda p=path, f=windows_fn: sum(1 for _ in f([p])), args.repeats)
            peak = peak_mb(lambda p=path, f=windows_fn: sum(1 for _ in f([p])))
            rows.append({
                "reader": fmt, "capture_s": round(cap_s, 2), "records": n_rec, "record_rate_hz": round(n_rec / cap_s, 1),
                "megabytes": round(len(data) / 1e6, 2), "windows": n_win, "stream_s": t_stream, "windows_s": t_win,
                "x_real_time": cap_s / t_win, "records_per_s": n_rec / t_win, "peak_mb": round(peak, 1),
            })
            path.unlink()
    table = [
        f"{'reader':<11}{'capture s':>10}{'records':>9}{'rec/s':>9}{'MB':>7}{'windows':>8}{'stream s':>10}"
        f"{'windows s':>10}{'x real time':>12}{'peak MB':>9}",
    ]
    for r in rows:
        table.append(f"{r['reader']:<11}{r['capture_s']:>10.1f}{r['records']:>9}{r['record_rate_hz']:>9.0f}"
                     f"{r['megabytes']:>7.1f}{r['windows']:>8}{r['stream_s']:>10.3f}{r['windows_s']:>10.3f}"
                     f"{r['x_real_time']:>12.0f}{r['peak_mb']:>9.0f}")
    new = [r for r in rows if r["reader"] != "intel5300"]
    slow = min(new, key=lambda r: r["x_real_time"])
    headline = (f"slowest new WiFi reader: {slow['reader']} at {slow['x_real_time']:.0f}x real time "
                f"({slow['records_per_s']:.0f} records/s; issue 13 asks >= 20x)")
    print("\n".join(table))
    payload = {"machine": machine_line(), "seconds": args.seconds, "repeats": args.repeats,
               "nexmon_rate_hz": args.nexmon_rate, "rows": rows, "headline": headline}
    print(json.dumps(payload, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=1))
    if args.results:
        md = ["## Raw WiFi capture readers (`bench_recordings.py`)", "",
              f"`python benchmarks/bench_recordings.py --seconds {args.seconds:g} --repeats {args.repeats} --results`; "
              "each vendored capture stretched to that length at its own record rate (nexmon: "
              f"{args.nexmon_rate:g} frames/s), timed from file to every 5 s window at 200 Hz. {machine_line()}.", "",
              "| reader | capture s | records | records/s | MB | windows | stream s | windows s | x real time | peak MB |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        md += [f"| {r['reader']} | {r['capture_s']:.1f} | {r['records']} | {r['record_rate_hz']:.0f} | "
               f"{r['megabytes']:.1f} | {r['windows']} | {r['stream_s']:.3f} | {r['windows_s']:.3f} | "
               f"{r['x_real_time']:.0f} | {r['peak_mb']:.0f} |" for r in rows]
        md += ["", f"**{headline}**"]
        write_section("recordings", "\n".join(md))
    print(headline)


if __name__ == "__main__":
    main()
