"""Tests of the occlusion synthesis: ray casting geometry, scenes, random occlusion."""

from iospstl_ros.datasets.occlusion import (
    apply_occlusion, box_corners, estimate_pitch, FLOOR_MARGIN, MAX_PITCH_DEG,
    MIN_CAMERA_CLEARANCE, MIN_UPRIGHT_FRAMES, OCCLUDER_CATALOGUE, random_occlusion,
    ray_box_occluded, realistic_occlusion, sample_scene, Scene)
from iospstl_ros.layout import NUM_JOINTS, STANDING_POSE
import numpy as np
import pytest

# A unit cube (half size 0.5) centred 3 m in front of the camera: it spans x, y in [-0.5, 0.5]
# and z in [2.5, 3.5].
CUBE = (np.array([[0.0, 0.0, 3.0]]), np.array([[0.5, 0.5, 0.5]]), np.array([0.0]))

HEAD, NECK, LEFT_HIP, RIGHT_HIP = 3, 2, 12, 16
LEGS = (13, 14, 15, 17, 18, 19)          # knees, ankles, feet


def standing(frames=1, roots=((0.0, 3.0),), camera_height=1.0):
    """Still standing people at horizontal positions ``roots`` (x, z); (3, T, 25, M), (T, M)."""
    xyz = np.zeros((3, frames, NUM_JOINTS, len(roots)))
    for m, (x, z) in enumerate(roots):
        pose = STANDING_POSE + np.array([x, -camera_height, z])
        xyz[:, :, :, m] = pose.T[:, None, :]
    return xyz, np.ones((frames, len(roots)), dtype=bool)


def seated(frames=1, root=(0.0, 3.0), camera_height=1.0):
    """Make a still person sit facing the camera: thighs level, shins vertical; (3, T, 25, 1)."""
    pose = STANDING_POSE.copy()
    pose[:, 1] -= 0.45                                       # hips at 0.47 m
    pose[[13, 17]] = [[0.11, 0.47, -0.42], [-0.11, 0.47, -0.42]]     # knees
    pose[[14, 18]] = [[0.11, 0.10, -0.42], [-0.11, 0.10, -0.42]]     # ankles
    pose[[15, 19]] = [[0.11, 0.05, -0.52], [-0.11, 0.05, -0.52]]     # feet
    pose += np.array([root[0], -camera_height, root[1]])
    return np.broadcast_to(pose.T[:, None, :, None], (3, frames, NUM_JOINTS, 1)).copy()


def tilt(xyz, pitch_deg):
    """Camera-space points (3, ...) of a level camera as seen by one looking down by pitch."""
    cos, sin = np.cos(np.deg2rad(pitch_deg)), np.sin(np.deg2rad(pitch_deg))
    tilted = np.array(xyz, dtype=np.float64)
    tilted[1] = cos * xyz[1] + sin * xyz[2]
    tilted[2] = -sin * xyz[1] + cos * xyz[2]
    return tilted


def occluded_by_cube(point, yaw=0.0):
    centers, half_sizes, _ = CUBE
    return bool(ray_box_occluded(np.array(point, float), centers, half_sizes, np.array([yaw])))


# -- ray casting: literal cases -------------------------------------------------------------


def test_box_between_camera_and_joint_occludes():
    assert occluded_by_cube([0.0, 0.0, 5.0])
    # Ray to (0.6, 0.3, 6) is at (0.3, 0.15) when it crosses the cube's centre plane z = 3.
    assert occluded_by_cube([0.6, 0.3, 6.0])


def test_joint_in_front_of_box_is_visible():
    assert not occluded_by_cube([0.0, 0.0, 2.0])
    assert not occluded_by_cube([0.0, 0.0, 2.4999])


def test_joint_beside_or_above_box_is_visible():
    # Ray to (2, 0, 5) is at x = 1.0 at z = 2.5 and x = 1.4 at z = 3.5: beside the cube.
    assert not occluded_by_cube([2.0, 0.0, 5.0])
    # Ray to (0, 2, 5) is at y = 1.0 .. 1.4 over the cube's depth: above it.
    assert not occluded_by_cube([0.0, 2.0, 5.0])
    assert not occluded_by_cube([0.0, -2.0, 5.0])


def test_joint_on_far_face_is_occluded():
    assert occluded_by_cube([0.0, 0.0, 3.5])
    assert occluded_by_cube([0.2, -0.3, 3.5])


def test_joint_on_near_face_is_visible():
    # Documented: a joint exactly on the face nearest the camera is seen at the surface.
    assert not occluded_by_cube([0.0, 0.0, 2.5])
    assert not occluded_by_cube([0.25, 0.25, 2.5])


def test_point_inside_box_is_occluded():
    assert occluded_by_cube([0.0, 0.0, 3.0])
    assert occluded_by_cube([0.49, -0.49, 2.51])


def test_ray_grazing_an_edge_does_not_occlude():
    # Ray to (1, 0, 5) is x = z / 5: it touches the cube only at x = 0.5, z = 2.5, the edge of
    # its near face and its +x face (x = 0.6 > 0.5 at the far face z = 3.5).
    assert not occluded_by_cube([1.0, 0.0, 5.0])
    # Just inside that edge the ray cuts through.
    assert occluded_by_cube([0.99, 0.0, 5.0])


def test_ray_along_a_face_does_not_occlude():
    # Cube lowered by 0.5: its top face is the plane y = 0, which the ray to (0, 0, 5) runs in.
    lowered = np.array([[0.0, -0.5, 3.0]])
    assert not ray_box_occluded(np.array([0.0, 0.0, 5.0]), lowered, CUBE[1], CUBE[2])
    assert ray_box_occluded(np.array([0.0, -0.01, 5.0]), lowered, CUBE[1], CUBE[2])


def test_rotated_box_by_hand():
    # Yawed 45 degrees, the cube's footprint is the diamond |x| + |z - 3| <= sqrt(2) / 2
    # (0.7071). On the ray x = k z, |x| + |z - 3| is smallest at z = 3, where it is 3 k.
    # k = 0.2 (point (1.2, 0, 6)): 0.6 < 0.7071, hit; unrotated, the same ray only grazes the
    # near edge at (0.5, 2.5).
    assert occluded_by_cube([1.2, 0.0, 6.0], yaw=np.pi / 4)
    assert not occluded_by_cube([1.2, 0.0, 6.0], yaw=0.0)
    # k = 0.23: 0.69 < 0.7071, hit. k = 0.24: 0.72 > 0.7071, miss.
    assert occluded_by_cube([1.38, 0.0, 6.0], yaw=np.pi / 4)
    assert not occluded_by_cube([1.44, 0.0, 6.0], yaw=np.pi / 4)
    # (0.6, 0, 3) lies inside the diamond but outside the unrotated cube (x > 0.5).
    assert occluded_by_cube([0.6, 0.0, 3.0], yaw=np.pi / 4)
    assert not occluded_by_cube([0.6, 0.0, 3.0], yaw=0.0)


def test_yaw_turns_a_long_box_about_the_vertical_axis():
    # A board 2 m wide (local x), 0.2 m deep (local z). Yawed 90 degrees its width runs along z.
    centers, half_sizes = np.array([[0.0, 0.0, 3.0]]), np.array([[1.0, 0.5, 0.1]])
    point = np.array([0.8, 0.0, 3.0])          # inside the board unrotated, beside it yawed
    assert ray_box_occluded(point, centers, half_sizes, np.array([0.0]))
    assert not ray_box_occluded(point, centers, half_sizes, np.array([np.pi / 2]))
    assert ray_box_occluded(np.array([0.05, 0.0, 3.8]), centers, half_sizes,
                            np.array([np.pi / 2]))


def test_several_boxes_and_leading_shape():
    centers = np.array([[-1.0, 0.0, 3.0], [1.0, 0.0, 3.0]])
    half_sizes = np.full((2, 3), 0.3)
    yaws = np.zeros(2)
    points = np.array([[[-2.0, 0.0, 6.0], [2.0, 0.0, 6.0]],      # behind box 0, behind box 1
                       [[0.0, 0.0, 6.0], [-1.0, 0.0, 2.0]]])     # between them, in front
    expected = np.array([[True, True], [False, False]])
    np.testing.assert_array_equal(ray_box_occluded(points, centers, half_sizes, yaws), expected)
    # With no boxes nothing is hidden.
    assert not ray_box_occluded(points, np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)).any()


def test_box_behind_camera_camera_inside_and_non_finite_points():
    behind = (np.array([[0.0, 0.0, -3.0]]),) + CUBE[1:]
    assert not ray_box_occluded(np.array([0.0, 0.0, 5.0]), *behind)
    around_camera = (np.array([[0.0, 0.0, 0.2]]),) + CUBE[1:]
    assert ray_box_occluded(np.array([0.0, 0.0, 5.0]), *around_camera)
    points = np.array([[np.nan, 0.0, 5.0], [0.0, np.inf, 5.0]])
    assert not ray_box_occluded(points, *CUBE).any()


def test_ray_caster_matches_dense_sampling_oracle():
    # Oracle: sample each segment densely and measure how deep a sample gets inside the box,
    # using the box's axes as box_corners draws them. Depth is 1-Lipschitz in position, so a
    # segment whose samples all stay more than half a sample spacing outside never enters.
    rng = np.random.default_rng(7)
    k, n, samples = 3, 400, 2001
    scene = Scene(rng.uniform([-1, -1, 1.5], [1, 0.5, 4], (k, 3)), rng.uniform(0.1, 0.8, (k, 3)),
                  rng.uniform(-np.pi, np.pi, k), ['box'] * k)
    points = rng.uniform([-2, -1.5, 0.8], [2, 1.0, 6.0], (n, 3))
    corners = box_corners(scene)
    centres = corners.mean(axis=1)
    axes = (corners[:, [4, 2, 1]] - corners[:, [0, 0, 0]]) / 2   # (K, 3 axes, 3): x, y, z
    half = np.linalg.norm(axes, axis=-1)
    units = axes / half[..., None]
    t = np.linspace(0.0, 1.0, samples)
    along = t[None, :, None] * points[:, None, :]                   # (n, S, 3)
    offsets = along[:, None] - centres[None, :, None]               # (n, K, S, 3)
    local = np.einsum('nksc,kac->nksa', offsets, units)
    depth = (half[None, :, None] - np.abs(local)).min(axis=-1).max(axis=-1)   # (n, K)
    spacing = np.linalg.norm(points, axis=1)[:, None] / (samples - 1)
    inside = (depth > 1e-9).any(axis=1)
    outside = (depth < -spacing / 2).all(axis=1)
    got = ray_box_occluded(points, scene.centers, scene.half_sizes, scene.yaws)
    assert inside.sum() > 50 and outside.sum() > 50 and (inside | outside).mean() > 0.95
    np.testing.assert_array_equal(got[inside], True)
    np.testing.assert_array_equal(got[outside], False)


def test_ray_box_rejects_bad_input():
    with pytest.raises(ValueError, match=r'points of shape \(\.\.\., 3\), got \(4, 2\)'):
        ray_box_occluded(np.zeros((4, 2)), *CUBE)
    with pytest.raises(ValueError, match=r'centers of shape \(K, 3\)'):
        ray_box_occluded(np.zeros(3), np.zeros(3), CUBE[1], CUBE[2])
    with pytest.raises(ValueError, match=r'yaws \(1,\)'):
        ray_box_occluded(np.zeros(3), CUBE[0], CUBE[1], np.zeros(2))
    with pytest.raises(ValueError, match='half_sizes >= 0'):
        ray_box_occluded(np.zeros(3), CUBE[0], -CUBE[1], CUBE[2])


def test_box_corners_literal():
    scene = Scene(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]]),
                  np.array([[0.5, 0.25, 0.125], [1.0, 0.5, 0.2]]), np.array([0.0, np.pi / 2]),
                  ['table', 'shelf'])
    corners = box_corners(scene)
    assert corners.shape == (2, 8, 3)
    np.testing.assert_allclose(corners[0, 0], [0.5, 1.75, 2.875])
    np.testing.assert_allclose(corners[0, 7], [1.5, 2.25, 3.125])
    np.testing.assert_allclose(corners[0, 5], [1.5, 1.75, 3.125])     # 4 + 1: +x, -y, +z
    # Yaw 90 degrees maps local x to -z and local z to +x: corner 1 is local (-1, -0.5, 0.2).
    np.testing.assert_allclose(corners[1, 1], [0.2, -0.5, 5.0], atol=1e-12)
    np.testing.assert_allclose(corners[1, 4], [-0.2, -0.5, 3.0], atol=1e-12)


def test_pitched_scene_casts_in_the_levelled_frame():
    # The cube stands in the levelled frame of a camera looking down by 30 degrees. Levelled
    # (0, 0, 5) is behind it; in camera space that point is (0, 5 sin 30, 5 cos 30) =
    # (0, 2.5, 4.33), which a level scene would see above the cube.
    point = np.array([0.0, 2.5, 5.0 * np.cos(np.pi / 6)])
    assert ray_box_occluded(point, *CUBE, pitch_deg=30.0)
    assert not ray_box_occluded(point, *CUBE)
    np.testing.assert_array_equal(ray_box_occluded(point, *CUBE, pitch_deg=30.0),
                                  occluded_by_cube([0.0, 0.0, 5.0]))
    with pytest.raises(ValueError, match=r'pitch_deg in \(-90, 90\), got 90.0'):
        ray_box_occluded(point, *CUBE, pitch_deg=90)


def test_box_corners_of_a_pitched_scene_are_in_camera_space():
    scene = Scene(CUBE[0], CUBE[1], CUBE[2], ['box'], -1.0, pitch_deg=30.0)
    np.testing.assert_allclose(scene.up, [0.0, np.sqrt(3) / 2, -0.5])
    corners = box_corners(scene)
    # Corner 0 is levelled (-0.5, -0.5, 2.5): camera y = cos 30 * -0.5 + sin 30 * 2.5,
    # z = -sin 30 * -0.5 + cos 30 * 2.5.
    np.testing.assert_allclose(corners[0, 0], [-0.5, 1.25 - np.sqrt(3) / 4,
                                               0.25 + 1.25 * np.sqrt(3)])
    np.testing.assert_allclose(corners[0], tilt(box_corners(Scene(*CUBE, ['box'])).T[:, :, 0],
                                                30.0).T)


# -- camera pitch ------------------------------------------------------------------------------


def test_level_standing_people_give_zero_pitch():
    xyz, present = standing(frames=MIN_UPRIGHT_FRAMES, roots=((-0.4, 3.0), (0.5, 3.5)))
    assert estimate_pitch(xyz, present) == pytest.approx(0.0, abs=1e-9)


def test_pitch_of_a_tilted_camera_is_recovered():
    # 60 frames of a standing person with 1 cm joint noise; in frames 40-59 the whole body
    # leans 12 degrees towards the camera (legs and spine in line, so still "upright"). The
    # most common lean is the camera's 15 degrees, not the mean (19) of all frames.
    xyz, present = standing(frames=60, camera_height=1.4)
    feet = xyz[:, 40:, 15:16]
    xyz[:, 40:] = feet + tilt(xyz[:, 40:] - feet, 12.0)
    xyz += np.random.default_rng(0).normal(0.0, 0.01, xyz.shape)
    assert estimate_pitch(tilt(xyz, 15.0), present) == pytest.approx(15.0, abs=1.0)
    assert estimate_pitch(tilt(xyz, -8.0), present) == pytest.approx(-8.0, abs=1.0)
    assert estimate_pitch(xyz, present) == pytest.approx(0.0, abs=1.0)


def test_two_people_leaning_opposite_ways_cancel():
    # Two still people, 12 frames each, leaning 6 degrees towards and 6 away from the camera.
    xyz, present = standing(frames=12, roots=((-0.5, 3.0), (0.5, 3.0)))
    for body, lean in ((0, 6.0), (1, -6.0)):
        feet = xyz[:, :, 15:16, body:body + 1]
        xyz[:, :, :, body:body + 1] = feet + tilt(xyz[:, :, :, body:body + 1] - feet, lean)
    assert estimate_pitch(tilt(xyz, 10.0), present) == pytest.approx(10.0, abs=1e-9)


def test_pitch_falls_back_to_level_when_unreliable():
    # Seated: bent knees and thighs across the spine; never upright.
    assert estimate_pitch(tilt(seated(frames=30), 15.0), np.ones((30, 1), bool)) == 0.0
    # Too few upright frames, or a bent-over body whose legs and spine point differently.
    xyz, present = standing(frames=MIN_UPRIGHT_FRAMES - 1)
    assert estimate_pitch(tilt(xyz, 15.0), present) == 0.0
    xyz, present = standing(frames=20)
    hips = xyz[:, :, 12:13]
    upper = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20, 21, 22, 23, 24]
    xyz[:, :, upper] = hips + tilt(xyz[:, :, upper] - hips, 40.0)
    assert estimate_pitch(xyz, present) == 0.0
    # A pitch beyond MAX_PITCH_DEG is not believed.
    xyz, present = standing(frames=20)
    assert estimate_pitch(tilt(xyz, MAX_PITCH_DEG - 1.0), present) == pytest.approx(
        MAX_PITCH_DEG - 1.0)
    assert estimate_pitch(tilt(xyz, MAX_PITCH_DEG + 1.0), present) == 0.0
    # Absent or non-finite bodies count for nothing.
    assert estimate_pitch(tilt(xyz, 15.0), np.zeros_like(present)) == 0.0
    xyz[:, :, 20] = np.nan
    assert estimate_pitch(tilt(xyz, 15.0), present) == 0.0
    with pytest.raises(ValueError, match=r'present of shape \(20, 1\)'):
        estimate_pitch(xyz, present[:3])


def test_tilted_camera_gives_the_level_camera_result():
    # Two people 1.5 m below a camera looking down by 15 degrees. Levelling undoes the tilt
    # exactly, so every seed hides the same joints as the level camera and places the same
    # boxes, tilted; the floor lies 1.5 m below the camera (without levelling the lowest foot
    # would be only 1.45 cos 15 - 3 sin 15 = 0.62 m below it).
    level, present = standing(frames=12, roots=((-0.3, 3.0), (0.6, 3.6)), camera_height=1.5)
    tilted = tilt(level, 15.0)
    counts = np.zeros(NUM_JOINTS)
    for seed in range(40):
        expected, level_scene = realistic_occlusion(level, present, np.random.default_rng(seed))
        occluded, scene = realistic_occlusion(tilted, present, np.random.default_rng(seed))
        assert scene.pitch_deg == pytest.approx(15.0) and level_scene.pitch_deg == 0.0
        assert scene.floor_y == pytest.approx(-1.5 + 0.05 - FLOOR_MARGIN)
        assert scene.kinds == level_scene.kinds
        np.testing.assert_array_equal(occluded, expected)
        np.testing.assert_allclose(box_corners(scene),
                                   tilt(box_corners(level_scene).T, 15.0).T, atol=1e-9)
        np.testing.assert_array_equal(occluded, ray_box_occluded(
            np.moveaxis(tilted, 0, -1), scene.centers, scene.half_sizes, scene.yaws,
            scene.pitch_deg))
        counts += occluded[0, :, 0]
    # Measured (first body): left knee, ankle and foot hidden in 30 of the 40 scenes, right
    # ones in 24, head never, neck once.
    assert counts[list(LEGS)].min() >= 24
    assert counts[[HEAD, NECK]].max() <= 4


# -- standing people behind furniture ------------------------------------------------------


def test_standing_person_behind_table_hides_legs_not_head():
    # Camera 1 m above the floor, person at z = 3. Table 1.2 x 0.8 x 0.75 m spanning z 2.0-2.8,
    # top at y = -0.25. The ray to a foot (y -0.95 at z 2.9) is at y -0.92 at z = 2.8: below the
    # top. The ray to a knee (y -0.5) is at y -0.33 .. -0.47 over the table: below the top.
    # The ray to a hip (y -0.08) stays above -0.08 and the head (y 0.65) is above the camera.
    xyz, _ = standing()
    table = (np.array([[0.0, -1.0 + 0.375, 2.4]]), np.array([[0.6, 0.375, 0.4]]), np.zeros(1))
    hidden = ray_box_occluded(np.moveaxis(xyz, 0, -1)[0, :, 0], *table)
    assert hidden[list(LEGS)].all()
    assert not hidden[[HEAD, NECK, LEFT_HIP, RIGHT_HIP]].any()


def test_sampled_tables_hide_legs_and_never_the_head():
    counts = np.zeros(NUM_JOINTS)
    for seed in range(40):
        xyz, present = standing(camera_height=1.2)
        occluded, scene = realistic_occlusion(xyz, present, np.random.default_rng(seed),
                                              max_items=1, kinds=('table',))
        assert scene.kinds in ([], ['table'])
        counts += occluded[0, :, 0]
    # The head is above the camera and the tables are 0.78 m tall at most: never hidden.
    assert counts[HEAD] == 0 and counts[NECK] == 0
    assert counts[list(LEGS)].min() >= 0.6 * 40


# -- scenes -----------------------------------------------------------------------------------


def test_scene_invariants():
    xyz, present = standing(frames=4, roots=((-0.5, 3.0), (0.7, 3.8)), camera_height=1.1)
    xyz[0, :, :, 1] += np.linspace(0, 0.3, 4)[:, None]       # the second person walks sideways
    # Feet (y = 0.05 above the floor) are the lowest joints: floor 1.1 m - 0.05 + 0.03 below.
    expected_floor = -1.1 + 0.05 - FLOOR_MARGIN
    seen = set()
    for seed in range(60):
        occluded, scene = realistic_occlusion(xyz, present, np.random.default_rng(seed))
        assert scene.floor_y == pytest.approx(expected_floor)
        assert 1 <= len(scene) <= 3
        assert scene.centers.shape == (len(scene), 3) and scene.yaws.shape == (len(scene),)
        np.testing.assert_allclose(scene.centers[:, 1] - scene.half_sizes[:, 1], scene.floor_y)
        corners = box_corners(scene)
        assert (corners[..., 2] > 0).all()                     # everything in front of the camera
        for kind, half in zip(scene.kinds, scene.half_sizes):
            spec = OCCLUDER_CATALOGUE[kind]
            for extent, (low, high) in zip(2 * half, (spec.width, spec.height, spec.depth)):
                assert low <= extent <= high
        # The camera is at least MIN_CAMERA_CLEARANCE from every box.
        cos, sin = np.cos(scene.yaws), np.sin(scene.yaws)
        local_x = -cos * scene.centers[:, 0] + sin * scene.centers[:, 2]
        local_z = -sin * scene.centers[:, 0] - cos * scene.centers[:, 2]
        local = np.abs(np.stack([local_x, -scene.centers[:, 1], local_z], axis=1))
        gap = np.linalg.norm(np.maximum(local - scene.half_sizes, 0), axis=1)
        assert (gap >= MIN_CAMERA_CLEARANCE).all()
        assert (occluded.mean(axis=(0, 1)) <= 0.7).all()
        seen.update(scene.kinds)
        points = np.moveaxis(xyz, 0, -1)
        np.testing.assert_array_equal(
            occluded, ray_box_occluded(points, scene.centers, scene.half_sizes, scene.yaws))
    assert len(seen) >= 5


def test_max_hidden_fraction_forces_redraws():
    xyz, present = standing(camera_height=1.2)
    for seed in range(20):
        occluded, _ = realistic_occlusion(xyz, present, np.random.default_rng(seed),
                                          max_hidden_fraction=0.2)
        assert occluded.sum() <= 0.2 * NUM_JOINTS


def test_realistic_occlusion_is_deterministic():
    xyz, present = standing(frames=5, roots=((-0.4, 3.0), (0.5, 3.5)))
    first, scene_a = realistic_occlusion(xyz, present, np.random.default_rng(3))
    again, scene_b = realistic_occlusion(xyz, present, np.random.default_rng(3))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(scene_a.centers, scene_b.centers)
    assert scene_a.kinds == scene_b.kinds
    others = [sample_scene(xyz, present, np.random.default_rng(seed)) for seed in range(4, 8)]
    assert not any(np.array_equal(scene_a.centers, other.centers) for other in others)


def test_absent_bodies_are_never_occluded():
    xyz, present = standing(frames=6, roots=((0.0, 3.0), (0.0, 3.2)))
    present[3:, 1] = False
    xyz[:, 3:, :, 1] = 0.0                                    # absent bodies hold zeros
    for seed in range(20):
        occluded, _ = realistic_occlusion(xyz, present, np.random.default_rng(seed))
        assert not occluded[3:, :, 1].any()


def test_nothing_present_gives_an_empty_scene():
    xyz = np.zeros((3, 4, NUM_JOINTS, 2))
    occluded, scene = realistic_occlusion(xyz, np.zeros((4, 2), bool), np.random.default_rng(0))
    assert not occluded.any() and occluded.shape == (4, NUM_JOINTS, 2)
    assert len(scene) == 0 and np.isnan(scene.floor_y)


def test_sample_scene_rejects_bad_input():
    xyz, present = standing(frames=2)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r'xyz of shape \(3, T, 25, M\), got \(3, 2, 24, 1\)'):
        sample_scene(xyz[:, :, :24], present, rng)
    with pytest.raises(ValueError, match=r'present of shape \(2, 1\)'):
        sample_scene(xyz, present[:1], rng)
    with pytest.raises(ValueError, match='numpy.random.Generator, got int'):
        sample_scene(xyz, present, 0)
    with pytest.raises(ValueError, match="kinds from .*got \\('bed',\\)"):
        sample_scene(xyz, present, rng, kinds=('bed',))
    centred = xyz - xyz[:, :, 20:21]                           # relative, not camera space
    with pytest.raises(ValueError, match='camera-space coordinates'):
        sample_scene(centred, present, rng)


# -- random occlusion and apply_occlusion -----------------------------------------------------


def test_random_occlusion_hits_exactly_ratio_of_present_slots():
    xyz = np.zeros((3, 7, NUM_JOINTS, 2))
    present = np.zeros((7, 2), bool)
    present[:, 0] = True
    present[2:5, 1] = True                                     # 10 frames present: 250 slots
    for seed in range(10):
        occluded = random_occlusion(xyz, present, np.random.default_rng(seed))
        assert occluded.sum() == 50
        assert not occluded[~present[:, None, :].repeat(NUM_JOINTS, axis=1)].any()
    assert random_occlusion(xyz, present, np.random.default_rng(0), ratio=0.0).sum() == 0
    full = random_occlusion(xyz, present, np.random.default_rng(0), ratio=1.0)
    np.testing.assert_array_equal(full, np.broadcast_to(present[:, None, :], full.shape))
    # round(0.1 * 250) = 25; one body in one frame: round(0.35 * 25) = round(8.75) = 9
    assert random_occlusion(xyz, present, np.random.default_rng(0), ratio=0.1).sum() == 25
    one = random_occlusion(xyz[:, :1, :, :1], present[:1, :1], np.random.default_rng(0), 0.35)
    assert one.sum() == 9


def test_random_occlusion_is_uniform_over_slots():
    xyz = np.zeros((3, 2, NUM_JOINTS, 1))
    present = np.ones((2, 1), bool)                            # 50 slots, 10 hidden per draw
    rng = np.random.default_rng(1)
    counts = sum(random_occlusion(xyz, present, rng).astype(int) for _ in range(2000))
    # Each slot is hidden with probability 0.2; 2000 draws give a standard deviation of 0.009.
    assert 0.17 < counts.min() / 2000 and counts.max() / 2000 < 0.23


def test_random_occlusion_rejects_bad_ratio():
    xyz, present = standing()
    with pytest.raises(ValueError, match='0 <= ratio <= 1, got 1.5'):
        random_occlusion(xyz, present, np.random.default_rng(0), ratio=1.5)


def test_apply_occlusion_ors_with_existing_mask():
    xyz, present = standing(frames=3, roots=((0.0, 3.0), (0.8, 3.5)))
    existing = np.zeros((3, NUM_JOINTS, 2), bool)
    existing[0, HEAD, 0] = existing[2, 5, 1] = True
    none = apply_occlusion(xyz, existing, present, 'none', np.random.default_rng(0))
    np.testing.assert_array_equal(none, existing)
    assert none is not existing
    random = apply_occlusion(xyz, existing, present, 'random', np.random.default_rng(0))
    expected = existing | random_occlusion(xyz, present, np.random.default_rng(0))
    np.testing.assert_array_equal(random, expected)
    realistic = apply_occlusion(xyz, existing, present, 'realistic', np.random.default_rng(5))
    expected = existing | realistic_occlusion(xyz, present, np.random.default_rng(5))[0]
    np.testing.assert_array_equal(realistic, expected)
    assert realistic[0, HEAD, 0] and realistic[2, 5, 1]
    assert existing.sum() == 2                                 # the input is not modified


def test_apply_occlusion_rejects_bad_mode_and_shape():
    xyz, present = standing(frames=2)
    existing = np.zeros((2, NUM_JOINTS, 1), bool)
    with pytest.raises(ValueError, match="mode in \\('none', 'realistic', 'random'\\), "
                                         "got 'furniture'"):
        apply_occlusion(xyz, existing, present, 'furniture', np.random.default_rng(0))
    with pytest.raises(ValueError, match=r'occluded of shape \(2, 25, 1\)'):
        apply_occlusion(xyz, existing[:1], present, 'none', np.random.default_rng(0))
