"""The content of synth.json: generator version, config, geometry, the meaning of every axis, impairments."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rfsense.data.synth.config import SynthConfig
from rfsense.data.synth.constants import (
    DURATION_S,
    GENERATOR_VERSION,
    MM_BW,
    MM_CHIRPS,
    MM_FC,
    MM_FLUCT,
    MM_FRAME_S,
    MM_FRAMES,
    MM_NOISE,
    MM_RANGE_RES,
    MM_T_CHIRP,
    MM_V_AMBIG,
    MM_V_MAX,
    MM_V_RES,
    N_ANT,
    N_DOPPLER,
    N_RANGE,
    N_RX,
    N_SC,
    N_STEPS,
    N_T,
    N_TAGS,
    PARTS,
    RCS,
    REST,
    RFID_F,
    RFID_MISS_P,
    RFID_N,
    RFID_PHASE_NOISE,
    RFID_PI_JUMP_P,
    RFID_RATE,
    RFID_SESSION_DRIFT,
    RFID_TAG_DRIFT,
    SUBCARRIER_INDEX,
    WIFI_AGC_STEPS,
    WIFI_BACKGROUND_MOVERS,
    WIFI_DROP_P,
    WIFI_FC,
    WIFI_FS,
    WIFI_OUTLIER_P,
    WIFI_PACKET_GAIN_DB,
    WIFI_SNR_DB,
)
from rfsense.data.synth.motion import action_families
from rfsense.data.synth.scene import scene_geometry, volunteer_traits
from rfsense.modalities import FOLDERS

__all__ = ["describe"]


def describe(cfg: SynthConfig, raw: bool = False) -> dict[str, Any]:
    """The content of synth.json: generator version, config, geometry, axes and impairments (and the raw
    recordings, when `raw`)."""
    scenes = {}
    for k in range(1, cfg.scenes + 1):
        s = scene_geometry(cfg.seed, k)
        scenes[f"Scene{k}"] = {
            "volunteers": [v for v in range(1, cfg.volunteers + 1) if cfg.scene_of(v) == k],
            "stand_spot_m": s.spot.round(4).tolist(),
            "mmwave_radar_m": s.radar.round(4).tolist(),
            "wifi_tx_m": s.tx.round(4).tolist(),
            "wifi_rx_antennas_m": s.rx_ant.round(4).tolist(),
            "static_reflectors_m": s.reflectors.round(4).tolist(),
            "static_reflector_rcs_m2": s.reflector_rcs.round(4).tolist(),
            "radar_wall_ranges_m": s.walls.round(4).tolist(),
            "rfid_reader_m": s.reader.round(4).tolist(),
            "rfid_tags_m": s.tags.round(4).tolist(),
            "rfid_tag_phase_offset_rad": s.tag_offset.round(4).tolist(),
        }
    volunteers = {str(v): asdict(volunteer_traits(cfg.seed, v)) for v in range(1, cfg.volunteers + 1)}
    return {
        "generator": "rfsense.data.synth",
        "generator_version": GENERATOR_VERSION,
        "config": asdict(cfg),
        "n_samples": cfg.n_samples,
        "file_name": "<volunteer>_<action>_<trial>.npy, ids not zero-padded; label = action - 1",
        "layout": (
            "ROOT/{WiFi,RFID,mmWave}/"
            if cfg.layout == "flat"
            else "ROOT/Scene<k>/Scene<k>_part1/{WiFi,RFID,mmWave}/"
        ),
        "duration_s": DURATION_S,
        "coordinates": "room frame in metres: x right, y away from the radar, z up; the radar looks along +y",
        "note": "synthetic data. Each action is a procedural motion programme of a 7-point body; the "
        "programmes do not imitate the named XRF55 actions. Actions of one family are variants of one "
        "motion (mirrored, vertically flipped, faster or turned) and deliberately similar",
        "action_families": {
            str(a): {"family": f, "variant": k} for a, (f, k) in action_families().items() if a <= cfg.actions
        },
        "body": {
            "parts": list(PARTS),
            "rest_position_m": REST.tolist(),
            "rcs_m2_per_sensor": {k: v.tolist() for k, v in RCS.items()},
        },
        "modalities": {
            "mmwave": {
                "folder": FOLDERS["mmwave"],
                "shape": [1, N_STEPS, N_RANGE, N_DOPPLER],
                "dtype": "float32",
                "axes": [
                    "singleton (as in the XRF55 files)",
                    f"time step: 17 over 5 s; step s is the mean of the radar frames f (0..{MM_FRAMES - 1}, "
                    f"{1 / MM_FRAME_S:.0f} frames/s) with f * {N_STEPS} // {MM_FRAMES} == s (5 or 6 frames)",
                    f"range bin: bin i is i * {MM_RANGE_RES:.4f} m from the radar (Hann window, 256-point FFT of "
                    "the 256 samples of a chirp)",
                    f"Doppler bin: bin b is (b - {N_DOPPLER // 2}) * {MM_V_RES:.4f} m/s of radial velocity "
                    f"(positive = moving away): Hann window over the {MM_CHIRPS} chirps of a frame "
                    f"({MM_T_CHIRP * 1e6:.0f} us apart, all TX on), FFT zero-padded to {2 * MM_CHIRPS}, the "
                    f"{N_DOPPLER} bins around zero kept; faster motion than +-{MM_V_MAX:.3f} m/s is outside the "
                    f"map and aliases back only beyond +-{MM_V_AMBIG:.2f} m/s",
                ],
                "axes_note": "XRF55 does not document what 17 x 256 x 128 mean (XRF55-repo issue #8); "
                "time x range x Doppler is this generator's choice",
                "value": "range-Doppler magnitude (|X| / window gains, mean over the 4 receivers): a blob per "
                "body part at its range (Gaussian widened by the part's depth) and radial velocity (the "
                "Doppler response of the windowed FFT), amplitude ~ sqrt(rcs)/R^2, antenna pattern 60 deg "
                "azimuth x 20 deg elevation; static clutter at zero Doppler; complex receiver noise. "
                "rfsense.data.recordings.dca1000 computes the same axes from raw DCA1000 captures",
                "carrier_hz": MM_FC,
                "bandwidth_hz": MM_BW,
                "range_resolution_m": MM_RANGE_RES,
                "velocity_resolution_m_s": MM_V_RES,
                "chirp_period_s": MM_T_CHIRP,
                "chirps_per_frame": MM_CHIRPS,
                "frame_period_s": MM_FRAME_S,
                "impairments": {
                    "receiver_noise_sigma": MM_NOISE,
                    "echo_fluctuation": f"each part's echo times |1 + {MM_FLUCT} * CN(0, 1)| per frame (Swerling I)",
                },
            },
            "wifi": {
                "folder": FOLDERS["wifi"],
                "shape": [N_RX * N_ANT * N_SC, N_T],
                "dtype": "float64",
                "axes": ["channel = rx*90 + antenna*30 + subcarrier", f"packet ({WIFI_FS:.0f} Hz, 5 s)"],
                "value": "|CSI|: static paths (LOS + furniture) plus body reflections, each path of length L "
                "with phase -2*pi*f*L/c; Intel 5300 scaled-CSI-like units",
                "carrier_hz": WIFI_FC,
                "subcarrier_index": SUBCARRIER_INDEX.tolist(),
                "subcarrier_spacing_hz": 312.5e3,
                "impairments": {
                    "thermal_noise_snr_db": WIFI_SNR_DB,
                    "agc": f"per-NIC gain steps of 0.5-2 dB at random packets (Poisson, mean {WIFI_AGC_STEPS})",
                    "packet_gain_jitter_db": WIFI_PACKET_GAIN_DB,
                    "background_movers": f"Poisson mean {WIFI_BACKGROUND_MOVERS} people walking behind the radar "
                    "(seen by WiFi only)",
                    "quantisation": "I and Q rounded to integers before the magnitude",
                    "impulsive_outliers": f"each entry with p={WIFI_OUTLIER_P} multiplied by 2-5",
                    "dropped_packets": f"per NIC, p={WIFI_DROP_P} plus bursts of 5-30 packets",
                },
                "dropped_packet": "forward fill: a dropped packet repeats the NIC's last received packet "
                "(all its 90 channels), as fixed-rate pipelines do",
            },
            "rfid": {
                "folder": FOLDERS["rfid"],
                "shape": [N_TAGS, RFID_N],
                "dtype": "float64",
                "axes": [
                    "tag (5 x 5 grid minus the two top corners, row-major from the bottom)",
                    "read slot (148 slots over 5 s)",
                ],
                "value": "backscatter phase in radians wrapped to [0, 2*pi): round trip 4*pi*d/lambda plus tag "
                "offset, disturbed by body reflections and Fresnel-zone shadowing",
                "carrier_hz": RFID_F,
                "read_rate_hz": RFID_RATE,
                "missing_read": "zero-order hold: each slot holds the tag's latest read at or before the slot's "
                "end; slots before the tag's first read hold that first read",
                "impairments": {
                    "phase_noise_rad": f"{RFID_PHASE_NOISE} / sqrt(relative backscatter power)",
                    "pi_jumps": f"p={RFID_PI_JUMP_P} per read (Miller-encoding 180 degree ambiguity)",
                    "missed_reads": f"p={RFID_MISS_P} + 0.5 * (1 - relative power)^2 per read",
                    "irregular_reads": "gamma-distributed gaps, mean 1/30 s, CV 0.35",
                    "offset_drift_rad": f"per recording: common N(0, {RFID_SESSION_DRIFT}) + per tag "
                    f"N(0, {RFID_TAG_DRIFT})",
                },
            },
        },
        "scenes": scenes,
        "volunteers": volunteers,
        **({"raw_recordings": _RAW} if raw else {}),
    }


_RAW = {
    "impinj": {
        "files": "raw/impinj/<v>_<a>_<t>.csv, tag map raw/impinj/Scene<k>.tags.txt (23 EPCs in row order)",
        "format": "Impinj reader CSV: EPC,Timestamp (us since the epoch),Antenna,TxPower,Frequency(MHz),RSS(dbm),"
        "PhaseAngle(Radian),PhaseAngle(Degree),DopplerShift(Hz),Velocity; one row per received read",
        "content": "the reads the RFID .npy is resampled from (same times and phases), plus frequency hopping "
        "over 16 channels (920.625 + 0.25 i MHz, 0.2 s dwell) with a phase offset per channel, and the "
        "reader's 4096-step phase quantisation",
        "read_with": "rfsense.data.recordings.impinj.read_impinj (rfsense infer MODEL LOG.csv --tag-map MAP)",
    },
    "dca1000": {
        "files": "raw/dca1000/<v>_<a>_<t>_Raw_0.bin + <v>_<a>_<t>.mmwave.json (mmWave Studio JSON export)",
        "format": "XRF55's IWR6843 profile: 100 frames x 192 chirps x 4 RX x 256 complex int16 samples, 2 LVDS "
        "lanes (I0 I1 Q0 Q1 ...), receiver by receiver within a chirp; 78.6 MB",
        "content": "beat signals of the scatterers the mmWave .npy is drawn from (same ranges, velocities, "
        "amplitudes), three speckle points per body part, static clutter, receiver noise, int16 quantisation",
        "read_with": "rfsense.data.recordings.dca1000.read_dca1000 (rfsense infer MODEL CAPTURE_Raw_0.bin)",
    },
}

