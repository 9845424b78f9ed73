"""The radar configuration of a DCA1000 capture: chirp profile, frame, and the byte layout of the ADC data.

Defaults are XRF55's IWR6843 profile (aiotgroup/XRF55-repo, `hardware tutorial/mmWave/assets/
param_configuration.lua`): `ProfileConfig(0, 60, 7, 5, 140, ..., 27.013, 0, 256, 3000, ..., 30)`,
`ChirpConfig(0, 0, ..., 1, 1, 1)` (one chirp with all three TX on), `FrameConfig(0, 0, 1000, 192, 50, ...)`,
`ChanNAdcConfig(1, 1, 1, 1, 1, 1, 1, 2, 2, 0)` (4 RX, 16-bit complex), `LVDSLaneConfig(0, 1, 1, 0, 0, 1, 0, 0)`
(2 LVDS lanes).

A configuration comes from mmWave Studio's JSON export (`*.mmwave.json`: `mmWaveDevices[0].rfConfig`
rlChanCfg_t, rlAdcOutCfg_t, rlProfiles[0].rlProfileCfg_t, rlFrameCfg_t, and `rawDataCaptureConfig`
rlDevDataFmtCfg_t / rlDevLaneEnable_t), or from a small YAML (or JSON) mapping with the field names of
`RadarConfig`, any of which may be left out (XRF55 value):

    slope_mhz_per_us: 27.013
    loops: 128
    lanes: 4
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rfsense.errors import DataError

__all__ = ["XRF55_RADAR", "RadarConfig", "load_radar_config", "mmwave_studio_json"]

_C = 299_792_458.0


@dataclass(frozen=True)
class RadarConfig:
    """Chirp profile, frame and ADC byte layout of a TI radar + DCA1000 capture (defaults: XRF55)."""

    start_freq_ghz: float = 60.0
    idle_time_us: float = 7.0
    adc_start_time_us: float = 5.0
    ramp_end_time_us: float = 140.0
    slope_mhz_per_us: float = 27.013
    adc_samples: int = 256  # complex samples per chirp and receiver
    sample_rate_ksps: float = 3000.0
    rx_channels: int = 4
    chirps_per_loop: int = 1  # chirp configs per loop (TDM-MIMO: one per TX); XRF55 fires all TX in one
    loops: int = 192
    frame_period_ms: float = 50.0
    frames: int = 0  # frames the radar was told to send (0: unknown); a capture with another count is flagged
    lanes: int = 2  # LVDS lanes: the ADC stream carries `lanes` I values, then `lanes` Q values
    iq_swap: bool = False  # True: Q values come before I values (rlDevDataFmtCfg_t.iqSwapSel = 1)
    interleaved: bool = False  # True: within a chirp, sample by sample over receivers; False: receiver by receiver
    adc_bits: int = 16  # 12 or 14: the DCA1000 stores unsigned codes, sign-extended here as XRF55's reader does

    def check(self, source: str) -> None:
        """DataError naming `source` and the field when a value is impossible or the layout inconsistent."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            want = {"float": (int, float), "int": (int,), "bool": (bool,)}[str(f.type)]
            if (isinstance(value, bool) and f.type != "bool") or not isinstance(value, want):
                raise DataError(f"{source}: radar config {f.name} must be a {f.type}; got {value!r}")
        positive = ("slope_mhz_per_us", "adc_samples", "sample_rate_ksps", "rx_channels", "chirps_per_loop",
                    "loops", "frame_period_ms", "start_freq_ghz", "ramp_end_time_us")
        for name in positive:
            if not getattr(self, name) > 0:
                raise DataError(f"{source}: radar config {name} must be > 0; got {getattr(self, name)!r}")
        if self.lanes not in (1, 2, 4):
            raise DataError(f"{source}: radar config lanes must be 1, 2 or 4 (LVDS lanes); got {self.lanes}")
        if self.adc_bits not in (12, 14, 16):
            raise DataError(f"{source}: radar config adc_bits must be 12, 14 or 16; got {self.adc_bits}")
        if self.frames < 0 or self.idle_time_us < 0 or self.adc_start_time_us < 0:
            raise DataError(f"{source}: radar config frames, idle_time_us and adc_start_time_us must be >= 0")
        sampling_us = self.adc_start_time_us + self.adc_samples / self.sample_rate_ksps * 1e3
        if sampling_us > self.ramp_end_time_us + 1e-9:
            raise DataError(
                f"{source}: radar config samples past the ramp: ADC start {self.adc_start_time_us} us + "
                f"{self.adc_samples} samples at {self.sample_rate_ksps} ksps = {sampling_us:.1f} us > ramp end "
                f"{self.ramp_end_time_us} us"
            )
        if self.chirps_per_frame * self.chirp_period_s * 1e3 > self.frame_period_ms + 1e-9:
            raise DataError(
                f"{source}: radar config frame_period_ms {self.frame_period_ms} is shorter than its "
                f"{self.chirps_per_frame} chirps of {self.chirp_period_s * 1e6:.1f} us"
            )
        if self.complex_per_frame % self.lanes:
            raise DataError(f"{source}: {self.complex_per_frame} complex samples per frame do not fill "
                            f"{self.lanes} LVDS lanes")

    @property
    def chirp_period_s(self) -> float:
        return (self.idle_time_us + self.ramp_end_time_us) * 1e-6

    @property
    def chirps_per_frame(self) -> int:
        return self.loops * self.chirps_per_loop

    @property
    def complex_per_frame(self) -> int:
        return self.chirps_per_frame * self.rx_channels * self.adc_samples

    @property
    def frame_bytes(self) -> int:
        return self.complex_per_frame * 4  # int16 I + int16 Q

    @property
    def frame_rate(self) -> float:
        return 1e3 / self.frame_period_ms

    @property
    def centre_freq_hz(self) -> float:
        """Carrier at the centre of the ADC window: its wavelength sets the Doppler scale."""
        window_us = self.adc_start_time_us + 0.5 * self.adc_samples / self.sample_rate_ksps * 1e3
        return self.start_freq_ghz * 1e9 + self.slope_mhz_per_us * 1e12 * window_us * 1e-6

    @property
    def wavelength_m(self) -> float:
        return _C / self.centre_freq_hz

    def range_bin_m(self, n_fft: int = 256) -> float:
        """Range per bin of an n_fft-point range FFT: c * fs / (2 * slope * n_fft)."""
        return _C * self.sample_rate_ksps * 1e3 / (2 * self.slope_mhz_per_us * 1e12 * n_fft)

    def doppler_bin_m_s(self) -> float:
        """Velocity per bin of `radar_dsp.range_doppler`: lambda / (2 * n_fft * loop period)."""
        from rfsense.data.recordings.radar_dsp import doppler_fft_size

        t_loop = self.chirp_period_s * self.chirps_per_loop
        return self.wavelength_m / (2 * doppler_fft_size(self.loops) * t_loop)


XRF55_RADAR = RadarConfig()

_FIELDS = [f.name for f in dataclasses.fields(RadarConfig)]


def _int(value: Any) -> int:
    return int(value, 0) if isinstance(value, str) else int(value)


def _from_mmwave_studio(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The RadarConfig fields found in mmWave Studio's JSON export (missing layout entries: defaults)."""
    path = "mmWaveDevices"
    try:
        dev = data["mmWaveDevices"]
        if isinstance(dev, list):
            dev, path = dev[0], "mmWaveDevices[0]"
        rf = dev["rfConfig"]
        path += ".rfConfig"
        profiles = rf["rlProfiles"]
        prof = (profiles[0] if isinstance(profiles, list) else profiles)["rlProfileCfg_t"]
        frame = rf["rlFrameCfg_t"]
        fmt = rf["rlAdcOutCfg_t"]["fmt"]
        out: dict[str, Any] = {
            "start_freq_ghz": float(prof["startFreqConst_GHz"]),
            "idle_time_us": float(prof["idleTimeConst_usec"]),
            "adc_start_time_us": float(prof["adcStartTimeConst_usec"]),
            "ramp_end_time_us": float(prof["rampEndTime_usec"]),
            "slope_mhz_per_us": float(prof["freqSlopeConst_MHz_usec"]),
            "adc_samples": _int(prof["numAdcSamples"]),
            "sample_rate_ksps": float(prof["digOutSampleRate"]),
            "rx_channels": bin(_int(rf["rlChanCfg_t"]["rxChannelEn"])).count("1"),
            "chirps_per_loop": _int(frame["chirpEndIdx"]) - _int(frame["chirpStartIdx"]) + 1,
            "loops": _int(frame["numLoops"]),
            "frame_period_ms": float(frame["framePeriodicity_msec"]),
            "frames": _int(frame.get("numFrames", 0)),
            "adc_bits": {0: 12, 1: 14, 2: 16}.get(_int(fmt["b2AdcBits"]), -1),
        }
        if _int(fmt["b2AdcOutFmt"]) == 0:
            raise DataError(f"{source}: real-only ADC data (rlAdcOutCfg_t.fmt.b2AdcOutFmt = 0) is not supported; "
                            "the reader needs complex samples")
        capture = dev.get("rawDataCaptureConfig", {})
        data_fmt = capture.get("rlDevDataFmtCfg_t", {})
        if "iqSwapSel" in data_fmt:
            out["iq_swap"] = _int(data_fmt["iqSwapSel"]) == 1
        if "chInterleave" in data_fmt:  # TI: 0 = interleaved, 1 = non-interleaved
            out["interleaved"] = _int(data_fmt["chInterleave"]) == 0
        lanes = capture.get("rlDevLaneEnable_t", {}).get("laneEn")
        if lanes is not None:
            out["lanes"] = bin(_int(lanes)).count("1")
    except KeyError as err:
        raise DataError(f"{source}: mmWave Studio JSON lacks {err.args[0]!r} (under {path}); expected "
                        "rfConfig with rlChanCfg_t, rlAdcOutCfg_t, rlProfiles, rlFrameCfg_t") from None
    except (TypeError, ValueError, IndexError) as err:
        raise DataError(f"{source}: unreadable mmWave Studio JSON value under {path} ({err})") from None
    return out


def load_radar_config(path: str | Path) -> RadarConfig:
    """Read a radar configuration: mmWave Studio JSON (`mmWaveDevices`...) or a YAML/JSON mapping of fields.

    Raises:
        DataError: missing or unreadable file, unknown key (the message lists the allowed ones), a value
            of the wrong type, or an impossible profile (samples past the ramp, chirps longer than a frame).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"radar config {path}: cannot read ({err})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except ValueError as err:
        raise DataError(f"radar config {path}: not valid JSON ({err})") from None
    except yaml.YAMLError as err:
        raise DataError(f"radar config {path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise DataError(f"radar config {path}: expected a mapping of radar settings, got {type(data).__name__}")
    if "mmWaveDevices" in data:
        fields = _from_mmwave_studio(data, str(path))
    else:
        unknown = [k for k in data if k not in _FIELDS]
        if unknown:
            raise DataError(f"radar config {path}: unknown key {unknown[0]!r}; allowed: {', '.join(_FIELDS)}")
        fields = data
    cfg = dataclasses.replace(XRF55_RADAR, **fields)
    cfg.check(f"radar config {path}")
    return cfg


def mmwave_studio_json(cfg: RadarConfig) -> dict[str, Any]:
    """`cfg` as the part of mmWave Studio's JSON export that `load_radar_config` reads (TI's key names)."""
    chirp = {"chirpStartIdx": 0, "chirpEndIdx": cfg.chirps_per_loop - 1, "profileId": 0, "txEnable": "0x7"}
    return {
        "configGenerator": {"createdBy": "rfsense", "createdOn": "", "isConfigIntermediate": 1},
        "mmWaveDevices": [{
            "mmWaveDeviceId": 0,
            "rfConfig": {
                "rlChanCfg_t": {"rxChannelEn": hex(2**cfg.rx_channels - 1), "txChannelEn": "0x7", "cascading": 0},
                "rlAdcOutCfg_t": {"fmt": {"b2AdcBits": {12: 0, 14: 1, 16: 2}[cfg.adc_bits], "b2AdcOutFmt": 1}},
                "rlProfiles": [{"rlProfileCfg_t": {
                    "profileId": 0,
                    "startFreqConst_GHz": cfg.start_freq_ghz,
                    "idleTimeConst_usec": cfg.idle_time_us,
                    "adcStartTimeConst_usec": cfg.adc_start_time_us,
                    "rampEndTime_usec": cfg.ramp_end_time_us,
                    "freqSlopeConst_MHz_usec": cfg.slope_mhz_per_us,
                    "numAdcSamples": cfg.adc_samples,
                    "digOutSampleRate": cfg.sample_rate_ksps,
                    "rxGain_dB": "0x1E",
                }}],
                "rlChirps": [{"rlChirpCfg_t": chirp}],
                "rlFrameCfg_t": {
                    "chirpStartIdx": 0,
                    "chirpEndIdx": cfg.chirps_per_loop - 1,
                    "numLoops": cfg.loops,
                    "numFrames": cfg.frames,
                    "framePeriodicity_msec": cfg.frame_period_ms,
                    "triggerSelect": 1,
                    "frameTriggerDelay": 0.0,
                },
            },
            "rawDataCaptureConfig": {
                "rlDevDataFmtCfg_t": {"iqSwapSel": int(cfg.iq_swap), "chInterleave": int(not cfg.interleaved)},
                "rlDevLaneEnable_t": {"laneEn": hex(2**cfg.lanes - 1)},
            },
        }],
    }
