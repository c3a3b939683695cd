"""Time the KNN imputer against scikit-learn's KNNImputer and an earlier version, side by side.

Synthetic skeleton windows (camera-space metres, 50 frames, 25 joints, 2 bodies flattened in
C, T, V, M order: 7,500 features; a second body in 30 %; furniture-like occlusion hides the
lower legs of most people for a stretch of frames, plus 1 % of random joints):

(a) one NTU-60-sized cluster (672 windows) imputed from itself, as ``training.impute`` does:
    ``nan_knn_impute`` with the skeleton layout (groups and blocks), groups only and no hints, the
    baseline (the imputer as of ``--baseline``, loaded from git history) with the layout, and
    ``KNNImputer(n_neighbors=5, weights='distance')``; rounds interleave all of them;
(b) ``--full``: an NTU-60-xsub-sized set (40,091 + 16,487 windows, 60 clusters) in
    memory-mapped files: bank build, train and test imputation time and peak memory;
(c) online: one window against its 667-row cluster of a 40,000-window float16 bank with the
    body slots as blocks (as ``model_dir`` loads a model), window by window, ours and the
    baseline alternating: back to back (the cluster stays in the CPU caches) and ``--gap``
    seconds apart (as a node's windows come; the cluster has left the caches); the first
    window after start-up (``compile_kernels`` and ``ClusterBank.prepare``, as
    ``Pipeline.warm_up``), straight after it and ``--gap`` seconds after it (a node's first
    window comes 50 frames after a body appears), each beside the same windows timed later in
    the same state; the compiler's cost in fresh processes.

    python -m benchmarks.bench_imputer                # (a) and (c)
    python -m benchmarks.bench_imputer --full         # (a), (b) and (c)
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import types

from iospstl_ros.imputation import (
    ClusterBank, compile_kernels, coordinate_blocks, coordinate_groups, nan_knn_impute)
from iospstl_ros.layout import (MAX_BODIES, NUM_CHANNELS, NUM_JOINTS, STANDING_POSE,
                                WINDOW_FRAMES)
import numpy as np
from tqdm import tqdm

#: Joints that move most in the synthetic actions (arms and hands).
ARM_JOINTS = np.array([5, 6, 7, 9, 10, 11, 21, 22, 23, 24])
GROUPS, BLOCKS = coordinate_groups(WINDOW_FRAMES), coordinate_blocks(WINDOW_FRAMES)


def synthetic_sequences(n, rng, action=None, num_frames=WINDOW_FRAMES, absent_as_missing=False):
    """Occluded synthetic skeleton windows, flattened: (n, 7500) float32, NaN where occluded.

    ``action`` draws the motion the windows share (``rng`` if None); ``absent_as_missing``
    holds an absent second body as NaN (as a bank stores donors) instead of 0 (a window).
    """
    action = rng if action is None else action
    t, v, m = num_frames, NUM_JOINTS, MAX_BODIES
    amplitude = np.full(v, 0.03)
    amplitude[ARM_JOINTS] = 0.25
    amplitude = amplitude[:, None] * action.uniform(0.2, 1.0, (v, 3))
    frequency, phase = action.uniform(0.3, 1.5, (v, 3)), action.uniform(0, 2 * np.pi, (v, 3))
    seconds = np.arange(t) / 30.0
    motion = amplitude * np.sin(2 * np.pi * frequency * seconds[:, None, None] + phase)
    xyz = np.zeros((n, t, v, m, 3))
    present = np.zeros((n, m), dtype=bool)
    present[:, 0] = True
    present[:, 1] = rng.random(n) < 0.3
    for body in range(m):
        root = np.stack([rng.uniform(-0.8, 0.8, n), rng.uniform(-1.3, -0.9, n),
                         rng.uniform(2.5, 4.0, n)], axis=-1)
        size = rng.uniform(0.85, 1.1, n)[:, None, None, None]
        speed = rng.uniform(0.8, 1.2, n)[:, None, None, None]
        pose = STANDING_POSE[None, None] * size + motion[None] * speed * size
        pose = pose + root[:, None, None, :] + rng.normal(0, 0.01, (n, t, v, 3))
        xyz[:, :, :, body] = np.where(present[:, body, None, None, None], pose, 0.0)
    blocked = rng.random((n, m)) < 0.8
    top = rng.uniform(0.3, 1.0, (n, m))
    first, last = rng.integers(0, t // 3, (n, m)), rng.integers(2 * t // 3, t + 1, (n, m))
    frames = np.arange(t)
    in_time = (frames[None, None] >= first[..., None]) & (frames[None, None] < last[..., None])
    low = STANDING_POSE[:, 1][None, None] < top[..., None]                  # (n, m, v)
    occluded = (blocked[..., None, None] & in_time[..., :, None] & low[:, :, None, :]
                ).transpose(0, 2, 3, 1)
    occluded |= rng.random(occluded.shape) < 0.01
    occluded &= present[:, None, None, :]
    if absent_as_missing:
        occluded |= ~present[:, None, None, :]
    xyz[np.broadcast_to(occluded[..., None], xyz.shape)] = np.nan
    return np.moveaxis(xyz, -1, 1).reshape(n, -1).astype(np.float32)


def baseline_module(revision):
    """Load the imputation module as of a git revision (None when git cannot give it)."""
    try:
        source = subprocess.run(['git', 'show', f'{revision}:iospstl_ros/imputation.py'],
                                capture_output=True, text=True, check=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        print(f'baseline {revision}: not available ({error}); timing ours only')
        return None
    module = types.ModuleType(f'imputation_{revision}')
    exec(compile(source.replace('cache=True', 'cache=False'), module.__name__, 'exec'),
         module.__dict__)
    return module


def timed(function):
    """Seconds ``function()`` took, and what it returned."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def one_cluster(options, baseline):
    """Run (a): one cluster imputed from itself; best and median of interleaved rounds."""
    from sklearn.impute import KNNImputer
    rows = synthetic_sequences(options.cluster_size, np.random.default_rng(options.seed))
    print(f'(a) one cluster imputed from itself: {rows.shape[0]} x {rows.shape[1]} float32, '
          f'{np.isnan(rows).mean():.1%} of values missing')
    runs = {'ours (groups, blocks)': lambda: nan_knn_impute(rows, rows, groups=GROUPS,
                                                            blocks=BLOCKS),
            'ours (groups)': lambda: nan_knn_impute(rows, rows, groups=GROUPS),
            'ours (no hints)': lambda: nan_knn_impute(rows, rows)}
    if baseline:
        runs[f'baseline {options.baseline}'] = lambda: baseline.nan_knn_impute(
            rows, rows, groups=GROUPS, blocks=BLOCKS)
    sklearn = 'scikit-learn KNNImputer'
    outputs = {name: run() for name, run in runs.items()}                   # warm-up
    runs[sklearn] = lambda: KNNImputer(n_neighbors=5, weights='distance').fit(rows).transform(
        rows.astype(np.float64))
    times = {name: [] for name in runs}
    for round_ in range(options.rounds):
        for name, run in runs.items():
            if name != sklearn or round_ < options.sklearn_rounds:
                elapsed, outputs[name] = timed(run)
                times[name].append(elapsed)
    best_sk, median_sk = min(times[sklearn]), np.median(times[sklearn])
    for name, values in times.items():
        worst = np.nanmax(np.abs(outputs[name] - outputs[sklearn]))
        print(f'    {name:26s} best {min(values):7.3f} s  median {np.median(values):7.3f} s  '
              f'({len(values)} runs): {best_sk / min(values):5.1f}x best to best, '
              f'{median_sk / np.median(values):5.1f}x median; max |x - scikit-learn| '
              f'{worst:.1e} m')


def full_set(options):
    """Run (b): an NTU-60-xsub-sized set in memory-mapped files."""
    clusters, rng = 60, np.random.default_rng(options.seed + 1)
    d = NUM_CHANNELS * WINDOW_FRAMES * NUM_JOINTS * MAX_BODIES
    with tempfile.TemporaryDirectory(dir=options.tmp) as tmp:
        sizes = {'train': options.train_size, 'test': options.test_size}
        labels, paths = {}, {}
        for part, n in sizes.items():
            paths[part] = os.path.join(tmp, f'{part}.npy')
            data = np.lib.format.open_memmap(paths[part], 'w+', np.float32, (n, d))
            labels[part] = rng.integers(0, clusters, n)
            for cluster in tqdm(range(clusters), desc=f'write {part}', leave=False):
                index = np.flatnonzero(labels[part] == cluster)
                data[index] = synthetic_sequences(len(index), rng,
                                                  np.random.default_rng([options.seed, cluster]))
            data.flush()
            del data
        print(f'(b) full set: {sizes["train"]} train + {sizes["test"]} test windows, '
              f'{clusters} clusters, memory-mapped float32')
        start = time.perf_counter()
        bank = ClusterBank.from_clusters(np.zeros((clusters, 8), np.float32),
                                         np.load(paths['train'], mmap_mode='r'),
                                         labels['train'], groups=GROUPS, dtype=np.float16)
        bank.save(os.path.join(tmp, 'bank'))
        bank = ClusterBank.load(os.path.join(tmp, 'bank'), max_cached_clusters=1,
                                blocks=BLOCKS)
        elapsed = {'bank build': time.perf_counter() - start}
        for part in ('train', 'test'):
            start = time.perf_counter()
            data = np.load(paths[part], mmap_mode='r')
            out = np.lib.format.open_memmap(os.path.join(tmp, f'{part}_imputed.npy'), 'w+',
                                            np.float32, data.shape)
            for cluster in tqdm(range(clusters), desc=f'impute {part}', leave=False):
                index = np.flatnonzero(labels[part] == cluster)
                rows = data[index]
                if part == 'train':     # training.impute: each cluster from itself
                    out[index] = nan_knn_impute(rows, rows, groups=GROUPS, blocks=BLOCKS)
                else:                   # the bank, as the robot and evaluation use it
                    out[index] = bank.impute(rows, np.full(len(index), cluster))[0]
            out.flush()
            del out, data
            elapsed[f'impute {part}'] = time.perf_counter() - start
        total = sum(elapsed.values())
        print('    ' + ', '.join(f'{name} {value:.1f} s' for name, value in elapsed.items())
              + f'; total {total:.1f} s ({total / 60:.1f} min)')
        print(f'    peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f}'
              ' GiB (includes pages of the mapped files)')


def compile_cost():
    """Seconds to import the imputer and compile its kernels, cold cache then warm."""
    code = ('import time; t = time.perf_counter(); import iospstl_ros.imputation as m; '
            'i = time.perf_counter() - t; print(i, m.compile_kernels())')
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = [subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                               text=True, check=True).stdout.split() for _ in range(2)]
    return [(float(a), float(b)) for a, b in runs]


def online(options, baseline):
    """Run (c): one window at a time against its cluster of a large bank."""
    from sklearn.impute import KNNImputer
    clusters, rng = 60, np.random.default_rng(options.seed + 2)
    sizes = np.diff(np.linspace(0, options.bank_size, clusters + 1).astype(int))
    labels = np.repeat(np.arange(clusters), sizes)
    donors = np.empty((options.bank_size, NUM_CHANNELS * WINDOW_FRAMES * NUM_JOINTS
                       * MAX_BODIES), np.float16)
    for cluster in tqdm(range(clusters), desc='bank', leave=False):
        donors[labels == cluster] = synthetic_sequences(
            sizes[cluster], rng, np.random.default_rng([options.seed, cluster]),
            absent_as_missing=True)
    cluster = int(np.argmax(sizes))           # prepared at start-up, as the largest
    windows = synthetic_sequences(options.windows, rng,
                                  np.random.default_rng([options.seed, cluster]))
    windows = windows[np.isnan(windows).any(axis=1)]
    print(f'(c) online: one window vs cluster {cluster} ({sizes[cluster]} rows) of a '
          f'{len(donors)}-window float16 bank; {len(windows)} distinct windows')
    (cold_import, cold), (warm_import, warm) = compile_cost()
    print(f'    compiling the kernels in a new process: {cold:.1f} s with an empty numba '
          f'cache, {warm:.2f} s from the cache (import {cold_import:.2f} / {warm_import:.2f} s)')
    banks = {'ours': ClusterBank}
    if baseline:
        banks[f'baseline {options.baseline}'] = baseline.ClusterBank
    firsts = {}     # per imputer and pause: the first window after each start-up
    for name, cls in banks.items():
        bank = cls.from_clusters(np.zeros((clusters, 8), np.float32), donors, labels,
                                 groups=GROUPS, dtype=np.float16, blocks=BLOCKS)
        startups, firsts[name] = [], {0.0: [], options.gap: []}
        for attempt in range(options.startups):     # start-up, then its first window
            for pause in firsts[name]:
                bank._prepared.clear()
                start = time.perf_counter()
                if name == 'ours':
                    compile_kernels()
                bank.prepare()                      # Pipeline.warm_up at the node's start-up
                startups.append(time.perf_counter() - start)
                time.sleep(pause)
                window = windows[attempt:attempt + 1]
                firsts[name][pause].append(
                    1e3 * timed(lambda: bank.impute(window, [cluster]))[0])
        banks[name] = bank
        megabytes = sum(a.nbytes for a in vars(bank._prepared[cluster]).values()
                        if isinstance(a, np.ndarray)) / 1e6
        print(f'    {name}: start-up {np.median(startups):.2f} s (median of {len(startups)}: '
              f'compile, prepare {len(bank._prepared)} clusters, {megabytes:.0f} MB each)')
    times = {name: [] for name in banks}
    outputs = {name: [] for name in banks}
    for _ in tqdm(range(options.passes), desc='online passes', leave=False):
        for window in windows:
            for name, bank in banks.items():
                elapsed, (out, _) = timed(lambda: bank.impute(window[None], [cluster]))
                times[name].append(1e3 * elapsed)
                outputs[name].append(out)
    # Back to back, each window finds its cluster in the CPU caches (the same cluster again).
    # A node's windows come a stride apart (a third of a second a body at 30 fps), and by then
    # the cluster has left the caches: windows ``--gap`` seconds apart show that cost.
    paced = {name: [] for name in banks}
    for window in tqdm(windows, desc='paced windows', leave=False):
        for name, bank in banks.items():
            time.sleep(options.gap)
            paced[name].append(1e3 * timed(lambda: bank.impute(window[None], [cluster]))[0])
    # Why ClusterBank.prepare reads a cluster several times: how fast the caches give it back.
    values, reads = banks['ours']._prepared[cluster].values.view(np.uint32), []
    for _ in range(options.startups):
        time.sleep(options.gap)
        reads.append([1e3 * timed(lambda: np.count_nonzero(values))[0] for _ in range(6)])
    print(f'    one read of the prepared cluster ({values.nbytes / 1e6:.0f} MB of float32), six '
          f'times, {options.gap:g} s after the last window: ' + ', '.join(
              f'{t:.2f}' for t in np.median(reads, axis=0)) + f' ms (medians of {len(reads)})')
    imputer = KNNImputer(n_neighbors=5, weights='distance').fit(
        banks['ours'].cluster_donors(cluster).astype(np.float64))
    count = min(len(windows), options.sklearn_windows)
    sk_times, reference = zip(*[timed(lambda: imputer.transform(w[None].astype(np.float64)))
                                for w in windows[:count]])
    reference = np.concatenate(reference)
    firsts_later = slice(0, options.startups)     # the windows timed first after start-ups
    for name, values in times.items():
        worst = np.nanmax(np.abs(np.concatenate(outputs[name][:count]) - reference))
        later = np.reshape(values, (options.passes, len(windows)))[:, firsts_later]
        print(f'    {name}, max |x - scikit-learn| {worst:.1e} m')
        states = ((0.0, values, later), (options.gap, paced[name], paced[name][firsts_later]))
        for pause, runs, same in states:
            state = 'back to back' if pause == 0 else f'{pause:g} s apart'
            print(f'      {state:13s} p50 {np.percentile(runs, 50):5.2f} ms  p99 '
                  f'{np.percentile(runs, 99):5.2f} ms ({len(runs)} windows); the first after '
                  f'start-up {np.median(firsts[name][pause]):.2f} ms (median of '
                  f'{options.startups}; the same windows later: {np.median(same):.2f} ms)')
    print(f'    scikit-learn         p50 {1e3 * np.median(sk_times):6.1f} ms  ({count} windows)')


def main(args=None):
    """Run the benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--full', action='store_true',
                        help='also run (b), the NTU-60-xsub-sized set (minutes, about 4 GB of '
                             'temporary files)')
    parser.add_argument('--skip-one-cluster', action='store_true', help='skip (a)')
    parser.add_argument('--skip-online', action='store_true', help='skip (c)')
    parser.add_argument('--baseline', default='1627dfc',
                        help='git revision of the imputer to compare with (default: 1627dfc, '
                             'the last one before the rewrite); "none" to skip')
    parser.add_argument('--cluster-size', type=int, default=672,
                        help='windows of the cluster in (a) (default: 672)')
    parser.add_argument('--rounds', type=int, default=7, help='rounds in (a) (default: 7)')
    parser.add_argument('--sklearn-rounds', type=int, default=2,
                        help='rounds of (a) that also run scikit-learn (about 5 s each; '
                             'default: 2)')
    parser.add_argument('--train-size', type=int, default=40091,
                        help='train windows in (b) (default: 40091, NTU-60 xsub)')
    parser.add_argument('--test-size', type=int, default=16487,
                        help='test windows in (b) (default: 16487, NTU-60 xsub)')
    parser.add_argument('--tmp', default=None, help='directory for the files of (b)')
    parser.add_argument('--bank-size', type=int, default=40000,
                        help='windows in the bank of (c) (default: 40000)')
    parser.add_argument('--windows', type=int, default=100,
                        help='distinct windows in (c) (default: 100)')
    parser.add_argument('--passes', type=int, default=8,
                        help='passes over the windows in (c) (default: 8)')
    parser.add_argument('--gap', type=float, default=0.1,
                        help='seconds between the paced windows of (c) (default: 0.1)')
    parser.add_argument('--startups', type=int, default=7,
                        help='start-ups timed in (c), each with its first window (default: 7)')
    parser.add_argument('--sklearn-windows', type=int, default=20,
                        help='windows timed with scikit-learn in (c) (default: 20)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    options = parser.parse_args(args)
    baseline = None if options.baseline == 'none' else baseline_module(options.baseline)
    print(f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')
    if not options.skip_one_cluster:
        one_cluster(options, baseline)
    if options.full:
        full_set(options)
    if not options.skip_online:
        online(options, baseline)


if __name__ == '__main__':
    main()
