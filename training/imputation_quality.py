"""Imputation quality: hide visible joints with the same occlusion model, impute, measure MPJPE.

    python -m training.imputation_quality --data data/synthetic/xsub \
        --encoder runs/stage1/encoder.pt --out runs/imputation_quality

For every validation sequence, joints that are visible are hidden again with the realistic
occlusion model (a fresh scene per sequence, seeded), the sequence goes through the same
preprocessing, and each imputer fills the hidden joints from the (occluded) training windows.
The error is the mean per-joint position error (MPJPE, millimetres, in the body-relative window
coordinates) over the joints that were visible before and hidden now, where the truth is known.
This works on NTU as on synthetic data. Writes ``quality.json`` and ``quality.md``.
"""

import argparse
import json
import sys
import time

from iospstl_ros.completion import feature_means, knn_rows
from iospstl_ros.datasets.format import open_split
from iospstl_ros.datasets.occlusion import apply_occlusion
from iospstl_ros.preprocess import preprocess_batch
import numpy as np
from sklearn.cluster import KMeans
from tqdm import tqdm

from training.common import RunDir, select_device
from training.evaluate import load_encoder
from training.impute import embed, impute_arrays, METHODS, STAGE1_VIEW
from training.windows import load_windows


def rehide(split, indices, mode, seed, progress=True):
    """Windows of ``indices`` with extra occlusion, and the mask of the newly hidden joints.

    Returns
    -------
    windows : tuple of ndarrays (n, 3, 50, 25, 2), (n, 50, 25, 2), (n, 50, 2)
    newly_hidden : ndarray (n, 50, 25, 2), bool
        Hidden by the new scene in the window, visible in the original window.
    """
    data = np.asarray(split.data[indices])
    occluded = np.asarray(split.occluded[indices]).copy()
    present = np.asarray(split.present[indices])
    frames = np.asarray(split.num_frames[indices])
    for n in tqdm(range(len(indices)), desc='re-hide', disable=not progress, unit='seq'):
        t = int(frames[n])
        rng = np.random.default_rng([seed, int(indices[n])])
        occluded[n, :t] = apply_occlusion(data[n, :, :t], occluded[n, :t], present[n, :t],
                                          mode, rng)
    hidden = preprocess_batch(data, occluded, present, frames)
    return hidden


def mpjpe_mm(estimate, truth, mask):
    """Mean per-joint position error in millimetres over ``mask`` (N, T, V, M)."""
    error = np.linalg.norm(np.asarray(estimate) - np.asarray(truth), axis=1)
    return float(1000.0 * error[mask].mean()) if mask.any() else float('nan')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True,
                        help='occluded benchmark directory with raw arrays and w50 windows')
    parser.add_argument('--encoder', required=True, help='stage-1 encoder.pt (cluster-knn)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--methods', nargs='+', choices=METHODS, default=list(METHODS),
                        help='imputers to compare (default: all)')
    parser.add_argument('--occlusion', choices=('realistic', 'random'), default='realistic',
                        help='occlusion model that hides the extra joints')
    parser.add_argument('--limit', type=int, help='use only the first N validation sequences')
    parser.add_argument('--clusters', type=int, help='KMeans clusters (default: classes)')
    parser.add_argument('--neighbors', type=int, default=5, help='k of the KNN')
    parser.add_argument('--seed', type=int, default=1234, help='seed of the extra occlusion')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda', 'cuda:N' or 'auto'")
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    args = parser.parse_args(argv)
    progress = not args.no_progress
    run = RunDir(args.out, args, module='training.imputation_quality', argv=argv)
    split = open_split(args.data, 'val')
    train = load_windows(args.data, 'train')
    original = load_windows(args.data, 'val')
    indices = np.arange(len(split) if args.limit is None else min(args.limit, len(split)))
    hidden = rehide(split, indices, args.occlusion, args.seed, progress)
    truth, truth_occluded, truth_present = (np.asarray(a[indices]) for a in original)
    newly = (hidden.occluded & ~truth_occluded & truth_present[:, :, None, :]
             & hidden.present[:, :, None, :])
    train_rows = knn_rows(*train, absent_as_missing=True)
    means = feature_means(train_rows)
    train_clusters = clusters = None
    if 'cluster-knn' in args.methods:
        device = select_device(args.device)
        encoder = load_encoder(args.encoder, device, view='joint', why=STAGE1_VIEW)
        k = args.clusters or len(split.meta.get('classes') or []) or 60
        kmeans = KMeans(n_clusters=k, max_iter=100, random_state=0, n_init='auto')
        train_clusters = kmeans.fit_predict(embed(encoder, train[0], device, progress=False))
        clusters = kmeans.predict(embed(encoder, hidden.data, device, progress=False))
    results = {'sequences': int(len(indices)), 'joints_evaluated': int(newly.sum()),
               'occlusion': args.occlusion, 'methods': {}}
    rng = np.random.default_rng(args.seed)
    for method in args.methods:
        started = time.time()
        completed, counts = impute_arrays(method, hidden.data, hidden.occluded, hidden.present,
                                          train_rows, train_clusters, clusters, means,
                                          args.neighbors, rng, progress, desc=method)
        results['methods'][method] = {'mpjpe_mm': round(mpjpe_mm(completed, truth, newly), 2),
                                      'seconds': round(time.time() - started, 3),
                                      'filled_by': counts}
    lines = ['| imputer | MPJPE (mm) | time (s) | filled by KNN / temporal / mean |',
             '|---|---|---|---|']
    for method, r in results['methods'].items():
        c = r['filled_by']
        lines.append(f'| {method} | {r["mpjpe_mm"]:.1f} | {r["seconds"]:.1f} | '
                     f'{c["knn"]} / {c["temporal"]} / {c["mean"]} |')
    table = '\n'.join(lines)
    with open(run.file('quality.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(run.file('quality.md'), 'w') as f:
        f.write(f'{len(indices)} validation sequences, {int(newly.sum())} joints hidden by a '
                f'second {args.occlusion} occlusion\n\n{table}\n')
    print(table)
    return results


if __name__ == '__main__':
    main()
