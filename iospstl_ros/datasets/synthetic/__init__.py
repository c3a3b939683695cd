"""Built-in synthetic occluded skeleton benchmark: procedurally animated NTU-25 actions.

No skeleton data set can be downloaded, so the demo, the default model and the tests run on
sequences this module makes. They are written by :class:`iospstl_ros.datasets.format.SplitWriter`
exactly like converted NTU RGB+D data (same arrays, masks, ``B``, sample names and parts), so
nothing downstream can tell them apart.

Bodies
------
Each of :data:`NUM_SUBJECTS` subjects has its own bone lengths (height scale 0.88 to 1.10 of a
1.72 m adult, every bone group jittered by about 4 %), speed, amplitude, handedness (about
85 % right-handed) and posture style, drawn from the seed and the subject id. A pose is a set of
joint angles per frame (pelvis, spine, neck, shoulders, elbows, wrists, hips, knees, ankles);
:func:`forward_kinematics` turns it into the 25 NTU joints along a bone tree, so bone lengths
are exactly constant within a sequence. Feet are kept on the floor (the lowest foot joint is
put on it every frame, a jump adds a ballistic lift) and, for the standing actions, planted.

Actions
-------
:data:`CLASS_NAMES` lists 17 classes (label = index, NTU action number = index + 1). They are
told apart by the motion of different body parts, the legs included: the hands (waves, clap,
drink, punch), the trunk (pick up), the legs (kick, march, side step), the whole body (sit
down, stand up, jump, squat, raise both arms) and three two-person interactions written as
M = 2 bodies that both move (handshake, push, hug); the second body is the subject two ids on
(same parity, so both people of a sample are in the same cross-subject part). Single-person
classes leave the second body absent (``present`` False, coordinates 0).

Scenes and cameras
------------------
Sequences are 40 to 150 frames at 30 Hz (action length / subject speed, with jitter, an idle
lead-in and tail). Like NTU, three cameras watch from azimuths of 0, +45 and -45 degrees
(cameras 1, 2, 3) around the subject, at 0.8 to 1.2 m above the floor, 2.1 to 3.7 m away,
tilted by a few degrees; the person stands with a small random offset and yaw. Coordinates are
Kinect camera space (:mod:`iospstl_ros.layout`). Gaussian sensor noise with a standard deviation
of 5 to 10 mm (drawn per sequence) is added to every joint.

Samples and splits
------------------
Sample ``index`` has action ``index % 17 + 1``, camera ``index % 3 + 1``, subject
``index % 20 + 1`` (17, 3 and 20 are pairwise coprime, so every block of 1,020 consecutive
indices holds each action x camera x subject triple once), replication
``index // 1020 % 2 + 1`` and setup ``index // 2040 + 1``; any prefix of the indices is
balanced over classes, cameras and subjects. Names follow NTU: ``SsssCcccPpppRrrrAaaa``.
Cross-subject (``xsub``) trains on the odd subjects :data:`TRAIN_SUBJECTS`; cross-view
(``xview``) trains on cameras 2 and 3 and tests on camera 1, as in NTU.

Determinism and occlusion
-------------------------
Sequence ``index`` draws its motion and its occlusion from two independent streams spawned from
``numpy.random.SeedSequence([seed, index])`` (:func:`sequence_rngs`), so the clean
(``occlusion='none'``) and the occluded versions of a data set hold identical motion, and the
same seed gives the same bytes. Occlusion comes from
:func:`iospstl_ros.datasets.occlusion.apply_occlusion`.
With ``'realistic'`` occlusion (furniture ray casting) the occluded share of a sample's present
joint slots averages 0.2 to 0.45 over a data set (measured on 2,000 sequences of seed 0: mean
0.29, median 0.24, 90th percentile 0.51, 3 % of the samples unoccluded) and never exceeds 0.7
(:data:`iospstl_ros.datasets.occlusion.MAX_HIDDEN_FRACTION`); low furniture makes it strongly
skewed to the legs (knees, ankles and feet about 0.8 of their slots, head and shoulders
about 0.05).
``'random'`` hides 20 % of the slots.

Everything here is numpy-only. Modules: :mod:`.body` (bone tree, subjects, kinematics),
:mod:`.actions` (one function per class), :mod:`.scene` (sample ids, splits, cameras,
generation).
"""

from iospstl_ros.datasets.synthetic.body import forward_kinematics, make_subject, Subject
from iospstl_ros.datasets.synthetic.scene import (
    ACTION_IDS, ACTION_SECONDS, BENCHMARKS, CAMERA_AZIMUTHS, CLASS_NAMES, generate_sequence,
    GENERATOR_VERSION, MAX_SEQUENCE_FRAMES, MIN_SEQUENCE_FRAMES, NUM_CAMERAS, NUM_CLASSES,
    NUM_REPLICATIONS, NUM_SUBJECTS, realistic_scene, sample_id, sample_index, sequence_rngs,
    SETUP_GEOMETRY, split_part, SyntheticSampleName, SyntheticSequence, TRAIN_CAMERAS,
    TRAIN_SUBJECTS, TWO_PERSON_CLASSES)

__all__ = [
    'ACTION_IDS', 'ACTION_SECONDS', 'BENCHMARKS', 'CAMERA_AZIMUTHS', 'CLASS_NAMES',
    'forward_kinematics', 'generate_sequence', 'GENERATOR_VERSION', 'make_subject',
    'MAX_SEQUENCE_FRAMES', 'MIN_SEQUENCE_FRAMES', 'NUM_CAMERAS', 'NUM_CLASSES',
    'NUM_REPLICATIONS', 'NUM_SUBJECTS', 'realistic_scene', 'sample_id', 'sample_index',
    'sequence_rngs', 'SETUP_GEOMETRY', 'split_part', 'Subject', 'SyntheticSampleName',
    'SyntheticSequence', 'TRAIN_CAMERAS', 'TRAIN_SUBJECTS', 'TWO_PERSON_CLASSES',
]
