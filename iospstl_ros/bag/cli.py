"""``iospstl_bag``: record data sets as rosbags, and evaluate the node by replaying them.

``iospstl_bag convert``
    Data-set arrays (a benchmark directory of ``iospstl_ros.datasets.format``: synthetic or NTU,
    part train or val) or a directory of raw NTU ``.skeleton`` files -> a rosbag2 bag (mcap or
    sqlite3) with ``/skeletons`` (PointCloud2, the node's input) at 30 Hz and ``/ground_truth``
    (DiagnosticArray, the true class per sequence and body). Format:
    :mod:`iospstl_ros.bag.rosbag`.

``iospstl_bag eval``
    Replays a bag (or a directory of NTU ``.skeleton`` files, converted on the fly with
    ``--skeleton-dir``) through the recogniser and scores the labels against the ground truth,
    matched to the model's classes by NTU action id, else by name; sequences of classes the
    model does not know are listed but left out of the scores.
    Offline (default): the node's code path (decode, ``OnlineRecognizer``, ``Pipeline``) on the
    bag's messages, no DDS. ``--live``: publishes the bag over DDS into a running
    ``iospstl_node`` (or one it starts with ``--start-node``) and collects ``action_labels``.
    Both give the same labels on the same bag when nothing is lost. Writes ``summary.json``,
    ``predictions.csv``, confusion matrices and a latency histogram to ``--out``, and prints
    the accuracy and latency figures, each sequence's label and a text confusion matrix.
"""

import argparse
import csv
from decimal import Decimal, InvalidOperation
import json
import os
import shlex
import sys
import tempfile
import time

from iospstl_ros.axes import AXES
from iospstl_ros.bag.convert import sequences_from_skeleton_dir, sequences_from_split
from iospstl_ros.bag.evaluate import (
    align_truth, compare_predictions, format_confusion, latency_summary, match_predictions,
    read_truth_csv, score, SCORED_LEVELS, sequence_labels, SEQUENCE_RULES)
from iospstl_ros.bag.rosbag import (
    BagReader, DEFAULT_AXES, DEFAULT_FRAME_ID, DEFAULT_RATE, DEFAULT_START_TIME_NS,
    GROUND_TRUTH_TOPIC, SKELETONS_TOPIC, STORAGES, write_bag)
from iospstl_ros.model_dir import load_model_dir
from iospstl_ros.plots import plot_confusion, plot_histogram
from iospstl_ros.tracking import TrackerConfig
from iospstl_ros.validation import int_argument

PROG = 'iospstl_bag'
#: Default gap between sequences: twice the node's default body timeout.
DEFAULT_GAP_S = 2.0 * TrackerConfig().timeout_s


class _Progress:
    """tqdm when available and wanted, else nothing."""

    def __init__(self, total, description, enabled, unit='msg'):
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                print(f'{PROG}: no progress bar (tqdm is not installed)', file=sys.stderr)
                return
            self._bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr,
                             dynamic_ncols=True)

    def __call__(self, n=1):
        if self._bar is not None:
            self._bar.update(n)

    def close(self):
        if self._bar is not None:
            self._bar.close()


def _seconds_to_ns(text):
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f'expected seconds, got {text!r}') from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f'expected seconds >= 0, got {text!r}')
    return int(value * 10 ** 9)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, got {text!r}') from None
    if not value > 0 or value == float('inf'):
        raise argparse.ArgumentTypeError(f'expected a finite number > 0, got {text!r}')
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, got {text!r}') from None
    if not 0 <= value < float('inf'):
        raise argparse.ArgumentTypeError(f'expected a finite number >= 0, got {text!r}')
    return value


def build_parser():
    """Build the argument parser of ``iospstl_bag`` (subcommands ``convert`` and ``eval``)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description='Record skeleton data sets as rosbag2 bags and evaluate '
        'iospstl_node by replaying them (offline, or live over DDS).')
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    convert = commands.add_parser(
        'convert', help='write a data set as a bag with skeletons and ground truth',
        description='Write data-set sequences as a rosbag2 bag: /skeletons '
        "(sensor_msgs/PointCloud2 in the node's input format) at --rate Hz and /ground_truth "
        '(diagnostic_msgs/DiagnosticArray, one status per body: sequence, class_index, label, '
        'first/last stamp), sequences separated by --gap seconds of empty frames. Same input '
        'and options give a byte-identical bag (when written to a directory of the same name).')
    source = convert.add_mutually_exclusive_group(required=True)
    source.add_argument('--dataset', metavar='DIR',
                        help='benchmark directory written by training.synthesize or '
                             'training.prepare_ntu (for example data/synth/xsub)')
    source.add_argument('--skeleton-dir', metavar='DIR',
                        help='directory of raw NTU RGB+D .skeleton files (named like '
                             'S001C001P001R001A001.skeleton; read in name order; the class is '
                             'the action number - 1)')
    convert.add_argument('--part', choices=('train', 'val'), default='val',
                         help='part of --dataset to convert; default: %(default)s')
    convert.add_argument('--out', required=True, metavar='BAG',
                         help='bag directory to create (must not exist)')
    convert.add_argument('--storage', choices=STORAGES, default='mcap',
                         help='rosbag2 storage plugin; default: %(default)s')
    convert.add_argument('--clean', action='store_true',
                         help='drop the occlusion marks: every joint with a coordinate is sent '
                              'visible (as from a tracker that reports no occlusion). Data-set '
                              'arrays hold no coordinate for occluded joints, so those stay '
                              'marked (the count is printed); .skeleton files hold the '
                              "tracker's guess for every joint")
    convert.add_argument('--limit', type=int_argument(1), metavar='N',
                         help='only the first N sequences')
    convert.add_argument('--start-time', type=_seconds_to_ns, default=DEFAULT_START_TIME_NS,
                         metavar='SEC', help='header stamp of the first frame, seconds since '
                         f'the epoch; default: {DEFAULT_START_TIME_NS // 10 ** 9} (fixed, so '
                         'conversions are reproducible)')
    convert.add_argument('--rate', type=_positive_float, default=DEFAULT_RATE, metavar='HZ',
                         help='frames per second; default: %(default)s (Kinect v2 / NTU)')
    convert.add_argument('--gap', type=_non_negative_float, default=DEFAULT_GAP_S,
                         metavar='SEC', help='seconds of empty frames after each sequence; '
                         "keep it longer than the node's timeout_s so tracks end between "
                         'sequences; default: %(default)s')
    convert.add_argument('--axes', choices=AXES, default=DEFAULT_AXES,
                         help='axes of the written coordinates, converted from the data '
                              "set's NTU camera axes: rep103 (x forward, y left, z up; the "
                              "node's default input_axes), optical (x right, y down, z "
                              'forward) or ntu (unchanged); default: %(default)s')
    convert.add_argument('--frame-id', default=DEFAULT_FRAME_ID,
                         help='header frame_id of every message; default: %(default)s')
    convert.add_argument('--skeletons-topic', default=SKELETONS_TOPIC,
                         help='topic of the skeleton messages; default: %(default)s')
    convert.add_argument('--ground-truth-topic', default=GROUND_TRUTH_TOPIC,
                         help='topic of the ground truth; default: %(default)s')
    convert.add_argument('--no-progress', action='store_true', help='no progress bar')

    evaluate = commands.add_parser(
        'eval', help='replay a bag (or .skeleton files) through the recogniser and score it',
        description='Replay a bag, or a directory of NTU RGB+D .skeleton files, through the '
        'recogniser and score the labels against the ground truth: offline (default; the '
        "node's code path without DDS) or --live (over DDS into a running iospstl_node). The "
        "ground truth is matched to the model's classes by NTU action id where both have one, "
        'else by name; sequences of classes the model does not know are listed and left out '
        'of the scores. Writes summary.json, predictions.csv, sequences.csv, confusion '
        'matrices and a latency histogram to --out and prints the figures, the label of each '
        'sequence and the per-sequence confusion matrix.')
    evaluate.add_argument('bag', nargs='?',
                          help='rosbag2 bag directory (with metadata.yaml) or a lone '
                          '.mcap / .db3 file; other topics than the skeletons and the ground '
                          'truth are ignored. Give either this or --skeleton-dir')
    evaluate.add_argument('--skeleton-dir', metavar='DIR',
                          help='instead of a bag: a directory of NTU RGB+D .skeleton files '
                               '(S001C001P001R001A058.skeleton, ...; the true class is the '
                               "name's action), converted as by convert --skeleton-dir into a "
                               "temporary bag in --out (in the node's input_axes), replayed "
                               'and deleted')
    evaluate.add_argument('--limit', type=int_argument(1), metavar='N',
                          help='with --skeleton-dir: only the first N files (in name order)')
    evaluate.add_argument('--model', metavar='DIR',
                          help="model directory (training.export); default: the params' "
                               "model_dir, else the node's default model")
    evaluate.add_argument('--params-file', metavar='YAML',
                          help="the node's ROS 2 params file (for example config/iospstl.yaml);"
                               " default: the node's defaults. Offline mode uses the same "
                               'window, stride, timeout, pairing, backend and threads as the '
                               'node would')
    evaluate.add_argument('--param', action='append', default=[], metavar='NAME:=VALUE',
                          help='override one node parameter (repeatable), after '
                               '--params-file, for example --param backend:=cpu')
    evaluate.add_argument('--skeletons-topic', default='skeletons',
                          help='skeleton topic in the bag: an absolute name, or a relative name '
                               'that also matches one namespaced topic (/robot/skeletons); '
                               'default: %(default)s')
    evaluate.add_argument('--ground-truth-topic', default='ground_truth',
                          help='ground-truth topic in the bag (same matching); without it the '
                               'labels are reported but not scored; default: %(default)s')
    evaluate.add_argument('--ground-truth-csv', metavar='CSV',
                          help='read the ground truth from this CSV file instead of a topic '
                               '(for bags recorded on a robot): one row per sequence and body '
                               'with columns sequence, body_id, label, first_stamp_ns, '
                               'last_stamp_ns (class_index optional, used when label is empty)')
    evaluate.add_argument('--out', metavar='DIR',
                          help='report directory; default: <bag>_eval next to the bag')
    evaluate.add_argument('--sequence-rule', choices=SEQUENCE_RULES, default='majority',
                          help='how the labels of a sequence become its label: majority (most '
                               'frequent class, ties to the class predicted last) or last (the '
                               'last label); default: %(default)s')
    evaluate.add_argument('--show-sequences', type=int_argument(0), default=50,
                          metavar='N', help='print the labels of at most N sequences (all of '
                          'them are in sequences.csv); default: %(default)s')
    evaluate.add_argument('--no-plots', action='store_true',
                          help='skip the PNG plots (they need matplotlib)')
    evaluate.add_argument('--no-progress', action='store_true', help='no progress bar')
    live = evaluate.add_argument_group('live mode (over DDS)')
    live.add_argument('--live', action='store_true',
                      help='publish the bag into a running node over DDS and collect its '
                           'action_labels, instead of replaying offline')
    live.add_argument('--speed', type=_positive_float, default=1.0,
                      help='playback speed factor (2 = twice the recorded rate); default: '
                           '%(default)s')
    live.add_argument('--publish-topic', metavar='TOPIC',
                      help="topic to publish the skeleton messages on; default: the bag's "
                           'topic name')
    live.add_argument('--labels-topic', default='action_labels',
                      help="topic of the node's labels; default: %(default)s")
    live.add_argument('--no-clock', action='store_true',
                      help='do not publish /clock (by default the bag time is published '
                           'before each message, for nodes with use_sim_time)')
    live.add_argument('--best-effort', action='store_true',
                      help='publish best effort (default reliable, which also matches the '
                           "node's best-effort subscription)")
    live.add_argument('--start-node', action='store_true',
                      help='start the installed iospstl_node with --model, --params-file, '
                           '--param, use_sim_time and a fast-discovery Fast DDS profile, wait '
                           'until it is active, replay, then stop it (its output goes to '
                           'OUT/node.log)')
    live.add_argument('--node-timeout', type=_positive_float, default=120.0, metavar='SEC',
                      help='how long to wait for an active node (a subscriber on the '
                           'skeleton topic and a publisher of labels; with --start-node this '
                           'includes loading and warming up the model); default: %(default)s')
    live.add_argument('--drain', type=_positive_float, default=3.0, metavar='SEC',
                      help='after the last message, stop waiting for labels after this much '
                           'silence; default: %(default)s')
    live.add_argument('--late-ms', type=_positive_float, default=200.0, metavar='MS',
                      help='a label whose latency (publication of its skeleton message to '
                           'receipt) exceeds this is counted late; default: %(default)s')
    live.add_argument('--compare-offline', action='store_true',
                      help='also replay offline and report how many live labels agree '
                           '(same stamp, body and class)')
    return parser


# --------------------------------------------------------------------------- convert

def run_convert(args):
    """``iospstl_bag convert``; returns the summary dict."""
    if os.path.exists(args.out):
        raise ValueError(f'{args.out}: exists already; the bag tool does not overwrite bags')
    if args.dataset:
        count, sequences = sequences_from_split(args.dataset, args.part, args.limit, args.clean)
        source = {'source': 'dataset', 'dataset': args.dataset, 'part': args.part}
    else:
        count, sequences = sequences_from_skeleton_dir(args.skeleton_dir, args.limit,
                                                       args.clean)
        source = {'source': 'skeleton_dir', 'skeleton_dir': args.skeleton_dir}
    custom = {'iospstl_bag': json.dumps({**source, 'clean': args.clean, 'rate': args.rate,
                                         'axes': args.axes,
                                         'gap_s': args.gap, 'limit': args.limit},
                                        sort_keys=True)}
    progress = _Progress(count, 'convert', not args.no_progress, unit='seq')
    try:
        summary = write_bag(args.out, sequences, storage=args.storage,
                            start_time_ns=args.start_time, rate=args.rate, gap_s=args.gap,
                            frame_id=args.frame_id, skeletons_topic=args.skeletons_topic,
                            ground_truth_topic=args.ground_truth_topic, custom_data=custom,
                            progress=progress, axes=args.axes)
    finally:
        progress.close()
    print(f'wrote {summary["path"]} ({args.storage}): {summary["sequences"]} sequences, '
          f'{summary["bodies"]} bodies, {summary["skeleton_messages"]} skeleton messages on '
          f'{args.skeletons_topic}, {summary["ground_truth_messages"]} on '
          f'{args.ground_truth_topic}, {summary["duration_s"]:.1f} s')
    if args.clean and summary['missing_coordinates']:
        print(f'--clean: {summary["missing_coordinates"]} occluded joints have no coordinate '
              'in the data set and stay marked occluded')
    return summary


# --------------------------------------------------------------------------- eval

def _default_out(bag):
    bag = os.path.normpath(os.path.abspath(bag))
    return (os.path.splitext(bag)[0] if os.path.isfile(bag) else bag) + '_eval'


def _write_predictions(path, predictions, truth, matched):
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['stamp_ns', 'body_id', 'level', 'class_index', 'label', 'confidence',
                         'latency_ms', 'sequence', 'true_class_index', 'true_label',
                         'true_action_id'])
        for prediction, index in zip(predictions, matched):
            entry = truth[index] if index >= 0 else None
            writer.writerow([prediction.stamp_ns, prediction.body_id, prediction.level,
                             prediction.class_index, prediction.label,
                             f'{prediction.confidence:.6f}', f'{prediction.latency_ms:.3f}',
                             entry.sequence if entry else '',
                             entry.class_index if entry else '', entry.label if entry else '',
                             entry.action_id if entry else ''])


def _write_sequences(path, rows, classes):
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['sequence', 'true_class', 'true_action_id', 'true_class_index',
                         'predicted_class_index', 'predicted_label', 'windows', 'result'])
        for row in rows:
            predicted = row['predicted']
            writer.writerow([row['sequence'], row['truth'], row['action_id'],
                             row['class_index'], predicted,
                             classes[predicted] if predicted >= 0 else '', row['windows'],
                             row['result']])


def _plots(out, report, classes, latencies, latency_title):
    """Write the PNGs; return their names (empty without matplotlib)."""
    written = []
    try:
        if report is not None:
            for key, title in (('window_confusion', 'Per-window confusion'),
                               ('sequence_confusion', 'Per-sequence confusion')):
                name = f'{key}.png'
                plot_confusion(report[key], classes, os.path.join(out, name), title)
                written.append(name)
        if len(latencies):
            plot_histogram(latencies, os.path.join(out, 'latency.png'), latency_title)
            written.append('latency.png')
    except ImportError as error:
        print(f'{PROG}: no plots written ({error}; install matplotlib, or pass --no-plots)',
              file=sys.stderr)
    return written


def _jsonable(value):
    if hasattr(value, 'tolist'):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _fmt(value, unit='', digits=1):
    return 'n/a' if value is None else f'{value:.{digits}f}{unit}'


def _live(args, reader, values, model_dir, classes, out):
    """Replay over DDS; return (predictions, live stats)."""
    from iospstl_ros.bag.live import (
        LiveReplay, node_command, NodeProcess, PROFILE_VARIABLE, write_fast_discovery_profile)
    from iospstl_ros.bag.replay import scheduled_windows
    from iospstl_ros.params import tracker_config

    expected = scheduled_windows(reader, classes, tracker_config(values),
                                 values['max_bodies_per_message'])
    if args.start_node and not os.environ.get(PROFILE_VARIABLE):
        os.environ[PROFILE_VARIABLE] = write_fast_discovery_profile(out)
    publish_topic = args.publish_topic or reader.skeletons_topic
    process = None
    replay = None
    try:
        if args.start_node:
            command = node_command(model_dir, args.params_file, args.param,
                                   skeletons_topic=publish_topic,
                                   labels_topic=args.labels_topic,
                                   use_sim_time=not args.no_clock)
            print('starting: ' + ' '.join(shlex.quote(c) for c in command))
            process = NodeProcess(command, os.path.join(out, 'node.log'))
        replay = LiveReplay(publish_topic, args.labels_topic, clock=not args.no_clock,
                            reliable=not args.best_effort)
        waited = replay.wait_for_node(args.node_timeout, process)
        print(f'node active on {replay.publish_topic} -> {replay.labels_topic} '
              f'(waited {waited:.1f} s); replaying {reader.skeleton_count} messages at '
              f'{args.speed:g}x')
        progress = _Progress(reader.skeleton_count, 'live', not args.no_progress)
        started = time.monotonic()
        try:
            replay.play(reader.skeleton_messages(), args.speed, progress)
        finally:
            progress.close()
        played_s = time.monotonic() - started
        replay.drain(expected, quiet_s=args.drain, timeout_s=max(30.0, 10 * args.drain))
        predictions = replay.predictions()
        stats = {'messages_published': replay.published, 'play_s': played_s,
                 'max_publish_lag_ms': replay.max_lag_ms}
    finally:
        if replay is not None:
            replay.close()
        if process is not None:
            status = process.stop()
            print(f'iospstl_node stopped (exit status {status}); log: {process.log_path}')
    received = {p.key for p in predictions if p.level in SCORED_LEVELS}
    expected_set = set(expected)
    latencies = [p.latency_ms for p in predictions if p.level in SCORED_LEVELS]
    late = sum(1 for x in latencies if x > args.late_ms)
    stats.update({'windows_expected': len(expected_set), 'labels_received': len(received),
                  'windows_dropped': len(expected_set - received),
                  'labels_unexpected': len(received - expected_set),
                  'late_ms': args.late_ms, 'labels_late': late})
    return predictions, stats


def _offline(args, reader, values, model_dir, summary):
    """Replay without DDS; return (predictions, classes, the classes' NTU action ids)."""
    from iospstl_ros.bag.replay import make_pipeline, replay_offline
    from iospstl_ros.params import tracker_config

    pipeline = make_pipeline(values, model_dir)
    summary['providers'] = pipeline.providers
    progress = _Progress(reader.skeleton_count, 'offline', not args.no_progress)
    try:
        predictions, stats = replay_offline(reader, pipeline, tracker_config(values),
                                            values['max_bodies_per_message'], progress)
    finally:
        progress.close()
    summary['offline'] = stats
    return predictions, pipeline.classes, pipeline.model.action_ids


def _score(args, predictions, truth, classes, action_ids, summary):
    """Fill ``summary`` with the scores.

    Returns
    -------
    report : dict or None
        :func:`~iospstl_ros.bag.evaluate.score` over the classes the model knows.
    truth : list of TruthEntry
        The ground truth in the model's classes.
    matched : ndarray
        Entry of ``truth`` of every prediction (-1: none).
    sequences : list of dict
        :func:`~iospstl_ros.bag.evaluate.sequence_labels` of every ground-truth sequence.
    """
    if truth is None:
        summary['scores'] = None
        summary['note'] = (f'no ground-truth topic {args.ground_truth_topic!r} in the bag: '
                           'labels are reported in predictions.csv but cannot be scored '
                           '(give --ground-truth-csv to score them)')
        return None, [], [-1] * len(predictions), []
    alignment = align_truth(truth, classes, action_ids)
    sequences = sequence_labels(predictions, truth, alignment.class_of, args.sequence_rule)
    summary['ground_truth'] = {
        'sequences': len(sequences),
        'sequences_scored': len(sequences) - alignment.left_out_sequences,
        'sequences_left_out': alignment.left_out_sequences,
        'windows_left_out': sum(r['windows'] for r in sequences if r['result'] == 'not scored'),
        'unknown_classes': alignment.unknown, 'bodies_matched_by': alignment.matched_by,
        'model_has_action_ids': action_ids is not None}
    if alignment.unknown:
        summary['note'] = (f'{alignment.left_out_sequences} of {len(sequences)} sequences '
                           'are of classes the model does not know and are not scored: '
                           + ', '.join(f'{name} ({count})'
                                       for name, count in alignment.unknown.items()))
    report = score(predictions, alignment.truth, len(classes), args.sequence_rule)
    summary['scores'] = {k: v for k, v in report.items()
                         if k not in ('window_confusion', 'sequence_confusion')}
    summary['confusion'] = {'classes': list(classes),
                            'action_ids': None if action_ids is None else list(action_ids),
                            'window': report['window_confusion'],
                            'sequence': report['sequence_confusion']}
    return (report, alignment.truth, match_predictions(predictions, alignment.truth),
            sequences)


def _skeleton_bag(args, values, count, sequences, path):
    """Write the ``--skeleton-dir`` sequences as a bag at ``path`` for the replay."""
    from iospstl_ros.params import tracker_config

    gap = max(DEFAULT_GAP_S, 2.0 * tracker_config(values).timeout_s)
    custom = {'iospstl_bag': json.dumps({'source': 'skeleton_dir',
                                         'skeleton_dir': args.skeleton_dir,
                                         'limit': args.limit, 'gap_s': gap,
                                         'axes': values['input_axes']}, sort_keys=True)}
    progress = _Progress(count, 'convert', not args.no_progress, unit='seq')
    try:
        written = write_bag(path, sequences, gap_s=gap, custom_data=custom, progress=progress,
                            axes=values['input_axes'])
    finally:
        progress.close()
    print(f'converted {written["sequences"]} .skeleton files of {args.skeleton_dir} '
          f'({written["bodies"]} bodies, {written["duration_s"]:.1f} s at {DEFAULT_RATE:g} Hz)')
    return path


def run_eval(args):
    """``iospstl_bag eval``; returns the summary dict."""
    from iospstl_ros.bag.replay import node_parameters, parse_override
    from iospstl_ros.model_dir import default_model_dir
    from iospstl_ros.params import tracker_config

    if (args.bag is None) == (args.skeleton_dir is None):
        raise ValueError('expected a bag or --skeleton-dir DIR (one of them)')
    if args.skeleton_dir and args.ground_truth_csv:
        raise ValueError('--ground-truth-csv goes with a bag; .skeleton files carry their '
                         'class in their names')
    if args.limit and not args.skeleton_dir:
        raise ValueError('--limit goes with --skeleton-dir')
    overrides = [parse_override(text) for text in args.param]
    values, ignored = node_parameters(args.params_file, overrides)
    model_dir = os.path.abspath(args.model or values['model_dir'] or default_model_dir())
    tracker_config(values)  # fail early on bad parameters
    out = args.out or _default_out(args.bag or args.skeleton_dir)
    if not args.skeleton_dir:
        return _eval_bag(args, args.bag, values, ignored, model_dir, out)
    if not os.path.isdir(args.skeleton_dir):
        raise ValueError(f'{args.skeleton_dir}: no such directory; expected a directory of '
                         'NTU RGB+D .skeleton files')
    count, sequences = sequences_from_skeleton_dir(args.skeleton_dir, args.limit)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='.skeletons-', dir=out) as tmp:
        bag = _skeleton_bag(args, values, count, sequences, os.path.join(tmp, 'bag'))
        args.skeletons_topic, args.ground_truth_topic = SKELETONS_TOPIC, GROUND_TRUTH_TOPIC
        return _eval_bag(args, bag, values, ignored, model_dir, out)


def _eval_bag(args, bag, values, ignored, model_dir, out):
    with BagReader(bag, args.skeletons_topic, args.ground_truth_topic) as reader:
        if args.ground_truth_csv:
            truth = read_truth_csv(args.ground_truth_csv)
        else:
            truth = reader.ground_truth()
        os.makedirs(out, exist_ok=True)
        for name in ignored:
            print(f'note: {name} is not a parameter of iospstl_node; ignored')
        summary = {'command': ' '.join(shlex.quote(a) for a in [PROG] + args.argv),
                   'bag': None if args.skeleton_dir else os.path.abspath(bag),
                   'skeleton_dir': args.skeleton_dir and os.path.abspath(args.skeleton_dir),
                   'mode': 'live' if args.live else 'offline',
                   'skeletons_topic': reader.skeletons_topic,
                   'ground_truth_topic': reader.truth_topic,
                   'ground_truth_csv': args.ground_truth_csv, 'model_dir': model_dir,
                   'parameters': values, 'skeleton_messages': reader.skeleton_count,
                   'ignored_topics': sorted(set(reader.topics) - {reader.skeletons_topic,
                                                                  reader.truth_topic})}
        if args.live:
            model = load_model_dir(model_dir, verify_checksums=False)
            classes, action_ids = model.classes, model.action_ids
            predictions, summary['live'] = _live(args, reader, values, model_dir, classes,
                                                 out)
            latency_title = 'Live latency: skeleton publication to label receipt'
            if args.compare_offline:
                offline, _, _ = _offline(args, reader, values, model_dir, summary)
                summary['live_vs_offline'] = compare_predictions(offline, predictions)
        else:
            predictions, classes, action_ids = _offline(args, reader, values, model_dir,
                                                        summary)
            latency_title = 'Offline latency: pipeline time per window'
    scored = [p for p in predictions if p.level in SCORED_LEVELS]
    latencies = [p.latency_ms for p in scored]
    summary['latency_ms'] = latency_summary(latencies)
    summary['labels'] = {'total': len(predictions), 'scored_levels': len(scored),
                         'stale': len(predictions) - len(scored),
                         'per_class': _class_counts(scored)}
    report, truth, matched, sequences = _score(args, predictions, truth, classes, action_ids,
                                               summary)
    _write_predictions(os.path.join(out, 'predictions.csv'), predictions, truth, matched)
    if report is not None:
        _write_sequences(os.path.join(out, 'sequences.csv'), sequences, classes)
    summary['plots'] = [] if args.no_plots else _plots(out, report, classes, latencies,
                                                       latency_title)
    summary['out'] = out
    with open(os.path.join(out, 'summary.json'), 'w') as f:
        json.dump(_jsonable(summary), f, indent=2, sort_keys=True)
    details = None
    if report is not None:
        details = (sequences, classes, args.show_sequences,
                   format_confusion(report['sequence_confusion'], classes, action_ids))
    _print_summary(summary, details)
    return summary


def _print_sequences(rows, classes, limit, rule):
    if not rows or not limit:
        return
    shown = rows[:limit]
    print(f'sequences ({rule} label of the windows; true class -> predicted):')
    width = min(40, max(len(r['truth']) for r in shown))
    for row in shown:
        predicted = classes[row['predicted']] if row['predicted'] >= 0 else '-'
        truth = row['truth'] if len(row['truth']) <= width else row['truth'][:width - 1] + '~'
        print(f'  {row["sequence"]}  {truth:<{width}} -> {predicted:<24} '
              f'{row["windows"]:>4} windows  {row["result"]}')
    if len(rows) > len(shown):
        print(f'  ... {len(rows) - len(shown)} more in sequences.csv')


def _class_counts(predictions):
    counts = {}
    for p in predictions:
        counts[p.label] = counts.get(p.label, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _print_summary(summary, details=None):
    """Print the report; ``details``: (sequence rows, classes, how many to show, matrix text)."""
    source = summary['bag'] or f'the .skeleton files of {summary["skeleton_dir"]}'
    print(f'{summary["mode"]} replay of {source} ({summary["skeleton_messages"]} '
          f'messages on {summary["skeletons_topic"]}); model {summary["model_dir"]}')
    labels = summary['labels']
    print(f'labels: {labels["scored_levels"]} windows (OK/WARN), {labels["stale"]} STALE')
    scores = summary['scores']
    truth = summary.get('ground_truth')
    if truth:
        by = truth['bodies_matched_by']
        print(f'ground truth: {truth["sequences"]} sequences, {truth["sequences_scored"]} of '
              f'classes the model knows (bodies matched by NTU action id {by["action_id"]}, '
              f'by name {by["name"]}, by class index {by["class_index"]}), '
              f'{truth["sequences_left_out"]} left out')
        if not truth['model_has_action_ids']:
            print('note: the model has no NTU action ids (exported before they existed): '
                  'ground truth is matched to its classes by name only')
    if summary.get('note'):
        print(summary['note'])
    if details is not None:
        rows, classes, limit, matrix = details
        _print_sequences(rows, classes, limit, summary['scores']['rule'])
        print('per-sequence confusion, classes the model knows (rows true, columns predicted):')
        print(matrix)
    if scores is not None:
        left_out = truth['windows_left_out'] if truth else 0
        print(f'per-window accuracy: {_fmt(_pct(scores["window_accuracy"]), " %")} '
              f'({scores["window_correct"]}/{scores["matched"]} windows; '
              f'{left_out} labels of unscored sequences, {scores["unmatched"] - left_out} labels '
              'matched no ground truth)')
        print(f'per-sequence accuracy ({scores["rule"]}): '
              f'{_fmt(_pct(scores["sequence_accuracy"]), " %")} '
              f'({scores["sequence_correct"]}/{scores["sequences"]} sequences; '
              f'{scores["sequences_without_label"]} without any label)')
    latency = summary['latency_ms']
    kind = 'publication to receipt' if summary['mode'] == 'live' else 'pipeline'
    print(f'latency ({kind}): p50 {_fmt(latency["p50"], " ms")}, p90 '
          f'{_fmt(latency["p90"], " ms")}, p99 {_fmt(latency["p99"], " ms")}, max '
          f'{_fmt(latency["max"], " ms")} over {latency["count"]} labels')
    live = summary.get('live')
    if live:
        print(f'live: {live["messages_published"]} messages published in {live["play_s"]:.1f} s '
              f'(max publish lag {live["max_publish_lag_ms"]:.1f} ms); windows expected '
              f'{live["windows_expected"]}, labels received {live["labels_received"]}, dropped '
              f'{live["windows_dropped"]}, unexpected {live["labels_unexpected"]}, late (> '
              f'{live["late_ms"]:g} ms) {live["labels_late"]}')
    comparison = summary.get('live_vs_offline')
    if comparison:
        print(f'live vs offline: {comparison["same_class"]}/{comparison["common"]} common '
              f'labels agree; {comparison["missing"]} offline labels missing live, '
              f'{comparison["extra"]} live labels not offline')
    offline = summary.get('offline')
    if offline and offline['rejected']:
        print(f'rejected messages: {offline["rejected"]}')
    print(f'report: {summary["out"]}/summary.json')


def _pct(value):
    return None if value is None else 100.0 * value


def main(argv=None):
    """Run ``iospstl_bag``; return the exit status (0 ok, 1 error, 2 usage error, 130 Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if args.command == 'convert':
            run_convert(args)
        else:
            run_eval(args)
    except (ValueError, RuntimeError, OSError) as error:
        print(f'{PROG}: error: {error}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
