"""The NTU RGB+D / Kinect v2 skeleton layout and the one array layout of the project.

Array layout
------------
Every skeleton array in this project, in the training scripts, the exported model and the ROS
node, uses the reference code's axis order::

    data      (N, C, T, V, M)   float32   samples, xyz (3), frames, joints (25), bodies (2)
    occluded  (N, T, V, M)      bool      True where a joint is hidden / not tracked
    present   (N, T, M)         bool      True where body m exists in frame t
    B         (N, V)            uint8     1 where joint v is occluded in any frame of any body

Coordinates are camera space in metres (Kinect: x left of the sensor, y up, z away from the
sensor) until preprocessing makes them relative to the centre joint. An occluded joint holds NaN
in data arrays; frames past a sequence's end and absent bodies hold 0 and are marked by
``present``, never by NaN and never by ``occluded``. Functions unpack axes by name at the top
(``N, C, T, V, M = x.shape``) and convert to other layouts only at a boundary (a message, an ONNX
graph).

Everything here is numpy-only, so the ROS node and the training scripts share it.
"""

import numpy as np

#: Number of joints of a Kinect v2 / NTU RGB+D skeleton.
NUM_JOINTS = 25
#: Coordinate channels (x, y, z).
NUM_CHANNELS = 3
#: Body slots kept per sample.
MAX_BODIES = 2
#: Frames of the raw NTU arrays (longest NTU-60 sequence is 300 frames).
MAX_FRAMES = 300
#: Frames of a network window after resampling.
WINDOW_FRAMES = 50
#: Frame rate of Kinect v2 / NTU RGB+D, Hz.
FRAME_RATE = 30.0

#: Joint names in NTU / Kinect v2 order (0-based index = position).
JOINT_NAMES = (
    'spine_base', 'spine_mid', 'neck', 'head',
    'left_shoulder', 'left_elbow', 'left_wrist', 'left_hand',
    'right_shoulder', 'right_elbow', 'right_wrist', 'right_hand',
    'left_hip', 'left_knee', 'left_ankle', 'left_foot',
    'right_hip', 'right_knee', 'right_ankle', 'right_foot',
    'spine_shoulder', 'left_hand_tip', 'left_thumb', 'right_hand_tip', 'right_thumb',
)

#: Root of the spatial partition and origin of relative coordinates (spine shoulder).
CENTER_JOINT = 20
#: Shoulders used by the shoulder-alignment rotation.
LEFT_SHOULDER = 4
RIGHT_SHOULDER = 8

#: ST-GCN ``ntu-rgb+d`` edges, 0-based, in ST-GCN's order. It keeps ST-GCN's quirk that the
#: hand tip hangs off the thumb and the thumb off the hand; the degree list depends on it.
EDGES = (
    (0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6),
    (8, 20), (9, 8), (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14),
    (16, 0), (17, 16), (18, 17), (19, 18), (21, 22), (22, 7), (23, 24), (24, 11),
)

#: Joint permutation of the left/right flip augmentation (a pure index swap).
FLIP_PERMUTATION = (
    0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 20, 23, 24, 21, 22,
)

#: Node degrees without self-loops (CSM's "degree centrality"), in joint order; sum 48.
DEGREES = (3, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 1, 4, 1, 2, 1, 2)

#: Bone pairs of the ``bone`` view: bone[v1] = x[v1] - x[v2]; the centre's bone is zero.
BONE_PAIRS = EDGES + ((CENTER_JOINT, CENTER_JOINT),)

#: A still standing person in NTU joint order, metres: x to the body's left, y up from the floor
#: below the spine base, z away from the camera. Fixtures for occlusion tests and benchmarks.
STANDING_POSE = np.array([
    [0.00, 0.95, 0.00], [0.00, 1.20, 0.00], [0.00, 1.50, 0.00], [0.00, 1.65, 0.00],
    [0.18, 1.42, 0.00], [0.22, 1.15, 0.00], [0.24, 0.92, 0.00], [0.24, 0.84, 0.00],
    [-0.18, 1.42, 0.00], [-0.22, 1.15, 0.00], [-0.24, 0.92, 0.00], [-0.24, 0.84, 0.00],
    [0.10, 0.92, 0.00], [0.11, 0.50, 0.00], [0.11, 0.10, 0.00], [0.11, 0.05, -0.10],
    [-0.10, 0.92, 0.00], [-0.11, 0.50, 0.00], [-0.11, 0.10, 0.00], [-0.11, 0.05, -0.10],
    [0.00, 1.42, 0.00], [0.24, 0.76, 0.00], [0.22, 0.82, -0.03], [-0.24, 0.76, 0.00],
    [-0.22, 0.82, -0.03],
])


def degrees_from_edges(edges=EDGES, num_joints=NUM_JOINTS):
    """Count each joint's neighbours in an undirected edge list.

    Parameters
    ----------
    edges : sequence of (int, int)
        Undirected edges, 0-based.
    num_joints : int
        Number of joints.

    Returns
    -------
    degrees : ndarray of shape (num_joints,), int64
    """
    degrees = np.zeros(num_joints, dtype=np.int64)
    for a, b in edges:
        degrees[a] += 1
        degrees[b] += 1
    return degrees


def hop_distance(edges=EDGES, num_joints=NUM_JOINTS):
    """Shortest path length in the skeleton graph between every pair of joints.

    Returns
    -------
    distance : ndarray of shape (num_joints, num_joints), int64
        ``distance[i, j]`` hops from i to j; -1 where unreachable.
    """
    adjacency = np.zeros((num_joints, num_joints), dtype=bool)
    for a, b in edges:
        adjacency[a, b] = adjacency[b, a] = True
    distance = np.full((num_joints, num_joints), -1, dtype=np.int64)
    for source in range(num_joints):
        distance[source, source] = 0
        frontier = [source]
        hops = 0
        while frontier:
            hops += 1
            reached = np.flatnonzero(adjacency[frontier].any(axis=0) & (distance[source] < 0))
            distance[source, reached] = hops
            frontier = list(reached)
    return distance


def coordinate_groups(num_frames, num_joints=NUM_JOINTS, num_bodies=MAX_BODIES):
    """Joint of every feature of a flattened ``(C, T, V, M)`` sample: one group per (t, v, m).

    Returns an int64 array of shape ``(3 * T * V * M,)``: feature i belongs to joint
    ``(t * V + v) * M + m``, so x, y and z of a joint share it (the KNN imputer's ``groups``).
    """
    per_channel = int(num_frames) * int(num_joints) * int(num_bodies)
    if per_channel < 1:
        raise ValueError('expected num_frames, num_joints and num_bodies >= 1, got '
                         f'{num_frames}, {num_joints}, {num_bodies}')
    return np.tile(np.arange(per_channel, dtype=np.int64), NUM_CHANNELS)


def coordinate_blocks(num_frames, num_joints=NUM_JOINTS, num_bodies=MAX_BODIES):
    """Body slot m of every feature of a flattened ``(C, T, V, M)`` sample (``blocks``)."""
    return coordinate_groups(num_frames, num_joints, num_bodies) % int(num_bodies)
