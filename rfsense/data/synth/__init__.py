"""Deterministic synthetic XRF55 data: a point-scatterer body seen by mmWave radar, WiFi CSI and RFID.

The real XRF55 recordings cannot be downloaded here, so every demo, test and benchmark runs on
this generator. It simulates the mechanism, not labels painted on noise:

- a body of 7 point scatterers (head, torso, pelvis, hands, feet) moves for 5 s; each of the 55
  actions is a motion programme (limb reaches, swings and circles, crouches, bows, steps, timing)
  generated from a fixed action seed. Actions come in families of 1-3 whose members are variants of
  one motion (mirrored, vertically flipped, faster, turned), so some actions are genuinely similar
  (`motion.py`);
- volunteers differ in size, tempo, style, standing position and heading; trials jitter timing,
  tempo, amplitude, position and paths; scenes differ in device geometry and static multipath
  (`scene.py`);
- each sensor sees the same trajectories through its own physics and impairments:
  mmWave (60 GHz FMCW, XRF55's chirp profile, `mmwave.py`): a blob per body part at range R (bin R / 6.5 cm)
  and radial velocity v (bin 64 + v / 4.33 cm/s: Doppler FFT of the 192 chirps of a frame, 147 us apart),
  amplitude ~ sqrt(rcs) / R^2, static clutter at zero Doppler, noise;
  WiFi (5.64 GHz, 3 rx x 3 antennas x 30 subcarriers, 200 Hz, `wifi.py`): |sum of paths
  a * exp(-j*2*pi*f*L/c)| over static and body paths, thermal noise, AGC steps, packet gain jitter,
  people walking elsewhere, 8-bit quantisation, impulsive outliers, dropped packets (forward filled);
  RFID (922.38 MHz, 23 tags, ~30 reads/s, `rfid.py`): round-trip phase 4*pi*d/lambda + tag offset,
  disturbed by body reflections and Fresnel-zone shadowing, phase noise, pi jumps, missed reads
  (held), irregular reads resampled to 148 slots, wrapped to [0, 2*pi).

Noise levels (`constants.py`) are tuned so the no-training probe in `rfsense.data.probe` ranks
the modalities as on real XRF55 (mmWave > WiFi > RFID) with fusion above each (tests/data/test_synth.py).

Every sample is a pure function of (cfg.seed, cfg.scenes, volunteer, action, trial) (`sample.py`), so
one sample can be regenerated alone and generation parallelises over processes (`writer.py`).
`synth.json` records the generator version, config, geometry and the meaning of every axis (`describe.py`).
With `raw=True` (`rfsense synth --raw`) each sample also gets the raw recordings its sensors would have
made of the same scene: an Impinj reader CSV (`raw_rfid.py`) and a DCA1000 ADC capture + mmWave Studio
JSON (`raw_mmwave.py`), which `rfsense.data.recordings` reads back into the same arrays.

Run: ``rfsense synth OUT --volunteers 2 --actions 10 --trials 20 --workers 2``
Speed: ``python benchmarks/bench_synth.py``
"""

from __future__ import annotations

from rfsense.data.synth.config import SynthConfig
from rfsense.data.synth.constants import GENERATOR_VERSION
from rfsense.data.synth.describe import describe
from rfsense.data.synth.motion import action_families
from rfsense.data.synth.sample import generate_sample
from rfsense.data.synth.writer import SYNTH_JSON, sample_paths, synthesize

__all__ = [
    "GENERATOR_VERSION",
    "SYNTH_JSON",
    "SynthConfig",
    "action_families",
    "describe",
    "generate_sample",
    "sample_paths",
    "synthesize",
]
