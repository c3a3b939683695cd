"""Convert NTU RGB+D skeletons into the project's data set format, one folder per benchmark.

Reads either a directory of raw ``.skeleton`` files (``--skeletons``) or the widely used
preprocessed arrays (``--npy-data X_data_joint.npy --npy-labels X_label.pkl``, float32
(N, 3, 300, 25, 2) with zeros for absent bodies and padding, and a pickle of (names, labels)),
and writes ``OUT/<benchmark>/`` (e.g. ``OUT/xsub``) with
:class:`iospstl_ros.datasets.format.SplitWriter` (parts ``train`` and ``val``, memory-mapped
``.npy`` files, see :mod:`iospstl_ros.datasets.format`).

Per sample, in this order:

1. Bodies: the first two listed in each frame (file order, as the reference code and CrosSCLR).
2. Occlusion from the source: for ``.skeleton`` files a joint is occluded when its Kinect
   tracking state is in ``--occluded-states`` (default 0 not tracked, 1 inferred) or its x y z
   are exactly 0 (how Peng et al.'s occluded NTU marks hidden joints); for the arrays, joints
   exactly (0, 0, 0) inside a present body (a body is present in a frame when any of its
   joints is non-zero; frames after the last present one are padding and dropped).
3. Frames past 300 are cut (counted and reported).
4. A sample without any body, or whose bodies have no visible joint, is skipped and counted,
   as are samples named in ``--ignore-list`` and samples outside ``--dataset``.
5. ``--occlusion realistic|random`` adds synthetic occlusion
   (:func:`iospstl_ros.datasets.occlusion.apply_occlusion`) with the generator
   ``numpy.random.default_rng([seed, index])``, ``index`` being the sample's position in the
   sorted list of the data set's input samples (before skipping). Results therefore do not
   depend on ``--workers``, the ignore list or the benchmarks chosen, and a sample is occluded
   identically in every benchmark.

``meta.json`` records the source, class names and NTU action ids (``action_ids``, label + 1),
benchmark, occlusion settings, seed, the command line and the counts above.
"""

import argparse
from collections import Counter
import os
import pickle
import shlex
import sys

from iospstl_ros.datasets.format import SplitWriter
from iospstl_ros.datasets.ntu import OCCLUDED_STATES, read_ntu_skeleton, to_layout
from iospstl_ros.datasets.splits import (
    ACTION_NAMES, BENCHMARKS, DATASETS, in_dataset, is_training, parse_sample_name)
from iospstl_ros.layout import MAX_BODIES, MAX_FRAMES, NUM_CHANNELS, NUM_JOINTS
import numpy as np

from training.workers import available_cpus, map_with_progress

OCCLUSION_MODES = ('none', 'realistic', 'random')
#: Benchmarks written when ``--benchmarks`` is not given.
DEFAULT_BENCHMARKS = {'ntu60': ('xsub', 'xview'), 'ntu120': ('xsub', 'xset')}
SKELETON_SUFFIX = '.skeleton'
# Reasons a sample is skipped by itself, as counted in meta.json.
NO_BODY = 'skipped_no_body'
NO_VISIBLE_JOINT = 'skipped_no_visible_joint'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m training.prepare_ntu',
        description='Convert NTU RGB+D 60/120 skeletons to the iospstl_ros data set format: '
                    'OUT/<benchmark>/{train,val}_*.npy, names, labels and meta.json.')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--skeletons', metavar='DIR',
                        help='directory of raw NTU .skeleton files (S001C001P001R001A001.skeleton'
                             ', ...); files outside --dataset are left out')
    source.add_argument('--npy-data', nargs='+', metavar='X_data_joint.npy',
                        help='preprocessed arrays, float32 (N, 3, T, 25, 2), zeros for absent '
                             'bodies and padding (e.g. xsub/train_data_joint.npy '
                             'xsub/val_data_joint.npy); samples are re-split by name, so the '
                             'train and val files of one benchmark give every benchmark')
    parser.add_argument('--npy-labels', nargs='+', metavar='X_label.pkl',
                        help='pickles of (names, labels), one per --npy-data file, same order')
    parser.add_argument('--out', required=True, metavar='OUT',
                        help='output root; each benchmark goes to OUT/<benchmark>')
    parser.add_argument('--dataset', required=True, choices=tuple(DATASETS),
                        help='ntu60: setups 1-17, actions 1-60; ntu120: setups 1-32, '
                             'actions 1-120')
    parser.add_argument('--benchmarks', nargs='+', choices=('xsub', 'xview', 'xset'),
                        help='benchmarks to write (default: xsub xview for ntu60, xsub xset '
                             'for ntu120); xview exists only for ntu60, xset only for ntu120')
    parser.add_argument('--ignore-list', metavar='FILE',
                        help='text file of sample names to leave out, e.g. the official '
                             'NTU_RGBD_samples_with_missing_skeletons.txt (302 names) or '
                             'NTU_RGBD120_samples_with_missing_skeletons.txt (535 names) from '
                             'the Matlab/ folder of the NTU RGB+D GitHub repository '
                             'shahroudy/NTURGB-D; lines that are not sample names are ignored. '
                             'Samples without any body or visible joint are skipped even '
                             'without it')
    parser.add_argument('--occlusion', choices=OCCLUSION_MODES, default='none',
                        help='synthetic occlusion added to the source occlusion: realistic '
                             "(furniture ray casting) or random (the paper's 20%% of joints); "
                             'default: %(default)s')
    parser.add_argument('--occluded-states', nargs='*', type=int, choices=(0, 1, 2),
                        default=list(OCCLUDED_STATES), metavar='STATE',
                        help='Kinect tracking states (0 not tracked, 1 inferred, 2 tracked) '
                             'that count as occluded in .skeleton files; give none to use only '
                             'the x=y=z=0 marker; default: %(default)s')
    parser.add_argument('--seed', type=int, default=1,
                        help='seed of the synthetic occlusion (per sample: [seed, index]); '
                             'default: %(default)s')
    parser.add_argument('--workers', type=int, default=available_cpus(),
                        help='processes reading samples (1: no subprocesses); default: the '
                             'available CPUs (%(default)s here)')
    args = parser.parse_args(argv)
    if args.npy_data is not None and (args.npy_labels is None
                                      or len(args.npy_labels) != len(args.npy_data)):
        parser.error('--npy-data needs --npy-labels with one pickle per array file')
    if args.npy_labels is not None and args.npy_data is None:
        parser.error('--npy-labels goes with --npy-data')
    benchmarks = args.benchmarks or DEFAULT_BENCHMARKS[args.dataset]
    for benchmark in benchmarks:
        if f'{args.dataset}-{benchmark}' not in BENCHMARKS:
            parser.error(f'benchmark {benchmark} does not exist for {args.dataset}')
    args.benchmarks = list(dict.fromkeys(benchmarks))
    if args.workers < 1:
        parser.error(f'--workers must be >= 1, got {args.workers}')
    return args


def read_ignore_list(path):
    """Sample names in a text file; anything that is not a sample name is skipped."""
    names = set()
    with open(path) as f:
        for line in f:
            for word in line.split():
                stem = word[:-len(SKELETON_SUFFIX)] if word.endswith(SKELETON_SUFFIX) else word
                try:
                    parse_sample_name(stem)
                except ValueError:
                    continue
                names.add(stem)
    return names


def _skeleton_sources(directory):
    """(name, source) of every ``.skeleton`` file in ``directory``, unsorted."""
    sources = []
    for entry in os.listdir(directory):
        if entry.endswith(SKELETON_SUFFIX):
            name = entry[:-len(SKELETON_SUFFIX)]
            try:
                parse_sample_name(name)
            except ValueError as error:
                raise ValueError(f'{directory}: {error}') from None
            sources.append((name, ('skeleton', os.path.join(directory, entry))))
    if not sources:
        raise ValueError(f'{directory}: no {SKELETON_SUFFIX} files (expected the folder that '
                         'holds S001C001P001R001A001.skeleton, ...)')
    return sources


def _npy_sources(data_paths, label_paths):
    """(name, source) of every sample of the preprocessed arrays, checked against the labels."""
    sources = []
    for data_path, label_path in zip(data_paths, label_paths):
        data = np.load(data_path, mmap_mode='r')
        if (data.ndim != 5 or data.shape[1] != NUM_CHANNELS or data.shape[3] != NUM_JOINTS
                or data.shape[4] > MAX_BODIES):
            raise ValueError(f'{data_path}: expected an array (N, 3, T, 25, M <= {MAX_BODIES}),'
                             f' got {data.shape}')
        with open(label_path, 'rb') as f:
            names, labels = pickle.load(f)
        if len(names) != len(data) or len(labels) != len(data):
            raise ValueError(f'{label_path}: {len(names)} names and {len(labels)} labels for '
                             f'{len(data)} samples of {data_path}')
        for index, (name, label) in enumerate(zip(names, labels)):
            name = os.path.basename(str(name))
            if name.endswith(SKELETON_SUFFIX):
                name = name[:-len(SKELETON_SUFFIX)]
            if int(label) != parse_sample_name(name).label:
                raise ValueError(f'{label_path}: sample {index} ({name}) has label {label}, '
                                 f'its name says {parse_sample_name(name).label}')
            sources.append((name, ('npy', data_path, index)))
    return sources


def _layout_from_npy(sample):
    """Layout arrays of one preprocessed sample (3, T, 25, M); padding frames dropped."""
    xyz = np.asarray(sample, dtype=np.float32)
    zero = (xyz == 0).all(axis=0)                       # (T, 25, M)
    present = ~zero.all(axis=1)                         # (T, M)
    frames = np.flatnonzero(present.any(axis=1))
    length = frames[-1] + 1 if frames.size else 0
    occluded = zero & present[:, None, :]
    return xyz[:, :length], occluded[:length], present[:length]


def _load(source, occluded_states):
    if source[0] == 'skeleton':
        return to_layout(read_ntu_skeleton(source[1]), MAX_BODIES, occluded_states)
    return _layout_from_npy(np.load(source[1], mmap_mode='r')[source[2]])


def _load_cut(source, occluded_states):
    """Layout arrays cut to ``MAX_FRAMES``, and the frame count before the cut."""
    xyz, occluded, present = _load(source, occluded_states)
    frames = xyz.shape[1]
    return xyz[:, :MAX_FRAMES], occluded[:MAX_FRAMES], present[:MAX_FRAMES], frames


def _scan(task):
    """Pass 1: why a sample cannot be used (None if it can) and its frame count."""
    source, occluded_states = task
    _, occluded, present, frames = _load_cut(source, occluded_states)
    if not present.any():
        return NO_BODY, frames
    if not (present[:, None, :] & ~occluded).any():
        return NO_VISIBLE_JOINT, frames
    return None, frames


def _convert(task):
    """Pass 2: the arrays to write, with synthetic occlusion added."""
    source, occluded_states, occlusion, seed, index = task
    xyz, occluded, present, _ = _load_cut(source, occluded_states)
    if occlusion != 'none':
        from iospstl_ros.datasets.occlusion import apply_occlusion
        rng = np.random.default_rng([seed, index])
        occluded = apply_occlusion(xyz, occluded, present, occlusion, rng)
    return xyz, occluded, present


def prepare(args, command):
    """Run the conversion described by parsed ``args``; return the counts written to meta."""
    if args.skeletons is not None:
        sources = _skeleton_sources(args.skeletons)
        input_ = {'format': 'skeleton', 'path': os.path.abspath(args.skeletons)}
    else:
        sources = _npy_sources(args.npy_data, args.npy_labels)
        input_ = {'format': 'npy', 'data': [os.path.abspath(p) for p in args.npy_data],
                  'labels': [os.path.abspath(p) for p in args.npy_labels]}
    repeated = sorted(name for name, n in Counter(name for name, _ in sources).items() if n > 1)
    if repeated:
        raise ValueError(f'{len(repeated)} samples appear more than once in the input '
                         f'(first: {repeated[0]})')
    counts = {'inputs': len(sources)}
    sources = sorted((s for s in sources if in_dataset(s[0], args.dataset)),
                     key=lambda s: s[0])
    counts['outside_dataset'] = counts['inputs'] - len(sources)
    # The rng index is the position in this list: before the ignore list and the skips.
    indexed = [(index, name, source) for index, (name, source) in enumerate(sources)]
    ignored = read_ignore_list(args.ignore_list) if args.ignore_list else set()
    candidates = [item for item in indexed if item[1] not in ignored]
    counts['ignored'] = len(indexed) - len(candidates)

    states = tuple(args.occluded_states)
    scans = list(map_with_progress(_scan, [(source, states) for _, _, source in candidates],
                                   args.workers, 'scan'))
    counts[NO_BODY] = sum(reason == NO_BODY for reason, _ in scans)
    counts[NO_VISIBLE_JOINT] = sum(reason == NO_VISIBLE_JOINT for reason, _ in scans)
    kept = [item for item, (reason, _) in zip(candidates, scans) if reason is None]
    counts['truncated'] = sum(frames > MAX_FRAMES for reason, frames in scans if reason is None)
    counts['written'] = len(kept)

    # slot[b][k] = (part, position) of kept sample k in benchmark b
    slots, writers = {}, {}
    for benchmark in args.benchmarks:
        full = f'{args.dataset}-{benchmark}'
        train = [is_training(name, full) for _, name, _ in kept]
        root = os.path.join(args.out, benchmark)
        positions = {'train': 0, 'val': 0}
        slots[benchmark] = []
        for flag in train:
            part = 'train' if flag else 'val'
            slots[benchmark].append((part, positions[part]))
            positions[part] += 1
        writers[benchmark] = {part: SplitWriter(root, part, positions[part])
                              for part in ('train', 'val')}

    tasks = [(source, states, args.occlusion, args.seed, index) for index, _, source in kept]
    converted = map_with_progress(_convert, tasks, args.workers, 'write')
    for k, (xyz, occluded, present) in enumerate(converted):
        name = kept[k][1]
        label = parse_sample_name(name).label
        for benchmark in args.benchmarks:
            part, position = slots[benchmark][k]
            writers[benchmark][part].write(position, name, label, xyz, occluded, present)

    for benchmark in args.benchmarks:
        meta = {
            'source': args.dataset,
            'input': input_,
            'classes': list(ACTION_NAMES[:DATASETS[args.dataset][1]]),
            'action_ids': list(range(1, DATASETS[args.dataset][1] + 1)),
            'benchmark': f'{args.dataset}-{benchmark}',
            'occlusion': args.occlusion,
            'occluded_states': list(states),
            'seed': args.seed,
            'counts': counts,
            'command': command,
        }
        for writer in writers[benchmark].values():
            writer.close(meta)
    return counts


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    command = shlex.join(['python', '-m', 'training.prepare_ntu'] + argv)
    counts = prepare(args, command)
    report = ', '.join(f'{key} {value}' for key, value in counts.items())
    print(f'prepare_ntu: {report}', file=sys.stderr)
    if counts['truncated']:
        print(f'prepare_ntu: warning: {counts["truncated"]} sequences longer than {MAX_FRAMES} '
              f'frames were cut to {MAX_FRAMES}', file=sys.stderr)
    return counts


if __name__ == '__main__':
    main()
