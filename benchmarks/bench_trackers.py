"""Accuracy with fewer joints: every tracker format of iospstl_skeleton_adapter, measured.

    python -m benchmarks.bench_trackers --model models/default --docs docs

Held-out synthetic sequences (``iospstl_ros.datasets.synthetic``, seed ``--seed``, default 1;
the default model was trained on seed 0) are reduced to each tracker format of
:mod:`iospstl_ros.trackers` exactly as the adapter would deliver them: every tracker joint takes
the position of the NTU joint at its place (:func:`~iospstl_ros.trackers.simulate_tracker`),
then :func:`~iospstl_ros.trackers.to_ntu25` derives the joints the format derives (spine base =
hip midpoint, ...) and marks those it lacks occluded. Each sequence is one window through
:class:`iospstl_ros.pipeline.Pipeline` (ONNX Runtime, the node's code), with three ways of
filling the occluded joints: the model's cluster-KNN imputation, the training mean pose, and
none (occluded joints at the centre joint, what the classifier sees without stage 4). The
full NTU-25 input (``ntu25``) is the reference.

Reported per format: top-1 per window; the MPJPE (mm) of the filled joints against their true
positions, in the body-relative window coordinates the classifier sees (as
``training.imputation_quality``); and the MPJPE of the derived joints against the NTU joints
they stand for (the error of the rules, the same for every filling). Sequences whose class is
not among the model's classes (by name) are skipped and counted, so the script runs on a model
with another class list. ``--occlusion realistic`` adds the furniture occlusion of the synthetic
benchmark on top of the tracker's missing joints. Writes ``trackers.json`` and
``trackers_table.md`` to ``--out``; ``--docs`` also copies the table there. About 5 minutes on 2
CPU cores with the defaults.
"""

import argparse
import json
import os
import shlex
import shutil
import sys
import time

from iospstl_ros.datasets.synthetic import CLASS_NAMES, generate_sequence
from iospstl_ros.model_dir import default_model_dir
from iospstl_ros.pipeline import IMPUTATION_MODES, Pipeline
from iospstl_ros.preprocess import preprocess_sequence
from iospstl_ros.trackers import FORMATS, simulate_tracker, skeleton_format, to_ntu25
import numpy as np

from training.imputation_quality import mpjpe_mm

#: The full NTU-25 input, the reference row.
REFERENCE = 'ntu25'


def reduce_to_format(name, xyz, occluded):
    """Reduce a sequence to what the adapter would deliver from a tracker of format ``name``.

    Parameters
    ----------
    name : str
        One of :data:`iospstl_ros.trackers.FORMATS`, or :data:`REFERENCE` (unchanged).
    xyz : ndarray of shape (3, T, 25, M)
    occluded : ndarray of shape (T, 25, M), bool

    Returns
    -------
    xyz : ndarray of shape (3, T, 25, M), float32
        NaN where occluded.
    occluded : ndarray of shape (T, 25, M), bool
    """
    if name == REFERENCE:
        return xyz, occluded
    joints = np.moveaxis(xyz, 0, -1).transpose(0, 2, 1, 3)  # (T, M, 25, 3)
    T, M = joints.shape[:2]
    tracker, valid = simulate_tracker(name, joints.reshape(T * M, 25, 3),
                                      occluded.transpose(0, 2, 1).reshape(T * M, 25))
    ntu, hidden = to_ntu25(name, tracker, valid)
    ntu = ntu.reshape(T, M, 25, 3).transpose(3, 0, 2, 1)
    return ntu, hidden.reshape(T, M, 25).transpose(0, 2, 1)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', help='model directory (default: models/default)')
    parser.add_argument('--seed', type=int, default=1,
                        help='synthetic data seed; the default model was trained on seed 0')
    parser.add_argument('--num-samples', type=int, default=340,
                        help='sequences 0..N-1 of the seed (340 = 20 per class)')
    parser.add_argument('--occlusion', choices=('none', 'realistic'), default='none',
                        help='occlusion on top of the joints the formats lack')
    parser.add_argument('--formats', nargs='+', choices=(REFERENCE,) + FORMATS,
                        default=[REFERENCE] + list(FORMATS), help='formats to measure')
    parser.add_argument('--methods', nargs='+', choices=IMPUTATION_MODES,
                        default=list(IMPUTATION_MODES), help='ways of filling occluded joints')
    parser.add_argument('--threads', type=int, default=2, help='ONNX Runtime threads')
    parser.add_argument('--batch-size', type=int, default=32, help='windows per pipeline call')
    parser.add_argument('--out', default='runs/bench_trackers', help='output folder')
    parser.add_argument('--docs', help='also copy trackers_table.md into this folder')
    return parser


def load_sequences(seed, count, occlusion, classes):
    """Held-out sequences whose class the model knows; labels as model class indices."""
    sequences, labels, skipped = [], [], 0
    index = {name: k for k, name in enumerate(classes)}
    for i in range(count):
        sequence = generate_sequence(seed, i, occlusion=occlusion)
        name = CLASS_NAMES[sequence.label]
        if name not in index:
            skipped += 1
            continue
        sequences.append(sequence)
        labels.append(index[name])
    return sequences, np.asarray(labels, np.int64), skipped


def measure(pipelines, sequences, labels, name, batch_size, window, align):
    """Top-1 and MPJPE of one format with every filling method."""
    truth, reduced, filled, derived = [], [], [], []
    fmt_derived = np.zeros(25, bool) if name == REFERENCE else skeleton_format(name).derived
    for s in sequences:
        full = preprocess_sequence(s.xyz, s.occluded, s.present, window, align)
        xyz, occluded = reduce_to_format(name, s.xyz, s.occluded)
        mine = preprocess_sequence(xyz, occluded, s.present, window, align)
        seen = ~full.occluded & full.present[:, None, :]
        truth.append(full.data)
        reduced.append((xyz, occluded, s.present))
        filled.append(mine.occluded & seen)
        derived.append(~mine.occluded & seen & fmt_derived[None, :, None])
    truth, filled, derived = np.stack(truth), np.stack(filled), np.stack(derived)
    row = {'filled_joints': int(filled.sum()), 'derived_joints': int(derived.sum()),
           'methods': {}}
    for method, pipeline in pipelines.items():
        started = time.perf_counter()
        results = []
        for start in range(0, len(reduced), batch_size):
            results += pipeline.run(reduced[start:start + batch_size])
        predicted = np.array([r.class_index for r in results])
        completed = np.stack([r.imputed for r in results])
        row['methods'][method] = {
            'top1': float(np.mean(predicted == labels)),
            'mpjpe_filled_mm': finite_or_none(mpjpe_mm(completed, truth, filled)),
            'seconds': round(time.perf_counter() - started, 1)}
        if 'mpjpe_derived_mm' not in row:
            row['mpjpe_derived_mm'] = finite_or_none(mpjpe_mm(completed, truth, derived))
    return row


def finite_or_none(value):
    return value if np.isfinite(value) else None


def cell(value, scale=1.0, digits=1):
    return '-' if value is None or not np.isfinite(value) else f'{scale * value:.{digits}f}'


def table(results):
    """Format :func:`main`'s results as a markdown table."""
    methods = results['settings']['methods']
    lines = ['| format | NTU joints not provided / derived | derived joints MPJPE (mm) | '
             + ' | '.join(f'top-1 % {m}' for m in methods) + ' | '
             + ' | '.join(f'filled MPJPE (mm) {m}' for m in methods) + ' |',
             '|---|---|---|' + '---|' * (2 * len(methods))]
    for name, row in results['formats'].items():
        if name == REFERENCE:
            counts = '0 / 0'
        else:
            fmt = skeleton_format(name)
            counts = f'{int((~fmt.provided).sum())} / {int(fmt.derived.sum())}'
        lines.append(f'| {name} | {counts} | {cell(row["mpjpe_derived_mm"], digits=0)} | '
                     + ' | '.join(cell(row['methods'][m]['top1'], 100.0) for m in methods)
                     + ' | ' + ' | '.join(cell(row['methods'][m]['mpjpe_filled_mm'], digits=0)
                                          for m in methods) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.num_samples < 1 or args.batch_size < 1 or args.threads < 1:
        raise SystemExit('--num-samples, --batch-size and --threads must be >= 1')
    model = args.model or default_model_dir()
    started = time.perf_counter()
    pipelines = {}
    for method in args.methods:
        pipelines[method] = Pipeline(model, backend='cpu', threads=args.threads,
                                     imputation=method)
        pipelines[method].warm_up()
    first = next(iter(pipelines.values()))
    sequences, labels, skipped = load_sequences(args.seed, args.num_samples, args.occlusion,
                                                first.classes)
    if not sequences:
        raise SystemExit(f"{model}: none of the synthetic classes is among the model's "
                         f'classes {list(first.classes)}')
    command = shlex.join(['python', '-m', 'benchmarks.bench_trackers'] + argv)
    results = {'command': command, 'model': os.path.abspath(model), 'settings': vars(args),
               'sequences': len(sequences), 'skipped_unknown_class': skipped, 'formats': {}}
    for name in args.formats:
        results['formats'][name] = measure(
            pipelines, sequences, labels, name, args.batch_size, first.model.window_frames,
            first.model.align_shoulders)
        print(f'{name}: ' + ', '.join(f'{m} {100 * r["top1"]:.1f} %' for m, r in
                                      results['formats'][name]['methods'].items()), flush=True)
    results['wall_seconds'] = round(time.perf_counter() - started, 1)
    text = (f'{len(sequences)} held-out synthetic sequences (seed {args.seed}, occlusion '
            f'{args.occlusion}{f", {skipped} of unknown classes skipped" if skipped else ""}), '
            f'model `{os.path.relpath(model)}`, one window per sequence; '
            f'{results["wall_seconds"]:.0f} s on {args.threads} threads. Made by '
            f'`{command}`.\n\n{table(results)}\n')
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'trackers.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, 'trackers_table.md'), 'w') as f:
        f.write(text)
    print(text)
    if args.docs:
        suffix = '' if args.occlusion == 'none' else f'_{args.occlusion}'
        shutil.copy(os.path.join(args.out, 'trackers_table.md'),
                    os.path.join(args.docs, f'trackers_table{suffix}.md'))
    return results


if __name__ == '__main__':
    main()
