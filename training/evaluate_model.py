"""Accuracy of an exported model directory on a benchmark split, through the robot's pipeline.

    python -m training.evaluate_model --model models/default --data data/synthetic/xsub \
        --out runs/default_model_eval

Runs :class:`iospstl_ros.pipeline.Pipeline` (ONNX Runtime, the code the node runs) on every
sequence of ``--part`` (default ``val``, the held-out split) as a tracker would deliver it: the
raw frames with their occlusion marks, preprocessed into one window. Scores top-1 with the
cluster-KNN imputation and, for the ablation, without it (occluded joints at the centre joint).
Give a data set synthesised with ``--occlusion none`` for the clean accuracy. Writes
``summary.json`` and the confusion matrices (``confusion_{imputed,no_imputation}.png``/json).
"""

import argparse
import json
import os
import time

from iospstl_ros.datasets.format import open_split
from iospstl_ros.pipeline import Pipeline
from iospstl_ros.plots import confusion_matrix, plot_confusion
import numpy as np
from tqdm import tqdm

from training.common import RunDir


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True, help='model directory (training.export)')
    parser.add_argument('--data', required=True, help='benchmark directory (dataset layout)')
    parser.add_argument('--part', choices=('train', 'val'), default='val', help='split part')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--batch-size', type=int, default=32, help='windows per pipeline call')
    parser.add_argument('--threads', type=int, default=2, help='ONNX Runtime threads')
    parser.add_argument('--limit', type=int, help='score only the first N sequences')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser


def sequences(split, indices):
    """Yield ``(xyz, occluded, present)`` of each sequence's valid frames."""
    for i in indices:
        frames = int(split.num_frames[i])
        yield (np.asarray(split.data[i, :, :frames]), np.asarray(split.occluded[i, :frames]),
               np.asarray(split.present[i, :frames]))


def predict(pipeline, split, indices, batch_size, progress, desc):
    """Return the predicted class index of each sequence."""
    predictions = []
    items = list(sequences(split, indices))
    for start in tqdm(range(0, len(items), batch_size), desc=desc, disable=not progress,
                      unit='batch'):
        predictions += [r.class_index for r in pipeline.run(items[start:start + batch_size])]
    return np.asarray(predictions, np.int64)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.threads < 1:
        raise SystemExit(f'--batch-size and --threads must be >= 1, got {args.batch_size} and '
                         f'{args.threads}')
    split = open_split(args.data, args.part)
    indices = np.arange(len(split) if args.limit is None else min(args.limit, len(split)))
    labels = np.asarray(split.labels[indices], np.int64)
    run = RunDir(args.out, args, module='training.evaluate_model', argv=argv)
    summary = {'model': os.path.abspath(args.model), 'data': os.path.abspath(args.data),
               'part': args.part, 'sequences': int(len(indices)),
               'occluded_joint_ratio': float(np.mean(
                   [o[:, :, p.any(0)].mean() if p.any() else 0.0
                    for _, o, p in sequences(split, indices)]))}
    for mode in ('imputed', 'no_imputation'):
        pipeline = Pipeline(args.model, backend='cpu', threads=args.threads,
                            imputation=mode == 'imputed')
        pipeline.warm_up()
        classes = list(pipeline.classes)
        if max(labels, default=0) >= len(classes):
            raise SystemExit(f'{args.data}: label {int(labels.max())} is outside the '
                             f'{len(classes)} classes of the model')
        start = time.perf_counter()
        predicted = predict(pipeline, split, indices, args.batch_size, not args.no_progress,
                            mode)
        seconds = time.perf_counter() - start
        summary[f'top1_{mode}'] = float(np.mean(predicted == labels)) if len(labels) else 0.0
        summary[f'seconds_{mode}'] = round(seconds, 2)
        matrix = confusion_matrix(labels, predicted, len(classes))
        with open(run.file(f'confusion_{mode}.json'), 'w') as f:
            json.dump({'classes': classes, 'matrix': matrix.tolist()}, f)
        plot_confusion(matrix, classes, run.file(f'confusion_{mode}.png'),
                       title=f'{os.path.basename(os.path.normpath(args.model))} on '
                             f'{args.part} ({mode.replace("_", " ")}): '
                             f'top-1 {100 * summary[f"top1_{mode}"]:.1f} %')
    with open(run.file('summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(f'{args.model} on {args.data} [{args.part}], {len(indices)} sequences, '
          f'{100 * summary["occluded_joint_ratio"]:.1f} % of joints occluded: top-1 '
          f'{100 * summary["top1_imputed"]:.1f} % with imputation, '
          f'{100 * summary["top1_no_imputation"]:.1f} % without')
    return summary


if __name__ == '__main__':
    main()
