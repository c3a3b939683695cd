"""Built-in synthetic occluded skeleton benchmark: procedurally animated NTU RGB+D 60 actions.

No skeleton data set can be downloaded, so the demo, the default model and the tests run on
sequences this module makes. They are written by :class:`iospstl_ros.datasets.format.SplitWriter`
exactly like converted NTU RGB+D data (same arrays, masks, ``B``, sample names and parts), so
nothing downstream can tell them apart. Figures and sources: ``docs/data.md``.

Actions
-------
:data:`CLASS_NAMES` holds 43 of NTU RGB+D 60's actions under their official names, in NTU
order; :data:`ACTION_IDS` gives each label's NTU action number and :data:`TWO_PERSON_CLASSES`
the labels of A050 to A060 (all eleven interactions, written as M = 2 bodies that both move; the
second body is the subject two ids on, same parity, so both people of a sample are in the same
cross-subject part). Each action is a function animating joint-angle channels over the action
phase, grouped by family in :mod:`.actions` (hands at the head, arms in front, trunk and legs,
two-person); objects are not in the skeleton, only the hand and arm motion holding them makes.

Bodies
------
Each of :data:`NUM_SUBJECTS` subjects has its own body (adults of published statures, men and
women, and about 10 % children aged 10 to 14 with relatively larger heads, every bone group
jittered by about 4 %), speed, amplitude, handedness (about 85 % right-handed) and posture
style, drawn from the seed and the subject id. :func:`forward_kinematics` turns joint angles
into the 25 NTU joints along a bone tree, so bone lengths are exactly constant within a
sequence. Feet are kept on the floor (a jump adds a ballistic lift) and, for the standing
actions, planted.

Scenes, cameras and the Kinect tracker
--------------------------------------
Sequences are 40 to 150 frames at 30 Hz (action length / subject speed, with jitter, an idle
lead-in and tail). As in NTU, three cameras at one height watch from -45, 0 and +45 degrees;
the performer faces camera 3 in replication 1 and camera 2 in replication 2, so camera 1 sees
45-degree views. Coordinates are Kinect camera space (:mod:`iospstl_ros.layout`).
:mod:`.kinect` then does what the Kinect v2 tracker does: per-joint jitter (white plus a slow
drift, larger at the extremities, growing with depth), *inferred* joints (limbs hidden behind
the trunk, joints outside the 70.6 x 60 degree field of view, clamped onto its edge, and short
spells on the hands and feet; their positions drift and snap towards the parent joint), and in
8 % of the one-person samples a brief, partly inferred spurious body in the second slot.
Inferred joints are flagged occluded, as real files are read (tracking state <= 1), in every
occlusion mode but ``'none'``.

Samples and splits
------------------
Sample ``index`` has label ``index % 43`` (NTU action ``ACTION_IDS[index % 43]``, the ``Aaaa``
of its name), camera ``index % 3 + 1``, subject ``index % 20 + 1`` (43, 3 and 20 are pairwise
coprime, so every block of 2,580 consecutive indices holds each action x camera x subject triple
once), replication ``index // 2580 % 2 + 1`` and setup ``index // 5160 + 1``; any prefix of the
indices is balanced over classes, cameras and subjects. Names follow NTU:
``SsssCcccPpppRrrrAaaa``; ``sample_id(index).label`` is the class. Cross-subject (``xsub``)
trains on the odd subjects :data:`TRAIN_SUBJECTS`; cross-view (``xview``) trains on cameras 2
and 3 and tests on camera 1, as in NTU.

Determinism and occlusion
-------------------------
Sequence ``index`` draws its motion (the tracker's effects included) and its occlusion from two
independent streams spawned from ``numpy.random.SeedSequence([seed, index])``
(:func:`sequence_rngs`), so the clean (``occlusion='none'``) and the occluded versions of a
data set hold identical coordinates, and the same seed gives the same bytes. Occlusion comes
from :func:`iospstl_ros.datasets.occlusion.apply_occlusion` on top of the inferred joints.
With ``'realistic'`` occlusion (furniture ray casting) the occluded share of a sample's present
joint slots averages 0.2 to 0.45 over a data set (measured on 860 sequences of seed 0: mean
0.33), furniture alone never exceeds 0.7
(:data:`iospstl_ros.datasets.occlusion.MAX_HIDDEN_FRACTION`), and low furniture makes it
strongly skewed to the legs. ``'random'`` hides 20 % of the slots.

Everything here is numpy-only. Modules: :mod:`.body` (bone tree, subjects, kinematics),
:mod:`.actions` (one function per class, by family), :mod:`.kinect` (the tracker's effects),
:mod:`.scene` (sample ids, splits, cameras, generation).
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
