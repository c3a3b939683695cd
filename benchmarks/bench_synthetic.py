"""Speed and Kinect-realism statistics of the synthetic generator (the figures of docs/data.md).

One process, seed 0: sequences per second with realistic occlusion and without; then, over the
first ``--samples`` sequences, what the tracker model did to them: the share of the performer's
joint slots marked inferred (per joint group), how many of those come from the field of view
(bodies clipped at the image edge), the share of one-person samples with a spurious extra body
and its length, and the statures of the 20 subjects of 100 seeds.

    python -m benchmarks.bench_synthetic              # about a minute on one core
    python -m benchmarks.bench_synthetic --samples 3440 --json out.json
"""

import argparse
import json
import time

from iospstl_ros.datasets import synthetic
from iospstl_ros.datasets.synthetic import kinect, scene
import numpy as np

GROUPS = {'trunk and head': (0, 1, 2, 3, 20), 'shoulders and hips': (4, 8, 12, 16),
          'elbows and knees': (5, 9, 13, 17), 'wrists and ankles': (6, 10, 14, 18),
          'hands and feet': (7, 11, 15, 19), 'hand tips and thumbs': (21, 22, 23, 24)}


def speed(samples, occlusion):
    """Sequences per second of ``generate_sequence`` over the first ``samples`` indices."""
    start = time.perf_counter()
    for index in range(samples):
        synthetic.generate_sequence(0, index, occlusion)
    return samples / (time.perf_counter() - start)


def realism(samples):
    """Tracker statistics of the first ``samples`` sequences of seed 0."""
    clipped_calls = []
    clip = kinect._clip_to_view

    def recording_clip(camera):
        result = clip(camera)
        clipped_calls.append(result[1])
        return result

    kinect._clip_to_view = recording_clip
    try:
        inferred, clipped, slots = np.zeros(25), np.zeros(25), 0
        clipped_samples, extra, extra_frames, single = 0, 0, [], 0
        for index in range(samples):
            sample = synthetic.sample_id(index)
            motion, _ = synthetic.sequence_rngs(0, index)
            clipped_calls.clear()
            _, present, mask = scene._animate(sample, 0, motion)
            inferred += mask[:, :, 0].sum(axis=0)
            clipped += clipped_calls[0].sum(axis=0)
            clipped_samples += bool(clipped_calls[0].any())
            slots += len(mask)
            if sample.label not in synthetic.TWO_PERSON_CLASSES:
                single += 1
                if present[:, 1].any():
                    extra += 1
                    extra_frames.append(int(present[:, 1].sum()))
    finally:
        kinect._clip_to_view = clip
    subjects = [synthetic.make_subject(seed, s) for seed in range(100) for s in range(1, 21)]
    child = np.array([s.child for s in subjects])
    stature = np.array([s.stature for s in subjects])
    return {
        'samples': samples,
        'inferred_share': round(float(inferred.sum() / (25 * slots)), 4),
        'inferred_share_by_group': {name: round(float(inferred[list(joints)].sum()
                                                      / (len(joints) * slots)), 4)
                                    for name, joints in GROUPS.items()},
        'clipped_share': round(float(clipped.sum() / (25 * slots)), 4),
        'samples_with_clipped_joints': round(clipped_samples / samples, 4),
        'spurious_body_share_of_one_person_samples': round(extra / max(single, 1), 4),
        'spurious_body_frames_median': float(np.median(extra_frames)) if extra_frames else 0.0,
        'child_share': round(float(child.mean()), 4),
        'adult_stature_mean_std_m': [round(float(stature[~child].mean()), 3),
                                     round(float(stature[~child].std()), 3)],
        'child_stature_range_m': [round(float(stature[child].min()), 3),
                                  round(float(stature[child].max()), 3)],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.bench_synthetic',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=860,
                        help='sequences for the statistics (default: %(default)s, 20 a class)')
    parser.add_argument('--speed-samples', type=int, default=300,
                        help='sequences timed per occlusion mode (default: %(default)s)')
    parser.add_argument('--json', help='also write the figures to this file')
    args = parser.parse_args(argv)
    figures = {'generator_version': synthetic.GENERATOR_VERSION,
               'sequences_per_second': {mode: round(speed(args.speed_samples, mode), 1)
                                        for mode in ('realistic', 'none')}}
    figures.update(realism(args.samples))
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(figures, f, indent=2)
    return figures


if __name__ == '__main__':
    main()
