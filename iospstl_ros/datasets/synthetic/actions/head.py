"""Actions of the hands at the head and face: drinking, eating, grooming, glasses, hat, phone.

Each function animates one person's pose channels over the action phase ``ctx.u`` and returns
the feet to plant (``'both'``, ``'r'``, ``'l'`` or None); objects (cup, brush, glasses, hat,
phone) are not in the skeleton, only the hand and arm motion that holding them makes.
"""

from iospstl_ros.datasets.synthetic.actions.motion import _add, _ease, _hold, _reach, _repeat
from iospstl_ros.datasets.synthetic.body import _OTHER
import numpy as np


def drink_water(pose, ctx):
    """A001: the dominant hand lifts a cup to the mouth, one long sip with the head back."""
    u, hand = ctx.u, ctx.subject.hand
    lift = _hold(u, 0.05, 0.95, 0.25)
    sip = _hold(u, 0.3, 0.75, 0.1)
    _reach(pose, ctx, hand, 'mouth', lift)
    _add(pose, f'shoulder_flex_{hand}', 0.25 * sip)                   # tip the cup
    _add(pose, 'neck_pitch', -0.3 * sip * ctx.amp)
    _add(pose, 'pelvis_pitch', -0.05 * sip)
    return 'both'


def eat_meal(pose, ctx):
    """A002: the other hand holds a snack or bowl in front; the dominant hand takes bites."""
    u, hand = ctx.u, ctx.subject.hand
    bites = int(ctx.rng.integers(3, 5))
    hold = _hold(u, 0.0, 1.0, 0.15)
    _reach(pose, ctx, _OTHER[hand], 'front', hold)
    v = _repeat(np.clip((u - 0.1) / 0.8, 0.0, 1.0), bites)
    bite = _ease(v, (0.0, 0.35, 0.55, 0.9), (0.0, 1.0, 1.0, 0.0)) * hold
    _reach(pose, ctx, hand, 'front', hold * (1.0 - bite), spread=0.04)
    _reach(pose, ctx, hand, 'mouth', bite, spread=0.04)
    _add(pose, 'neck_pitch', 0.2 * hold - 0.1 * bite)
    return 'both'


def brushing_teeth(pose, ctx):
    """A003: toothbrush at the mouth, fast side-to-side strokes (3 to 5 Hz)."""
    u, hand = ctx.u, ctx.subject.hand
    hold = _hold(u, 0.05, 0.95, 0.15)
    _reach(pose, ctx, hand, 'mouth', hold)
    scrub = ctx.oscillation(3.0, 5.0) * _hold(u, 0.15, 0.85, 0.05)
    _add(pose, f'shoulder_abd_{hand}', 0.22 * ctx.amp * scrub)
    _add(pose, f'shoulder_twist_{hand}', -0.15 * scrub)
    return 'both'


def brushing_hair(pose, ctx):
    """A004: strokes from the forehead over the crown to the nape, three to five times."""
    u, hand = ctx.u, ctx.subject.hand
    hold = _hold(u, 0.05, 0.95, 0.15)
    strokes = int(ctx.rng.integers(3, 6))
    v = _repeat(np.clip((u - 0.15) / 0.7, 0.0, 1.0), strokes)
    front = _ease(v, (0.0, 0.5, 0.7, 1.0), (1.0, 0.0, 0.0, 1.0)) * hold
    back = _ease(v, (0.0, 0.5, 0.7, 1.0), (0.0, 0.0, 1.0, 0.0)) * hold
    _reach(pose, ctx, hand, 'forehead', front, spread=0.05)
    _reach(pose, ctx, hand, 'crown', hold - front - back, spread=0.05)
    _reach(pose, ctx, hand, 'nape', back, spread=0.05)
    _add(pose, 'neck_pitch', 0.12 * hold)
    return 'both'


def wear_on_glasses(pose, ctx):
    """A018: both hands bring the glasses to the eyes, slide them on, and come down."""
    u = ctx.u
    up = _hold(u, 0.1, 0.85, 0.25)
    for side in 'rl':
        _reach(pose, ctx, side, 'eyes', up, spread=0.05)
    push = _ease(u, (0.4, 0.55, 0.7), (0.0, 1.0, 0.0))
    for side in 'rl':
        _add(pose, f'shoulder_abd_{side}', 0.25 * push)               # temples over the ears
    _add(pose, 'neck_pitch', -0.08 * up)
    return 'both'


def put_on_hat(pose, ctx):
    """A020: both hands lift the cap above the head, pull it on, adjust the peak."""
    u, hand = ctx.u, ctx.subject.hand
    up = _hold(u, 0.05, 0.8, 0.2)
    for side in 'rl':
        _reach(pose, ctx, side, 'crown', up, spread=0.05)
    lift = _ease(u, (0.1, 0.3, 0.45), (0.0, 1.0, 0.0))
    for side in 'rl':
        _add(pose, f'shoulder_flex_{side}', 0.35 * lift)
        _add(pose, f'elbow_{side}', -0.6 * lift)
    adjust = _hold(u, 0.7, 0.95, 0.08)
    _reach(pose, ctx, hand, 'forehead', adjust, spread=0.04)
    _add(pose, 'neck_pitch', 0.15 * up)
    return 'both'


def phone_call(pose, ctx):
    """A028: the phone is taken from the front, held at the ear for most of the sequence."""
    u, hand = ctx.u, ctx.subject.hand
    look = _hold(u, 0.0, 0.3, 0.1)
    ear = _hold(u, 0.22, 1.0, 0.12)
    _reach(pose, ctx, hand, 'front', look * (1.0 - ear))
    _reach(pose, ctx, hand, 'ear', ear)
    _add(pose, 'neck_pitch', 0.3 * look - 0.1 * ear)
    _add(pose, 'spine_roll', 0.08 * ear * (1.0 if hand == 'r' else -1.0))
    return 'both'


def salute(pose, ctx):
    """A038: a sharp military salute with the right hand, held about a second."""
    u = ctx.u
    start = ctx.rng.uniform(0.15, 0.25)
    up = _ease(u, (start, start + 0.12, 0.7, 0.82), (0.0, 1.0, 1.0, 0.0))
    _reach(pose, ctx, 'r', 'forehead', up, spread=0.05)
    _add(pose, 'shoulder_abd_r', 0.5 * up)                           # elbow out to the side
    _add(pose, 'shoulder_twist_r', -0.3 * up)
    _add(pose, 'pelvis_pitch', -0.04 * up)                           # stand to attention
    return 'both'
