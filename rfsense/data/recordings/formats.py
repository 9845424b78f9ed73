"""Which recording formats `rfsense infer` reads, how each is recognised, and how its files become windows.

A format registers a `CaptureFormat`: the modality it records, the file suffixes it usually has, a
`sniff(path, head)` that recognises it from the file's first bytes (so a capture is read by its content,
not by its name), and `windows(paths, options)` that yields `timeline.Window`-like objects (`.modality`,
`.array`, `.start_s`, `.end_s`, `.flags`, `.sources`). `detect` picks the format of one file;
`--input-format NAME` forces it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfsense.errors import DataError

__all__ = ["FORMATS", "CaptureFormat", "CaptureOptions", "detect", "get_format", "register"]

_HEAD_BYTES = 4096


@dataclass(frozen=True)
class CaptureOptions:
    """Windowing options every reader takes, plus format-specific ones (e.g. a tag map, a radar config)."""

    hop_s: float | None = None  # step between window starts; None: the window length (no overlap)
    short: str = "pad"  # a capture shorter than one window: "pad" (edge-hold, flagged) or "refuse"
    max_gap_s: float = 0.5  # records further apart split the capture; no window bridges such a gap
    align: str = "clock"  # several files of one format: "clock" (one clock) or "start" (each starts at 0)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CaptureFormat:
    name: str
    modality: str
    suffixes: tuple[str, ...]
    description: str
    sniff: Callable[[Path, bytes], bool]
    windows: Callable[[list[Path], CaptureOptions], Iterator[Any]]
    max_files: int = 1  # files read together as one capture (WiFi: one per receiver, up to 3)


FORMATS: dict[str, CaptureFormat] = {}


def register(fmt: CaptureFormat) -> CaptureFormat:
    if fmt.name in FORMATS:
        raise ValueError(f"capture format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> CaptureFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise DataError(f"unknown input format {name!r}; known: {', '.join(sorted(FORMATS))}") from None


def detect(path: Path) -> CaptureFormat | None:
    """The registered format whose sniffer accepts the file's first bytes; None for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    for fmt in FORMATS.values():
        if fmt.sniff(path, head):
            return fmt
    return None


def _intel5300_sniff(path: Path, head: bytes) -> bool:
    """Linux 802.11n CSI Tool log: [2-byte big-endian length][code 0xbb or 0xc1]... from byte 0.

    A leading 0xbb record must also be self-consistent (Nrx, Ntx, CSI length), so a log of another format
    whose third byte happens to be 0xbb is not taken for a 5300 log.
    """
    if len(head) < 3 or head[2] not in (0xBB, 0xC1) or int.from_bytes(head[:2], "big") == 0:
        return False
    if head[2] == 0xBB and len(head) >= 21:
        nrx, ntx, csi_len = head[11], head[12], int.from_bytes(head[19:21], "little")
        return 1 <= nrx <= 3 and 1 <= ntx <= 3 and csi_len == 60 * nrx * ntx + 12
    return True


def _intel5300_windows(paths: list[Path], opts: CaptureOptions) -> Iterator[Any]:
    from rfsense.data.recordings.intel5300 import read_intel5300

    return read_intel5300(list(paths), hop_s=opts.hop_s, short=opts.short, max_gap_s=opts.max_gap_s, align=opts.align)


register(CaptureFormat(
    name="intel5300", modality="wifi", suffixes=(".dat",),
    description="Intel 5300 NIC, Linux 802.11n CSI Tool log (.dat), one file per receiver",
    sniff=_intel5300_sniff, windows=_intel5300_windows, max_files=3,
))


# WiFi CSI of other NICs (issue 13): each reader maps its capture onto the 5300 grid and flags what it mapped.
def _wifi(read: Callable[..., Iterator[Any]]) -> Callable[[list[Path], CaptureOptions], Iterator[Any]]:
    def windows(paths: list[Path], opts: CaptureOptions) -> Iterator[Any]:
        return read(list(paths), hop_s=opts.hop_s, short=opts.short, max_gap_s=opts.max_gap_s, align=opts.align)

    return windows


def _register_wifi_formats() -> None:
    from rfsense.data.recordings import atheros, esp32, nexmon, picoscenes

    for name, suffixes, description, sniff, read in (
        ("atheros", (".dat",), "Atheros CSI Tool log (.dat), one file per receiver",
         atheros.sniff_atheros, atheros.read_atheros),
        ("nexmon", (".pcap",), "nexmon_csi UDP capture (.pcap, Broadcom NICs), one file per receiver",
         nexmon.sniff_nexmon, nexmon.read_nexmon),
        ("esp32", (".csv", ".txt"), "ESP32 CSI serial log (CSI_DATA lines), one file per board",
         esp32.sniff_esp32, esp32.read_esp32),
        ("picoscenes", (".csi",), "PicoScenes RXS capture (.csi; QCA9300/IWL5300), one file per receiver",
         picoscenes.sniff_picoscenes, picoscenes.read_picoscenes),
    ):
        register(CaptureFormat(name=name, modality="wifi", suffixes=suffixes, description=description, sniff=sniff,
                               windows=_wifi(read), max_files=3))


_register_wifi_formats()

def _impinj_windows(paths: list[Path], opts: CaptureOptions) -> Iterator[Any]:
    from rfsense.data.recordings.impinj import read_impinj

    return read_impinj(list(paths), tag_map=opts.extra.get("tag_map"), hop_s=opts.hop_s, short=opts.short,
                       max_gap_s=opts.max_gap_s)


def _impinj_sniff(path: Path, head: bytes) -> bool:
    from rfsense.data.recordings.impinj import sniff_impinj

    return sniff_impinj(path, head)


def _dca1000_sniff(path: Path, head: bytes) -> bool:
    """Raw int16 ADC words have no header: a .bin whose first bytes are not text."""
    if path.suffix.lower() != ".bin" or len(head) < 4:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable < 0.9 * len(head)


def _dca1000_windows(paths: list[Path], opts: CaptureOptions) -> Iterator[Any]:
    from rfsense.data.recordings.dca1000 import read_dca1000

    return read_dca1000(list(paths), radar_config=opts.extra.get("radar_config"), hop_s=opts.hop_s,
                        short=opts.short, clutter_removal=bool(opts.extra.get("clutter_removal", False)))


register(CaptureFormat(
    name="impinj", modality="rfid", suffixes=(".csv",),
    description="Impinj RFID reader CSV log (EPC, Timestamp, PhaseAngle(Radian), ...); --tag-map gives tag rows",
    sniff=_impinj_sniff, windows=_impinj_windows, max_files=256,
))
register(CaptureFormat(
    name="dca1000", modality="mmwave", suffixes=(".bin",),
    description="TI radar + DCA1000 raw ADC capture (<name>_Raw_0.bin, ...); --radar-config or <name>.mmwave.json",
    sniff=_dca1000_sniff, windows=_dca1000_windows, max_files=256,
))
