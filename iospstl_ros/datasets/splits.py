"""NTU RGB+D sample names, action classes and the four standard benchmark splits.

A sample name ``SsssCcccPpppRrrrAaaa`` (e.g. ``S001C002P003R002A013``) gives the setup, camera,
performer (subject), replication and action, each 1-based. NTU RGB+D 60 holds setups 1..17 and
actions 1..60; NTU RGB+D 120 holds setups 1..32 and actions 1..120 (``shahroudy/NTURGB-D``
README). Labels are ``action - 1``.

Benchmarks (training part; every other sample of the data set is validation / test):

================  ==========================================================================
``ntu60-xsub``    performers in :data:`NTU60_XSUB_TRAIN_SUBJECTS` (20 of 40)
``ntu60-xview``   cameras 2 and 3 (camera 1 is the test view)
``ntu120-xsub``   performers in :data:`NTU120_XSUB_TRAIN_SUBJECTS` (53 of 106)
``ntu120-xset``   even setup ids
================  ==========================================================================
"""

from dataclasses import dataclass
import numbers
import re

#: The 120 NTU RGB+D action classes, in label order (label = action - 1), as listed in the
#: README of ``shahroudy/NTURGB-D`` (trailing periods dropped, apostrophes in ASCII). The first
#: 60 are NTU RGB+D 60.
ACTION_NAMES = (
    'drink water', 'eat meal/snack', 'brushing teeth', 'brushing hair', 'drop', 'pickup',
    'throw', 'sitting down', 'standing up (from sitting position)', 'clapping', 'reading',
    'writing', 'tear up paper', 'wear jacket', 'take off jacket', 'wear a shoe',
    'take off a shoe', 'wear on glasses', 'take off glasses', 'put on a hat/cap',
    'take off a hat/cap', 'cheer up', 'hand waving', 'kicking something',
    'put something inside pocket / take out something from pocket',
    'hopping (one foot jumping)', 'jump up', 'make a phone call/answer phone',
    'playing with phone/tablet', 'typing on a keyboard', 'pointing to something with finger',
    'taking a selfie', 'check time (from watch)', 'rub two hands together', 'nod head/bow',
    'shake head', 'wipe face', 'salute', 'put the palms together',
    'cross hands in front (say stop)', 'sneeze/cough', 'staggering', 'falling',
    'touch head (headache)', 'touch chest (stomachache/heart pain)', 'touch back (backache)',
    'touch neck (neckache)', 'nausea or vomiting condition',
    'use a fan (with hand or paper)/feeling warm', 'punching/slapping other person',
    'kicking other person', 'pushing other person', 'pat on back of other person',
    'point finger at the other person', 'hugging other person',
    'giving something to other person', "touch other person's pocket", 'handshaking',
    'walking towards each other', 'walking apart from each other',
    # NTU RGB+D 120 only
    'put on headphone', 'take off headphone', 'shoot at the basket', 'bounce ball',
    'tennis bat swing', 'juggling table tennis balls', 'hush (quite)', 'flick hair',
    'thumb up', 'thumb down', 'make ok sign', 'make victory sign', 'staple book',
    'counting money', 'cutting nails', 'cutting paper (using scissors)', 'snapping fingers',
    'open bottle', 'sniff (smell)', 'squat down', 'toss a coin', 'fold paper',
    'ball up paper', 'play magic cube', 'apply cream on face', 'apply cream on hand back',
    'put on bag', 'take off bag', 'put something into a bag', 'take something out of a bag',
    'open a box', 'move heavy objects', 'shake fist', 'throw up cap/hat',
    'hands up (both hands)', 'cross arms', 'arm circles', 'arm swings', 'running on the spot',
    'butt kicks (kick backward)', 'cross toe touch', 'side kick', 'yawn', 'stretch oneself',
    'blow nose', 'hit other person with something', 'wield knife towards other person',
    'knock over other person (hit with body)', "grab other person's stuff",
    'shoot at other person with a gun', 'step on foot', 'high-five', 'cheers and drink',
    'carry something with other person', 'take a photo of other person',
    'follow other person', "whisper in other person's ear",
    'exchange things with other person',
    "support somebody with one's hand (someone is sick, help him to walk)",
    'finger-guessing game (playing rock-paper-scissors)',
)

#: Action id of a class that is no NTU RGB+D action (for example a synthetic 'side step').
NO_ACTION_ID = 0


def check_action_ids(action_ids, num_classes):
    """Check the NTU action ids of a class list: one per class, 1 to 120, or 0 for none.

    Parameters
    ----------
    action_ids : sequence of int
        NTU action number of each class, in label order (``A023`` -> 23), or
        :data:`NO_ACTION_ID` for a class that is no NTU action.
    num_classes : int

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        If ``action_ids`` is not a list of ``num_classes`` ints in 0..120, or an id other than
        0 belongs to two classes (matching by id would be ambiguous).
    """
    if isinstance(action_ids, (str, bytes, dict)) or not hasattr(action_ids, '__len__'):
        raise ValueError(f'expected a list of {num_classes} NTU action ids, got {action_ids!r}')
    if len(action_ids) != num_classes:
        raise ValueError(f'expected {num_classes} NTU action ids (one per class), got '
                         f'{len(action_ids)}')
    seen = {}
    for i, value in enumerate(action_ids):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                or not NO_ACTION_ID <= value <= len(ACTION_NAMES):
            raise ValueError(f'action id of class {i}: expected an int in 1..'
                             f'{len(ACTION_NAMES)} (or {NO_ACTION_ID} = no NTU action), got '
                             f'{value!r}')
        if value != NO_ACTION_ID and value in seen:
            raise ValueError(f'action id {value} belongs to classes {seen[value]} and {i}; '
                             'expected each NTU action at most once')
        seen[value] = i
    return tuple(int(value) for value in action_ids)


def action_code(action_id):
    """``'A023'`` for action 23; ``''`` for :data:`NO_ACTION_ID`."""
    return f'A{int(action_id):03d}' if action_id else ''


#: Data sets: (number of setups, number of actions).
DATASETS = {'ntu60': (17, 60), 'ntu120': (32, 120)}

#: Training performers of NTU RGB+D 60 cross-subject.
NTU60_XSUB_TRAIN_SUBJECTS = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38))
#: Training cameras of NTU RGB+D 60 cross-view.
NTU60_XVIEW_TRAIN_CAMERAS = frozenset((2, 3))
#: The 53 training performers of NTU RGB+D 120 cross-subject (Liu et al., TPAMI 2019).
NTU120_XSUB_TRAIN_SUBJECTS = frozenset((
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49,
    50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93,
    94, 95, 97, 98, 100, 103))

#: Benchmark name -> (data set, rule on a parsed :class:`SampleName` that says "training").
_RULES = {
    'ntu60-xsub': ('ntu60', lambda s: s.performer in NTU60_XSUB_TRAIN_SUBJECTS),
    'ntu60-xview': ('ntu60', lambda s: s.camera in NTU60_XVIEW_TRAIN_CAMERAS),
    'ntu120-xsub': ('ntu120', lambda s: s.performer in NTU120_XSUB_TRAIN_SUBJECTS),
    'ntu120-xset': ('ntu120', lambda s: s.setup % 2 == 0),
}
#: The benchmark names :func:`is_training` accepts.
BENCHMARKS = tuple(_RULES)

_NAME = re.compile(r'S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})')


@dataclass(frozen=True)
class SampleName:
    """The parts of an NTU sample name, each 1-based as in the name."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def label(self):
        """0-based class index (``action - 1``)."""
        return self.action - 1

    def __str__(self):
        return (f'S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}'
                f'R{self.replication:03d}A{self.action:03d}')


def parse_sample_name(name):
    """Parse ``SsssCcccPpppRrrrAaaa``.

    Parameters
    ----------
    name : str
        Exactly the 20-character name, without directory or ``.skeleton`` suffix.

    Returns
    -------
    SampleName

    Raises
    ------
    ValueError
        If ``name`` is not of that form or a number in it is 0.
    """
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f'expected an NTU sample name like S001C002P003R002A013, got {name!r}')
    numbers = [int(group) for group in match.groups()]
    if min(numbers) == 0:
        raise ValueError(f'{name}: setup, camera, performer, replication and action start at 1')
    return SampleName(*numbers)


def in_dataset(name, dataset):
    """Whether sample ``name`` belongs to ``dataset`` ('ntu60' or 'ntu120').

    NTU RGB+D 60 is setups 1..17 with actions 1..60; NTU RGB+D 120 is setups 1..32 with
    actions 1..120.
    """
    if dataset not in DATASETS:
        raise ValueError(f'dataset must be one of {tuple(DATASETS)}, got {dataset!r}')
    setups, actions = DATASETS[dataset]
    sample = parse_sample_name(name)
    return sample.setup <= setups and sample.action <= actions


def dataset_of(benchmark):
    """Return the data set ('ntu60' or 'ntu120') of a benchmark name."""
    if benchmark not in _RULES:
        raise ValueError(f'benchmark must be one of {BENCHMARKS}, got {benchmark!r}')
    return _RULES[benchmark][0]


def is_training(name, benchmark):
    """Whether sample ``name`` is in the training part of ``benchmark``.

    Parameters
    ----------
    name : str
        Sample name ``SsssCcccPpppRrrrAaaa``.
    benchmark : {'ntu60-xsub', 'ntu60-xview', 'ntu120-xsub', 'ntu120-xset'}

    Returns
    -------
    bool
        True for training, False for the validation (test) part.

    Raises
    ------
    ValueError
        For an unknown benchmark, a malformed name, or a sample outside the benchmark's data
        set (e.g. action 61 in an NTU-60 benchmark).
    """
    dataset = dataset_of(benchmark)
    if not in_dataset(name, dataset):
        raise ValueError(f'{name} is not a sample of {dataset} (benchmark {benchmark})')
    return bool(_RULES[benchmark][1](parse_sample_name(name)))
