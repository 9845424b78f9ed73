"""Speed of the raw-recording readers: Impinj CSV logs and DCA1000 captures, against real time.

    .venv/bin/python benchmarks/bench_raw_readers.py                    # 300 s Impinj log, 60 s DCA1000 capture
    .venv/bin/python benchmarks/bench_raw_readers.py --radar-seconds 20 --results

Inputs are made by the generator in a temporary folder (`rfsense synth --raw` writers): an Impinj log of
consecutive synthetic trials (23 tags, ~30 reads/s each, hopping over 16 channels) and a DCA1000 capture
at XRF55's profile (20 frames/s of 192 chirps x 4 RX x 256 samples, 15.7 MB/s) made of 5 s trials,
split into `_Raw_0.bin` / `_Raw_1.bin` at 1 GB as the DCA1000 does (smaller captures: in two halves).

Rows (median of --repeats after one warm-up):
- `read bytes`: the files read once, nothing else (the I/O floor of that input, from the page cache);
- `impinj reader` / `dca1000 reader`: all 5 s windows of the recording (`read_impinj`, `read_dca1000`);
- `x real time` = recording seconds / reader seconds (targets: Impinj >= 20, DCA1000 >= 1 on 2 cores);
- the DCA1000 reader's peak traced memory over one pass (tracemalloc), against the capture's size.

Prints a table, then JSON, then the headline last; --results writes this benchmark's section of
benchmarks/RESULTS.md. The machine may be shared: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine, machine_line, write_section  # noqa: E402
from rfsense.data.recordings.dca1000 import read_dca1000  # noqa: E402
from rfsense.data.recordings.impinj import read_impinj  # noqa: E402
from rfsense.data.synth import SynthConfig  # noqa: E402
from rfsense.data.synth.config import rng_for  # noqa: E402
from rfsense.data.synth.raw_mmwave import write_raw_mmwave  # noqa: E402
from rfsense.data.synth.raw_rfid import tag_map_text, write_raw_rfid  # noqa: E402
from rfsense.data.synth.sample import world  # noqa: E402

_SPLIT_BYTES = 1 << 30  # the DCA1000 starts a new _Raw_<i>.bin file every GB


def make_impinj(folder: Path, seconds: float) -> tuple[Path, Path]:
    """One log of consecutive 5 s trials (volunteer 1, actions cycling), plus its tag map."""
    cfg = SynthConfig(volunteers=1, actions=55, trials=20)
    log = folder / "session.csv"
    with open(log, "w") as out:
        for i in range(int(round(seconds / 5))):
            part = folder / "part.csv"
            write_raw_rfid(world(cfg, 1, i % 55 + 1, i // 55 + 1), rng_for(0, 99, i), part, seed=0, scene=1,
                           start_s=5.0 * i)
            lines = part.read_text().splitlines(keepends=True)
            out.writelines(lines if i == 0 else lines[1:])
    (folder / "tags.txt").write_text(tag_map_text(0, 1))
    return log, folder / "tags.txt"


def make_dca1000(folder: Path, seconds: float) -> list[Path]:
    """A capture of 5 s trials, repeated to `seconds`, split at 1 GB (or in halves when smaller)."""
    cfg = SynthConfig(volunteers=1, actions=55, trials=20)
    trials = []
    for i in range(min(3, int(round(seconds / 5)))):  # a few distinct trials, then repeated
        write_raw_mmwave(world(cfg, 1, i + 1, 1), rng_for(0, 98, i), folder / "t_Raw_0.bin", folder / "t.mmwave.json")
        trials.append((folder / "t_Raw_0.bin").read_bytes())
    data_len = len(trials[0]) * int(round(seconds / 5))
    split = _SPLIT_BYTES if data_len > _SPLIT_BYTES else data_len // 2 + 12345  # not at a frame boundary
    parts: list[Path] = []
    written = 0
    fh = None
    for i in range(int(round(seconds / 5))):
        block = memoryview(trials[i % len(trials)])
        while len(block):
            if fh is None or written == split * len(parts):
                if fh is not None:
                    fh.close()
                parts.append(folder / f"cap_Raw_{len(parts)}.bin")
                fh = open(parts[-1], "wb")  # noqa: SIM115
            n = min(len(block), split * len(parts) - written)
            fh.write(block[:n])
            written += n
            block = block[n:]
    if fh is not None:
        fh.close()
    (folder / "cap.mmwave.json").write_bytes((folder / "t.mmwave.json").read_bytes())
    (folder / "t_Raw_0.bin").unlink()
    return parts


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def read_all(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rfid-seconds", type=float, default=300.0, help="length of the Impinj log (s)")
    ap.add_argument("--radar-seconds", type=float, default=60.0, help="length of the DCA1000 capture (s)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    ap.add_argument("--results", action="store_true", help="write this benchmark's section of RESULTS.md")
    args = ap.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_raw_") as tmp:
        folder = Path(tmp)
        log, tags = make_impinj(folder, args.rfid_seconds)
        n_win = sum(1 for _ in read_impinj([log], tag_map=tags))
        t_io = timed(lambda: read_all([log]), args.repeats)
        t_rd = timed(lambda: list(read_impinj([log], tag_map=tags)), args.repeats)
        mb = log.stat().st_size / 1e6
        rows += [
            {"row": "impinj read bytes", "seconds": t_io, "x_real_time": args.rfid_seconds / t_io, "mb": mb},
            {"row": "impinj reader", "seconds": t_rd, "x_real_time": args.rfid_seconds / t_rd, "mb": mb,
             "windows": n_win},
        ]
        parts = make_dca1000(folder, args.radar_seconds)
        mb = sum(p.stat().st_size for p in parts) / 1e6
        t_io = timed(lambda: read_all(parts), args.repeats)
        t_rd = timed(lambda: list(read_dca1000(parts[:1])), args.repeats)
        tracemalloc.start()
        n_win = sum(1 for _ in read_dca1000(parts[:1]))
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        rows += [
            {"row": "dca1000 read bytes", "seconds": t_io, "x_real_time": args.radar_seconds / t_io, "mb": mb},
            {"row": "dca1000 reader", "seconds": t_rd, "x_real_time": args.radar_seconds / t_rd, "mb": mb,
             "windows": n_win, "peak_traced_mb": peak, "files": len(parts)},
        ]
    lines = [f"{'row':<20} {'rec s':>7} {'MB':>8} {'seconds':>8} {'x real time':>12}  note"]
    for r in rows:
        rec = args.rfid_seconds if r["row"].startswith("impinj") else args.radar_seconds
        note = (f"{r['windows']} windows" if "windows" in r else "") + (
            f", peak traced memory {r['peak_traced_mb']:.1f} MB, {r['files']} files" if "peak_traced_mb" in r else "")
        lines.append(f"{r['row']:<20} {rec:>7.0f} {r['mb']:>8.1f} {r['seconds']:>8.3f} {r['x_real_time']:>12.1f}  "
                     f"{note}".rstrip())
    table = "\n".join(lines)
    rf, mm = rows[1]["x_real_time"], rows[3]["x_real_time"]
    headline = (f"headline: Impinj CSV read at {rf:.0f}x real time (target >= 20x), DCA1000 capture at {mm:.1f}x "
                f"real time (target >= 1x), peak memory {rows[3]['peak_traced_mb']:.0f} MB for a {rows[3]['mb']:.0f} "
                "MB capture")
    result = {"rfid_seconds": args.rfid_seconds, "radar_seconds": args.radar_seconds, "repeats": args.repeats,
              "machine": machine(), "rows": rows}
    print(table)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.results:
        cmd = (f"python benchmarks/bench_raw_readers.py --rfid-seconds {args.rfid_seconds:g} "
               f"--radar-seconds {args.radar_seconds:g} --repeats {args.repeats} --results")
        write_section("raw_readers", f"## Raw-recording readers\n\n`{cmd}`\n\n{machine_line()}\n\n```\n{table}\n```\n\n"
                      f"{headline}\n")
    print(headline)
    return result


if __name__ == "__main__":
    main()
