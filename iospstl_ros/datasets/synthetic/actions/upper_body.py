"""Standing actions of the arms and hands in front of the body, and of both arms together."""

from iospstl_ros.datasets.synthetic.actions.motion import _add, _ease, _hold, _reach, _repeat
from iospstl_ros.datasets.synthetic.body import _OTHER, _SIGN
import numpy as np


def clapping(pose, ctx):
    """A010: hands together in front of the chest, 3 to 5 claps a second."""
    u, amp = ctx.u, ctx.amp
    up = _hold(u, 0.0, 1.0, 0.2)
    opening = 0.5 + 0.5 * ctx.oscillation(2.5, 4.5, share=0.6) * _hold(u, 0.15, 0.9, 0.05)
    for side in 'rl':
        _reach(pose, ctx, side, 'palms', up, spread=0.05)
        _add(pose, f'shoulder_twist_{side}', -0.45 * amp * opening * up)
    return 'both'


def reading(pose, ctx):
    """A011: a book held open in both hands in front of the chest, head down, a page turned."""
    u, hand = ctx.u, ctx.subject.hand
    hold = _hold(u, 0.0, 1.0, 0.15)
    for side in 'rl':
        _reach(pose, ctx, side, 'front', hold, spread=0.04)
        _add(pose, f'shoulder_flex_{side}', 0.35 * hold)
    turn = _ease(u, (0.45, 0.55, 0.65), (0.0, 1.0, 0.0)) * (ctx.rng.random() < 0.7)
    _add(pose, f'shoulder_twist_{hand}', 0.6 * turn)
    _add(pose, 'neck_pitch', 0.45 * hold)
    return 'both'


def tear_up_paper(pose, ctx):
    """A013: both hands together in front, then jerked apart, three or four tears."""
    u = ctx.u
    hold = _hold(u, 0.0, 1.0, 0.15)
    tears = int(ctx.rng.integers(3, 5))
    v = _repeat(np.clip((u - 0.15) / 0.7, 0.0, 1.0), tears)
    apart = _ease(v, (0.0, 0.4, 0.55, 1.0), (0.0, 0.0, 1.0, 0.0)) * hold
    for side in 'rl':
        _reach(pose, ctx, side, 'palms', hold, spread=0.04)
        _add(pose, f'shoulder_twist_{side}', -0.6 * apart)
        _add(pose, f'elbow_{side}', -0.3 * apart)
    _add(pose, 'neck_pitch', 0.3 * hold)
    return 'both'


def wear_jacket(pose, ctx):
    """A014: one arm into a sleeve behind, then the other, a shrug, then the front pulled."""
    u, hand = ctx.u, ctx.subject.hand
    for side, start in ((hand, 0.05), (_OTHER[hand], 0.35)):
        sleeve = _ease(u, (start, start + 0.12, start + 0.25, start + 0.35),
                       (0.0, 1.0, 0.6, 0.0))
        _add(pose, f'shoulder_flex_{side}', -0.7 * sleeve)
        _add(pose, f'shoulder_abd_{side}', 0.9 * sleeve)
        _add(pose, f'elbow_{side}', 0.6 * sleeve)
        # the other hand holds the collar meanwhile
        _reach(pose, ctx, _OTHER[side], 'chest', 0.7 * sleeve, spread=0.05)
    shrug = _ease(u, (0.65, 0.75, 0.85), (0.0, 1.0, 0.0))
    _add(pose, 'spine_pitch', -0.15 * shrug)
    for side in 'rl':
        _add(pose, f'shoulder_abd_{side}', 0.3 * shrug)
        _reach(pose, ctx, side, 'chest', _hold(u, 0.78, 1.0, 0.08), spread=0.05)
    _add(pose, 'neck_pitch', 0.2 * _hold(u, 0.0, 1.0, 0.2))
    return 'both'


def cheer_up(pose, ctx):
    """A022: both fists pumped above the head two to four times, a little hop of joy."""
    u, amp = ctx.u, ctx.amp
    up = _hold(u, 0.05, 0.95, 0.15)
    pumps = int(ctx.rng.integers(2, 5))
    v = _repeat(np.clip((u - 0.15) / 0.7, 0.0, 1.0), pumps)
    pump = _ease(v, (0.0, 0.5, 1.0), (0.0, 1.0, 0.0)) * up
    for side in 'rl':
        _reach(pose, ctx, side, 'overhead', up * min(amp, 1.05), spread=0.1)
        _add(pose, f'elbow_{side}', 0.9 * (1.0 - pump) * up)
        _add(pose, f'shoulder_abd_{side}', 0.35 * up)
    _add(pose, 'neck_pitch', -0.15 * up)
    return 'both'


def hand_waving(pose, ctx):
    """A023: the dominant hand raised beside the head, the forearm swung 2 to 3 times a second."""
    u, rng, amp, side = ctx.u, ctx.rng, ctx.amp, ctx.subject.hand
    up = _hold(u, 0.0, 1.0, 0.2)
    swing = _hold(u, 0.15, 0.85, 0.15)
    oscillation = ctx.oscillation(1.6, 2.6, share=0.55)
    _add(pose, f'shoulder_abd_{side}', up * rng.uniform(1.2, 1.6) * amp)
    _add(pose, f'shoulder_flex_{side}', up * rng.uniform(0.0, 0.5))
    _add(pose, f'shoulder_twist_{side}', -1.45 * up)
    _add(pose, f'elbow_{side}', up * rng.uniform(1.2, 1.6) + swing * 0.45 * amp * oscillation)
    _add(pose, f'wrist_{side}', 0.2 * swing * oscillation)
    return 'both'


def pocket(pose, ctx):
    """A025: the dominant hand goes into the trouser pocket, rummages, comes out holding it."""
    u, hand = ctx.u, ctx.subject.hand
    inside = _hold(u, 0.15, 0.8, 0.15)
    _reach(pose, ctx, hand, 'pocket', inside, spread=0.05)
    _add(pose, f'elbow_{hand}', 0.15 * ctx.oscillation(1.5, 2.5) * _hold(u, 0.3, 0.65, 0.05))
    out = _hold(u, 0.72, 1.0, 0.1)
    _reach(pose, ctx, hand, 'front', out, spread=0.05)
    _add(pose, 'neck_pitch', 0.3 * np.maximum(inside, out))
    _add(pose, 'spine_roll', 0.08 * _SIGN[hand] * inside)
    return 'both'


def pointing(pose, ctx):
    """A031: the dominant arm straight at something ahead and up for about a second."""
    u, hand = ctx.u, ctx.subject.hand
    point = _hold(u, 0.15, 0.85, 0.2)
    _reach(pose, ctx, hand, 'forward', point, spread=0.12)
    _add(pose, f'shoulder_flex_{hand}', ctx.rng.uniform(-0.2, 0.4) * point)
    _add(pose, f'shoulder_abd_{hand}', ctx.rng.uniform(-0.1, 0.5) * point)
    _add(pose, 'spine_yaw', 0.15 * _SIGN[hand] * point)
    return 'both'


def taking_selfie(pose, ctx):
    """A032: the phone held up at arm's length above the face, head tilted, a pose struck."""
    u, hand = ctx.u, ctx.subject.hand
    up = _hold(u, 0.1, 0.9, 0.2)
    _reach(pose, ctx, hand, 'selfie', up, spread=0.08)
    _add(pose, 'neck_pitch', -0.2 * up)
    _add(pose, 'spine_roll', -0.1 * _SIGN[hand] * up)
    if ctx.rng.random() < 0.5:                                          # the other hand: V sign
        _reach(pose, ctx, _OTHER[hand], 'ear', _hold(u, 0.35, 0.8, 0.1), spread=0.08)
    return 'both'


def cross_hands(pose, ctx):
    """A040: forearms crossed in an X in front of the chest (say stop), held."""
    u = ctx.u
    hold = _hold(u, 0.15, 0.85, 0.15)
    for side in 'rl':
        _reach(pose, ctx, side, 'cross', hold, spread=0.04)
        _add(pose, f'shoulder_flex_{side}', 0.7 * hold)
        _add(pose, f'elbow_{side}', -0.5 * hold)
    _add(pose, 'pelvis_pitch', -0.05 * hold)
    return 'both'


def throw(pose, ctx):
    """A007: overhand throw: wind-up with the arm back, step, fast release forwards."""
    u, hand = ctx.u, ctx.subject.hand
    times = (0.1, 0.35, 0.5, 0.6, 0.85)
    _add(pose, f'shoulder_flex_{hand}', _ease(u, times, (0.0, 2.4, 2.2, 1.0, 0.0)) * ctx.amp)
    _add(pose, f'shoulder_abd_{hand}', _ease(u, times, (0.0, 0.6, 0.3, 0.0, 0.0)))
    _add(pose, f'elbow_{hand}', _ease(u, times, (0.0, 1.9, 1.4, 0.2, 0.0)))
    _add(pose, f'shoulder_twist_{hand}', _ease(u, times, (0.0, -0.8, -0.4, 0.4, 0.0)))
    _add(pose, 'spine_yaw', _SIGN[hand] * _ease(u, times, (0.0, -0.35, -0.2, 0.35, 0.0)))
    _add(pose, 'pelvis_pitch', _ease(u, times, (0.0, -0.1, 0.0, 0.25, 0.0)))
    lead = _OTHER[hand]
    step = _ease(u, (0.3, 0.45, 0.6, 0.9), (0.0, 1.0, 1.0, 0.0))
    _add(pose, f'hip_flex_{lead}', 0.35 * step)
    _add(pose, f'knee_{lead}', 0.2 * step)
    _add(pose, f'shoulder_flex_{lead}', 0.5 * step)
    return hand
