"""The synthetic actions: one function per class animating joint angles over the action phase."""

from dataclasses import dataclass

from iospstl_ros.datasets.synthetic.body import _OTHER, _SIGN, Subject
from iospstl_ros.layout import FRAME_RATE
import numpy as np


# --------------------------------------------------------------------------- motion helpers


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


def _wave(pose, ctx, side):
    u, rng, amp = ctx.u, ctx.rng, ctx.amp
    up = _ease(u, (0.0, 0.2, 0.8, 1.0), (0.0, 1.0, 1.0, 0.0))
    swing = _ease(u, (0.15, 0.3, 0.7, 0.85), (0.0, 1.0, 1.0, 0.0))
    cycles = ctx.cycles(1.6, 2.6, share=0.55)
    oscillation = np.sin(2.0 * np.pi * cycles * u)
    _add(pose, f'shoulder_abd_{side}', up * rng.uniform(1.2, 1.6) * amp)
    _add(pose, f'shoulder_flex_{side}', up * rng.uniform(0.0, 0.5))
    _add(pose, f'shoulder_twist_{side}', -1.45 * up)
    _add(pose, f'elbow_{side}', up * rng.uniform(1.2, 1.6) + swing * 0.45 * amp * oscillation)
    _add(pose, f'wrist_{side}', 0.2 * swing * oscillation)
    return None


def _wave_right(pose, ctx):
    return _wave(pose, ctx, 'r')


def _wave_left(pose, ctx):
    return _wave(pose, ctx, 'l')


def _clap(pose, ctx):
    u, amp = ctx.u, ctx.amp
    up = _ease(u, (0.0, 0.2, 0.85, 1.0), (0.0, 1.0, 1.0, 0.0))
    swing = _ease(u, (0.15, 0.25, 0.8, 0.9), (0.0, 1.0, 1.0, 0.0))
    cycles = ctx.cycles(1.5, 2.5, share=0.6)
    opening = 0.5 - 0.5 * np.cos(2.0 * np.pi * cycles * u)
    for side in 'rl':
        _add(pose, f'shoulder_flex_{side}', 0.5 * up)
        _add(pose, f'shoulder_abd_{side}', -ctx.subject.arm_rest * up)
        _add(pose, f'shoulder_twist_{side}', 0.45 * up - 0.5 * amp * swing * opening)
        _add(pose, f'elbow_{side}', (1.5 - ctx.subject.elbow_rest) * up)
    return 'both'


def _drink(pose, ctx):
    u, hand = ctx.u, ctx.subject.hand
    lift = _ease(u, (0.0, 0.3, 0.75, 1.0), (0.0, 1.0, 1.0, 0.0))
    sip = _ease(u, (0.3, 0.4, 0.65, 0.75), (0.0, 1.0, 1.0, 0.0))
    _add(pose, f'shoulder_flex_{hand}', 1.5 * lift)
    _add(pose, f'shoulder_abd_{hand}', (0.5 - ctx.subject.arm_rest) * lift)
    _add(pose, f'shoulder_twist_{hand}', 0.3 * lift)
    _add(pose, f'elbow_{hand}', (2.2 - ctx.subject.elbow_rest) * lift)
    _add(pose, f'wrist_{hand}', 0.3 * lift)
    _add(pose, 'neck_pitch', -0.25 * sip * ctx.amp)
    return 'both'


def _pick_up(pose, ctx):
    u, hand, amp = ctx.u, ctx.subject.hand, ctx.amp
    bow = _ease(u, (0.0, 0.35, 0.55, 0.9), (0.0, 1.0, 1.0, 0.0)) * min(amp, 1.0)
    _add(pose, 'pelvis_pitch', 1.2 * bow)
    _add(pose, 'spine_pitch', 0.5 * bow)
    _add(pose, 'neck_pitch', -0.5 * bow)
    for side in 'rl':
        _add(pose, f'knee_{side}', 0.7 * bow)
        _add(pose, f'hip_flex_{side}', 0.4 * bow)
        _add(pose, f'shoulder_flex_{side}', (1.7 if side == hand else 1.2) * bow)
        _add(pose, f'elbow_{side}', 0.2 * bow)
    return 'both'


def _sit(pose, ctx, seated, lean_amplitude):
    lean = np.sin(np.pi * seated)
    _add(pose, 'pelvis_pitch', lean_amplitude * ctx.amp * lean + 0.12 * seated)
    _add(pose, 'spine_pitch', 0.15 * lean)
    _add(pose, 'neck_pitch', -0.3 * lean)
    for side in 'rl':
        _add(pose, f'hip_flex_{side}', 1.45 * seated)
        _add(pose, f'knee_{side}', 1.55 * seated)
        _add(pose, f'shoulder_flex_{side}', 0.6 * lean + 0.35 * seated)
        _add(pose, f'elbow_{side}', 0.7 * seated)
    return 'both'


def _sit_down(pose, ctx):
    return _sit(pose, ctx, _ease(ctx.u, (0.05, 0.8), (0.0, 1.0)), 0.55)


def _stand_up(pose, ctx):
    return _sit(pose, ctx, _ease(ctx.u, (0.2, 0.9), (1.0, 0.0)), 0.75)


def _kick(pose, ctx):
    u, leg, amp = ctx.u, ctx.subject.hand, ctx.amp
    v = _repeat(u, int(ctx.rng.integers(1, 3)))
    times = (0.0, 0.3, 0.5, 0.7, 1.0)
    extension = _ease(v, times, (0.0, 0.3, 1.0, 0.3, 0.0))
    _add(pose, f'hip_flex_{leg}', _ease(v, times, (0.0, 0.9, 1.25, 0.8, 0.0)) * amp)
    _add(pose, f'knee_{leg}', _ease(v, times, (0.0, 1.4, 0.1, 1.2, 0.0)))
    _add(pose, f'ankle_{leg}', -0.4 * extension)
    balance = ctx.rng.uniform(0.0, 1.0) * extension      # how much the upper body helps
    _add(pose, 'pelvis_pitch', -0.15 * balance)
    _add(pose, f'shoulder_flex_{_OTHER[leg]}', 0.4 * balance)
    for side in 'rl':
        _add(pose, f'shoulder_abd_{side}', 0.25 * balance)
    return _OTHER[leg]


def _march(pose, ctx):
    u, amp = ctx.u, ctx.amp
    active = _ease(u, (0.0, 0.12, 0.88, 1.0), (0.0, 1.0, 1.0, 0.0))
    phase = 2.0 * np.pi * ctx.cycles(0.8, 1.15) * u
    lift = ctx.rng.uniform(0.6, 1.0) * amp
    swing = ctx.rng.uniform(0.0, 0.45)
    steps = {'r': np.maximum(np.sin(phase), 0.0) ** 1.3,
             'l': np.maximum(-np.sin(phase), 0.0) ** 1.3}
    for side in 'rl':
        _add(pose, f'hip_flex_{side}', active * lift * steps[side])
        _add(pose, f'knee_{side}', active * 1.4 * lift * steps[side])
        _add(pose, f'shoulder_flex_{side}', active * swing * (steps[_OTHER[side]] - steps[side]))
        _add(pose, f'elbow_{side}', swing * active)
    return None


def _jump(pose, ctx):
    u, amp = ctx.u, ctx.amp
    v = _repeat(u, int(ctx.rng.integers(1, 3)))
    crouch = _ease(v, (0.0, 0.3, 0.42, 0.62, 0.75, 1.0), (0.0, 1.0, 0.0, 0.15, 0.8, 0.0))
    flight = np.where((v > 0.42) & (v < 0.62), np.sin(np.pi * (v - 0.42) / 0.2), 0.0)
    _add(pose, 'air', ctx.rng.uniform(0.12, 0.3) * amp * flight)
    _add(pose, 'pelvis_pitch', 0.45 * crouch)
    arms = _ease(v, (0.0, 0.3, 0.45, 0.62, 0.75, 1.0), (0.0, -0.6, 2.2, 1.0, -0.2, 0.0))
    arms = arms * ctx.rng.uniform(0.1, 1.0)
    for side in 'rl':
        _add(pose, f'hip_flex_{side}', 0.8 * crouch)
        _add(pose, f'knee_{side}', 1.25 * crouch)
        _add(pose, f'ankle_{side}', -0.5 * flight)
        _add(pose, f'shoulder_flex_{side}', arms * amp)
    return 'both'


def _squat(pose, ctx):
    u = ctx.u
    v = _repeat(u, int(ctx.rng.integers(1, 4)))
    depth = _ease(v, (0.0, 0.4, 0.6, 1.0), (0.0, 1.0, 1.0, 0.0)) * ctx.rng.uniform(0.75, 1.0)
    depth = depth * min(ctx.amp, 1.0)
    _add(pose, 'pelvis_pitch', 0.6 * depth)
    _add(pose, 'neck_pitch', -0.3 * depth)
    for side in 'rl':
        _add(pose, f'hip_flex_{side}', 1.3 * depth)
        _add(pose, f'knee_{side}', 2.0 * depth)
        _add(pose, f'shoulder_flex_{side}', 1.35 * depth)
    return 'both'


def _side_step(pose, ctx):
    u, rng, subject = ctx.u, ctx.rng, ctx.subject
    direction = 1.0 if rng.random() < 0.5 else -1.0
    out = int(rng.integers(1, 3))
    directions = [direction] * out + [-direction] * out
    step = rng.uniform(0.25, 0.4) * ctx.amp
    arms = rng.uniform(0.0, 0.12)
    leg = subject.bone_lengths[[17, 18]].sum()
    pelvis = np.zeros(len(u))
    feet = {'r': np.zeros(len(u)), 'l': np.zeros(len(u))}
    lifts = {'r': np.zeros(len(u)), 'l': np.zeros(len(u))}
    for i, sign in enumerate(directions):
        v = np.clip(u * len(directions) - i, 0.0, 1.0)
        lead, trail = ('r', 'l') if sign > 0 else ('l', 'r')
        pelvis += sign * step * _ease(v, (0.0, 1.0), (0.0, 1.0))
        feet[lead] += sign * step * _ease(v, (0.0, 0.45), (0.0, 1.0))
        feet[trail] += sign * step * _ease(v, (0.5, 0.95), (0.0, 1.0))
        lifts[lead] += np.sin(np.pi * np.clip(v / 0.45, 0.0, 1.0))
        lifts[trail] += np.sin(np.pi * np.clip((v - 0.5) / 0.45, 0.0, 1.0))
    _add(pose, 'lateral', pelvis)
    for side in 'rl':
        outward = _SIGN[side] * (feet[side] - pelvis) / leg
        _add(pose, f'hip_abd_{side}', np.arcsin(np.clip(outward, -0.9, 0.9)))
        _add(pose, f'hip_flex_{side}', 0.15 * lifts[side])
        _add(pose, f'knee_{side}', 0.35 * lifts[side])
        _add(pose, f'shoulder_abd_{side}', arms * (lifts['r'] + lifts['l']))
    return None


def _raise_arms(pose, ctx):
    u, amp = ctx.u, ctx.amp
    v = _repeat(u, int(ctx.rng.integers(1, 3)))
    up = _ease(v, (0.0, 0.35, 0.65, 1.0), (0.0, 1.0, 1.0, 0.0)) * min(2.8 * amp, 3.0)
    channel = 'shoulder_abd' if ctx.subject.side_raise else 'shoulder_flex'
    for side in 'rl':
        _add(pose, f'{channel}_{side}', up)
        _add(pose, f'elbow_{side}', 0.05 * up)
    _add(pose, 'neck_pitch', -0.05 * up)
    return 'both'


def _punch(pose, ctx):
    u, hand = ctx.u, ctx.subject.hand
    guard = _ease(u, (0.0, 0.15, 0.85, 1.0), (0.0, 1.0, 1.0, 0.0))
    for side in 'rl':
        _add(pose, f'shoulder_flex_{side}', 0.55 * guard)
        _add(pose, f'shoulder_twist_{side}', 0.45 * guard)
        _add(pose, f'shoulder_abd_{side}', -0.05 * guard)
        _add(pose, f'elbow_{side}', 2.0 * guard)
    v = _repeat(np.clip((u - 0.15) / 0.7, 0.0, 1.0), int(ctx.rng.integers(1, 4)))
    strike = _ease(v, (0.0, 0.25, 0.4, 1.0), (0.0, 1.0, 1.0, 0.0)) * min(ctx.amp, 1.0)
    _add(pose, f'shoulder_flex_{hand}', 0.95 * strike)
    _add(pose, f'elbow_{hand}', -1.9 * strike)
    _add(pose, f'shoulder_twist_{hand}', -0.2 * strike)
    _add(pose, f'shoulder_abd_{hand}', -0.15 * strike)
    _add(pose, 'spine_yaw', 0.35 * _SIGN[hand] * strike)
    return 'both'


def _handshake(poses, contexts):
    delay = contexts[1].rng.uniform(-0.04, 0.04)
    cycles = contexts[0].cycles(1.8, 2.8, share=0.45)
    for pose, ctx, shift in zip(poses, contexts, (0.0, delay)):
        u = np.clip(ctx.u + shift, 0.0, 1.0)
        reach = _ease(u, (0.0, 0.25, 0.8, 1.0), (0.0, 1.0, 1.0, 0.0))
        shake = _ease(ctx.u, (0.25, 0.35, 0.7, 0.8), (0.0, 1.0, 1.0, 0.0))
        _add(pose, 'shoulder_flex_r', 0.85 * reach + 0.13 * shake * np.sin(
            2.0 * np.pi * cycles * ctx.u))
        _add(pose, 'shoulder_abd_r', -0.25 * reach)
        _add(pose, 'shoulder_twist_r', 0.3 * reach)
        _add(pose, 'elbow_r', 0.55 * reach)
        _add(pose, 'forward', 0.12 * reach)
        _add(pose, 'pelvis_pitch', 0.08 * reach)
    # Right hands meet at the middle of the shake.
    return (None, None), ((11, 0.0), (11, 0.0)), 0.55


def _push(poses, contexts):
    (pusher, pushed), (ctx, other) = poses, contexts
    u = ctx.u
    times = (0.0, 0.3, 0.5, 0.75, 1.0)
    push = _ease(u, times, (0.0, 0.7, 1.0, 0.6, 0.0))
    for side in 'rl':
        _add(pusher, f'shoulder_flex_{side}', _ease(u, times, (0.0, 1.2, 1.45, 1.3, 0.0)))
        _add(pusher, f'elbow_{side}', _ease(u, times, (0.0, 1.6, 0.25, 0.6, 0.0)))
        _add(pusher, f'shoulder_twist_{side}', 0.3 * push)
    _add(pusher, 'forward', _ease(u, (0.05, 0.5), (0.0, 0.3)) * ctx.amp)
    _add(pusher, 'pelvis_pitch', 0.2 * push)
    step = np.sin(np.pi * np.clip((u - 0.2) / 0.25, 0.0, 1.0))
    lead = ctx.subject.hand
    _add(pusher, f'hip_flex_{lead}', 0.4 * step)
    _add(pusher, f'knee_{lead}', 0.6 * step)
    shock = _ease(u, (0.45, 0.55, 0.8), (0.0, 1.0, 0.0))
    _add(pushed, 'forward', -_ease(u, (0.48, 0.75), (0.0, 0.45)) * other.amp)
    _add(pushed, 'pelvis_pitch', -0.25 * shock)
    back = np.sin(np.pi * np.clip((u - 0.5) / 0.2, 0.0, 1.0))
    _add(pushed, 'hip_flex_l', -0.4 * back)
    _add(pushed, 'knee_l', 0.5 * back)
    for side in 'rl':
        _add(pushed, f'shoulder_flex_{side}', 0.6 * shock)
        _add(pushed, f'shoulder_abd_{side}', 0.5 * shock)
    # The pusher's hands reach the pushed person's chest (spine mid, 10 cm in front).
    return ('both', None), (('hands', 0.0), (1, 0.1)), 0.5


def _hug(poses, contexts):
    for pose, ctx in zip(poses, contexts):
        u = ctx.u
        walk = np.clip(u / 0.55, 0.0, 1.0)
        walking = np.sin(np.pi * walk)
        _add(pose, 'forward', ctx.rng.uniform(0.35, 0.6) * _ease(walk, (0.0, 1.0), (0.0, 1.0)))
        phase = 2.0 * np.pi * 2.0 * walk
        for side, offset in (('r', 0.0), ('l', np.pi)):
            _add(pose, f'hip_flex_{side}', 0.4 * walking * np.sin(phase + offset))
            bend = np.maximum(np.sin(phase + offset + 0.5), 0.0)
            _add(pose, f'knee_{side}', 0.6 * walking * bend)
        wrap = _ease(u, (0.35, 0.6, 0.9, 1.0), (0.0, 1.0, 1.0, 0.3))
        for side in 'rl':
            _add(pose, f'shoulder_flex_{side}', 1.35 * wrap)
            _add(pose, f'shoulder_abd_{side}', 0.45 * wrap)
            _add(pose, f'shoulder_twist_{side}', 0.9 * wrap)
            _add(pose, f'elbow_{side}', 1.3 * wrap)
        _add(pose, 'pelvis_pitch', 0.1 * wrap)
    # The spine shoulders are 28 cm apart when the hug is held.
    return (None, None), ((20, 0.14), (20, 0.14)), 0.8


_SINGLE_ACTIONS = (_wave_right, _wave_left, _clap, _drink, _pick_up, _sit_down, _stand_up,
                   _kick, _march, _jump, _squat, _side_step, _raise_arms, _punch)
_PAIR_ACTIONS = (_handshake, _push, _hug)
