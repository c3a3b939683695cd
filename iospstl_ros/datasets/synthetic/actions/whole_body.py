"""Actions of the trunk and legs, and the seated ones: bending, sitting, kicking, jumping, falling.

The health-related ones of NTU (staggering, falling, backache, nausea) are here too: they move
the whole body.
"""

from iospstl_ros.datasets.synthetic.actions.motion import (
    _add, _ease, _hold, _reach, _repeat, _sit, _walk)
from iospstl_ros.datasets.synthetic.body import _OTHER, _SIGN
import numpy as np


def pickup(pose, ctx):
    """A006: bend at the hips and knees, the dominant hand reaches the floor, stand up."""
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


def sitting_down(pose, ctx):
    """A008: from standing onto a chair behind, leaning forward on the way down."""
    return _sit(pose, ctx, _ease(ctx.u, (0.05, 0.8), (0.0, 1.0)), 0.55)


def standing_up(pose, ctx):
    """A009: from the chair to standing, a stronger forward lean to get up."""
    return _sit(pose, ctx, _ease(ctx.u, (0.2, 0.9), (1.0, 0.0)), 0.75)


def kicking_something(pose, ctx):
    """A024: one or two forward kicks with the dominant leg, arms out for balance."""
    u, leg, amp = ctx.u, ctx.subject.hand, ctx.amp
    v = _repeat(u, int(ctx.rng.integers(1, 3)))
    times = (0.0, 0.3, 0.5, 0.7, 1.0)
    extension = _ease(v, times, (0.0, 0.3, 1.0, 0.3, 0.0))
    _add(pose, f'hip_flex_{leg}', _ease(v, times, (0.0, 0.9, 1.25, 0.8, 0.0)) * amp)
    _add(pose, f'knee_{leg}', _ease(v, times, (0.0, 1.4, 0.1, 1.2, 0.0)))
    _add(pose, f'ankle_{leg}', -0.4 * extension)
    balance = ctx.rng.uniform(0.0, 1.0) * extension
    _add(pose, 'pelvis_pitch', -0.15 * balance)
    _add(pose, f'shoulder_flex_{_OTHER[leg]}', 0.4 * balance)
    for side in 'rl':
        _add(pose, f'shoulder_abd_{side}', 0.25 * balance)
    return _OTHER[leg]


def hopping(pose, ctx):
    """A026: one foot held up behind, three to five hops on the other."""
    u, amp = ctx.u, ctx.amp
    stance = ctx.subject.hand
    free = _OTHER[stance]
    up = _hold(u, 0.05, 0.95, 0.12)
    _add(pose, f'knee_{free}', 1.4 * up)
    _add(pose, f'hip_flex_{free}', 0.3 * up)
    hops = int(ctx.rng.integers(3, 6))
    v = _repeat(np.clip((u - 0.15) / 0.7, 0.0, 1.0), hops)
    active = _hold(u, 0.15, 0.85, 0.02)
    flight = np.where((v > 0.35) & (v < 0.75), np.sin(np.pi * (v - 0.35) / 0.4), 0.0) * active
    crouch = _ease(v, (0.0, 0.25, 0.35, 0.75, 0.9, 1.0), (0.3, 1.0, 0.0, 0.0, 0.8, 0.3))
    crouch = crouch * active
    _add(pose, 'air', ctx.rng.uniform(0.06, 0.14) * amp * flight)
    _add(pose, f'hip_flex_{stance}', 0.35 * crouch)
    _add(pose, f'knee_{stance}', 0.6 * crouch)
    _add(pose, 'pelvis_pitch', 0.15 * crouch)
    for side in 'rl':
        _add(pose, f'shoulder_abd_{side}', 0.35 * up + 0.15 * flight)
        _add(pose, f'elbow_{side}', 0.5 * up)
    return stance


def jump_up(pose, ctx):
    """A027: one or two vertical jumps from a crouch, arms swung up."""
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


def nod_bow(pose, ctx):
    """A035: a bow from the hips (legs straight, hands at the sides) or two head nods."""
    u = ctx.u
    if ctx.rng.random() < 0.7:
        bow = _hold(u, 0.15, 0.85, 0.25) * ctx.rng.uniform(0.5, 0.8)
        _add(pose, 'pelvis_pitch', bow)
        _add(pose, 'spine_pitch', 0.3 * bow)
        _add(pose, 'neck_pitch', 0.4 * bow)
        for side in 'rl':
            _add(pose, f'shoulder_flex_{side}', 0.4 * bow)
            _add(pose, f'hip_flex_{side}', -0.2 * bow)
    else:
        v = _repeat(np.clip((u - 0.2) / 0.6, 0.0, 1.0), 2)
        nod = _ease(v, (0.0, 0.4, 1.0), (0.0, 1.0, 0.0)) * _hold(u, 0.2, 0.8, 0.01)
        _add(pose, 'neck_pitch', 0.7 * nod)
        _add(pose, 'spine_pitch', 0.3 * nod)
    return 'both'


def staggering(pose, ctx):
    """A042: an unsteady walk forwards, lurching side to side, arms out for balance."""
    u, rng = ctx.u, ctx.rng
    progress = _ease(u, (0.05, 0.95), (0.0, 1.0))
    _walk(pose, ctx, progress, rng.uniform(0.8, 1.4), int(rng.integers(4, 7)),
          sway=rng.uniform(0.12, 0.22))
    wobble = _hold(u, 0.05, 0.95, 0.1)
    for side in 'rl':
        _add(pose, f'shoulder_abd_{side}', rng.uniform(0.3, 0.7) * wobble)
        _add(pose, f'elbow_{side}', 0.4 * wobble)
    _add(pose, 'pelvis_pitch', 0.15 * wobble)
    _add(pose, 'spine_roll', 0.2 * wobble * ctx.oscillation(0.8, 1.4))
    return None


def falling(pose, ctx):
    """A043: the knees give way and the person drops to the floor, sitting or slumped."""
    u, rng = ctx.u, ctx.rng
    start = rng.uniform(0.2, 0.35)
    down = _ease(u, (start, start + 0.25), (0.0, 1.0))
    buckle = np.sin(np.pi * down)
    for side in 'rl':
        _add(pose, f'knee_{side}', 1.3 * buckle + 0.3 * down)
        _add(pose, f'hip_flex_{side}', 1.45 * down)
        _add(pose, f'shoulder_flex_{side}', 0.9 * buckle - 0.5 * down)
        _add(pose, f'shoulder_abd_{side}', 0.5 * buckle + 0.3 * down)
        _add(pose, f'elbow_{side}', 0.3 * down)
    side = 1.0 if rng.random() < 0.5 else -1.0
    _add(pose, 'pelvis_pitch', 0.5 * buckle - rng.uniform(0.3, 0.6) * down)
    _add(pose, 'pelvis_roll', side * rng.uniform(0.0, 0.25) * down)
    _add(pose, 'neck_pitch', 0.3 * down)
    _add(pose, 'forward', -0.3 * down)
    return None


def wear_shoe(pose, ctx):
    """A016: seated, one foot lifted onto the other knee, both hands at the shoe, bent over."""
    u, leg = ctx.u, ctx.subject.hand
    _sit(pose, ctx, np.ones(len(u)), 0.0)
    lift = _hold(u, 0.1, 0.9, 0.2)
    _add(pose, f'hip_flex_{leg}', 0.35 * lift)
    _add(pose, f'hip_abd_{leg}', 0.45 * lift)
    _add(pose, f'knee_{leg}', 0.3 * lift)
    bend = _hold(u, 0.15, 0.85, 0.2)
    _add(pose, 'pelvis_pitch', 0.55 * bend)
    _add(pose, 'spine_pitch', 0.3 * bend)
    for side in 'rl':
        _reach(pose, ctx, side, 'front', bend, spread=0.06)
        _add(pose, f'shoulder_flex_{side}', 0.4 * bend)
        _add(pose, f'elbow_{side}', 0.25 * bend * ctx.oscillation(1.0, 2.0))
    return 'both'


def typing(pose, ctx):
    """A030: seated at a table, both forearms forward at the keyboard, small hand motions."""
    u = ctx.u
    _sit(pose, ctx, np.ones(len(u)), 0.0)
    hands = _hold(u, 0.0, 1.0, 0.1)
    for side in 'rl':
        _reach(pose, ctx, side, 'front', hands, spread=0.05)
        _add(pose, f'shoulder_flex_{side}', 0.25 * hands - 0.35)      # undo the chair's arms
        _add(pose, f'elbow_{side}', 0.06 * hands * ctx.oscillation(2.0, 4.0) - 0.7)
    _add(pose, 'neck_pitch', 0.25 * hands)
    _add(pose, 'pelvis_pitch', 0.1 * hands)
    return 'both'


def touch_back(pose, ctx):
    """A046: backache: the hand on the lower back, leaning back and rubbing."""
    u, hand = ctx.u, ctx.subject.hand
    hold = _hold(u, 0.1, 0.95, 0.2)
    _reach(pose, ctx, hand, 'low_back', hold, spread=0.05)
    if ctx.rng.random() < 0.5:
        _reach(pose, ctx, _OTHER[hand], 'low_back', hold, spread=0.05)
    _add(pose, f'elbow_{hand}', 0.2 * hold * ctx.oscillation(1.0, 2.0))
    _add(pose, 'pelvis_pitch', -0.2 * hold * ctx.amp)
    _add(pose, 'spine_pitch', -0.15 * hold)
    _add(pose, 'spine_yaw', 0.15 * _SIGN[hand] * hold)
    return 'both'


def nausea(pose, ctx):
    """A048: bent well forward, a hand on the stomach and one at the mouth, retching jerks."""
    u, hand = ctx.u, ctx.subject.hand
    bend = _hold(u, 0.1, 0.95, 0.2)
    retch = (np.maximum(ctx.oscillation(0.8, 1.5), 0.0) ** 2) * _hold(u, 0.3, 0.9, 0.05)
    _add(pose, 'pelvis_pitch', 0.7 * bend + 0.15 * retch)
    _add(pose, 'spine_pitch', 0.3 * bend + 0.2 * retch)
    _add(pose, 'neck_pitch', -0.3 * bend)
    for side in 'rl':
        _add(pose, f'knee_{side}', 0.25 * bend)
        _add(pose, f'hip_flex_{side}', 0.1 * bend)
    _reach(pose, ctx, _OTHER[hand], 'belly', bend, spread=0.05)
    _reach(pose, ctx, hand, 'mouth', bend, spread=0.08)
    return 'both'
