"""Shared by the benchmarks: the machine they ran on, and their section of benchmarks/RESULTS.md.

Each benchmark owns one section of RESULTS.md, between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`;
`write_section` replaces it (or appends it) atomically, so benchmarks can run in any order or alone.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_HEADER = (
    "# Benchmark results\n\n"
    "Written by the scripts in `benchmarks/` (`make bench` for the quick ones; long ones have their own\n"
    "make target). Every ratio is measured side by side in one run, against a baseline timed in that run.\n"
)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """Where and with what a benchmark ran (versions of the libraries that are installed)."""
    info = {
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_name(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "numpy": __import__("numpy").__version__,
    }
    for mod in ("torch", "onnxruntime", "scipy"):
        if mod in sys.modules or _importable(mod):
            info[mod] = __import__(mod).__version__
    try:
        import torch

        info["torch threads"] = str(torch.get_num_threads())
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:
        info["device"] = "cpu"
    return info


def _importable(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def machine_line() -> str:
    return ", ".join(f"{k} {v}" for k, v in machine().items())


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace benchmark `name`'s section of RESULTS.md with `markdown` (appended when new)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}\n"
    text = path.read_text() if path.is_file() else _HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def report(name: str, title: str, command: str, table: list[str], headline: str, result: dict, *,
           head: str = "", note: str = "", json_path: Path | None = None, results: bool = False) -> None:
    """The common end of a benchmark: print `head`, the table and the result JSON, write the JSON to `json_path`
    and (with `results`) the section `name` of RESULTS.md (title, command, machine, table, note, headline),
    then print the headline last."""
    import json

    text = json.dumps(result, indent=2)
    print("\n".join([*([head] if head else []), *table, text]))
    if json_path:
        json_path.write_text(text + "\n")
    if results:
        parts = [f"## {title}", f"`{command}`", machine_line(), *([head] if head else []),
                 "```\n" + "\n".join(table) + "\n```", *([note] if note else []), headline]
        write_section(name, "\n\n".join(parts) + "\n")
    print(headline)


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeats` calls, after `warmup` untimed calls (caches, allocations)."""
    import statistics
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
