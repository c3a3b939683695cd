"""The two-person interactions of NTU RGB+D 60 (A050 to A060).

Each function animates both people (``poses[0]`` acts, ``poses[1]`` is acted on) and returns
``(anchors, contacts, contact_phase)``: the feet to plant per person, per person the point
``(joint or 'hands', metres ahead)`` that touches the partner, and the action phase at which
the two points meet; the scene places the second person so that they do.
"""

from iospstl_ros.datasets.synthetic.actions.motion import (
    _add, _ease, _hold, _reach, _repeat, _walk)
from iospstl_ros.datasets.synthetic.body import _OTHER, _SIGN
import numpy as np

_HAND = {'r': 11, 'l': 7}
_FOOT = {'r': 19, 'l': 15}
_HIP = {'r': 16, 'l': 12}


def _recoil(pose, ctx, hit, strength):
    """Make the person hit (``hit`` (T,) peaks at the impact) lean and step back."""
    _add(pose, 'forward', -strength * _ease(ctx.u, (0.5, 0.8), (0.0, 1.0)) * ctx.amp)
    _add(pose, 'pelvis_pitch', -0.3 * hit)
    _add(pose, 'spine_pitch', -0.2 * hit)
    back = np.sin(np.pi * np.clip((ctx.u - 0.5) / 0.25, 0.0, 1.0))
    _add(pose, 'hip_flex_l', -0.35 * back)
    _add(pose, 'knee_l', 0.45 * back)
    for side in 'rl':
        _add(pose, f'shoulder_flex_{side}', 0.6 * hit)
        _add(pose, f'shoulder_abd_{side}', 0.4 * hit)
        _add(pose, f'elbow_{side}', 0.8 * hit)


def punching(poses, contexts):
    """A050: a punch or slap at the face with the dominant hand; the other person recoils."""
    (attacker, victim), (ctx, other) = poses, contexts
    u, hand = ctx.u, ctx.subject.hand
    slap = ctx.rng.random() < 0.4
    times = (0.15, 0.38, 0.5, 0.62, 0.9)
    if slap:              # a wide swing of the open hand across the face
        _add(attacker, f'shoulder_abd_{hand}', _ease(u, times, (0.0, 1.4, 0.6, 0.2, 0.0)))
        _add(attacker, f'shoulder_flex_{hand}', _ease(u, times, (0.0, 0.7, 1.4, 1.2, 0.0)))
        _add(attacker, f'shoulder_twist_{hand}', _ease(u, times, (0.0, -0.6, 0.5, 0.8, 0.0)))
        _add(attacker, f'elbow_{hand}', _ease(u, times, (0.0, 1.2, 0.3, 0.6, 0.0)))
    else:                 # guard up, then a straight punch
        _add(attacker, f'shoulder_flex_{hand}', _ease(u, times, (0.0, 0.6, 1.5, 0.9, 0.0)))
        _add(attacker, f'elbow_{hand}', _ease(u, times, (0.0, 2.1, 0.15, 1.6, 0.0)))
        _add(attacker, f'shoulder_twist_{hand}', _ease(u, times, (0.0, 0.4, 0.1, 0.3, 0.0)))
        _reach(attacker, ctx, _OTHER[hand], 'face_front', _hold(u, 0.1, 0.9, 0.15))
    _add(attacker, 'spine_yaw', 0.3 * _SIGN[hand] * _ease(u, times, (0.0, -0.5, 1.0, 0.5, 0.0)))
    _add(attacker, 'forward', 0.15 * _ease(u, (0.2, 0.5), (0.0, 1.0)))
    _add(attacker, 'pelvis_pitch', 0.1 * _ease(u, times, (0.0, 0.0, 1.0, 0.5, 0.0)))
    hit = _ease(other.u, (0.45, 0.52, 0.75), (0.0, 1.0, 0.0))
    _recoil(victim, other, hit, 0.2)
    _add(victim, 'spine_yaw', -0.3 * hit)
    return ('both', 'r'), ((_HAND[hand], 0.0), (3, 0.1)), 0.5


def kicking_other(poses, contexts):
    """A051: a forward kick at the other's thigh; the other doubles up and steps back."""
    (attacker, victim), (ctx, other) = poses, contexts
    u, leg = ctx.u, ctx.subject.hand
    times = (0.1, 0.35, 0.5, 0.65, 0.9)
    _add(attacker, f'hip_flex_{leg}', _ease(u, times, (0.0, 0.9, 1.2, 0.8, 0.0)) * ctx.amp)
    _add(attacker, f'knee_{leg}', _ease(u, times, (0.0, 1.5, 0.1, 1.2, 0.0)))
    _add(attacker, f'ankle_{leg}', -0.4 * _ease(u, times, (0.0, 0.3, 1.0, 0.3, 0.0)))
    balance = _ease(u, times, (0.0, 0.5, 1.0, 0.5, 0.0))
    _add(attacker, 'pelvis_pitch', -0.2 * balance)
    for side in 'rl':
        _add(attacker, f'shoulder_abd_{side}', 0.35 * balance)
    hit = _ease(other.u, (0.45, 0.53, 0.8), (0.0, 1.0, 0.0))
    _recoil(victim, other, hit, 0.15)
    _add(victim, 'pelvis_pitch', 0.6 * hit)                             # doubles up
    for side in 'rl':
        _reach(victim, other, side, 'belly', hit, spread=0.05)
    return (_OTHER[leg], 'r'), ((_FOOT[leg], 0.0), (0, 0.12)), 0.5


def pushing(poses, contexts):
    """A052: both hands on the other's chest, a shove; the other is pushed back."""
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


def pat_on_back(poses, contexts):
    """A053: from behind, the dominant hand pats the other's shoulder blade three to five times.

    The patted person stands with the back to the patter (a half turn of ``yaw``).
    """
    (patter, patted), (ctx, other) = poses, contexts
    u, hand = ctx.u, ctx.subject.hand
    reach = _hold(u, 0.15, 0.9, 0.2)
    _reach(patter, ctx, hand, 'forward', reach, spread=0.06)
    _add(patter, f'shoulder_flex_{hand}', -0.35 * reach)
    _add(patter, f'elbow_{hand}', 0.5 * reach)
    pats = int(ctx.rng.integers(3, 6))
    v = _repeat(np.clip((u - 0.3) / 0.5, 0.0, 1.0), pats)
    pat = _ease(v, (0.0, 0.5, 1.0), (0.0, 1.0, 0.0)) * _hold(u, 0.3, 0.8, 0.02)
    _add(patter, f'elbow_{hand}', 0.5 * pat)
    _add(patter, f'shoulder_flex_{hand}', 0.2 * pat)
    _add(patter, 'forward', 0.15 * reach)
    _add(patted, 'yaw', np.full(len(other.u), np.pi))
    _add(patted, 'neck_pitch', 0.15 * _hold(other.u, 0.3, 0.9, 0.1))
    return ('both', 'both'), ((_HAND[hand], 0.0), (20, 0.12)), 0.55


def point_finger(poses, contexts):
    """A054: the arm straight at the other person, the finger wagged; the other leans back."""
    (pointer, target), (ctx, other) = poses, contexts
    u, hand = ctx.u, ctx.subject.hand
    point = _hold(u, 0.15, 0.85, 0.15)
    _reach(pointer, ctx, hand, 'forward', point, spread=0.08)
    _add(pointer, f'shoulder_flex_{hand}', 0.15 * point)
    wag = ctx.oscillation(1.5, 2.5) * _hold(u, 0.3, 0.75, 0.05)
    _add(pointer, f'elbow_{hand}', 0.3 * np.maximum(wag, 0.0))
    _add(pointer, 'pelvis_pitch', 0.1 * point)
    _add(target, 'pelvis_pitch', -0.1 * _hold(other.u, 0.3, 0.85, 0.15))
    return ('both', 'both'), ((0, 0.6), (0, 0.6)), 0.5


def hugging(poses, contexts):
    """A055: both walk up to each other and hold a hug, arms around the other's back."""
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


def giving(poses, contexts):
    """A056: one holds an object out, the other reaches, takes it and draws it in."""
    (giver, taker), (ctx, other) = poses, contexts
    u, hand = ctx.u, ctx.subject.hand
    out = _ease(u, (0.1, 0.4, 0.6, 0.8), (0.0, 1.0, 1.0, 0.0))
    _reach(giver, ctx, hand, 'front', _hold(u, 0.0, 0.5, 0.1) * (1.0 - out), spread=0.05)
    _reach(giver, ctx, hand, 'forward', out, spread=0.05)
    _add(giver, f'elbow_{hand}', 0.4 * out)
    _add(giver, 'pelvis_pitch', 0.12 * out)
    w, other_hand = other.u, other.subject.hand
    take = _ease(w, (0.3, 0.5, 0.62, 0.8), (0.0, 1.0, 1.0, 0.0))
    keep = _hold(w, 0.62, 1.0, 0.15)
    _reach(taker, other, other_hand, 'forward', take, spread=0.05)
    _add(taker, f'elbow_{other_hand}', 0.4 * take)
    _reach(taker, other, other_hand, 'front', keep, spread=0.05)
    _add(taker, 'neck_pitch', 0.2 * keep)
    return ('both', 'both'), ((_HAND[hand], 0.0), (_HAND[other_hand], 0.0)), 0.55


def touch_pocket(poses, contexts):
    """A057: one steps up and slips a hand into the other's trouser pocket; the other stands."""
    (thief, _), (ctx, other) = poses, contexts
    u, hand = ctx.u, ctx.subject.hand
    close = _ease(u, (0.05, 0.4), (0.0, 1.0))
    _walk(thief, ctx, close, ctx.rng.uniform(0.3, 0.5), 2)
    reach = _hold(u, 0.35, 0.85, 0.15)
    _reach(thief, ctx, hand, 'forward', reach, spread=0.06)
    _add(thief, f'shoulder_flex_{hand}', -0.75 * reach)                # down to hip height
    _add(thief, 'pelvis_pitch', 0.25 * reach)
    _add(thief, f'elbow_{hand}', 0.15 * reach * ctx.oscillation(1.5, 2.5))
    _add(thief, 'neck_pitch', 0.3 * reach)
    side = other.subject.hand
    return (None, 'both'), ((_HAND[hand], 0.0), (_HIP[side], 0.1)), 0.6


def handshaking(poses, contexts):
    """A058: right hands meet between the two, a few shakes, released."""
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


def walking_towards(poses, contexts):
    """A059: from the two sides of the room, both walk up to each other and stop."""
    for pose, ctx in zip(poses, contexts):
        progress = _ease(ctx.u, (0.05, 0.85), (0.0, 1.0))
        _walk(pose, ctx, progress, ctx.rng.uniform(0.9, 1.4), int(ctx.rng.integers(3, 5)))
    return (None, None), ((0, 0.4), (0, 0.4)), 1.0


def walking_apart(poses, contexts):
    """A060: standing together, both turn round and walk away from each other."""
    for pose, ctx in zip(poses, contexts):
        turn = _ease(ctx.u, (0.05, 0.3), (0.0, 1.0)) * (1.0 if ctx.rng.random() < 0.5 else -1.0)
        _add(pose, 'yaw', np.pi * turn)
        progress = _ease(ctx.u, (0.2, 0.95), (0.0, 1.0))
        # 'forward' is along the body frame before the turn: walking away is backwards.
        _walk(pose, ctx, progress, -ctx.rng.uniform(0.9, 1.4), int(ctx.rng.integers(3, 5)))
    return (None, None), ((0, 0.4), (0, 0.4)), 0.0
