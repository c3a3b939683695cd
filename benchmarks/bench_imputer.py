"""Time the NaN-aware KNN imputer against scikit-learn's KNNImputer, offline and online.

Three measurements on synthetic skeleton sequences (camera-space metres, 50 frames, 25 joints,
2 bodies, flattened in C, T, V, M order: 7,500 features; an absent second body is 0 and counts
as observed, as in the reference; furniture-like occlusion hides the lower legs of most people
for a stretch of frames, plus a few random joints):

(a) one cluster of NTU-60 size (672 sequences): ``nan_knn_impute`` (with the skeleton layout:
    a joint's coordinates as groups, body slots as blocks; also timed once with groups only
    and with neither) vs ``KNNImputer(n_neighbors=5, weights='distance')`` fitted on the
    cluster and transforming the same rows (the reference pipeline), the largest difference
    and the speed ratio; and this project's own pass, the cluster's windows (an absent body
    held as 0) from its donor rows (held as NaN), against ``fit(donors).transform(windows)``;
(b) ``--full``: an NTU-60-xsub-sized set (40,091 train + 16,487 test sequences, 60 clusters)
    in memory-mapped files in a temporary directory: bank build, train and test imputation
    time and peak memory;
(c) online: one window against its cluster (about 667 rows) of a 40,000-sequence bank,
    p50 / p99 latency, against scikit-learn's ``transform`` of the same window with an imputer
    fitted on that cluster, and the same window against the whole bank. As in a model's bank,
    the donors hold an absent second body as NaN and the windows as 0, and the bank has the
    body slots as blocks (``iospstl_ros.model_dir`` loads it so); the same bank without
    blocks is timed in the same run, window by window. Next to the latencies it prints the
    CPU time the host took from this machine and its memory read speed before and after the
    timed passes (on a shared host both swing, and the latency follows them)::

    python -m benchmarks.bench_imputer                 # (a) and (c)
    python -m benchmarks.bench_imputer --full          # (a), (b) and (c)

Each line holds both sides measured in the same run; in (a) ours runs in rounds before,
between and after the scikit-learn runs, and the ratio is best to best (and median to
median); ``--blas-threads 1`` pins BLAS to one thread for both (on a busy 2-core machine two
BLAS threads can be slower than one).
"""

import argparse
import contextlib
import os
import resource
import tempfile
import threading
import time

from iospstl_ros.imputation import (
    ClusterBank, coordinate_blocks, coordinate_groups, nan_knn_impute)
from iospstl_ros.layout import (MAX_BODIES, NUM_CHANNELS, NUM_JOINTS, STANDING_POSE,
                                WINDOW_FRAMES)
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
from tqdm import tqdm

#: Joints that move most in the synthetic actions (arms and hands).
ARM_JOINTS = np.array([5, 6, 7, 9, 10, 11, 21, 22, 23, 24])


def synthetic_sequences(n, rng, action=None, num_frames=WINDOW_FRAMES, absent_as_missing=False):
    """Occluded synthetic skeleton sequences, flattened.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator
    action : numpy.random.Generator, optional
        Draws the motion shared by the sequences (one "action"); ``rng`` if None.
    num_frames : int
    absent_as_missing : bool
        An absent second body as NaN (how a cluster bank stores its donors) instead of 0
        (how a window to complete holds it).

    Returns
    -------
    rows : ndarray of shape (n, 3 * num_frames * 25 * 2), float32
        NaN where occluded.
    """
    action = rng if action is None else action
    t, v, m = num_frames, NUM_JOINTS, MAX_BODIES
    amplitude = np.full(v, 0.03)
    amplitude[ARM_JOINTS] = 0.25
    amplitude = amplitude[:, None] * action.uniform(0.2, 1.0, (v, 3))
    frequency = action.uniform(0.3, 1.5, (v, 3))
    phase = action.uniform(0, 2 * np.pi, (v, 3))
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
    height = STANDING_POSE[:, 1]
    occluded = np.zeros((n, t, v, m), dtype=bool)
    blocked = rng.random((n, m)) < 0.8
    top = rng.uniform(0.3, 1.0, (n, m))
    first = rng.integers(0, t // 3, (n, m))
    last = rng.integers(2 * t // 3, t + 1, (n, m))
    frames = np.arange(t)
    in_time = (frames[None, None] >= first[..., None]) & (frames[None, None] < last[..., None])
    low = height[None, None] < top[..., None]                          # (n, m, v)
    occluded |= (blocked[..., None, None] & in_time[..., :, None] & low[:, :, None, :]
                 ).transpose(0, 2, 3, 1)
    occluded |= rng.random(occluded.shape) < 0.01
    occluded &= present[:, None, None, :]
    if absent_as_missing:
        occluded |= ~present[:, None, None, :]
    xyz[np.broadcast_to(occluded[..., None], xyz.shape)] = np.nan
    rows = np.moveaxis(xyz, -1, 1).reshape(n, -1)                      # (n, C, T, V, M)
    return rows.astype(np.float32)


def hidden_share(rows):
    """Share of the joints of present bodies that are occluded (NaN); absent bodies are 0."""
    x = rows.reshape(len(rows), NUM_CHANNELS, -1)
    present = ~(x == 0).all(axis=1)
    return np.isnan(x[:, 0]).sum() / present.sum()


def peak_rss_gib():
    """Peak resident set size of this process, GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


class AnonymousPeak:
    """Sample the anonymous (not file-backed) resident memory of this process in a thread."""

    def __init__(self, interval=0.05):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('RssAnon:'):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def one_cluster(options, groups):
    """Run (a): one NTU-60-sized cluster, ours vs scikit-learn."""
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(options.seed)
    rows = synthetic_sequences(options.cluster_size, rng)
    print(f'(a) one cluster: {rows.shape[0]} x {rows.shape[1]} float32, '
          f'{hidden_share(rows):.1%} of joints hidden, '
          f'{np.isnan(rows).any(axis=0).sum()} features with NaN')
    # As the pipeline lays samples out: a joint's coordinates as groups, body slots as blocks.
    layout = {'groups': groups, 'blocks': coordinate_blocks(WINDOW_FRAMES)}
    nan_knn_impute(rows, rows, **layout)                               # warm-up, untimed

    def timed(function):
        start = time.perf_counter()
        result = function()
        return time.perf_counter() - start, result

    # Ours in rounds before, between and after the scikit-learn runs, so that both sides
    # sample the machine's (shared, noisy) speed over the same stretch of time.
    times, groups_times, plain_times, sklearn_times = [], [], [], []
    for round_ in range(options.sklearn_repeats + 1):
        for _ in range(options.repeats):
            elapsed, (ours, unfilled) = timed(lambda: nan_knn_impute(
                rows, rows, return_unfilled=True, **layout))
            times.append(elapsed)
        groups_times.append(timed(lambda: nan_knn_impute(rows, rows, groups=groups))[0])
        plain_times.append(timed(lambda: nan_knn_impute(rows, rows))[0])
        if round_ < options.sklearn_repeats:
            elapsed, reference = timed(lambda: KNNImputer(
                n_neighbors=5, weights='distance').fit(rows).transform(rows))
            sklearn_times.append(elapsed)
    ours_time, ours_median = min(times), float(np.median(times))
    sklearn_time, sklearn_median = min(sklearn_times), float(np.median(sklearn_times))
    groups_time, plain_time = min(groups_times), min(plain_times)
    print(f'    nan_knn_impute (groups, blocks) {ours_time:8.3f} s  (best of {len(times)}, '
          f'median {ours_median:.3f} s; {unfilled} values left NaN)')
    print(f'    nan_knn_impute (groups)         {groups_time:8.3f} s  (best of '
          f'{len(groups_times)})')
    print(f'    nan_knn_impute (neither)        {plain_time:8.3f} s  (best of {len(plain_times)})')
    print(f'    sklearn KNNImputer              {sklearn_time:8.3f} s  (best of '
          f'{len(sklearn_times)}, median {sklearn_median:.3f} s)')
    print(f'    speed ratio {sklearn_time / ours_time:.0f}x best to best (median to median '
          f'{sklearn_median / ours_median:.0f}x; groups only {sklearn_time / groups_time:.0f}x, '
          f'neither {sklearn_time / plain_time:.0f}x); max |ours - sklearn| = '
          f'{np.abs(ours - reference).max():.2e} (sklearn on float32 input)')
    # The pipeline's own pass (iospstl_ros.completion): windows holding an absent body as 0,
    # from donor rows holding it as NaN (a one-person donor gives no second body).
    donors = synthetic_sequences(options.cluster_size, np.random.default_rng(options.seed),
                                 absent_as_missing=True)
    windows = np.where(np.isnan(donors) & ~np.isnan(rows), 0.0, donors)
    pipeline_times = []
    for _ in range(options.repeats):
        elapsed, filled = timed(lambda: nan_knn_impute(windows, donors, **layout))
        pipeline_times.append(elapsed)
    elapsed, pipeline_reference = timed(lambda: KNNImputer(
        n_neighbors=5, weights='distance').fit(donors).transform(windows))
    print('    the pipeline pass (windows with an absent body as 0 from donor rows with it as '
          f'NaN): ours {min(pipeline_times):.3f} s (best of {options.repeats}), sklearn '
          f'{elapsed:.3f} s: {elapsed / min(pipeline_times):.0f}x; max |ours - sklearn| = '
          f'{np.abs(filled - pipeline_reference).max():.2e}')
    if options.check64:
        rows64 = rows.astype(np.float64)
        exact = KNNImputer(n_neighbors=5, weights='distance').fit(rows64).transform(rows64)
        print(f'    max |ours - sklearn float64| = {np.abs(ours - exact).max():.2e}, '
              f'max |sklearn float32 - sklearn float64| = '
              f'{np.abs(reference - exact).max():.2e}')


def write_split(path, n, clusters, rng, actions):
    """Write ``n`` synthetic rows (cluster ``c`` drawn from action ``c``) to a .npy memmap."""
    d = NUM_CHANNELS * WINDOW_FRAMES * NUM_JOINTS * MAX_BODIES
    out = np.lib.format.open_memmap(path, 'w+', np.float32, (n, d))
    labels = rng.integers(0, clusters, n)
    for cluster in tqdm(range(clusters), desc=os.path.basename(path), leave=False):
        index = np.flatnonzero(labels == cluster)
        action = np.random.default_rng([actions, cluster])
        out[index] = synthetic_sequences(len(index), rng, action)
    out.flush()
    del out
    return labels


def full_set(options, groups):
    """Run (b): an NTU-60-xsub-sized set in memory-mapped files."""
    clusters = 60
    rng = np.random.default_rng(options.seed + 1)
    with tempfile.TemporaryDirectory(dir=options.tmp) as tmp:
        paths = {part: os.path.join(tmp, f'{part}.npy') for part in ('train', 'test')}
        sizes = {'train': options.train_size, 'test': options.test_size}
        labels = {part: write_split(paths[part], sizes[part], clusters, rng, options.seed)
                  for part in ('train', 'test')}
        print(f'(b) full set: {sizes["train"]} train + {sizes["test"]} test sequences, '
              f'{clusters} clusters, memory-mapped float32 in {tmp}')
        with AnonymousPeak() as anonymous:
            start = time.perf_counter()
            train = np.load(paths['train'], mmap_mode='r')
            centroids = np.zeros((clusters, 8), dtype=np.float32)
            bank = ClusterBank.from_clusters(centroids, train, labels['train'], groups=groups,
                                             dtype=np.float16)
            del train
            bank.save(os.path.join(tmp, 'bank'))
            del bank
            # As iospstl_ros.model_dir loads a model's bank: body slots as blocks.
            blocks = coordinate_blocks(WINDOW_FRAMES)
            bank = ClusterBank.load(os.path.join(tmp, 'bank'), mmap=True, max_cached_clusters=1,
                                    blocks=blocks)
            build = time.perf_counter() - start
            unfilled = {}
            times = {}
            for part in ('train', 'test'):
                start = time.perf_counter()
                out_path = os.path.join(tmp, f'{part}_imputed.npy')
                shape = (sizes[part], bank.n_features_in_)
                np.lib.format.open_memmap(out_path, 'w+', np.float32, shape).flush()
                unfilled[part] = 0
                for cluster in tqdm(range(clusters), desc=f'impute {part}', leave=False):
                    index = np.flatnonzero(labels[part] == cluster)
                    data = np.load(paths[part], mmap_mode='r')
                    rows = data[index]
                    del data
                    if part == 'train':
                        # The reference: the cluster's float32 rows imputed from themselves.
                        filled, missed = nan_knn_impute(rows, rows, groups=groups,
                                                        blocks=blocks, return_unfilled=True)
                    else:
                        filled, missed = bank.impute(rows, np.full(len(index), cluster))
                    out = np.load(out_path, mmap_mode='r+')
                    out[index] = filled
                    out.flush()
                    del out
                    unfilled[part] += missed
                times[part] = time.perf_counter() - start
        total = build + times['train'] + times['test']
        print(f'    bank build (float16, saved, reloaded memory-mapped) {build:7.1f} s')
        print(f'    impute train (each cluster from itself, float32) {times["train"]:7.1f} s; '
              f'test (from the float16 bank) {times["test"]:7.1f} s')
        print(f'    total {total:.1f} s ({total / 60:.1f} min); values left NaN: '
              f'train {unfilled["train"]}, test {unfilled["test"]}')
        print(f'    peak RSS {peak_rss_gib():.2f} GiB (includes mapped file pages); '
              f'peak anonymous memory {anonymous.peak / 2 ** 30:.2f} GiB')


def cpu_times():
    """Read the machine's CPU time counters (Linux ``/proc/stat``); None elsewhere."""
    try:
        with open('/proc/stat') as f:
            return [int(value) for value in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_share(before, after):
    """Share of the machine's CPU time between two :func:`cpu_times` that the host took.

    A virtual machine's "steal" counter: time its CPUs were ready to run but the host ran
    something else; where it is high, latencies measured meanwhile say more about the host.
    """
    spent = [b - a for a, b in zip(before, after)]
    return spent[7] / max(sum(spent), 1) if len(spent) > 7 else 0.0


def read_speed_gbs(size_mib=256, repeats=3):
    """Memory read speed of this machine now: summing a ``size_mib`` float32 array, GB/s.

    Online latency follows memory bandwidth (a window reads its cluster's arrays, about
    13 MB, from memory), and on a shared host the bandwidth left to this machine swings;
    printed next to the latencies it says how busy the host was meanwhile.
    """
    data = np.ones(size_mib * 2 ** 18, dtype=np.float32)
    best = min(timings_ms(data.sum, repeats)) / 1e3
    return data.nbytes / best / 1e9


def timings_ms(function, repeats):
    """Wall times of ``function()`` in milliseconds (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * np.asarray(times)


def percentiles(times):
    """p50 and p99 of an array of times."""
    return np.percentile(times, 50), np.percentile(times, 99)


def online(options, groups):
    """Run (c): one window against its cluster, and against the whole bank."""
    clusters = 60
    rng = np.random.default_rng(options.seed + 2)
    sizes = np.diff(np.linspace(0, options.bank_size, clusters + 1).astype(int))
    d = NUM_CHANNELS * WINDOW_FRAMES * NUM_JOINTS * MAX_BODIES
    donors = np.empty((options.bank_size, d), dtype=np.float16)
    labels = np.repeat(np.arange(clusters), sizes)
    for cluster in tqdm(range(clusters), desc='bank', leave=False):
        action = np.random.default_rng([options.seed, cluster])
        donors[labels == cluster] = synthetic_sequences(sizes[cluster], rng, action,
                                                        absent_as_missing=True)
    centroids = np.zeros((clusters, 8), dtype=np.float32)
    blocks = coordinate_blocks(WINDOW_FRAMES)
    # As iospstl_ros.model_dir loads a model's bank: body slots as blocks.
    bank = ClusterBank.from_clusters(centroids, donors, labels, groups=groups,
                                     dtype=np.float16, blocks=blocks)
    plain = ClusterBank.from_clusters(centroids, donors, labels, groups=groups,
                                      dtype=np.float16)
    cluster = 7
    windows = synthetic_sequences(options.windows, rng,
                                  np.random.default_rng([options.seed, cluster]))
    windows = windows[np.isnan(windows).any(axis=1)]
    second = ~(windows.reshape(len(windows), NUM_CHANNELS, WINDOW_FRAMES, NUM_JOINTS,
                               MAX_BODIES)[..., 1] == 0).all(axis=(1, 2, 3))
    print(f'(c) online: bank of {len(donors)} sequences (float16), cluster {cluster} has '
          f'{len(bank.cluster_donors(cluster))} rows; {len(windows)} occluded windows '
          f'({second.mean():.0%} with a second body), {hidden_share(windows):.1%} of joints '
          'hidden')
    start = time.perf_counter()
    bank.impute(windows[:1], [cluster])
    cold = 1e3 * (time.perf_counter() - start)
    plain.impute(windows[:1], [cluster])
    state = {'i': 0}

    def one_window(target=bank, label=cluster):
        i = state['i'] % len(windows)
        state['i'] += 1
        return target.impute(windows[i:i + 1], [label])

    # All variants in one run, pass by pass, so the machine's noise hits them alike.
    variants = [(bank, 'blocks', None, 'own cluster'), (plain, 'plain', None, 'without blocks')]
    threads = sum(pool['num_threads'] for pool in threadpool_info()
                  if pool['user_api'] == 'blas')
    if not options.blas_threads and threads > 1:
        variants.insert(1, (bank, 'one', 1, '1 BLAS thread'))
    repeats = options.online_repeats // len(windows) + 1
    times = {name: [] for _, name, _, _ in variants}
    speed = [read_speed_gbs()]
    before = cpu_times()
    for _ in range(repeats):
        for target, name, limit, _ in variants:
            state['i'] = 0
            with threadpool_limits(limit) if limit else contextlib.nullcontext():
                times[name].append(timings_ms(lambda: one_window(target), len(windows) - 1))
    after = cpu_times()
    speed.append(read_speed_gbs())
    order = np.roll(np.arange(len(windows)), -1)[:len(windows) - 1]
    print(f'    BLAS threads: {options.blas_threads or threads}'
          + (' (and 1, same windows, same passes)' if len(variants) > 2 else '')
          + (f'; CPU time stolen by the host meanwhile: {steal_share(before, after):.1%}'
             if before and after else '')
          + f'; memory read speed before / after: {speed[0]:.1f} / {speed[1]:.1f} GB/s')
    for _, name, _, label in variants:
        all_times = np.concatenate(times[name])
        one = np.concatenate([t[~second[order]] for t in times[name]])
        two = np.concatenate([t[second[order]] for t in times[name]])
        print(f'    {label:14s}: p50 {percentiles(all_times)[0]:6.2f} ms   p99 '
              f'{percentiles(all_times)[1]:6.2f} ms;  one body p50 {percentiles(one)[0]:.2f} '
              f'p99 {percentiles(one)[1]:.2f};  two bodies p50 {percentiles(two)[0]:.2f} '
              f'p99 {percentiles(two)[1]:.2f}')
    p50, p99 = percentiles(np.concatenate(times['blocks']))
    ratio = np.median(np.concatenate(times['plain'])) / p50
    print(f'    blocks vs without (p50): {ratio:.2f}x; first call, preparing the cluster: '
          f'{cold:.0f} ms')
    # What the node's start-up (Pipeline.warm_up) adds: the largest clusters prepared at once.
    bank._prepared.clear()
    start = time.perf_counter()
    ready = bank.prepare()
    startup = 1e3 * (time.perf_counter() - start)
    print(f'    start-up: preparing the {len(ready)} largest clusters (ClusterBank.prepare, as '
          f'Pipeline.warm_up does) took {startup:.0f} ms, {startup / max(len(ready), 1):.0f} '
          'ms each')
    if not options.skip_sklearn:
        online_sklearn(options, bank, cluster, windows, p50, p99)
    del plain
    whole = ClusterBank.from_clusters(centroids[:1], donors, np.zeros(len(donors), np.int64),
                                      groups=groups, dtype=np.float16, blocks=blocks)
    del donors
    start = time.perf_counter()
    whole.impute(windows[:1], [0])
    whole_cold = time.perf_counter() - start
    whole_p50, whole_p99 = percentiles(timings_ms(lambda: one_window(whole, 0),
                                                  max(5, options.online_repeats // 20)))
    print(f'    whole bank:  p50 {whole_p50:6.1f} ms   p99 {whole_p99:6.1f} ms   (preparing '
          f'it: {whole_cold:.1f} s); ratio whole / cluster (p50) {whole_p50 / p50:.0f}x')


def online_sklearn(options, bank, cluster, windows, p50, p99):
    """Time (c) with scikit-learn: KNNImputer fitted on the cluster's donors, one window."""
    from sklearn.impute import KNNImputer
    imputer = KNNImputer(n_neighbors=5, weights='distance')
    imputer.fit(bank.cluster_donors(cluster).astype(np.float32))
    count = min(len(windows), options.sklearn_windows)
    times, largest = [], 0.0
    for i in range(count):
        window = windows[i:i + 1]
        start = time.perf_counter()
        reference = imputer.transform(window)
        times.append(time.perf_counter() - start)
        ours, _ = bank.impute(window, [cluster])
        largest = max(largest, float(np.abs(ours - reference).max()))
    times = 1e3 * np.asarray(times)
    sk50, sk99 = np.percentile(times, 50), np.percentile(times, 99)
    print(f'    sklearn KNNImputer (fitted on the cluster, {count} windows): p50 {sk50:6.1f} ms '
          f'  p99 {sk99:6.1f} ms; ratio (p50) {sk50 / p50:.0f}x, (p99) {sk99 / p99:.0f}x; '
          f'max |ours - sklearn| = {largest:.2e}')


def main(args=None):
    """Run the benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--full', action='store_true',
                        help='also run (b), the NTU-60-xsub-sized set (several minutes, '
                             'about 4 GB of temporary files)')
    parser.add_argument('--skip-sklearn', action='store_true',
                        help='skip the comparisons with scikit-learn: (a) and its part of (c) '
                             '(about 30 s)')
    parser.add_argument('--skip-online', action='store_true', help='skip (c)')
    parser.add_argument('--check64', action='store_true',
                        help='in (a), also compare with scikit-learn on float64 input')
    parser.add_argument('--cluster-size', type=int, default=672,
                        help='rows of the cluster in (a) (default: 672)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed runs of ours in (a) before, between and after the '
                             'scikit-learn runs, after one untimed; best and median reported '
                             '(default: 5)')
    parser.add_argument('--sklearn-repeats', type=int, default=2,
                        help='timed scikit-learn runs in (a) (default: 2; about 5 s each)')
    parser.add_argument('--train-size', type=int, default=40091,
                        help='train sequences in (b) (default: 40091, NTU-60 xsub)')
    parser.add_argument('--test-size', type=int, default=16487,
                        help='test sequences in (b) (default: 16487, NTU-60 xsub)')
    parser.add_argument('--tmp', default=None,
                        help='directory for the temporary files of (b) (default: system temp)')
    parser.add_argument('--bank-size', type=int, default=40000,
                        help='sequences in the bank of (c) (default: 40000)')
    parser.add_argument('--windows', type=int, default=100,
                        help='distinct windows imputed in (c) (default: 100)')
    parser.add_argument('--online-repeats', type=int, default=500,
                        help='timed windows in (c) (default: 500)')
    parser.add_argument('--sklearn-windows', type=int, default=30,
                        help='windows timed with scikit-learn in (c) (default: 30)')
    parser.add_argument('--blas-threads', type=int, default=None,
                        help='limit BLAS threads with threadpoolctl (default: BLAS default)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    options = parser.parse_args(args)
    if options.blas_threads:
        threadpool_limits(options.blas_threads)
    groups = coordinate_groups(WINDOW_FRAMES)
    print(f'{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; BLAS threads: '
          f'{options.blas_threads or "default"}')
    if not options.skip_sklearn:
        one_cluster(options, groups)
    if options.full:
        full_set(options, groups)
    if not options.skip_online:
        online(options, groups)


if __name__ == '__main__':
    main()
