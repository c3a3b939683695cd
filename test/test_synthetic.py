"""The synthetic benchmark: ids, determinism, balance, kinematics, occlusion and learnability."""

import json
import os
import warnings

from iospstl_ros.datasets import synthetic
from iospstl_ros.datasets.format import open_split
from iospstl_ros.layout import CENTER_JOINT, EDGES, LEFT_SHOULDER, RIGHT_SHOULDER
import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from training import occlusion_stats, synthesize

LEG_JOINTS = (13, 14, 15, 17, 18, 19)              # knees, ankles, feet
UPPER_JOINTS = (2, 3, 4, 8, 20)                    # neck, head, shoulders, spine shoulder
SANITY_SAMPLES = 300


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    """Write a 120-sample data set with the CLI (realistic occlusion, seed 5)."""
    root = tmp_path_factory.mktemp('synthetic')
    synthesize.main(['--out', str(root), '--num-samples', '120', '--seed', '5',
                     '--workers', '1'])
    return root


@pytest.fixture(scope='module')
def sequences():
    """Generate the first 300 sequences of seed 0 with realistic occlusion."""
    return [synthetic.generate_sequence(0, index) for index in range(SANITY_SAMPLES)]


def test_sample_ids_follow_the_documented_order():
    assert str(synthetic.sample_id(0)) == 'S001C001P001R001A001'
    assert str(synthetic.sample_id(1)) == 'S001C002P002R001A002'
    assert str(synthetic.sample_id(1019)) == 'S001C003P020R001A017'
    assert str(synthetic.sample_id(1020)) == 'S001C001P001R002A001'
    assert str(synthetic.sample_id(2040)) == 'S002C001P001R001A001'
    assert synthetic.sample_id(16).label == 16
    names = {str(synthetic.sample_id(i)) for i in range(4080)}
    assert len(names) == 4080
    for index in (0, 1, 37, 1019, 1020, 2039, 2040, 4079, 12345):
        assert synthetic.sample_index(str(synthetic.sample_id(index))) == index


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='camera <= 3, got 4'):
        synthetic.sample_index('S001C004P001R001A001')
    with pytest.raises(ValueError, match='action <= 17, got 18'):
        synthetic.sample_index('S001C001P001R001A018')
    with pytest.raises(ValueError, match='index: expected an int >= 0, got -1'):
        synthetic.sample_id(-1)
    with pytest.raises(ValueError, match='seed: expected an int >= 0'):
        synthetic.generate_sequence(1.5, 0)
    with pytest.raises(ValueError, match="occlusion in .*got 'furniture'"):
        synthetic.generate_sequence(0, 0, 'furniture')
    with pytest.raises(ValueError, match="benchmark in .*got 'xset'"):
        synthetic.split_part(synthetic.sample_id(0), 'xset')
    with pytest.raises(ValueError, match=r'bone_lengths of shape \(25,\), got \(24,\)'):
        synthetic.forward_kinematics({}, np.ones(24), 3)
    with pytest.raises(ValueError, match=r"channel 'knee_r' of shape \(3,\) .*got shape \(4,\)"):
        synthetic.forward_kinematics({'knee_r': np.zeros(4)}, np.ones(25), 3)


def test_same_seed_same_bytes_other_seed_other_motion():
    a = synthetic.generate_sequence(3, 21)
    b = synthetic.generate_sequence(3, 21)
    assert a.xyz.tobytes() == b.xyz.tobytes()
    assert np.array_equal(a.occluded, b.occluded) and np.array_equal(a.present, b.present)
    c = synthetic.generate_sequence(4, 21)
    assert c.name == a.name and c.label == a.label
    t = min(a.xyz.shape[1], c.xyz.shape[1])
    assert np.abs(a.xyz[:, :t, :, 0] - c.xyz[:, :t, :, 0]).mean() > 0.05


def test_motion_does_not_depend_on_the_occlusion_mode():
    clean = synthetic.generate_sequence(0, 9, 'none')
    hidden = synthetic.generate_sequence(0, 9, 'realistic')
    noisy = synthetic.generate_sequence(0, 9, 'random')
    assert clean.xyz.tobytes() == hidden.xyz.tobytes() == noisy.xyz.tobytes()
    assert not clean.occluded.any()
    slots = 25 * noisy.present.sum()
    assert noisy.occluded.sum() == round(0.2 * slots)
    sequence, scene = synthetic.realistic_scene(0, 9)
    assert np.array_equal(sequence.occluded, hidden.occluded)
    assert scene.centers.shape == (len(scene), 3)


def test_written_files_are_deterministic(written, tmp_path):
    again = tmp_path / 'again'
    synthesize.main(['--out', str(again), '--num-samples', '120', '--seed', '5',
                     '--workers', '2'])
    other = tmp_path / 'other'
    synthesize.main(['--out', str(other), '--num-samples', '120', '--seed', '6',
                     '--workers', '1', '--benchmarks', 'xsub'])
    for benchmark in ('xsub', 'xview'):
        for part in ('train', 'val'):
            for suffix in ('data.npy', 'occluded.npy', 'present.npy', 'B.npy', 'names.txt'):
                name = f'{benchmark}/{part}_{suffix}'
                assert (written / name).read_bytes() == (again / name).read_bytes(), name
    assert not (other / 'xview').exists()
    assert ((written / 'xsub/train_data.npy').read_bytes()
            != (other / 'xsub/train_data.npy').read_bytes())
    assert ((written / 'xsub/train_names.txt').read_bytes()
            == (other / 'xsub/train_names.txt').read_bytes())


def test_class_and_split_balance(written):
    xsub_train, xsub_val = open_split(str(written / 'xsub'), 'train'), open_split(
        str(written / 'xsub'), 'val')
    xview_train, xview_val = open_split(str(written / 'xview'), 'train'), open_split(
        str(written / 'xview'), 'val')
    assert (len(xsub_train), len(xsub_val), len(xview_train), len(xview_val)) == (60, 60, 80, 40)
    # xsub train = odd subjects = even indices; 2k mod 17 for k < 60 hits the even residues
    # 4 times and the odd ones 3 times; the odd indices favour label 0 and the odd labels.
    assert np.bincount(xsub_train.labels, minlength=17).tolist() == [4, 3] * 8 + [4]
    assert np.bincount(xsub_val.labels, minlength=17).tolist() == [4] + [4, 3] * 8
    total = np.bincount(np.concatenate([xview_train.labels, xview_val.labels]), minlength=17)
    assert total.tolist() == [8] + [7] * 16
    assert {int(name[9:12]) % 2 for name in xsub_train.names} == {1}
    assert {int(name[9:12]) % 2 for name in xsub_val.names} == {0}
    assert {name[4:8] for name in xview_val.names} == {'C001'}
    assert {name[4:8] for name in xview_train.names} == {'C002', 'C003'}
    for split in (xsub_train, xsub_val, xview_train, xview_val):
        assert split.names == sorted(split.names)
        assert [int(name[-3:]) - 1 for name in split.names] == split.labels.tolist()
    meta = json.loads((written / 'xsub' / 'meta.json').read_text())
    assert meta['source'] == 'synthetic' and meta['seed'] == 5
    assert meta['occlusion'] == 'realistic' and meta['generator_version'] == 2
    assert meta['classes'] == list(synthetic.CLASS_NAMES) and len(meta['classes']) == 17
    assert meta['action_ids'] == list(synthetic.ACTION_IDS)
    assert open_split(str(written / 'xsub'), 'val').action_ids == synthetic.ACTION_IDS
    assert meta['split']['train_subjects'] == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    assert meta['parts'] == {'train': 60, 'val': 60} and meta['max_frames'] == 300
    assert os.path.exists(written / 'synthesize.json')


def test_stored_arrays_match_the_generator(written):
    split = open_split(str(written / 'xview'), 'val')
    for index in (0, 13, 39):
        sequence = synthetic.generate_sequence(5, synthetic.sample_index(split.names[index]))
        t = sequence.xyz.shape[1]
        assert split.num_frames[index] == t and 40 <= t <= 150
        hidden = sequence.occluded & sequence.present[:, None, :]
        assert np.array_equal(split.occluded[index, :t], hidden)
        assert np.isnan(split.data[index, :, :t]).all(axis=0).tolist() == hidden.tolist()
        visible = ~hidden & sequence.present[:, None, :]
        assert np.array_equal(split.data[index, :, :t][:, visible], sequence.xyz[:, visible])
        assert not split.present[index, t:].any() and (split.data[index, :, t:] == 0).all()
        assert split.B[index].tolist() == hidden.any(axis=(0, 2)).astype(int).tolist()


def test_frame_counts_and_presence(written):
    for part in ('train', 'val'):
        split = open_split(str(written / 'xsub'), part)
        frames = np.asarray(split.num_frames)
        assert frames.min() >= 40 and frames.max() <= 150
        for index in range(len(split)):
            t = frames[index]
            two = split.labels[index] in synthetic.TWO_PERSON_CLASSES
            assert split.present[index, :t, 0].all()
            assert split.present[index, :t, 1].all() == two
            assert split.present[index, :, 1].any() == two
            if not two:
                assert (split.data[index, :, :, :, 1] == 0).all()


@pytest.mark.parametrize('label', synthetic.TWO_PERSON_CLASSES)
def test_two_person_classes_have_two_moving_bodies(label):
    sequence = synthetic.generate_sequence(1, label, 'none')
    assert sequence.label == label and sequence.present.all()
    for body in (0, 1):
        joints = sequence.xyz[..., body]                              # (3, T, 25)
        spread = np.linalg.norm(joints.max(axis=1) - joints.min(axis=1), axis=0)   # (25,)
        assert spread.max() > 0.25, (body, spread.max())
    centres = sequence.xyz[:, :, CENTER_JOINT, :]
    distance = np.linalg.norm(centres[..., 0] - centres[..., 1], axis=0)
    assert distance.min() > 0.15 and distance.max() < 2.5
    assert 1.5 < centres[2].mean() < 4.5                              # depth, metres


def test_forward_kinematics_keeps_every_bone_length_exactly():
    rng = np.random.default_rng(0)
    lengths = synthetic.make_subject(0, 3).bone_lengths
    channels = ['yaw', 'pelvis_pitch', 'pelvis_roll', 'spine_pitch', 'spine_roll', 'spine_yaw',
                'neck_pitch'] + [f'{name}_{side}' for side in 'rl' for name in (
                    'shoulder_flex', 'shoulder_abd', 'shoulder_twist', 'elbow', 'wrist',
                    'hip_flex', 'hip_abd', 'knee', 'ankle')]
    pose = {name: rng.uniform(-2.0, 2.0, size=7) for name in channels}
    joints = synthetic.forward_kinematics(pose, lengths, 7)
    assert joints.shape == (7, 25, 3)
    rest = synthetic.forward_kinematics({}, lengths, 1)[0]
    for a, b in EDGES:
        bone = np.linalg.norm(joints[:, a] - joints[:, b], axis=1)
        np.testing.assert_allclose(bone, np.linalg.norm(rest[a] - rest[b]), atol=1e-12)
    # The rest pose stands upright: head above the neck above the spine, feet below the hips.
    assert rest[3, 1] > rest[2, 1] > rest[20, 1] > rest[1, 1] > rest[0, 1] > rest[13, 1]
    assert rest[13, 1] > rest[14, 1] and 1.35 < rest[3, 1] - rest[15, 1] < 1.95
    assert rest[8, 0] > 0 > rest[4, 0]                                # right = +x in body frame


def test_generated_bone_lengths_are_constant_within_noise(sequences):
    for sequence in sequences[:40]:
        for body in np.flatnonzero(sequence.present.any(axis=0)):
            joints = sequence.xyz[..., body].astype(np.float64)
            for a, b in EDGES:
                bone = np.linalg.norm(joints[:, :, a] - joints[:, :, b], axis=0)
                # Noise of <= 10 mm per coordinate gives a std of <= ~15 mm.
                assert bone.std() < 0.02, (sequence.name, a, b, bone.std())


def test_subjects_differ_and_the_person_faces_the_frontal_camera():
    heights = [synthetic.make_subject(0, s).bone_lengths.sum() for s in range(1, 21)]
    assert np.ptp(heights) > 0.2
    # Camera 1 (azimuth 0): the person's right shoulder is on the sensor's left (+x).
    for index in (0, 3, 6):
        sequence = synthetic.generate_sequence(0, index, 'none')
        shoulders = sequence.xyz[0, :, RIGHT_SHOULDER, 0] - sequence.xyz[0, :, LEFT_SHOULDER, 0]
        assert shoulders.mean() > 0.2
        tallest = (sequence.xyz[1, :, 3, 0] - sequence.xyz[1, :, [15, 19], 0].min()).max()
        assert 1.3 < tallest < 2.0
        assert -1.35 < sequence.xyz[1, :, [15, 19], 0].min() < -0.5   # camera 0.8-1.2 m high


def test_realistic_occlusion_rates_within_the_documented_range(sequences):
    fractions, hidden, slots = [], np.zeros(25), 0
    for sequence in sequences:
        mask = sequence.occluded & sequence.present[:, None, :]
        present = sequence.present.sum()
        fractions.append(mask.sum() / (25 * present))
        hidden += mask.sum(axis=(0, 2))
        slots += present
    fractions = np.array(fractions)
    assert 0.2 <= fractions.mean() <= 0.45
    assert fractions.max() <= 0.7
    per_joint = hidden / slots
    assert per_joint[list(LEG_JOINTS)].mean() > 3 * per_joint[list(UPPER_JOINTS)].mean()
    stats = occlusion_stats.occlusion_statistics(
        np.stack([np.pad(s.occluded, ((0, 150 - s.occluded.shape[0]), (0, 0), (0, 0)))
                  for s in sequences]),
        np.stack([np.pad(s.present, ((0, 150 - s.present.shape[0]), (0, 0)))
                  for s in sequences]),
        np.array([s.label for s in sequences]), classes=synthetic.CLASS_NAMES)
    assert stats['per_sample']['mean'] == pytest.approx(fractions.mean())
    assert stats['per_joint']['left_knee']['slots'] == pytest.approx(per_joint[13])


def _centre(body, visible):
    """Centre joint per frame, or the mean of the visible joints where it is hidden; (3, T)."""
    counts = visible.sum(axis=1)
    mean = np.where(visible[None], body, 0.0).sum(axis=2) / np.maximum(counts, 1)
    return np.where(visible[None, :, CENTER_JOINT], body[:, :, CENTER_JOINT], mean)


def _features(xyz, occluded, present, segments=4):
    """Hand-made features of one sequence; occluded joints are 0 in relative coordinates.

    Per temporal segment: mean shoulder-aligned pose relative to the centre (75), mean joint
    speed (25) and mean centre displacement (3); plus second-body presence, distance and
    speed (4).
    """
    visible = ~occluded[:, :, 0]
    body = np.asarray(xyz[..., 0], dtype=np.float64)                 # (3, T, 25)
    centre = _centre(body, visible)
    shoulders = visible[:, LEFT_SHOULDER] & visible[:, RIGHT_SHOULDER]
    angle = 0.0
    if shoulders.any():
        v = (body[:, shoulders, RIGHT_SHOULDER] - body[:, shoulders, LEFT_SHOULDER]).mean(axis=1)
        angle = np.arctan2(v[2], v[0])
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    relative = np.einsum('ij,jtv->itv', rotation,
                         np.where(visible[None], body - centre[:, :, None], 0.0))
    path = rotation @ (centre - centre[:, :1])
    speed = np.abs(np.diff(relative, axis=1)).sum(axis=0)             # (T - 1, 25)
    t = body.shape[1]
    edges = np.linspace(0, t, segments + 1).round().astype(int)
    parts = []
    for a, b in zip(edges[:-1], edges[1:]):
        parts += [relative[:, a:b].mean(axis=1).ravel(), speed[a:max(b - 1, a + 1)].mean(axis=0),
                  path[:, a:b].mean(axis=1)]
    if present[:, 1].any():
        other = _centre(np.asarray(xyz[..., 1], dtype=np.float64), ~occluded[:, :, 1])
        distance = np.linalg.norm(other - centre, axis=0)
        parts.append([1.0, distance[:t // 2].mean(), distance[t // 2:].mean(),
                      np.abs(np.diff(other, axis=1)).sum(axis=0).mean()])
    else:
        parts.append([0.0, 0.0, 0.0, 0.0])
    return np.concatenate(parts)


def test_a_simple_classifier_learns_the_task_and_occlusion_hurts_it(sequences):
    labels = np.array([s.label for s in sequences])
    train = np.array([synthetic.split_part(synthetic.sample_id(i), 'xsub') == 'train'
                      for i in range(len(sequences))])
    lower_body = np.zeros((1, 25, 2), dtype=bool)
    lower_body[:, list((0, 12, 16) + LEG_JOINTS)] = True
    variants = {
        'clean': [_features(s.xyz, np.zeros_like(s.occluded), s.present) for s in sequences],
        'occluded': [_features(s.xyz, s.occluded, s.present) for s in sequences],
        'no lower body': [_features(s.xyz, np.broadcast_to(lower_body, s.occluded.shape),
                                    s.present) for s in sequences],
    }
    scores = {}
    for name, make in (('ridge', lambda: RidgeClassifier(alpha=10.0)),
                       ('centroid', NearestCentroid)):
        for variant, features in variants.items():
            features = np.stack(features)
            model = make_pipeline(StandardScaler(), make())
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', UserWarning)     # constant features
                model.fit(features[train], labels[train])
            scores[name, variant] = (model.predict(features[~train]) == labels[~train]).mean()
    # 17 classes, chance 0.06. Measured on seed 0 (clean / occluded / no lower body):
    # ridge 0.97 / 0.85 / 0.89, nearest centroid 0.92 / 0.67 / 0.87.
    assert scores['ridge', 'clean'] >= 0.85
    assert scores['centroid', 'clean'] >= 0.75
    assert scores['ridge', 'occluded'] <= scores['ridge', 'clean'] - 0.06
    assert scores['centroid', 'occluded'] <= scores['centroid', 'clean'] - 0.1
    assert scores['ridge', 'occluded'] >= 0.4
    assert scores['ridge', 'no lower body'] <= scores['ridge', 'clean'] - 0.04
