"""Stage 2 of IosPSTL: embeddings → KMeans → imputed train and val windows (and baselines).

    python -m training.impute --data data/synthetic/xsub --encoder runs/stage1/encoder.pt \
        --out data/synthetic/xsub_imputed

Embeds every occluded training and validation window with the stage-1 encoder (eval mode,
occluded joints at the centre), clusters the training embeddings with scikit-learn KMeans
(K = number of classes by default; seeded), assigns each validation window to the nearest
centroid, and fills occluded joints from the k nearest **training** windows of the same cluster
(:mod:`iospstl_ros.completion`). Training windows of a cluster are imputed from that cluster's
training windows, as in the paper. ``--method`` selects the baselines of the ablation instead:

* ``cluster-knn``  the paper's imputer (default);
* ``global-knn``   KNN over the whole training set, no clusters;
* ``mean``         every occluded coordinate set to the training mean of that coordinate;
* ``random``       the paper's random imputation: uniform between the sample's minimum and
                   maximum of that channel over its visible joints;
* ``none``         no imputation (the network sees occluded joints at the centre joint).

The output folder is a benchmark directory that ``pretrain`` and ``evaluate`` read like the
input: ``{part}_w50_*.npy`` (completed), labels, B (still that of the occluded data, as in the
reference), names, ``meta.json``; plus ``{part}_embedding.npy``, ``{part}_cluster.npy``,
``centroids.npy``, ``bank/`` (the cluster bank the robot uses) and ``imputation.json``.
"""

import argparse
import json
import os
import shutil
import sys
import time

from iospstl_ros.completion import complete_windows, feature_means, knn_rows
from iospstl_ros.imputation import ClusterBank, coordinate_groups
import numpy as np
from sklearn.cluster import KMeans
import torch
from tqdm import tqdm

from training.common import RunDir, select_device
from training.evaluate import load_encoder
from training.windows import load_windows, window_paths

METHODS = ('cluster-knn', 'global-knn', 'mean', 'random', 'none')
COPIED = ('label.npy', 'B.npy', 'names.txt', 'label.pkl', 'num_frames.npy')


#: Why the stage-1 encoder must take joint coordinates.
STAGE1_VIEW = ('cluster assignment, here and in the exported stage-1 graph the robot runs, '
               'takes joint coordinates: pre-train stage 1 with --view joint')


@torch.no_grad()
def embed(encoder, data, device, batch_size=256, progress=True, desc='embed'):
    """Stage-1 features of windows with occluded joints at the centre (0).

    Parameters
    ----------
    encoder : STGCNEncoder
    data : ndarray of shape (N, 3, T, 25, 2), NaN at occluded joints

    Returns
    -------
    embeddings : ndarray of shape (N, hidden_dim), float32
    """
    encoder.eval()
    out = []
    for start in tqdm(range(0, len(data), batch_size), desc=desc, disable=not progress,
                      unit='batch'):
        x = np.nan_to_num(np.asarray(data[start:start + batch_size], np.float32), nan=0.0)
        out.append(encoder(torch.from_numpy(x).to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.config.hidden_dim), np.float32)


def random_imputation(data, occluded, present, rng):
    """Fill occluded joints uniformly between the sample's per-channel visible min and max."""
    rows = knn_rows(data, occluded, present)
    N, C, T, V, M = data.shape
    rows = rows.reshape(N, C, -1)
    out = np.empty_like(rows)
    for n in range(N):
        sample = rows[n]
        missing = np.isnan(sample)
        low = np.nanmin(sample, axis=1, keepdims=True) if (~missing).any() else 0.0
        high = np.nanmax(sample, axis=1, keepdims=True) if (~missing).any() else 0.0
        draw = rng.uniform(size=sample.shape) * (high - low) + low
        out[n] = np.where(missing, draw, sample)
    return np.nan_to_num(out.reshape(N, C, T, V, M), nan=0.0)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True,
                        help='occluded benchmark directory with {train,val}_w50_*.npy')
    parser.add_argument('--encoder',
                        help='stage-1 encoder.pt (needed by cluster-knn)')
    parser.add_argument('--out', required=True, help='output benchmark directory')
    parser.add_argument('--method', choices=METHODS, default='cluster-knn',
                        help="imputer (default: cluster-knn, the paper's)")
    parser.add_argument('--clusters', type=int,
                        help='KMeans clusters (default: number of classes)')
    parser.add_argument('--neighbors', type=int, default=5, help='k of the KNN (paper: 5)')
    parser.add_argument('--bank-dtype', choices=('float16', 'float32'), default='float16',
                        help='storage type of the saved cluster bank')
    parser.add_argument('--seed', type=int, default=0, help='KMeans / random-imputation seed')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda', 'cuda:N' or 'auto'")
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.method == 'cluster-knn' and not args.encoder:
        raise ValueError('--method cluster-knn needs --encoder (the stage-1 encoder.pt)')
    progress = not args.no_progress
    tmp_out = args.out.rstrip('/') + '.partial'
    if os.path.exists(tmp_out):
        shutil.rmtree(tmp_out)
    os.makedirs(tmp_out)
    run = RunDir(tmp_out, args, module='training.impute', argv=argv)
    with open(os.path.join(args.data, 'meta.json')) as f:
        meta = json.load(f)
    windows = {part: load_windows(args.data, part) for part in ('train', 'val')}
    train_data, train_occ, train_present = windows['train']
    T, V, M = train_data.shape[2:]
    groups = coordinate_groups(T, V, M)
    timings = {}
    stats = {'method': args.method, 'neighbors': args.neighbors}
    started = time.time()
    train_rows = knn_rows(*windows['train'], absent_as_missing=True)
    means = feature_means(train_rows)
    timings['rows_s'] = time.time() - started
    clusters = {}
    if args.method == 'cluster-knn':
        device = select_device(args.device)
        encoder = load_encoder(args.encoder, device, view='joint', why=STAGE1_VIEW)
        started = time.time()
        embeddings = {part: embed(encoder, windows[part][0], device, progress=progress,
                                  desc=f'embed {part}') for part in windows}
        timings['embed_s'] = time.time() - started
        k = args.clusters or len(meta.get('classes') or []) or 60
        started = time.time()
        kmeans = KMeans(n_clusters=k, max_iter=100, random_state=args.seed, n_init='auto')
        clusters['train'] = kmeans.fit_predict(embeddings['train']).astype(np.int64)
        timings['kmeans_s'] = time.time() - started
        bank = ClusterBank.from_clusters(kmeans.cluster_centers_, train_rows, clusters['train'],
                                         dtype=np.dtype(args.bank_dtype), groups=groups)
        clusters['val'] = bank.assign(embeddings['val'])
        bank.save(os.path.join(tmp_out, 'bank'))
        np.save(os.path.join(tmp_out, 'centroids.npy'), bank.centroids_)
        np.save(os.path.join(tmp_out, 'feature_mean.npy'), means)
        for part in windows:
            np.save(os.path.join(tmp_out, f'{part}_embedding.npy'), embeddings[part])
            np.save(os.path.join(tmp_out, f'{part}_cluster.npy'), clusters[part])
        stats['clusters'] = k
        stats['cluster_sizes'] = np.bincount(clusters['train'], minlength=k).tolist()
    rng = np.random.default_rng(args.seed)
    for part, (data, occluded, present) in windows.items():
        started = time.time()
        completed, counts = impute_arrays(args.method, data, occluded, present, train_rows,
                                          clusters.get('train'), clusters.get(part), means,
                                          args.neighbors, rng, progress, desc=f'impute {part}')
        timings[f'impute_{part}_s'] = time.time() - started
        stats[part] = counts
        paths = window_paths(tmp_out, part)
        out = np.lib.format.open_memmap(paths['data'], 'w+', np.float32, completed.shape)
        out[:] = completed
        out.flush()
        del out
        np.save(paths['occluded'], np.asarray(occluded))
        np.save(paths['present'], np.asarray(present))
        for name in COPIED:
            source = os.path.join(args.data, f'{part}_{name}')
            if os.path.exists(source):
                shutil.copyfile(source, os.path.join(tmp_out, f'{part}_{name}'))
    stats['timings'] = {key: round(value, 3) for key, value in timings.items()}
    meta = dict(meta, imputation=stats, imputed_from=os.path.abspath(args.data))
    with open(os.path.join(tmp_out, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    with open(run.file('imputation.json'), 'w') as f:
        json.dump(stats, f, indent=2)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.replace(tmp_out, args.out)
    print(f'{args.method}: ' + ', '.join(
        f'{part} {stats[part]["occluded"]} occluded joints ({stats[part]["knn"]} knn, '
        f'{stats[part]["temporal"]} temporal, {stats[part]["mean"]} mean)'
        for part in windows) + f' -> {args.out}')
    return stats


def impute_arrays(method, data, occluded, present, train_rows, train_clusters, clusters, means,
                  neighbors=5, rng=None, progress=False, desc='impute'):
    """Complete windows with one of :data:`METHODS`, in chunks with a progress bar.

    Parameters
    ----------
    method : str
    data, occluded, present : ndarrays (N, 3, T, 25, 2), (N, T, 25, 2), (N, T, 2)
    train_rows : ndarray (n_train, d)
        Donor rows (``knn_rows(..., absent_as_missing=True)`` of the training windows).
    train_clusters, clusters : ndarray (n_train,), (N,) of int, or None
        KMeans cluster of every training row and of every window (cluster-knn only).
    means : ndarray (d,)
        Training mean of every feature.
    neighbors : int
    rng : numpy.random.Generator
        For the random baseline.

    Returns
    -------
    completed : ndarray (N, 3, T, 25, 2) float32
    counts : dict
    """
    N = len(data)
    completed = np.empty(data.shape, dtype=np.float32)
    total = {'occluded': 0, 'knn': 0, 'temporal': 0, 'mean': 0}
    if method == 'cluster-knn':
        order = np.argsort(clusters, kind='stable')
        cluster_ids = np.unique(clusters)
        bar = tqdm(cluster_ids, desc=desc, unit='cluster', disable=not progress)
        for cluster in bar:
            index = order[clusters[order] == cluster]
            donors = train_rows[train_clusters == cluster]
            filled, counts = complete_windows(data[index], occluded[index], present[index],
                                              donors=donors, n_neighbors=neighbors,
                                              feature_mean=means)
            completed[index] = filled
            total = {key: total[key] + counts[key] for key in total}
        return completed, total
    step = 256
    for start in tqdm(range(0, N, step), desc=desc, disable=not progress):
        sl = slice(start, min(start + step, N))
        chunk = (np.asarray(data[sl]), np.asarray(occluded[sl]), np.asarray(present[sl]))
        if method == 'global-knn':
            filled, counts = complete_windows(*chunk, donors=train_rows,
                                              n_neighbors=neighbors, feature_mean=means)
        elif method == 'mean':
            filled, counts = complete_windows(*chunk, feature_mean=means)
            # the mean baseline does not interpolate in time: overwrite with the mean pose
            rows = knn_rows(*chunk)
            mean_rows = np.where(np.isnan(rows), means[None], rows)
            filled = np.nan_to_num(mean_rows.reshape(filled.shape), nan=0.0)
            counts = dict(counts, mean=counts['occluded'], temporal=0)
        elif method == 'random':
            filled = random_imputation(*chunk, rng)
            hidden = int((chunk[1] & chunk[2][:, :, None, :]).sum())
            counts = {'occluded': hidden, 'knn': 0, 'temporal': 0, 'mean': 0}
        else:
            filled = np.nan_to_num(np.asarray(chunk[0], np.float32), nan=0.0)
            hidden = int((chunk[1] & chunk[2][:, :, None, :]).sum())
            counts = {'occluded': hidden, 'knn': 0, 'temporal': 0, 'mean': 0}
        completed[sl] = filled
        total = {key: total[key] + counts[key] for key in total}
    return completed, total


if __name__ == '__main__':
    main()
