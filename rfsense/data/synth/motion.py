"""Action programmes (the 55 motions, in families of similar variants) and the body's trajectories."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from rfsense.data.synth.config import ACTION_SEED, rng_for
from rfsense.data.synth.constants import LIMBS, N_PARTS, N_T, REST, T_GRID
from rfsense.data.synth.scene import Scene, Volunteer
from rfsense.modalities import N_CLASSES

__all__ = ["Programme", "action_families", "body_track", "programmes"]

@dataclass(frozen=True)
class Programme:
    family: int
    t_on: float  # start of the active window (s, programme time)
    dur: float  # length of the active window (s)
    reach: np.ndarray  # (4, 3) out-and-back displacement of each limb (m, body frame)
    reach_reps: np.ndarray  # (4,) how many times each limb goes out and back in the window
    osc_amp: np.ndarray  # (4,) swing amplitude along osc_dir (m)
    osc_amp2: np.ndarray  # (4,) swing amplitude along osc_dir2, 90 degrees later (circles, ellipses)
    osc_dir: np.ndarray  # (4, 3) unit swing direction
    osc_dir2: np.ndarray  # (4, 3) unit direction orthogonal to osc_dir
    osc_freq: np.ndarray  # (4,) swing frequency (Hz)
    osc_phase: np.ndarray  # (4,) swing phase (rad)
    crouch: float  # crouch depth (m)
    crouch_reps: int
    lean: float  # forward bow of the upper body (m at the head)
    step: np.ndarray  # (3,) displacement of the whole body (m)
    step_return: bool  # step out and back (True) or step and stay
    variant: str = "base"  # how this action derives from its family's motion (see _variant)


_VARIANTS = ("mirror", "vertical", "tempo", "turn")
# Canonical reach directions of the right hand (body frame x right, y forward, z up); the left
# hand mirrors x. Drawing directions from a set, rather than uniformly, spreads the families out.
_HAND_DIRS = np.array(
    [[0.1, 1.0, 0.1], [1.0, 0.2, 0.0], [0.1, 0.3, 1.0], [0.0, 0.4, -0.7], [-0.7, 0.6, 0.3], [0.3, 0.7, 0.7]]
)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _orthogonal(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    o = np.cross(d, _unit(rng.normal(size=d.shape)))
    return _unit(o)


def _family_programme(rng: np.random.Generator, family: int) -> Programme:
    """One motion family: which limbs move, along which paths, how often and how fast."""
    reach = np.zeros((4, 3))
    reps = rng.integers(1, 4, size=4)
    amp = np.zeros(4)
    amp2 = np.zeros(4)
    direction = _unit(rng.normal(size=(4, 3)))
    direction2 = _orthogonal(direction, rng)
    freq = rng.uniform(0.5, 2.0, size=4)
    phase = rng.uniform(0, 2 * np.pi, size=4)
    arms = rng.choice(["none", "right", "left", "both", "anti"], p=[0.1, 0.34, 0.2, 0.2, 0.16])
    legs = rng.choice(["none", "right", "left", "both"], p=[0.68, 0.14, 0.1, 0.08])
    hands = {"none": [], "right": [1], "left": [0], "both": [0, 1], "anti": [0, 1]}[str(arms)]
    for i in hands:
        d = _unit(_HAND_DIRS[rng.integers(len(_HAND_DIRS))] + rng.normal(0, 0.15, 3)) * [
            1 if i == 1 else -1,
            1,
            1,
        ]
        reach[i] = d * rng.uniform(0.3, 0.6)  # every active hand travels 30-60 cm
        if rng.random() < 0.7:
            amp[i] = rng.uniform(0.08, 0.3)
            amp2[i] = amp[i] * rng.choice([0.0, rng.uniform(0.5, 1.0)], p=[0.6, 0.4])
    if arms in ("both", "anti"):
        # the left hand mirrors the right (x flipped); "anti" moves in antiphase
        mirror = np.array([-1.0, 1.0, 1.0])
        reach[0], direction[0], direction2[0] = (
            reach[1] * mirror,
            direction[1] * mirror,
            direction2[1] * mirror,
        )
        amp[0], amp2[0], freq[0], reps[0] = amp[1], amp2[1], freq[1], reps[1]
        phase[0] = phase[1] + (np.pi if arms == "anti" else 0.0)
    feet = {"none": [], "right": [3], "left": [2], "both": [2, 3]}[str(legs)]
    for i in feet:
        reach[i] = [rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.5), rng.uniform(0.05, 0.4)]
        amp[i] = rng.uniform(0.0, 0.12)
        direction[i] = _unit(np.array([0.0, 1.0, rng.uniform(0.0, 1.0)]))
    crouch = rng.uniform(0.15, 0.45) if rng.random() < 0.22 else 0.0
    lean = rng.uniform(0.1, 0.3) if rng.random() < 0.25 else 0.0
    step = np.zeros(3)
    if rng.random() < 0.25 or (arms == "none" and legs == "none" and crouch == 0.0):
        step = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.5), 0.0])  # room to the tag board
    return Programme(
        family=family,
        t_on=float(rng.uniform(0.3, 1.4)),
        dur=float(rng.uniform(1.8, 3.6)),
        reach=reach,
        reach_reps=reps,
        osc_amp=amp,
        osc_amp2=amp2,
        osc_dir=direction,
        osc_dir2=direction2,
        osc_freq=freq,
        osc_phase=phase,
        crouch=float(crouch),
        crouch_reps=int(rng.integers(1, 4)),
        lean=float(lean),
        step=step,
        step_return=bool(rng.random() < 0.5),
    )


def _perturb(base: Programme, rng: np.random.Generator) -> Programme:
    """Small per-action changes of amplitudes, paths and tempo, so no two actions are identical."""
    return replace(
        base,
        t_on=float(np.clip(base.t_on + rng.normal(0, 0.15), 0.2, 1.5)),
        dur=float(np.clip(base.dur * rng.uniform(0.9, 1.1), 1.5, 3.8)),
        reach=base.reach * rng.uniform(0.85, 1.15, size=(4, 1))
        + (base.reach != 0) * rng.normal(0, 0.04, (4, 3)),
        osc_amp=base.osc_amp * rng.uniform(0.85, 1.15, size=4),
        osc_amp2=base.osc_amp2 * rng.uniform(0.85, 1.15, size=4),
        osc_dir=_unit(base.osc_dir + rng.normal(0, 0.15, size=(4, 3))),
        osc_freq=base.osc_freq * rng.uniform(0.9, 1.1, size=4),
        osc_phase=base.osc_phase + rng.normal(0, 0.3, size=4),
        crouch=base.crouch * float(rng.uniform(0.85, 1.15)),
        lean=base.lean * float(rng.uniform(0.85, 1.15)),
        step=base.step * rng.uniform(0.85, 1.15, size=3),
    )


def _rotate_z(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return v @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T


def _variant(base: Programme, kind: str, rng: np.random.Generator) -> Programme:
    """A sibling of `base`: the same motion mirrored, flipped vertically, faster or turned.

    Like XRF55's swipe left/right/up/down, siblings differ in ways some sensors barely see: a
    radar facing the body sees nearly the same ranges and radial velocities for a left-hand and a
    right-hand motion, and little of an up/down one, while the side WiFi links and the RFID tag
    grid see them differently.
    """
    base = replace(base, variant=kind)
    if kind == "mirror":  # the other side of the body
        swap, flip = [1, 0, 3, 2], np.array([-1.0, 1.0, 1.0])
        return replace(
            base,
            reach=base.reach[swap] * flip,
            reach_reps=base.reach_reps[swap],
            osc_amp=base.osc_amp[swap],
            osc_amp2=base.osc_amp2[swap],
            osc_dir=base.osc_dir[swap] * flip,
            osc_dir2=base.osc_dir2[swap] * flip,
            osc_freq=base.osc_freq[swap],
            osc_phase=base.osc_phase[swap],
            step=base.step * flip,
        )
    if kind == "vertical":  # hands move up instead of down and vice versa
        flip = np.where(np.arange(4)[:, None] < 2, [1.0, 1.0, -1.0], 1.0)
        return replace(
            base, reach=base.reach * flip, osc_dir=base.osc_dir * flip, osc_dir2=base.osc_dir2 * flip
        )
    if kind == "tempo":  # faster, with one more repetition
        return replace(
            base,
            osc_freq=base.osc_freq * 1.6,
            reach_reps=base.reach_reps + 1,
            crouch_reps=base.crouch_reps + 1,
        )
    angle = float(rng.choice([-1, 1]) * np.deg2rad(rng.uniform(50, 80)))  # "turn": path rotated about z
    return replace(
        base,
        reach=_rotate_z(base.reach, angle),
        osc_dir=_rotate_z(base.osc_dir, angle),
        osc_dir2=_rotate_z(base.osc_dir2, angle),
        step=_rotate_z(base.step, angle),
    )


def _change(a: Programme, b: Programme) -> float:
    """How far two programmes' limb paths differ (m); 0 when a variant left `a` unchanged."""
    return float(
        np.abs(a.reach - b.reach).sum()
        + np.abs(a.osc_amp[:, None] * a.osc_dir - b.osc_amp[:, None] * b.osc_dir).sum()
        + np.abs(a.step - b.step).sum()
        + 0.1 * np.abs(a.reach_reps - b.reach_reps).sum() * (np.abs(a.reach).sum() > 0)
    )


@lru_cache(maxsize=1)
def programmes() -> tuple[Programme, ...]:
    """The 55 action programmes (index = action - 1), fixed for a GENERATOR_VERSION.

    Actions come in families of 1-3 (like XRF55's swipes left/right/up/down): the first member is
    the family's motion, the others are variants of it (mirrored, vertically flipped, faster,
    turned), so siblings are genuinely similar. Every action then gets a small perturbation.
    """
    rng = rng_for(ACTION_SEED)
    out: list[Programme] = []
    family = 0
    while len(out) < N_CLASSES:
        base = _family_programme(rng_for(ACTION_SEED, 0, family), family)
        size = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
        members = [base]
        for kind in rng.permutation(_VARIANTS):
            if len(members) == size:
                break
            sib = _variant(base, str(kind), rng)
            if _change(base, sib) > 0.2:  # e.g. mirroring a symmetric motion changes nothing
                members.append(sib)
        out.extend(members[: N_CLASSES - len(out)])
        family += 1
    # Spread families over the ids (XRF55 mixes similar actions too), so that any subset of
    # consecutive ids holds a few sibling pairs rather than whole families.
    out = [out[i] for i in rng.permutation(N_CLASSES)]
    return tuple(_perturb(p, rng_for(ACTION_SEED, 1, a)) for a, p in enumerate(out))


def action_families() -> dict[int, tuple[int, str]]:
    """Action id (1..55) -> (motion family id, variant); a family's actions are deliberately similar."""
    return {a + 1: (p.family, p.variant) for a, p in enumerate(programmes())}


# --------------------------------------------------------------------------------------------
# Body motion
# --------------------------------------------------------------------------------------------
def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def body_track(
    prog: Programme, vol: Volunteer, scene: Scene, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Scatterer positions (S, 1000, 3) in the room (m) on the 200 Hz grid, and the RCS scale."""
    # trial jitter: timing, tempo, amplitude, position, heading, swing phases, reach paths
    onset = rng.normal(0, 0.08)
    speed = vol.speed * rng.normal(1, 0.03)
    amp = vol.style * rng.normal(1, 0.08)
    pos_jit = rng.normal(0, 0.03, 2)
    yaw = vol.yaw + np.deg2rad(rng.normal(0, 3))
    phase_jit = rng.normal(0, 0.4, 4)
    reach_jit = rng.normal(0, 0.03, (4, 3)) * (prog.reach != 0)
    idle = rng.normal(0, 1, (3, 2))  # slow sway and breathing, always present

    tau = (T_GRID - onset) * speed  # programme time (T,)
    u = (tau - prog.t_on) / prog.dur  # 0..1 over the active window
    inside = (u > 0) & (u < 1)
    bump = np.where(inside, np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0.0)  # out and back
    env = _smoothstep(u / 0.12) * _smoothstep((1 - u) / 0.12)  # swing envelope
    t_act = tau - prog.t_on

    pos = np.broadcast_to(REST, (N_T, N_PARTS, 3)).copy()  # (T, S, 3)
    limbs = list(LIMBS)
    arg = (
        2 * np.pi * prog.osc_freq[None, :] * t_act[:, None] + (prog.osc_phase + phase_jit)[None, :]
    )  # (T, 4)
    out_back = np.where(
        inside[:, None], np.sin(np.pi * prog.reach_reps[None, :] * np.clip(u, 0, 1)[:, None]) ** 2, 0
    )
    swing = (prog.osc_amp[:, None] * prog.osc_dir)[None] * (np.sin(arg) * env[:, None])[:, :, None] + (
        prog.osc_amp2[:, None] * prog.osc_dir2
    )[None] * (np.cos(arg) * env[:, None])[:, :, None]
    pos[:, limbs] += amp * ((prog.reach + reach_jit)[None] * out_back[:, :, None] + swing)
    if prog.crouch:
        dip = (
            amp
            * prog.crouch
            * np.where(inside, np.sin(np.pi * prog.crouch_reps * np.clip(u, 0, 1)) ** 2, 0.0)
        )
        pos[:, :, 2] -= dip[:, None] * np.array([1.0, 1.0, 0.9, 0.6, 0.6, 0.0, 0.0])
    if prog.lean:
        bow = amp * prog.lean * bump
        pos[:, :, 1] += bow[:, None] * np.array([1.0, 0.5, 0.0, 0.4, 0.4, 0.0, 0.0])
        pos[:, :, 2] -= 0.4 * bow[:, None] * np.array([1.0, 0.3, 0.0, 0.3, 0.3, 0.0, 0.0])
    if prog.step.any():
        move = bump if prog.step_return else _smoothstep(u / 0.35)
        pos += amp * move[:, None, None] * prog.step[None, None, :]
    # idle motion: breathing moves the chest ~5 mm at 0.25 Hz; sway ~1 cm
    sway = 0.01 * np.sin(2 * np.pi * 0.15 * T_GRID[:, None] + idle[:2, :1].T) * idle[:2, 1]
    pos[:, :, :2] += sway[:, None, :]
    pos[:, 1, 1] += 0.005 * np.sin(2 * np.pi * 0.25 * T_GRID + idle[2, 0])

    pos *= vol.height
    # body frame -> room: the body faces the radar (-y), then turns by yaw
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([-1.0, -1.0, 1.0])
    origin = scene.spot + np.array([vol.offset[0] + pos_jit[0], vol.offset[1] + pos_jit[1], 0.0])
    world = np.einsum("tsj,ij->tsi", pos, rot) + origin
    return np.ascontiguousarray(world.transpose(1, 0, 2)), vol.rcs * vol.height**2

