"""Time the occlusion synthesis and report how often each joint is hidden.

Prints the mean and 99th-percentile time of :func:`realistic_occlusion` (scene sampling
included) and of :func:`ray_box_occluded` alone on a 300-frame, two-body sequence, then the
per-joint occlusion frequency over random scenes on a standing skeleton::

    python -m benchmarks.bench_occlusion --repeats 300 --scenes 200
"""

import argparse
import time

from iospstl_ros.datasets.occlusion import ray_box_occluded, realistic_occlusion, sample_scene
from iospstl_ros.layout import JOINT_NAMES, MAX_BODIES, MAX_FRAMES, NUM_JOINTS, STANDING_POSE
import numpy as np
from tqdm import tqdm


def standing_sequence(frames, bodies, camera_height, rng):
    """Standing people 2.5-4 m in front of a camera, with a little sway.

    Returns
    -------
    xyz : ndarray of shape (3, frames, 25, bodies)
    present : ndarray of shape (frames, bodies), bool
    """
    xyz = np.zeros((3, frames, NUM_JOINTS, bodies))
    for body in range(bodies):
        root = np.array([rng.uniform(-0.8, 0.8), -camera_height, rng.uniform(2.5, 4.0)])
        sway = 0.03 * np.sin(np.linspace(0, 2 * np.pi, frames))[:, None, None]
        pose = STANDING_POSE[None] + root + sway * np.array([1.0, 0.0, 0.0])
        xyz[:, :, :, body] = np.moveaxis(pose, -1, 0)
    return xyz, np.ones((frames, bodies), dtype=bool)


def timings(function, repeats):
    """Mean and 99th percentile wall time of ``function()`` in milliseconds."""
    function()
    times = []
    for _ in tqdm(range(repeats), desc=getattr(function, '__name__', 'run'), leave=False):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    times = 1e3 * np.asarray(times)
    return times.mean(), np.percentile(times, 99)


def main(args=None):
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=300,
                        help='timed calls per function (default: 300)')
    parser.add_argument('--scenes', type=int, default=200,
                        help='random scenes for the per-joint frequency (default: 200)')
    parser.add_argument('--camera-height', type=float, default=1.2,
                        help='camera height above the floor, metres (default: 1.2)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    options = parser.parse_args(args)
    rng = np.random.default_rng(options.seed)
    xyz, present = standing_sequence(MAX_FRAMES, MAX_BODIES, options.camera_height, rng)
    scenes = (sample_scene(xyz, present, np.random.default_rng([options.seed, i]))
              for i in range(100))
    scene = max(scenes, key=len)                 # the ray caster timed on a 3-box scene
    points = np.moveaxis(xyz, 0, -1)

    def realistic():
        return realistic_occlusion(xyz, present, rng)

    def ray_cast():
        return ray_box_occluded(points, scene.centers, scene.half_sizes, scene.yaws)

    print(f'sequence: {MAX_FRAMES} frames x {NUM_JOINTS} joints x {MAX_BODIES} bodies; '
          f'ray_box_occluded scene: {len(scene)} boxes {scene.kinds}')
    for name, function in (('realistic_occlusion', realistic), ('ray_box_occluded', ray_cast)):
        mean, p99 = timings(function, options.repeats)
        print(f'{name:<22s} mean {mean:7.3f} ms   p99 {p99:7.3f} ms')

    hidden = np.zeros(NUM_JOINTS)
    kinds = {}
    for _ in tqdm(range(options.scenes), desc='scenes', leave=False):
        one_xyz, one_present = standing_sequence(1, 1, options.camera_height, rng)
        occluded, scene = realistic_occlusion(one_xyz, one_present, rng)
        hidden += occluded[0, :, 0]
        for kind in scene.kinds:
            kinds[kind] = kinds.get(kind, 0) + 1
    print(f'\nper-joint occlusion frequency over {options.scenes} scenes '
          f'(one standing body, camera {options.camera_height:.2f} m high):')
    for joint, name in enumerate(JOINT_NAMES):
        share = hidden[joint] / options.scenes
        print(f'{joint:2d} {name:<15s} {share:6.1%} {"#" * int(round(40 * share))}')
    print(f'mean share of joints hidden: {hidden.sum() / (options.scenes * NUM_JOINTS):.1%}; '
          f'items drawn: {dict(sorted(kinds.items()))}')


if __name__ == '__main__':
    main()
