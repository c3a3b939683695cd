"""What ``iospstl_bag convert`` reads: data-set splits and NTU ``.skeleton`` files as sequences.

Each reader returns ``(count, iterator of BagSequence)``, read lazily one sequence at a time,
for :func:`iospstl_ros.bag.rosbag.write_bag`.
"""

import os

from iospstl_ros.bag.rosbag import BagSequence
from iospstl_ros.datasets.format import open_split
from iospstl_ros.datasets.ntu import read_ntu_skeleton, to_layout
from iospstl_ros.datasets.splits import ACTION_NAMES, parse_sample_name
from iospstl_ros.layout import MAX_BODIES
import numpy as np


def sequences_from_split(root, part, limit=None, clean=False):
    """Read the sequences of one part of a benchmark directory (``iospstl_ros.datasets.format``).

    Parameters
    ----------
    root : str
        Benchmark directory (for example ``data/synth/xsub``).
    part : {'train', 'val'}
    limit : int, optional
        Only the first ``limit`` sequences.
    clean : bool
        Drop the occlusion marks where a coordinate exists. The arrays hold no coordinate for
        an occluded joint (NaN), so those joints stay marked (:func:`write_bag` counts them as
        ``missing_coordinates``); a data set made with ``--occlusion none`` from synthetic
        data has none.

    Returns
    -------
    count : int
        Sequences that will be read.
    sequences : iterator of BagSequence
        Read lazily, one at a time.
    """
    split = open_split(root, part)
    classes = split.meta.get('classes') or []
    action_ids = split.action_ids or ()
    count = len(split) if limit is None else min(int(limit), len(split))
    return count, _split_sequences(split, classes, action_ids, count, clean)


def _split_sequences(split, classes, action_ids, count, clean):
    for i in range(count):
        frames = int(split.num_frames[i])
        xyz = np.ascontiguousarray(np.asarray(split.data[i, :, :frames]).transpose(1, 3, 2, 0))
        occluded = np.asarray(split.occluded[i, :frames]).transpose(0, 2, 1).copy()
        present = np.array(split.present[i, :frames])
        if clean:
            occluded = occluded & ~np.isfinite(xyz).all(axis=-1)
        label = int(split.labels[i])
        name = classes[label] if label < len(classes) else str(label)
        action_id = action_ids[label] if label < len(action_ids) else 0
        yield BagSequence(split.names[i], label, name, xyz, occluded, present, action_id)


def sequences_from_skeleton_dir(directory, limit=None, clean=False):
    """Read raw NTU RGB+D ``.skeleton`` files (sorted by name) of a directory.

    Bodies are the first two listed in each frame (:func:`iospstl_ros.datasets.ntu.to_layout`);
    occlusion is Kinect's tracking state (not tracked, inferred) or x y z exactly 0. The class
    is the name's action - 1, named after :data:`iospstl_ros.datasets.splits.ACTION_NAMES`,
    and the action id the name's action number.

    Parameters
    ----------
    directory : str
    limit : int, optional
    clean : bool
        Every joint visible, with the file's coordinates.

    Returns
    -------
    count : int
    sequences : iterator of BagSequence
        Files are read lazily, one at a time.

    Raises
    ------
    ValueError
        If the directory holds no ``.skeleton`` file, a file name is not an NTU sample name, or
        a file is malformed.
    """
    files = sorted(f for f in os.listdir(directory) if f.endswith('.skeleton'))
    if not files:
        raise ValueError(f'{directory}: expected NTU RGB+D .skeleton files, found none')
    if limit is not None:
        files = files[:int(limit)]
    for file in files:  # fail before writing anything
        parse_sample_name(file[:-len('.skeleton')])
    return len(files), _skeleton_sequences(directory, files, clean)


def _skeleton_sequences(directory, files, clean):
    for file in files:
        name = file[:-len('.skeleton')]
        label = parse_sample_name(name).label
        skeleton = read_ntu_skeleton(os.path.join(directory, file))
        xyz, occluded, present = to_layout(skeleton, MAX_BODIES)
        if clean:
            occluded = np.zeros_like(occluded)
        yield BagSequence(
            name, label, ACTION_NAMES[label] if label < len(ACTION_NAMES) else str(label),
            np.ascontiguousarray(xyz.transpose(1, 3, 2, 0)), occluded.transpose(0, 2, 1).copy(),
            present, label + 1)
