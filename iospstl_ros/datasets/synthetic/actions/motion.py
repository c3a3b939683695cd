"""Motion helpers shared by the action families: easing, repetition, arm targets, walking."""

from dataclasses import dataclass

from iospstl_ros.datasets.synthetic.body import Subject
from iospstl_ros.layout import FRAME_RATE
import numpy as np

#: Arm poses that put the hand at a place on the body or in front of it: shoulder flexion,
#: shoulder abduction, shoulder internal rotation and elbow flexion, radians (right arm; the
#: left arm mirrors them). Solved once by least squares on the height-1 rest skeleton (hand
#: joint within 1 cm of the target, elbow kept low and in front of the trunk where it can be).
ARM_TARGETS = {
    'mouth': (1.31, 0.25, 0.46, 2.27),
    'ear': (1.62, 0.16, 0.15, 2.42),
    'eyes': (1.49, 0.24, 0.28, 2.11),
    'forehead': (1.73, 0.30, 0.22, 1.94),
    'crown': (2.10, 0.28, 0.12, 1.73),
    'nape': (2.07, 0.55, 0.28, 2.50),
    'chest': (0.10, 0.36, 0.83, 2.46),
    'belly': (0.10, 0.64, 1.08, 1.92),
    'low_back': (-1.21, -0.10, 0.12, 1.66),
    'pocket': (-0.41, -0.01, 0.01, 1.02),
    'front': (0.10, -0.13, 0.32, 1.72),          # hands 30 cm in front of the belly
    'face_front': (1.24, 0.14, 0.40, 1.98),      # 20 cm in front of the face
    'palms': (0.13, -0.30, 0.57, 2.05),          # hands together in front of the chest
    'cross': (0.10, -0.16, 0.89, 1.93),          # forearm across the chest
    'overhead': (2.69, -0.04, -0.01, 0.49),
    'selfie': (1.64, -0.14, -0.12, 0.93),        # arm up and forward, hand above the head
    'forward': (1.45, -0.05, 0.0, 0.1),          # arm straight ahead
}


def _ease(u, times, values):
    """Cosine-eased interpolation through key frames, held constant outside them."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    k = np.clip(np.searchsorted(times, u, side='right') - 1, 0, len(times) - 2)
    w = np.clip((u - times[k]) / (times[k + 1] - times[k]), 0.0, 1.0)
    return values[k] + (values[k + 1] - values[k]) * (0.5 - 0.5 * np.cos(np.pi * w))


def _repeat(u, count):
    """Local phase in [0, 1] of each of ``count`` repetitions spread over u in [0, 1]."""
    x = u * count
    return x - np.minimum(np.floor(x), count - 1)


def _add(pose, name, values):
    pose[name] = pose.get(name, 0.0) + values


def _hold(u, start, end, ramp=0.12):
    """0 -> 1 over [start, start + ramp], 1 until end - ramp, back to 0 at end."""
    return _ease(u, (start, start + ramp, end - ramp, end), (0.0, 1.0, 1.0, 0.0))


@dataclass
class _Context:
    """What an action needs to animate one person."""

    u: np.ndarray             # (T,) action phase in [0, 1]
    seconds: float            # duration of the action phase
    subject: Subject
    amp: float                # amplitude multiplier of this sequence
    rng: np.random.Generator

    def cycles(self, low, high, share=1.0, minimum=2):
        rate = self.rng.uniform(low, high) * self.subject.tempo
        return max(minimum, int(round(rate * self.seconds * share)))

    def oscillation(self, low, high, share=1.0, minimum=2):
        """Return the sine of ``cycles`` full periods over the phase, with a random start."""
        cycles = self.cycles(low, high, share, minimum)
        return np.sin(2.0 * np.pi * cycles * self.u + self.rng.uniform(0.0, 2.0 * np.pi))


def _base_pose(ctx):
    """Resting posture plus slow idle sway of one person."""
    subject, rng = ctx.subject, ctx.rng
    t = np.arange(len(ctx.u)) / FRAME_RATE
    pose = {'pelvis_pitch': np.full(len(t), subject.posture)}
    for side in 'rl':
        _add(pose, f'shoulder_abd_{side}', subject.arm_rest)
        _add(pose, f'elbow_{side}', subject.elbow_rest)
        _add(pose, f'hip_abd_{side}', subject.stance)
    sway = (('spine_pitch', 0.03), ('spine_roll', 0.02), ('neck_pitch', 0.05), ('yaw', 0.03),
            ('shoulder_flex_r', 0.04), ('shoulder_flex_l', 0.04), ('elbow_r', 0.05),
            ('elbow_l', 0.05), ('lateral', 0.01), ('forward', 0.01))
    for name, amplitude in sway:
        frequency = rng.uniform(0.1, 0.5, size=2)
        phase = rng.uniform(0.0, 2.0 * np.pi, size=2)
        wave = np.sin(2.0 * np.pi * frequency[:, None] * t + phase[:, None]).sum(axis=0)
        _add(pose, name, 0.5 * amplitude * wave)
    return pose


def _reach(pose, ctx, side, target, weight, spread=0.08):
    """Move arm ``side`` towards :data:`ARM_TARGETS` ``target`` by ``weight`` (T,) in [0, 1].

    Each angle gets a per-call random offset of about ``spread`` radians (people do not hit
    the same spot), and the subject's resting abduction and elbow flexion are blended out.
    """
    flex, abd, twist, elbow = np.asarray(ARM_TARGETS[target]) + ctx.rng.normal(0.0, spread, 4)
    _add(pose, f'shoulder_flex_{side}', weight * flex)
    _add(pose, f'shoulder_abd_{side}', weight * (abd - ctx.subject.arm_rest))
    _add(pose, f'shoulder_twist_{side}', weight * twist)
    _add(pose, f'elbow_{side}', weight * (elbow - ctx.subject.elbow_rest))


def _sit(pose, ctx, seated, lean_amplitude):
    """Sit on a chair as ``seated`` (T,) goes 0 -> 1; the trunk leans forward on the way."""
    lean = np.sin(np.pi * np.clip(seated, 0.0, 1.0))
    _add(pose, 'pelvis_pitch', lean_amplitude * ctx.amp * lean + 0.12 * seated)
    _add(pose, 'spine_pitch', 0.15 * lean)
    _add(pose, 'neck_pitch', -0.3 * lean)
    for side in 'rl':
        _add(pose, f'hip_flex_{side}', 1.45 * seated)
        _add(pose, f'knee_{side}', 1.55 * seated)
        _add(pose, f'shoulder_flex_{side}', 0.6 * lean + 0.35 * seated)
        _add(pose, f'elbow_{side}', 0.7 * seated)
    return 'both'


def _walk(pose, ctx, progress, distance, steps, sway=0.0):
    """Walk ``distance`` metres straight ahead as ``progress`` (T,) goes 0 -> 1.

    ``steps`` strides; ``sway`` adds a side-to-side lurch (metres) per stride, as in
    staggering. Feet are not planted (the body moves).
    """
    walking = np.sin(np.pi * np.clip(progress, 0.0, 1.0)) ** 0.5
    _add(pose, 'forward', distance * progress)
    phase = np.pi * steps * progress
    for side, offset in (('r', 0.0), ('l', np.pi)):
        _add(pose, f'hip_flex_{side}', 0.45 * walking * np.sin(phase + offset))
        bend = np.maximum(np.sin(phase + offset + 0.6), 0.0)
        _add(pose, f'knee_{side}', 0.7 * walking * bend)
        _add(pose, f'shoulder_flex_{side}', -0.3 * walking * np.sin(phase + offset))
    if sway:
        _add(pose, 'lateral', sway * walking * np.sin(0.5 * phase))
        _add(pose, 'pelvis_roll', 1.2 * sway * walking * np.sin(0.5 * phase + 0.4))
