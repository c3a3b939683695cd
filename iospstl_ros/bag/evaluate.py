"""Score action labels against per-body ground truth: the numpy side of ``iospstl_bag eval``.

Ground truth is a list of :class:`TruthEntry`, one per (sequence, body): the body id the
skeleton stream uses for that person, the true class (name, index and NTU RGB+D action id) and
the first and last header stamps at which the body appears. :func:`align_truth` expresses it in
the model's classes: by NTU action id where both the entry and the model's class have one, else
by name; entries of classes the model does not know are left out and reported.

Predictions are :class:`Prediction` records, one per label the recogniser published (a
``body/<id>`` status of ``action_labels``), stamped with the header stamp of the newest skeleton
message of the window.

Matching (:func:`match_predictions`): a prediction belongs to the ground-truth entry with the
same body id whose ``[first_stamp_ns, last_stamp_ns]`` holds the prediction's stamp. STALE labels
(a lost track) carry no class and are never matched or scored. Predictions that match no entry
are counted as ``unmatched`` (a track the ground truth does not know) and left out of the
accuracies.

Scores (:func:`score`):

- **per window**: every matched OK or WARN label is one vote; accuracy = correct / matched.
- **per sequence**: the labels of all bodies of a ground-truth sequence (entries sharing a
  ``sequence`` name and a class) are combined by ``rule``: ``'majority'`` (the most frequent
  class; a tie goes to the tied class predicted last) or ``'last'`` (the class of the last
  label by stamp, then body id). A sequence without any label counts as wrong, so accuracy =
  correct / all ground-truth sequences, and ``sequences_without_label`` says how many those are.
  :func:`sequence_labels` lists every sequence's label, those of unknown classes included, and
  :func:`format_confusion` prints a confusion matrix for the terminal.

Everything here is numpy-only, so it is tested without ROS.
"""

import csv
from dataclasses import dataclass, replace
import math

from iospstl_ros.datasets.splits import action_code, check_action_ids
import numpy as np

#: Levels of a label that carry a class (STALE reports a lost track).
SCORED_LEVELS = ('OK', 'WARN')
#: Rules that turn a sequence's window labels into one label.
SEQUENCE_RULES = ('majority', 'last')


@dataclass(frozen=True)
class TruthEntry:
    """The true action of one body of one sequence.

    Attributes
    ----------
    sequence_index : int
        Position of the sequence in the bag (0-based).
    sequence : str
        Sequence name (for data sets, the sample name such as ``S001C001P001R001A001``).
    body_id : int
        Body id of the person in the skeleton messages.
    class_index : int
        True class, an index into the model's class list.
    label : str
        Its name.
    first_stamp_ns, last_stamp_ns : int
        Header stamps of the first and last skeleton messages holding the body.
    num_frames : int
        Messages holding the body.
    action_id : int
        NTU RGB+D action number of the class (``A023`` -> 23); 0 if none or unknown.
    """

    sequence_index: int
    sequence: str
    body_id: int
    class_index: int
    label: str
    first_stamp_ns: int
    last_stamp_ns: int
    num_frames: int
    action_id: int = 0

    @property
    def class_name(self):
        """Give the true class as reported: ``'A058 handshaking'``, the label, or the index."""
        return ' '.join(part for part in (action_code(self.action_id), self.label) if part) \
            or str(self.class_index)


@dataclass(frozen=True)
class Prediction:
    """One published label of one body.

    Attributes
    ----------
    stamp_ns : int
        Header stamp of the label (the newest skeleton message of its window).
    body_id : int
    class_index : int
        -1 for a STALE label.
    label : str
    level : str
        'OK', 'WARN' or 'STALE'.
    confidence : float
    latency_ms : float
        Live: publication of the skeleton message with this stamp to receipt of the label.
        Offline: the pipeline's inference time. NaN when unknown.
    """

    stamp_ns: int
    body_id: int
    class_index: int
    label: str
    level: str
    confidence: float = math.nan
    latency_ms: float = math.nan

    @property
    def key(self):
        """``(stamp_ns, body_id)``: identifies a label within one replay."""
        return (self.stamp_ns, self.body_id)


#: Columns a ground-truth CSV file must have (``class_index``, ``num_frames`` and
#: ``action_id`` are optional).
CSV_COLUMNS = ('sequence', 'body_id', 'label', 'first_stamp_ns', 'last_stamp_ns')


def read_truth_csv(path):
    """Read ground truth from a CSV file (for bags recorded without a ground-truth topic).

    One row per (sequence, body) with the columns of :data:`CSV_COLUMNS` (header row
    required); optional ``class_index`` (used when ``label`` is empty), ``num_frames`` and
    ``action_id`` (the NTU action number, matched before the label; empty or 0 = none).
    Sequences are numbered in order of first appearance.

    Parameters
    ----------
    path : str

    Returns
    -------
    list of TruthEntry

    Raises
    ------
    ValueError
        If a column is missing or a number does not parse (the message names the line).
    """
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f'{path}: expected the columns {", ".join(CSV_COLUMNS)} '
                             f'(class_index, num_frames, action_id optional), missing '
                             f'{", ".join(missing)}')
        entries, sequences = [], {}
        for row in reader:
            try:
                entries.append(TruthEntry(
                    sequences.setdefault(row['sequence'], len(sequences)), row['sequence'],
                    int(row['body_id']), int(row.get('class_index') or -1), row['label'],
                    int(row['first_stamp_ns']), int(row['last_stamp_ns']),
                    int(row.get('num_frames') or 0), int(row.get('action_id') or 0)))
            except ValueError as error:
                raise ValueError(f'{path}, line {reader.line_num}: {error}') from error
    return entries


@dataclass(frozen=True)
class TruthAlignment:
    """Ground truth expressed in a model's classes (:func:`align_truth`).

    Attributes
    ----------
    truth : list of TruthEntry
        The entries of classes the model knows, ``class_index`` now the model's.
    class_of : tuple of int
        The model's class of every input entry, -1 where the model does not know it.
    matched_by : dict of str to int
        Input entries matched by ``'action_id'``, ``'name'`` and ``'class_index'``.
    unknown : dict of str to int
        Each true class the model does not know (:attr:`TruthEntry.class_name`) -> the
        sequences of that class left out, sorted by name.
    """

    truth: list
    class_of: tuple
    matched_by: dict
    unknown: dict

    @property
    def left_out_sequences(self):
        """Give the number of sequences (per class) left out of the scores."""
        return sum(self.unknown.values())


def align_truth(truth, classes, action_ids=None):
    """Express the ground truth in the model's class indices.

    Each entry is matched, in this order:

    1. by NTU action id, when the entry has one (``action_id`` > 0) and a class of the model
       has the same (so a recording ``A058`` scores against a class named ``'handshake'``);
    2. by name, when ``label`` is one of ``classes`` and the two do not carry different action
       ids (a bag converted from NTU RGB+D 120 scores against an NTU-60 model for the first 60
       classes, and against a model exported without ids by name only);
    3. by index, for an entry without label and action id whose ``class_index`` is a class of
       the model (a ground-truth CSV file of indices).

    Other entries (classes the model does not know) are left out.

    Parameters
    ----------
    truth : sequence of TruthEntry
    classes : sequence of str
        The model's class names.
    action_ids : sequence of int, optional
        The model's NTU action id of each class (0 = none); None: match by name only.

    Returns
    -------
    TruthAlignment

    Raises
    ------
    ValueError
        If ``action_ids`` is not one id in 0..120 per class.
    """
    classes = list(classes)
    ids = (0,) * len(classes) if action_ids is None else check_action_ids(action_ids,
                                                                          len(classes))
    by_id = {action: index for index, action in enumerate(ids) if action}
    by_name = {name: index for index, name in enumerate(classes)}
    aligned, class_of = [], []
    matched_by = {'action_id': 0, 'name': 0, 'class_index': 0}
    unknown = {}
    for entry in truth:
        index, how = -1, None
        if entry.action_id and entry.action_id in by_id:
            index, how = by_id[entry.action_id], 'action_id'
        elif entry.label in by_name and not (entry.action_id and ids[by_name[entry.label]]):
            index, how = by_name[entry.label], 'name'
        elif not entry.label and not entry.action_id \
                and 0 <= entry.class_index < len(classes):
            index, how = int(entry.class_index), 'class_index'
        class_of.append(index)
        if how is None:
            unknown.setdefault(entry.class_name, set()).add(entry.sequence)
        else:
            matched_by[how] += 1
            aligned.append(replace(entry, class_index=index))
    return TruthAlignment(aligned, tuple(class_of), matched_by,
                          {name: len(unknown[name]) for name in sorted(unknown)})


def match_predictions(predictions, truth):
    """Find the ground-truth entry of every prediction.

    Parameters
    ----------
    predictions : sequence of Prediction
    truth : sequence of TruthEntry

    Returns
    -------
    ndarray of shape (len(predictions),), int64
        Index into ``truth``, or -1 for a STALE label or one no entry covers. When entries of
        one body id overlap in time, the one listed first wins.
    """
    by_body = {}
    for index, entry in enumerate(truth):
        by_body.setdefault(int(entry.body_id), []).append(index)
    matched = np.full(len(predictions), -1, dtype=np.int64)
    for n, prediction in enumerate(predictions):
        if prediction.level not in SCORED_LEVELS:
            continue
        for index in by_body.get(int(prediction.body_id), ()):
            entry = truth[index]
            if entry.first_stamp_ns <= prediction.stamp_ns <= entry.last_stamp_ns:
                matched[n] = index
                break
    return matched


def vote(class_indices, rule='majority'):
    """Combine a sequence's window labels (in time order) into one class.

    Parameters
    ----------
    class_indices : sequence of int
        Classes of the labels, oldest first.
    rule : {'majority', 'last'}
        ``'majority'``: the most frequent class, a tie going to the tied class that was
        predicted last. ``'last'``: the last class.

    Returns
    -------
    int
        -1 for an empty sequence.
    """
    if rule not in SEQUENCE_RULES:
        raise ValueError(f'rule: expected one of {SEQUENCE_RULES}, got {rule!r}')
    classes = [int(c) for c in class_indices]
    if not classes:
        return -1
    if rule == 'last':
        return classes[-1]
    counts = {}
    for c in classes:
        counts[c] = counts.get(c, 0) + 1
    best = max(counts.values())
    return next(c for c in reversed(classes) if counts[c] == best)


def latency_summary(values_ms):
    """Count, mean, p50, p90, p99 and max of latencies in ms (NaN values ignored).

    Returns
    -------
    dict of str to float
        All None (count 0) when there is no value.
    """
    values = np.asarray(values_ms, dtype=np.float64).reshape(-1)
    values = values[~np.isnan(values)]
    if not len(values):
        return {'count': 0, 'mean': None, 'p50': None, 'p90': None, 'p99': None, 'max': None}
    p50, p90, p99 = np.percentile(values, (50, 90, 99))
    return {'count': int(len(values)), 'mean': float(values.mean()), 'p50': float(p50),
            'p90': float(p90), 'p99': float(p99), 'max': float(values.max())}


def _sequence_groups(truth):
    """Group truth entries into scored sequences: key (sequence, class) -> entry indices."""
    groups = {}
    for index, entry in enumerate(truth):
        groups.setdefault((entry.sequence, int(entry.class_index)), []).append(index)
    return groups


def score(predictions, truth, num_classes, rule='majority'):
    """Per-window and per-sequence accuracy and confusion matrices.

    Parameters
    ----------
    predictions : sequence of Prediction
    truth : sequence of TruthEntry
        Classes must lie in ``[0, num_classes)``.
    num_classes : int
    rule : {'majority', 'last'}
        How a sequence's labels become one label (see :func:`vote`).

    Returns
    -------
    dict
        ``labels`` (all predictions), ``stale``, ``windows`` (OK/WARN labels), ``matched``,
        ``unmatched``, ``window_correct``, ``window_accuracy`` (None without a matched
        window), ``sequences``, ``sequences_without_label``, ``sequence_correct``,
        ``sequence_accuracy`` (None without sequences), ``window_confusion`` and
        ``sequence_confusion`` ((num_classes, num_classes) int64 ndarrays, ``[true,
        predicted]``; sequences without a label are left out of it), ``sequence_results``
        (list of dicts: sequence, class_index, predicted, windows) and ``rule``.
    """
    if rule not in SEQUENCE_RULES:
        raise ValueError(f'rule: expected one of {SEQUENCE_RULES}, got {rule!r}')
    num_classes = int(num_classes)
    for entry in truth:
        if not 0 <= entry.class_index < num_classes:
            raise ValueError(f'ground truth of {entry.sequence} body {entry.body_id}: expected '
                             f'a class index in [0, {num_classes}), got {entry.class_index}')
    for prediction in predictions:
        if prediction.level in SCORED_LEVELS and not 0 <= prediction.class_index < num_classes:
            raise ValueError(f'label of body {prediction.body_id} at {prediction.stamp_ns}: '
                             f'expected a class index in [0, {num_classes}), got '
                             f'{prediction.class_index}')
    matched = match_predictions(predictions, truth)
    window_confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    per_entry = {}
    for prediction, index in zip(predictions, matched):
        if index < 0:
            continue
        window_confusion[truth[index].class_index, prediction.class_index] += 1
        per_entry.setdefault(int(index), []).append(prediction)
    sequence_confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    results = []
    for (sequence, true_class), indices in _sequence_groups(truth).items():
        labels = [p for i in indices for p in per_entry.get(i, ())]
        labels.sort(key=lambda p: p.key)
        predicted = vote([p.class_index for p in labels], rule)
        if predicted >= 0:
            sequence_confusion[true_class, predicted] += 1
        results.append({'sequence': sequence, 'class_index': true_class, 'predicted': predicted,
                        'windows': len(labels)})
    windows = sum(1 for p in predictions if p.level in SCORED_LEVELS)
    num_matched = int((matched >= 0).sum())
    window_correct = int(np.trace(window_confusion))
    sequence_correct = int(np.trace(sequence_confusion))
    return {
        'labels': len(predictions),
        'stale': sum(1 for p in predictions if p.level not in SCORED_LEVELS),
        'windows': windows,
        'matched': num_matched,
        'unmatched': windows - num_matched,
        'window_correct': window_correct,
        'window_accuracy': window_correct / num_matched if num_matched else None,
        'sequences': len(results),
        'sequences_without_label': sum(1 for r in results if r['predicted'] < 0),
        'sequence_correct': sequence_correct,
        'sequence_accuracy': sequence_correct / len(results) if results else None,
        'window_confusion': window_confusion,
        'sequence_confusion': sequence_confusion,
        'sequence_results': results,
        'rule': rule,
    }


def sequence_labels(predictions, truth, class_of, rule='majority'):
    """Label every ground-truth sequence, whether the model knows its class or not.

    Parameters
    ----------
    predictions : sequence of Prediction
    truth : sequence of TruthEntry
        All entries, before :func:`align_truth`.
    class_of : sequence of int
        The model's class of each entry, -1 if unknown (:attr:`TruthAlignment.class_of`).
    rule : {'majority', 'last'}

    Returns
    -------
    list of dict
        One per sequence and true class, in order of first appearance: ``sequence``,
        ``truth`` (:attr:`TruthEntry.class_name`), ``action_id``, ``class_index`` (the model's
        class, -1 if unknown), ``predicted`` (the model's class by ``rule``, -1 without a
        label) and ``windows`` (labels voted), ``result``: ``'correct'``, ``'wrong'``,
        ``'no label'`` or ``'not scored'`` (a class the model does not know).
    """
    if len(class_of) != len(truth):
        raise ValueError(f'class_of: expected one class per truth entry ({len(truth)}), got '
                         f'{len(class_of)}')
    matched = match_predictions(predictions, truth)
    per_entry = {}
    for prediction, index in zip(predictions, matched):
        if index >= 0:
            per_entry.setdefault(int(index), []).append(prediction)
    groups = {}
    for index, entry in enumerate(truth):
        groups.setdefault((entry.sequence, entry.class_name), []).append(index)
    rows = []
    for (sequence, name), indices in groups.items():
        labels = sorted((p for i in indices for p in per_entry.get(i, ())), key=lambda p: p.key)
        predicted = vote([p.class_index for p in labels], rule)
        known = int(class_of[indices[0]])
        if known < 0:
            result = 'not scored'
        elif predicted < 0:
            result = 'no label'
        else:
            result = 'correct' if predicted == known else 'wrong'
        rows.append({'sequence': sequence, 'truth': name,
                     'action_id': int(truth[indices[0]].action_id), 'class_index': known,
                     'predicted': predicted, 'windows': len(labels), 'result': result})
    return rows


def format_confusion(matrix, classes, action_ids=None, name_width=28):
    """Format a confusion matrix as terminal text, listing only the classes that occur in it.

    Parameters
    ----------
    matrix : ndarray of shape (K, K), int
        ``[true, predicted]`` counts.
    classes : sequence of str
        The K class names.
    action_ids : sequence of int, optional
        NTU action id of each class (0 = none), shown as ``A058``.
    name_width : int
        Class names are cut to this many characters.

    Returns
    -------
    str
        Rows are the true classes and columns the predicted ones, each numbered by its class
        index; only classes with a count in their row or their column are listed. One line
        ``(empty)`` when the matrix holds no count.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape != (len(classes), len(classes)):
        raise ValueError(f'matrix: expected shape ({len(classes)}, {len(classes)}), got '
                         f'{matrix.shape}')
    shown = np.flatnonzero(matrix.sum(axis=0) + matrix.sum(axis=1))
    if not len(shown):
        return '(empty)'
    names = []
    for k in shown:
        code = action_code(action_ids[k]) if action_ids is not None else ''
        name = classes[k] if len(classes[k]) <= name_width else classes[k][:name_width - 1] + '~'
        names.append(f'{k:>3} {code:<4} {name}' if action_ids is not None else f'{k:>3} {name}')
    corner = 'true \\ predicted'
    label_width = max(len(corner), max(len(n) for n in names))
    cell = max(3, len(str(int(matrix.max()))), len(str(int(shown[-1])))) + 1
    header = corner.ljust(label_width) + ''.join(f'{k:>{cell}}' for k in shown)
    lines = [header]
    for row, name in zip(shown, names):
        lines.append(name.ljust(label_width)
                     + ''.join(f'{int(matrix[row, col]):>{cell}}' for col in shown))
    return '\n'.join(lines)


def compare_predictions(reference, other):
    """Compare two replays of one bag label by label, keyed by ``(stamp_ns, body_id)``.

    Parameters
    ----------
    reference, other : sequence of Prediction
        For example the offline run (reference) and the live run. STALE labels are ignored.

    Returns
    -------
    dict
        ``common`` (keys in both), ``same_class`` (of those, how many agree on the class),
        ``missing`` (reference keys absent from ``other``: dropped windows), ``extra`` (keys
        only in ``other``), ``differing`` (up to 10 ``(stamp_ns, body_id, reference class,
        other class)`` tuples).
    """
    def classes(predictions):
        return {p.key: p.class_index for p in predictions if p.level in SCORED_LEVELS}

    a, b = classes(reference), classes(other)
    common = sorted(set(a) & set(b))
    differing = [(k[0], k[1], a[k], b[k]) for k in common if a[k] != b[k]]
    return {'common': len(common), 'same_class': len(common) - len(differing),
            'missing': len(set(a) - set(b)), 'extra': len(set(b) - set(a)),
            'differing': differing[:10]}
