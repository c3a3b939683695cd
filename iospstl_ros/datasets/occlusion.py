"""Synthetic occlusion of camera-space skeletons: furniture ray casting and random occlusion.

The paper's occluded NTU (Peng et al., Trans4SOAR) projects IKEA furniture models into each
sequence's camera space and casts a ray from the camera centre to every joint; a joint is
occluded when the ray hits furniture before reaching it. That data is not public, so this module
synthesises it: :func:`sample_scene` places one to three oriented boxes from
:data:`OCCLUDER_CATALOGUE` on the floor between the camera and the person(s), and
:func:`ray_box_occluded` casts the rays.

Coordinates are Kinect v2 / NTU camera space (see :mod:`iospstl_ros.layout`): the camera at the
origin, metres, x to the sensor's left, y up along the sensor's vertical axis, z = depth away
from the sensor. A box is given by its centre (3,), its half extents (3,) along its own x
(width), y (height) and z (depth) axes, and a yaw about the vertical (y) axis. A box point
``local`` maps to camera space as ``center + R(yaw) @ local`` with
``R(yaw) = [[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]]``, so at ``yaw = atan2(u_x, u_z)`` the
box's depth axis points along the horizontal direction ``u``.

Tilted cameras
--------------
The NTU Kinects look down (by 12 to 15 degrees in two sequences of setup 1), so camera-space y
is not vertical: a standing body leans towards the camera by the tilt, and the lowest feet lie
far less below the camera than the floor does (0.6 m instead of about 1.45 m there).
:func:`estimate_pitch` measures the tilt from the sequence itself (the spine of upright
bodies, see its notes), and the scene is built in the *levelled frame*: camera space rotated
about the camera's x axis by the pitch, ``y' = cos(p) y - sin(p) z``,
``z' = sin(p) y + cos(p) z``, in which y' is vertical. The rotation is about the camera centre,
so rays from the camera stay rays and the ray casting is unchanged. A :class:`Scene` keeps its
boxes and floor in that frame together with ``pitch_deg``; :func:`box_corners` returns
camera-space corners and :func:`ray_box_occluded` takes camera-space points and the pitch.
Roll is not estimated: people lean sideways about as much as they lean forward, and on the
synthetic benchmark a roll estimate from the spine erred by 3 degrees (standard deviation),
more than the cameras are rolled, so it would add more error than it removes.

Everything here is numpy-only and deterministic given the ``numpy.random.Generator`` passed in.
"""

from dataclasses import dataclass, field

from iospstl_ros.layout import NUM_CHANNELS, NUM_JOINTS
import numpy as np

#: Occlusion modes accepted by :func:`apply_occlusion`.
OCCLUSION_MODES = ('none', 'realistic', 'random')
#: Share of joint slots hidden by the paper's random occlusion.
RANDOM_OCCLUSION_RATIO = 0.2
#: Foot and ankle joints used to estimate the floor (left ankle, left foot, right ...).
FLOOR_JOINTS = (14, 15, 18, 19)
#: The floor lies this far below the lowest foot/ankle joint, metres.
FLOOR_MARGIN = 0.03
#: Percentile of the foot/ankle heights taken as "lowest" (robust to single noisy frames).
FLOOR_PERCENTILE = 1.0
#: Smallest distance between the camera and any box, metres.
MIN_CAMERA_CLEARANCE = 0.5
#: A scene is re-drawn when it hides more than this share of any present body's joint slots.
MAX_HIDDEN_FRACTION = 0.7
#: Scenes drawn before giving up and returning an empty scene (no occlusion).
MAX_SCENE_ATTEMPTS = 10
#: Tries to place one item (size, gap, offset, yaw) before dropping it.
MAX_ITEM_ATTEMPTS = 6
#: Probability of 1, 2, 3 items in a scene.
ITEM_COUNT_PROBABILITIES = (0.5, 0.35, 0.15)
#: Smallest plausible median depth of a present body in camera space, metres.
MIN_BODY_DEPTH = 0.3
#: Largest angle, degrees, between the spine (spine base to spine shoulder) and the legs (mid
#: ankle to mid hip) of a body-frame counted as upright by :func:`estimate_pitch`.
UPRIGHT_MAX_BEND_DEG = 25.0
#: Largest knee flexion (angle between thigh and shin), degrees, of an upright body-frame.
UPRIGHT_MAX_KNEE_DEG = 40.0
#: Largest sideways lean of the spine, degrees, of an upright body-frame.
UPRIGHT_MAX_SIDE_LEAN_DEG = 20.0
#: Shortest spine (spine base to spine shoulder), metres, of an upright body-frame.
MIN_SPINE_LENGTH = 0.2
#: Half width, degrees, of the window that finds a body's most common spine lean.
PITCH_WINDOW_DEG = 3.0
#: Upright frames a body needs within that window to count in :func:`estimate_pitch`.
MIN_UPRIGHT_FRAMES = 10
#: Largest camera pitch, degrees, believed; a larger estimate falls back to a level camera.
MAX_PITCH_DEG = 35.0
# Points per chunk of the ray caster; bounds its temporary memory (about 1 MB per array).
_CHUNK_ELEMENTS = 1 << 16
# Joints (an even subsample) behind the body geometry and the camera-space depth check.
_GEOMETRY_POINTS = 2000
_FLOOR_LOOKUP = np.isin(np.arange(NUM_JOINTS), FLOOR_JOINTS)
# Joints of the upright test: spine base, spine shoulder, (hip, knee, ankle) left and right.
_SPINE_BASE, _SPINE_SHOULDER = 0, 20
_LEGS = ((12, 13, 14), (16, 17, 18))


@dataclass(frozen=True)
class OccluderKind:
    """Size ranges and placement rule of one kind of occluder.

    Attributes
    ----------
    width, depth, height : (float, float)
        Ranges (min, max) in metres of the box's extent along its local x, z and y axes.
    weight : float
        Relative frequency among the catalogue's kinds.
    placement : {'front', 'side'}
        ``'front'``: roughly centred on the camera-to-body line (low furniture that hides the
        legs). ``'side'``: shifted sideways so its inner edge lies near the body's centre line
        (tall furniture or a person that hides one side or an arm).
    gap : (float, float)
        Range of the distance, metres, between the box's far face and the body's nearest joint,
        measured along the camera-to-body direction.
    yaw_jitter : float
        Largest deviation, degrees, of the box's yaw from facing the camera.
    """

    width: tuple
    depth: tuple
    height: tuple
    weight: float
    placement: str
    gap: tuple
    yaw_jitter: float


#: Occluders with realistic size ranges (IKEA-like furniture and a standing person), metres.
OCCLUDER_CATALOGUE = {
    'table': OccluderKind((0.8, 1.6), (0.6, 0.9), (0.70, 0.78), 0.20, 'front', (0.0, 0.6), 20.0),
    'desk': OccluderKind((1.0, 1.6), (0.5, 0.8), (0.72, 0.78), 0.15, 'front', (0.0, 0.5), 15.0),
    'chair': OccluderKind((0.42, 0.55), (0.45, 0.55), (0.8, 1.0), 0.15, 'front', (0.05, 0.6),
                          180.0),
    'sofa': OccluderKind((1.5, 2.2), (0.8, 1.0), (0.75, 0.9), 0.15, 'front', (0.0, 0.8), 15.0),
    'cabinet': OccluderKind((0.6, 1.0), (0.4, 0.6), (1.2, 1.9), 0.10, 'side', (0.1, 1.0), 20.0),
    'shelf': OccluderKind((0.4, 0.8), (0.28, 0.4), (1.0, 2.0), 0.10, 'side', (0.1, 1.0), 20.0),
    'person': OccluderKind((0.40, 0.50), (0.25, 0.35), (1.6, 1.9), 0.15, 'side', (0.3, 1.5),
                           45.0),
}


@dataclass
class Scene:
    """Oriented boxes standing on the floor of one sequence.

    Attributes
    ----------
    centers : ndarray of shape (K, 3), float64
        Box centres, camera space, metres.
    half_sizes : ndarray of shape (K, 3), float64
        Half extents along the box's local x (width), y (height), z (depth).
    yaws : ndarray of shape (K,), float64
        Rotation about the vertical axis, radians.
    kinds : list of str
        Catalogue name of each box.
    floor_y : float
        Estimated floor height (camera height is ``-floor_y``); NaN when no joint was present.
    pitch_deg : float
        Camera pitch, degrees (positive: looking down), that defines the levelled frame the
        centres, yaws and ``floor_y`` are given in (see the module notes); 0 means camera space.

    Notes
    -----
    In camera space the floor is the plane ``up @ p = floor_y``.
    """

    centers: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    half_sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    yaws: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kinds: list = field(default_factory=list)
    floor_y: float = float('nan')
    pitch_deg: float = 0.0

    def __len__(self):
        return len(self.kinds)

    @property
    def up(self):
        """Give the vertical direction in camera space, ``(0, cos(pitch), -sin(pitch))``, (3,)."""
        pitch = np.deg2rad(self.pitch_deg)
        return np.array([0.0, np.cos(pitch), -np.sin(pitch)])


def _to_local(x, z, cos, sin):
    """Rotate camera-space horizontal coordinates into box frames (R(yaw) transposed)."""
    return cos * x - sin * z, sin * x + cos * z


def _level(y, z, pitch_deg):
    """Camera-space (y, z) to the levelled frame of ``pitch_deg`` (see the module notes)."""
    if pitch_deg == 0.0:
        return y, z
    pitch = np.deg2rad(pitch_deg)
    cos, sin = np.cos(pitch), np.sin(pitch)
    return cos * y - sin * z, sin * y + cos * z


def _check_pitch(pitch_deg):
    pitch_deg = float(pitch_deg)
    if not abs(pitch_deg) < 90.0:
        raise ValueError(f'expected a pitch_deg in (-90, 90), got {pitch_deg}')
    return pitch_deg


def _check_boxes(centers, half_sizes, yaws):
    centers = np.asarray(centers, dtype=np.float64)
    half_sizes = np.asarray(half_sizes, dtype=np.float64)
    yaws = np.asarray(yaws, dtype=np.float64)
    if centers.ndim != 2 or centers.shape[1] != 3:
        raise ValueError(f'expected centers of shape (K, 3), got {centers.shape}')
    k = len(centers)
    if half_sizes.shape != (k, 3) or yaws.shape != (k,):
        raise ValueError(f'expected half_sizes ({k}, 3) and yaws ({k},) to match centers, '
                         f'got {half_sizes.shape} and {yaws.shape}')
    for name, array in (('centers', centers), ('half_sizes', half_sizes), ('yaws', yaws)):
        if not np.isfinite(array).all():
            raise ValueError(f'expected finite {name}, got non-finite values')
    if (half_sizes < 0).any():
        raise ValueError(f'expected half_sizes >= 0, got minimum {half_sizes.min()}')
    return centers, half_sizes, yaws


def ray_box_occluded(points, centers, half_sizes, yaws, pitch_deg=0.0):
    """Test whether the segment from the camera to each point passes through a box.

    Slab method in each box's frame: the segment ``s(t) = t * p``, ``t`` in [0, 1], is occluded
    by a box when its overlap with the box, ``[max(t_near, 0), min(t_far, 1)]``, has positive
    length. Consequences, all exact in floating point where the inputs make them exact:

    - a ray that only grazes a box (touches an edge, a corner or runs along a face) has a
      zero-length overlap and is **not** occluded;
    - a point exactly on the face nearest the camera (``t_near = 1``) is **not** occluded: the
      joint is visible at the surface;
    - a point inside a box, or on or beyond its far face, **is** occluded;
    - a box behind the camera never occludes; if the camera is inside a box, every point with a
      positive-length segment is occluded;
    - a non-finite point is never occluded.

    On a generic (not axis-aligned) ray the rounding of these boundary cases can go either way.

    Parameters
    ----------
    points : array_like of shape (..., 3)
        Camera-space points, metres; any leading shape.
    centers : array_like of shape (K, 3)
        Box centres.
    half_sizes : array_like of shape (K, 3)
        Half extents along the box's local x, y, z; >= 0.
    yaws : array_like of shape (K,)
        Rotation of each box about the vertical axis, radians.
    pitch_deg : float, optional
        Pitch of the levelled frame the boxes are given in (a :class:`Scene`'s
        ``pitch_deg``); the points are rotated into it. Default 0: boxes in camera space.

    Returns
    -------
    occluded : ndarray of the points' leading shape, bool
        True where any box hides the point from the camera.

    Raises
    ------
    ValueError
        If the shapes do not match, a box parameter is non-finite, a half size is negative or
        ``|pitch_deg| >= 90``.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 1 or points.shape[-1] != 3:
        raise ValueError(f'expected points of shape (..., 3), got {points.shape}')
    centers, half_sizes, yaws = _check_boxes(centers, half_sizes, yaws)
    pitch_deg = _check_pitch(pitch_deg)
    flat = points.reshape(-1, 3)
    x, y, z = (np.ascontiguousarray(flat[:, axis]) for axis in range(3))
    y, z = _level(y, z, pitch_deg)
    return _cast(x, y, z, centers, half_sizes, yaws).reshape(points.shape[:-1])


def _cast(x, y, z, centers, half_sizes, yaws):
    """Ray-box test of :func:`ray_box_occluded` on checked 1-D coordinate arrays (n,)."""
    occluded = np.zeros(len(x), dtype=bool)
    if len(centers) == 0 or len(x) == 0:
        return occluded
    cos, sin = np.cos(yaws), np.sin(yaws)
    origin_x, origin_z = _to_local(-centers[:, 0], -centers[:, 2], cos, sin)
    origin = np.stack([origin_x, -centers[:, 1], origin_z], axis=1)    # (K, 3) camera, local
    low = -half_sizes - origin                                          # slab planes minus origin
    high = half_sizes - origin
    finite = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    # IEEE division settles rays parallel to a slab (a direction component of +-0): strictly
    # between the planes gives (-inf, inf), outside gives an empty interval, and exactly on a
    # plane (a ray along a face) gives NaN, which fails every comparison: a graze.
    with np.errstate(divide='ignore', invalid='ignore'):
        for start in range(0, len(x), _CHUNK_ELEMENTS):
            part = slice(start, start + _CHUNK_ELEMENTS)
            hit = occluded[part]
            for k in range(len(centers)):
                dx, dz = _to_local(x[part], z[part], cos[k], sin[k])
                t_near = np.zeros_like(dx)
                t_far = np.ones_like(dx)
                t_low, t_high = np.empty_like(dx), np.empty_like(dx)
                for d, lo, hi in ((dx, low[k, 0], high[k, 0]), (y[part], low[k, 1], high[k, 1]),
                                  (dz, low[k, 2], high[k, 2])):
                    np.divide(lo, d, out=t_low)
                    np.divide(hi, d, out=t_high)
                    np.maximum(t_near, np.minimum(t_low, t_high), out=t_near)
                    np.minimum(t_far, np.maximum(t_low, t_high, out=t_low), out=t_far)
                hit |= t_near < t_far
            hit &= finite[part]
    return occluded


def box_corners(scene):
    """Camera-space corners of a scene's boxes, for plotting.

    Parameters
    ----------
    scene : Scene

    Returns
    -------
    corners : ndarray of shape (K, 8, 3), float64
        Camera-space corners (rotated back from the scene's levelled frame). Corner
        ``4 * i + 2 * j + k`` has local coordinates ``(sx * hx, sy * hy, sz * hz)`` with
        ``sx = -1`` for ``i = 0`` and ``+1`` for ``i = 1`` (likewise ``j`` for y, ``k`` for z).
    """
    centers, half_sizes, yaws = _check_boxes(scene.centers, scene.half_sizes, scene.yaws)
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], float)
    local = signs[None] * half_sizes[:, None, :]                        # (K, 8, 3)
    cos, sin = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    corners = np.empty_like(local)
    corners[..., 0] = cos * local[..., 0] + sin * local[..., 2]
    corners[..., 1] = local[..., 1]
    corners[..., 2] = -sin * local[..., 0] + cos * local[..., 2]
    corners += centers[:, None, :]
    # The inverse of levelling by the pitch is levelling by minus the pitch.
    corners[..., 1], corners[..., 2] = _level(corners[..., 1], corners[..., 2],
                                              -_check_pitch(scene.pitch_deg))
    return corners


def _check_sequence(xyz, present):
    xyz = np.asarray(xyz, dtype=np.float64)
    present = np.asarray(present, dtype=bool)
    if xyz.ndim != 4 or xyz.shape[0] != NUM_CHANNELS or xyz.shape[2] != NUM_JOINTS:
        raise ValueError(f'expected xyz of shape (3, T, {NUM_JOINTS}, M), got {xyz.shape}')
    _, t, _, m = xyz.shape
    if present.shape != (t, m):
        raise ValueError(f'expected present of shape {(t, m)} to match xyz {xyz.shape}, '
                         f'got {present.shape}')
    return xyz, present


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f'expected rng to be a numpy.random.Generator, got {type(rng).__name__}')


@dataclass
class _Slots:
    """The present joint slots of a sequence as 1-D columns (n,), in (T, V, M) C order."""

    mask: np.ndarray        # (T, V, M) bool, the present slots
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    joint: np.ndarray       # joint index of each slot
    body: np.ndarray        # body index of each slot

    @classmethod
    def of(cls, xyz, present):
        _, t, v, m = xyz.shape
        mask = np.ascontiguousarray(np.broadcast_to(present[:, None, :], (t, v, m)))
        index = np.flatnonzero(mask)
        x, y, z = (np.ascontiguousarray(xyz[axis]).reshape(-1)[index] for axis in range(3))
        return cls(mask, x, y, z, index // m % v, index % m)


def _cosine(a, b):
    """Cosine of the angle between vectors stacked on axis 0 of ``a`` and ``b``; NaN if zero."""
    with np.errstate(invalid='ignore', divide='ignore'):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))


def _upright_spine_pitches(xyz, present):
    """Forward lean, degrees, of the spine of every upright present body-frame.

    Returns
    -------
    leans : ndarray of shape (n,)
    bodies : ndarray of shape (n,), int
        Body slot of each lean.
    """
    spine = xyz[:, :, _SPINE_SHOULDER] - xyz[:, :, _SPINE_BASE]             # (3, T, M)
    hips = 0.5 * (xyz[:, :, _LEGS[0][0]] + xyz[:, :, _LEGS[1][0]])
    ankles = 0.5 * (xyz[:, :, _LEGS[0][2]] + xyz[:, :, _LEGS[1][2]])
    upright = present & (_cosine(spine, hips - ankles)
                         >= np.cos(np.deg2rad(UPRIGHT_MAX_BEND_DEG)))
    for hip, knee, ankle in _LEGS:
        thigh = xyz[:, :, hip] - xyz[:, :, knee]
        shin = xyz[:, :, knee] - xyz[:, :, ankle]
        upright &= _cosine(thigh, shin) >= np.cos(np.deg2rad(UPRIGHT_MAX_KNEE_DEG))
    with np.errstate(invalid='ignore'):
        length = np.sqrt((spine * spine).sum(axis=0))
        upright &= length >= MIN_SPINE_LENGTH
        upright &= np.abs(spine[0]) <= np.sin(np.deg2rad(UPRIGHT_MAX_SIDE_LEAN_DEG)) * length
    spine = spine[:, upright]
    return np.rad2deg(np.arctan2(-spine[2], spine[1])), np.nonzero(upright)[1]


def _most_common(leans):
    """Mean of the most common values of ``leans`` (n,) and how many it averages."""
    leans = np.sort(leans)
    ends = np.searchsorted(leans, leans + 2.0 * PITCH_WINDOW_DEG, side='right')
    start = int(np.argmax(ends - np.arange(len(leans))))
    centre = leans[start:ends[start]].mean()
    near = leans[np.abs(leans - centre) <= PITCH_WINDOW_DEG]
    return float(near.mean()), len(near)


def estimate_pitch(xyz, present):
    """Estimate how far the camera looks down from the spines of the sequence's upright bodies.

    A body-frame counts as upright when its legs are nearly straight (knee flexion at most
    :data:`UPRIGHT_MAX_KNEE_DEG`) and in line with its spine (at most
    :data:`UPRIGHT_MAX_BEND_DEG` between spine base -> spine shoulder and mid ankle -> mid
    hip), and its spine leans sideways by at most :data:`UPRIGHT_MAX_SIDE_LEAN_DEG` and is at
    least :data:`MIN_SPINE_LENGTH` long. The spine of an upright body is taken as vertical, so
    its lean towards the camera in the camera's y-z plane measures the camera's pitch.

    Each body slot's most common lean is the mean of the leans within
    :data:`PITCH_WINDOW_DEG` of the mean of the ``2 * PITCH_WINDOW_DEG`` wide window that
    holds most of them, so a person who leans forward in part of the sequence (reaching,
    kicking) does not move it. The estimate averages the slots' values, weighted by how many
    leans each averages; slots with fewer than :data:`MIN_UPRIGHT_FRAMES` there are left out
    (two people leaning towards each other cancel). The camera is taken as level (0.0) when no
    slot is left (seated, bent or hardly visible bodies) or the estimate exceeds
    :data:`MAX_PITCH_DEG`.

    A person's own forward posture lean (a few degrees) adds to the estimate: on the synthetic
    benchmark, whose subjects lean forward by -2 to 7 degrees, the error is about +2 +- 2.5
    degrees; two real NTU sequences of camera S001C001 give 12.3 and 14.5 degrees.

    Parameters
    ----------
    xyz : array_like of shape (3, T, 25, M)
        Camera-space joints, metres; non-finite joints make their body-frame not upright.
    present : array_like of shape (T, M), bool

    Returns
    -------
    pitch_deg : float
        Positive when the camera looks down: the vertical in camera space is
        ``(0, cos(pitch), -sin(pitch))``.

    Raises
    ------
    ValueError
        On bad shapes.
    """
    xyz, present = _check_sequence(xyz, present)
    return _estimate_pitch(xyz, present)


def _estimate_pitch(xyz, present):
    """:func:`estimate_pitch` of checked arrays."""
    leans, bodies = _upright_spine_pitches(xyz, present)
    values, weights = [], []
    for body in range(present.shape[1]):
        chosen = leans[bodies == body]
        if len(chosen) >= MIN_UPRIGHT_FRAMES:
            value, count = _most_common(chosen)
            if count >= MIN_UPRIGHT_FRAMES:
                values.append(value)
                weights.append(count)
    if not values:
        return 0.0
    pitch = float(np.average(values, weights=weights))
    return pitch if abs(pitch) <= MAX_PITCH_DEG else 0.0


def _estimate_floor(slots):
    """Floor height from the lowest foot/ankle joints of present bodies (NaN if none)."""
    heights = slots.y[_FLOOR_LOOKUP[slots.joint]]
    heights = heights[np.isfinite(heights)]
    if len(heights) == 0:
        heights = slots.y[np.isfinite(slots.y)]
    if len(heights) == 0:
        return float('nan')
    return float(np.percentile(heights, FLOOR_PERCENTILE)) - FLOOR_MARGIN


def _body_geometry(x, z):
    """Where a body stands seen from the camera, from its horizontal joint positions (n,).

    Returns
    -------
    u, w : ndarray of shape (2,)
        Horizontal (x, z) unit vectors from the camera towards the body and across it.
    nearest : float
        Distance along ``u`` of the body's nearest joints (2nd percentile).

    None when the body stands less than ``MIN_BODY_DEPTH`` from the camera (noise, not a body
    anything could stand in front of).
    """
    step = max(1, len(x) // _GEOMETRY_POINTS)
    x, z = x[::step], z[::step]
    centre = np.array([np.median(x), np.median(z)])
    distance = np.hypot(*centre)
    if not distance > MIN_BODY_DEPTH:
        return None
    u = centre / distance
    w = np.array([u[1], -u[0]])
    nearest = float(np.percentile(u[0] * x + u[1] * z, 2.0))
    return u, w, nearest


def _draw_item(spec, geometry, floor_y, placed, rng):
    """Try to place one box of kind ``spec`` in front of a body; None when no try fits."""
    u, w, nearest = geometry
    facing = float(np.arctan2(u[0], u[1]))
    for _ in range(MAX_ITEM_ATTEMPTS):
        width, depth, height = (rng.uniform(*spec.width), rng.uniform(*spec.depth),
                                rng.uniform(*spec.height))
        gap = rng.uniform(*spec.gap)
        if spec.placement == 'front':
            offset = rng.uniform(-1.0, 1.0) * max(0.25 * width, 0.3)
        else:
            offset = rng.choice((-1.0, 1.0)) * (0.5 * width + rng.uniform(-0.15, 0.3))
        yaw = facing + np.deg2rad(rng.uniform(-spec.yaw_jitter, spec.yaw_jitter))
        along = nearest - gap - 0.5 * depth
        if along - 0.5 * depth < MIN_CAMERA_CLEARANCE:           # keep it in front
            continue
        xz = along * u + offset * w
        half = np.array([0.5 * width, 0.5 * height, 0.5 * depth])
        center = np.array([xz[0], floor_y + half[1], xz[1]])
        cam_x, cam_z = _to_local(-center[0], -center[2], np.cos(yaw), np.sin(yaw))
        outside = np.maximum(np.abs([cam_x, -center[1], cam_z]) - half, 0.0)
        if np.linalg.norm(outside) < MIN_CAMERA_CLEARANCE:
            continue
        radius = 0.8 * np.hypot(half[0], half[2])
        if any(np.hypot(*(xz - other_xz)) < radius + other_radius
               for other_xz, other_radius in placed):
            continue
        return center, half, float(yaw), (xz, radius)
    return None


def _draw_scene(geometries, floor_y, names, weights, max_items, rng):
    """Draw one candidate scene; ``geometries`` lists each present body's geometry."""
    counts = np.asarray(ITEM_COUNT_PROBABILITIES[:max_items])
    num_items = 1 + int(rng.choice(len(counts), p=counts / counts.sum()))
    centers, half_sizes, yaws, kinds, placed = [], [], [], [], []
    for _ in range(num_items):
        geometry = geometries[int(rng.integers(len(geometries)))]
        kind = names[int(rng.choice(len(names), p=weights))]
        item = _draw_item(OCCLUDER_CATALOGUE[kind], geometry, floor_y, placed, rng)
        if item is None:
            continue
        center, half, yaw, footprint = item
        centers.append(center)
        half_sizes.append(half)
        yaws.append(yaw)
        kinds.append(kind)
        placed.append(footprint)
    return Scene(np.reshape(centers, (-1, 3)), np.reshape(half_sizes, (-1, 3)),
                 np.asarray(yaws, dtype=np.float64), kinds, floor_y)


def _sample(xyz, present, rng, max_items, kinds, max_hidden_fraction):
    """Draw scenes until one hides at most ``max_hidden_fraction`` of every body."""
    xyz, present = _check_sequence(xyz, present)
    _check_rng(rng)
    if not 1 <= int(max_items) <= len(ITEM_COUNT_PROBABILITIES):
        raise ValueError(f'expected 1 <= max_items <= {len(ITEM_COUNT_PROBABILITIES)}, '
                         f'got {max_items}')
    names = list(OCCLUDER_CATALOGUE) if kinds is None else list(kinds)
    unknown = [name for name in names if name not in OCCLUDER_CATALOGUE]
    if not names or unknown:
        raise ValueError(f'expected kinds from {tuple(OCCLUDER_CATALOGUE)}, got {kinds!r}')
    if not 0.0 < max_hidden_fraction <= 1.0:
        raise ValueError(f'expected 0 < max_hidden_fraction <= 1, got {max_hidden_fraction}')
    weights = np.array([OCCLUDER_CATALOGUE[name].weight for name in names])
    weights = weights / weights.sum()
    occluded = np.zeros(xyz.shape[1:], dtype=bool)
    slots = _Slots.of(xyz, present)
    finite = np.isfinite(slots.x) & np.isfinite(slots.y) & np.isfinite(slots.z)
    if not finite.any():
        return Scene(floor_y=_estimate_floor(slots)), occluded
    depth = float(np.median(slots.z[finite][::max(1, finite.sum() // _GEOMETRY_POINTS)]))
    if not depth > MIN_BODY_DEPTH:
        raise ValueError('expected camera-space coordinates with the bodies in front of the '
                         f'camera (median z > {MIN_BODY_DEPTH} m), got median z = {depth:.3f}')
    pitch_deg = _estimate_pitch(xyz, present)
    slots.y, slots.z = _level(slots.y, slots.z, pitch_deg)
    floor_y = _estimate_floor(slots)
    geometries = []
    for body in range(xyz.shape[-1]):
        keep = finite & (slots.body == body)
        if keep.any():
            geometries.append(_body_geometry(slots.x[keep], slots.z[keep]))
    geometries = [geometry for geometry in geometries if geometry is not None]
    if not geometries:
        return Scene(floor_y=floor_y, pitch_deg=pitch_deg), occluded
    body_slots = np.bincount(slots.body, minlength=xyz.shape[-1])
    for _ in range(MAX_SCENE_ATTEMPTS):
        scene = _draw_scene(geometries, floor_y, names, weights, int(max_items), rng)
        scene.pitch_deg = pitch_deg
        hit = _cast(slots.x, slots.y, slots.z, scene.centers, scene.half_sizes, scene.yaws)
        hidden = np.bincount(slots.body, weights=hit, minlength=xyz.shape[-1])
        if (hidden <= max_hidden_fraction * body_slots).all():
            occluded[slots.mask] = hit
            return scene, occluded
    return Scene(floor_y=floor_y, pitch_deg=pitch_deg), occluded


def sample_scene(xyz, present, rng, max_items=3, kinds=None,
                 max_hidden_fraction=MAX_HIDDEN_FRACTION):
    """Place 1 to ``max_items`` occluders on the floor between the camera and the bodies.

    The scene is built in the levelled frame of the camera pitch found by
    :func:`estimate_pitch` (0 for a level camera or an unreliable estimate). The floor is
    estimated there from the lowest foot/ankle heights of the present bodies (their
    ``FLOOR_PERCENTILE`` percentile, minus ``FLOOR_MARGIN``). Each item picks a present body and
    a kind by catalogue weight, then a size within the kind's ranges, a gap to the body's
    nearest joint, a lateral offset and a yaw jitter around facing the camera. An item whose
    box would come within ``MIN_CAMERA_CLEARANCE`` of the camera, or overlap an item already
    placed, is re-drawn (``MAX_ITEM_ATTEMPTS`` tries, then dropped). A scene that hides more than
    ``max_hidden_fraction`` of any present body's joint slots is re-drawn; after
    ``MAX_SCENE_ATTEMPTS`` scenes an empty scene is returned.

    Parameters
    ----------
    xyz : array_like of shape (3, T, 25, M)
        Camera-space joints, metres. Values of absent bodies are ignored; non-finite joints
        (already occluded) are ignored when estimating the floor and never ray-occluded.
    present : array_like of shape (T, M), bool
    rng : numpy.random.Generator
    max_items : int, 1 to 3
    kinds : sequence of str, optional
        Catalogue names to draw from (default: all, by their weights).
    max_hidden_fraction : float
        Largest share of a present body's joint slots one scene may hide.

    Returns
    -------
    scene : Scene
        Boxes and floor in the levelled frame of ``scene.pitch_deg``; empty (K = 0,
        ``floor_y`` NaN) when no joint is present.

    Raises
    ------
    ValueError
        On bad shapes, an unknown kind, a non-Generator ``rng``, or coordinates that are not in
        camera space (median depth of present joints <= ``MIN_BODY_DEPTH``).
    """
    return _sample(xyz, present, rng, max_items, kinds, max_hidden_fraction)[0]


def realistic_occlusion(xyz, present, rng, max_items=3, kinds=None,
                        max_hidden_fraction=MAX_HIDDEN_FRACTION):
    """Hide the joints that furniture placed by :func:`sample_scene` blocks from the camera.

    Parameters
    ----------
    xyz : array_like of shape (3, T, 25, M)
        Camera-space joints, metres.
    present : array_like of shape (T, M), bool
    rng : numpy.random.Generator
    max_items, kinds, max_hidden_fraction
        As in :func:`sample_scene`.

    Returns
    -------
    occluded : ndarray of shape (T, 25, M), bool
        True where a box lies between the camera and a present joint; absent bodies are False.
    scene : Scene
        The boxes that were cast against (in its levelled frame; see :class:`Scene`).
    """
    scene, occluded = _sample(xyz, present, rng, max_items, kinds, max_hidden_fraction)
    return occluded, scene


def random_occlusion(xyz, present, rng, ratio=RANDOM_OCCLUSION_RATIO):
    """Hide a fixed share of the present joint slots, chosen uniformly (the paper's random mode).

    Exactly ``round(ratio * n)`` of the ``n = 25 * present.sum()`` present slots (t, v, m) are
    chosen without replacement. Coordinates do not influence the choice; ``xyz`` is taken for
    a signature shared with :func:`realistic_occlusion` and checked for shape only.

    Parameters
    ----------
    xyz : array_like of shape (3, T, 25, M)
    present : array_like of shape (T, M), bool
    rng : numpy.random.Generator
    ratio : float in [0, 1]

    Returns
    -------
    occluded : ndarray of shape (T, 25, M), bool
    """
    xyz, present = _check_sequence(xyz, present)
    _check_rng(rng)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f'expected 0 <= ratio <= 1, got {ratio}')
    slots = np.broadcast_to(present[:, None, :], xyz.shape[1:])
    candidates = np.flatnonzero(slots)
    count = int(round(ratio * len(candidates)))
    occluded = np.zeros(xyz.shape[1:], dtype=bool)
    occluded.flat[rng.choice(candidates, size=count, replace=False)] = True
    return occluded


def apply_occlusion(xyz, occluded, present, mode, rng, ratio=RANDOM_OCCLUSION_RATIO):
    """Add synthetic occlusion to a sequence's existing occlusion mask.

    Parameters
    ----------
    xyz : array_like of shape (3, T, 25, M)
        Camera-space joints, metres.
    occluded : array_like of shape (T, 25, M), bool
        Joints already occluded (for example untracked in the source data).
    present : array_like of shape (T, M), bool
    mode : {'none', 'realistic', 'random'}
    rng : numpy.random.Generator
    ratio : float
        Share of present slots hidden in ``'random'`` mode.

    Returns
    -------
    occluded : ndarray of shape (T, 25, M), bool
        ``occluded OR`` the synthesised mask (a new array; the input is not modified).
    """
    if mode not in OCCLUSION_MODES:
        raise ValueError(f'expected mode in {OCCLUSION_MODES}, got {mode!r}')
    xyz, present = _check_sequence(xyz, present)
    occluded = np.asarray(occluded, dtype=bool)
    if occluded.shape != xyz.shape[1:]:
        raise ValueError(f'expected occluded of shape {xyz.shape[1:]} to match xyz, '
                         f'got {occluded.shape}')
    if mode == 'realistic':
        return occluded | realistic_occlusion(xyz, present, rng)[0]
    if mode == 'random':
        return occluded | random_occlusion(xyz, present, rng, ratio)
    return occluded.copy()
