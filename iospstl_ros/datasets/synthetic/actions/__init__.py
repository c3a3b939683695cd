"""The synthetic actions, one function per NTU RGB+D class, grouped by the body part that moves.

Modules: :mod:`.motion` (easing, arm targets, walking, the resting pose), :mod:`.head` (hands at
the head and face), :mod:`.upper_body` (arms in front of the body), :mod:`.whole_body` (trunk,
legs, sitting, the health-related whole-body actions) and :mod:`.two_person` (A050 to A060).

:data:`ANIMATIONS` maps an NTU action number to its function and nominal length in seconds
(scaled by the subject's speed). A one-person function takes ``(pose, ctx)`` and returns the
feet to plant; a two-person one takes ``(poses, contexts)`` and returns
``(anchors, contacts, contact_phase)`` (:mod:`.two_person`).
"""

from iospstl_ros.datasets.synthetic.actions import head, two_person, upper_body, whole_body
from iospstl_ros.datasets.synthetic.actions.motion import _base_pose, _Context, ARM_TARGETS

#: NTU action number -> (function, nominal seconds). The lengths follow NTU's samples: about
#: 2 to 3 s for short gestures, 3.5 to 4.5 s for the walks, the falls and the dressing.
ANIMATIONS = {
    1: (head.drink_water, 3.0),
    2: (head.eat_meal, 4.0),
    3: (head.brushing_teeth, 3.6),
    4: (head.brushing_hair, 3.6),
    6: (whole_body.pickup, 3.2),
    7: (upper_body.throw, 2.6),
    8: (whole_body.sitting_down, 2.8),
    9: (whole_body.standing_up, 2.6),
    10: (upper_body.clapping, 2.8),
    11: (upper_body.reading, 3.6),
    13: (upper_body.tear_up_paper, 3.6),
    14: (upper_body.wear_jacket, 4.5),
    16: (whole_body.wear_shoe, 4.2),
    18: (head.wear_on_glasses, 3.0),
    20: (head.put_on_hat, 3.2),
    22: (upper_body.cheer_up, 3.0),
    23: (upper_body.hand_waving, 2.6),
    24: (whole_body.kicking_something, 2.4),
    25: (upper_body.pocket, 3.4),
    26: (whole_body.hopping, 3.2),
    27: (whole_body.jump_up, 2.4),
    28: (head.phone_call, 3.8),
    30: (whole_body.typing, 3.6),
    31: (upper_body.pointing, 2.6),
    32: (upper_body.taking_selfie, 3.4),
    35: (whole_body.nod_bow, 2.6),
    38: (head.salute, 2.6),
    40: (upper_body.cross_hands, 2.8),
    42: (whole_body.staggering, 4.0),
    43: (whole_body.falling, 3.4),
    46: (whole_body.touch_back, 3.2),
    48: (whole_body.nausea, 3.8),
    50: (two_person.punching, 2.6),
    51: (two_person.kicking_other, 2.6),
    52: (two_person.pushing, 2.8),
    53: (two_person.pat_on_back, 3.2),
    54: (two_person.point_finger, 3.0),
    55: (two_person.hugging, 4.0),
    56: (two_person.giving, 3.4),
    57: (two_person.touch_pocket, 3.6),
    58: (two_person.handshaking, 3.2),
    59: (two_person.walking_towards, 3.6),
    60: (two_person.walking_apart, 3.6),
}

__all__ = ['_base_pose', '_Context', 'ANIMATIONS', 'ARM_TARGETS']
