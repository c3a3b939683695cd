"""Write the built-in synthetic occluded skeleton benchmark, one folder per benchmark.

``python -m training.synthesize --out data/synthetic`` generates ``--num-samples`` sequences
with :func:`iospstl_ros.datasets.synthetic.generate_sequence` (seed ``--seed``, sample indices
``0 .. N-1``) and writes ``OUT/xsub/`` and ``OUT/xview/`` with
:class:`iospstl_ros.datasets.format.SplitWriter`, exactly as ``training.prepare_ntu`` writes NTU
RGB+D: parts ``train`` and ``val``, samples sorted by their NTU-style name within each part.

- ``xsub``: train on the odd subjects (P001, P003, ..., P019), test on the even ones.
- ``xview``: train on cameras 2 and 3 (+-45 degrees), test on camera 1 (frontal).

Every sample is generated once and written to every benchmark, so a sample is identical in
both. The motion does not depend on ``--occlusion``: data sets made with the same seed and
different occlusion modes hold the same sequences. ``meta.json`` of each benchmark records the
source (``synthetic``), classes and their NTU action ids (``action_ids``, 0 = no NTU action),
occlusion, seed, generator version, the split rule and the command line;
``OUT/synthesize.json`` records the same plus the time taken.
"""

import argparse
import json
import os
import shlex
import sys
import time

from iospstl_ros.datasets.format import PARTS, SplitWriter
from iospstl_ros.datasets.occlusion import OCCLUSION_MODES
from iospstl_ros.datasets.synthetic import (
    ACTION_IDS, BENCHMARKS, CAMERA_AZIMUTHS, CLASS_NAMES, generate_sequence, GENERATOR_VERSION,
    MAX_SEQUENCE_FRAMES, NUM_SUBJECTS, sample_id, split_part, TRAIN_CAMERAS, TRAIN_SUBJECTS,
    TWO_PERSON_CLASSES)
from iospstl_ros.layout import MAX_FRAMES

from training.workers import available_cpus, map_with_progress


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m training.synthesize',
        description='Generate the synthetic occluded NTU-25 skeleton benchmark: '
                    'OUT/<benchmark>/{train,val}_*.npy, names, labels and meta.json, in the '
                    'same format as training.prepare_ntu.')
    parser.add_argument('--out', required=True, metavar='OUT',
                        help='output root; each benchmark goes to OUT/<benchmark>')
    parser.add_argument('--num-samples', type=int, default=2000,
                        help='sequences to generate (each appears in every benchmark); '
                             'default: %(default)s')
    parser.add_argument('--occlusion', choices=OCCLUSION_MODES, default='realistic',
                        help='occlusion model: realistic (furniture ray casting), random '
                             "(the paper's 20%% of joint slots) or none; default: %(default)s")
    parser.add_argument('--seed', type=int, default=0,
                        help='data set seed (>= 0); sequence i uses the streams of '
                             'SeedSequence([seed, i]); default: %(default)s')
    parser.add_argument('--benchmarks', nargs='+', choices=BENCHMARKS, default=list(BENCHMARKS),
                        help='benchmarks to write; default: %(default)s')
    parser.add_argument('--max-frames', type=int, default=MAX_FRAMES,
                        help='frame axis T of the written arrays (sequences have at most '
                             f'{MAX_SEQUENCE_FRAMES} frames); default: %(default)s, as NTU')
    parser.add_argument('--workers', type=int, default=available_cpus(),
                        help='processes generating sequences (1: no subprocesses); output does '
                             'not depend on it; default: the available CPUs (%(default)s here)')
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error(f'--num-samples must be >= 1, got {args.num_samples}')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, got {args.seed}')
    if args.max_frames < MAX_SEQUENCE_FRAMES:
        parser.error(f'--max-frames must be >= {MAX_SEQUENCE_FRAMES} (the longest synthetic '
                     f'sequence), got {args.max_frames}')
    if args.workers < 1:
        parser.error(f'--workers must be >= 1, got {args.workers}')
    args.benchmarks = list(dict.fromkeys(args.benchmarks))
    return args


def _generate(task):
    seed, index, occlusion = task
    sequence = generate_sequence(seed, index, occlusion)
    return sequence.xyz, sequence.occluded, sequence.present


def split_rule(benchmark):
    """How a benchmark splits the samples, as recorded in ``meta.json``."""
    if benchmark == 'xsub':
        return {'train_subjects': list(TRAIN_SUBJECTS),
                'val_subjects': [s for s in range(1, NUM_SUBJECTS + 1)
                                 if s not in TRAIN_SUBJECTS]}
    return {'train_cameras': list(TRAIN_CAMERAS),
            'val_cameras': [c for c in range(1, len(CAMERA_AZIMUTHS) + 1)
                            if c not in TRAIN_CAMERAS],
            'camera_azimuths_deg': list(CAMERA_AZIMUTHS)}


def synthesize(args, command):
    """Generate and write the data set described by parsed ``args``.

    Returns
    -------
    summary : dict
        Sample counts per benchmark and part, and the seconds taken.
    """
    start = time.time()
    samples = [sample_id(index) for index in range(args.num_samples)]
    order = sorted(range(args.num_samples), key=lambda index: str(samples[index]))
    # slots[benchmark][index] = (part, position within the part)
    slots, writers, counts = {}, {}, {}
    for benchmark in args.benchmarks:
        positions = dict.fromkeys(PARTS, 0)
        slots[benchmark] = {}
        for index in order:
            part = split_part(samples[index], benchmark)
            slots[benchmark][index] = (part, positions[part])
            positions[part] += 1
        root = os.path.join(args.out, benchmark)
        writers[benchmark] = {part: SplitWriter(root, part, positions[part], args.max_frames)
                              for part in PARTS}
        counts[benchmark] = positions
    tasks = [(args.seed, index, args.occlusion) for index in order]
    for index, (xyz, occluded, present) in zip(
            order, map_with_progress(_generate, tasks, args.workers, 'synthesize')):
        sample = samples[index]
        for benchmark in args.benchmarks:
            part, position = slots[benchmark][index]
            writers[benchmark][part].write(position, str(sample), sample.label, xyz, occluded,
                                           present)
    for benchmark in args.benchmarks:
        meta = {
            'source': 'synthetic',
            'classes': list(CLASS_NAMES),
            'action_ids': list(ACTION_IDS),
            'two_person_classes': list(TWO_PERSON_CLASSES),
            'benchmark': f'synthetic-{benchmark}',
            'split': split_rule(benchmark),
            'occlusion': args.occlusion,
            'seed': args.seed,
            'generator_version': GENERATOR_VERSION,
            'num_samples': args.num_samples,
            'counts': {'written': args.num_samples},
            'command': command,
        }
        for writer in writers[benchmark].values():
            writer.close(meta)
    summary = {'command': command, 'args': vars(args), 'parts': counts,
               'generator_version': GENERATOR_VERSION,
               'seconds': round(time.time() - start, 2)}
    tmp = os.path.join(args.out, 'synthesize.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(summary, f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(args.out, 'synthesize.json'))
    return summary


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    command = shlex.join(['python', '-m', 'training.synthesize'] + argv)
    os.makedirs(args.out, exist_ok=True)
    summary = synthesize(args, command)
    parts = '; '.join(f'{benchmark} train {c["train"]} val {c["val"]}'
                      for benchmark, c in summary['parts'].items())
    print(f'synthesize: {args.num_samples} sequences in {summary["seconds"]:.1f} s to '
          f'{args.out} ({parts})', file=sys.stderr)
    return summary


if __name__ == '__main__':
    main()
