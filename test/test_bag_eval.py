"""Scoring of replayed labels against ground truth (iospstl_ros.bag.evaluate), without ROS."""

import math

from iospstl_ros.bag.evaluate import (
    align_truth, compare_predictions, format_confusion, latency_summary, match_predictions,
    Prediction, read_truth_csv, score, sequence_labels, TruthEntry, vote)
import numpy as np
import pytest

#: Two sequences: A (class 1, bodies 1 and 2, frames 100..200) and B (class 0, body 3).
TRUTH = [
    TruthEntry(0, 'A', 1, 1, 'b', 100, 200, 4),
    TruthEntry(0, 'A', 2, 1, 'b', 150, 200, 2),
    TruthEntry(1, 'B', 3, 0, 'a', 300, 400, 4),
]


def p(stamp, body, cls, level='OK', latency=math.nan):
    return Prediction(stamp, body, cls, f'c{cls}', level, 0.5, latency)


def test_match_by_body_and_stamp_range():
    predictions = [p(100, 1, 1), p(200, 1, 0), p(201, 1, 1), p(150, 2, 1), p(149, 2, 1),
                   p(350, 3, 0), p(350, 1, 0), p(350, 3, -1, 'STALE'), p(120, 9, 1)]
    assert match_predictions(predictions, TRUTH).tolist() == [0, 0, -1, 1, -1, 2, -1, -1, -1]


def test_reused_body_id_is_told_apart_by_stamp():
    truth = [TruthEntry(0, 'A', 7, 0, 'a', 0, 10, 2), TruthEntry(1, 'B', 7, 1, 'b', 20, 30, 2)]
    assert match_predictions([p(5, 7, 0), p(25, 7, 1), p(15, 7, 1)], truth).tolist() \
        == [0, 1, -1]


def test_vote_majority_ties_go_to_the_class_predicted_last():
    assert vote([2, 2, 1]) == 2
    assert vote([2, 1, 1, 2]) == 2
    assert vote([2, 1, 2, 1]) == 1
    assert vote([3]) == 3
    assert vote([]) == -1
    assert vote([2, 2, 1], 'last') == 1
    with pytest.raises(ValueError, match=r"rule: expected one of \('majority', 'last'\), "
                       "got 'first'"):
        vote([1], 'first')


def test_score_counts_windows_and_sequences():
    predictions = [
        p(110, 1, 1), p(120, 1, 0), p(160, 2, 1), p(170, 1, 0),  # A: 1, 0, 1, 0 -> tie -> 0
        p(310, 3, 0), p(320, 3, 2),  # B: 0, 2 -> tie -> 2
        p(500, 3, 0),  # after B: unmatched
        p(401, 3, -1, 'STALE'),
    ]
    report = score(predictions, TRUTH, 3)
    assert (report['labels'], report['stale'], report['windows']) == (8, 1, 7)
    assert (report['matched'], report['unmatched'], report['window_correct']) == (6, 1, 3)
    assert report['window_accuracy'] == pytest.approx(0.5)
    assert report['window_confusion'].tolist() == [[1, 0, 1], [2, 2, 0], [0, 0, 0]]
    assert report['sequence_results'] == [
        {'sequence': 'A', 'class_index': 1, 'predicted': 0, 'windows': 4},
        {'sequence': 'B', 'class_index': 0, 'predicted': 2, 'windows': 2}]
    assert (report['sequences'], report['sequence_correct']) == (2, 0)
    assert report['sequence_confusion'].tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 0]]
    last = score(predictions, TRUTH, 3, 'last')
    assert [r['predicted'] for r in last['sequence_results']] == [0, 2]
    # the majority rule with a clear winner
    clear = score([p(110, 1, 1), p(160, 2, 1), p(170, 1, 0), p(310, 3, 0)], TRUTH, 3)
    assert clear['sequence_correct'] == 2 and clear['sequence_accuracy'] == 1.0


def test_a_sequence_without_labels_counts_as_wrong():
    report = score([p(310, 3, 0)], TRUTH, 2)
    assert report['sequences'] == 2 and report['sequences_without_label'] == 1
    assert report['sequence_correct'] == 1 and report['sequence_accuracy'] == 0.5
    assert report['sequence_confusion'].sum() == 1
    empty = score([], TRUTH, 2)
    assert empty['window_accuracy'] is None and empty['sequence_accuracy'] == 0.0
    assert score([], [], 2)['sequence_accuracy'] is None


def test_bodies_of_one_sequence_with_different_classes_are_scored_apart():
    truth = [TruthEntry(0, 'A', 1, 0, 'a', 0, 10, 2), TruthEntry(0, 'A', 2, 1, 'b', 0, 10, 2)]
    report = score([p(5, 1, 0), p(5, 2, 1)], truth, 2)
    assert report['sequences'] == 2 and report['sequence_correct'] == 2


def test_score_rejects_classes_outside_the_model():
    with pytest.raises(ValueError, match=r'ground truth of A body 1: expected a class index in '
                       r'\[0, 1\), got 1'):
        score([], TRUTH, 1)
    with pytest.raises(ValueError, match=r'label of body 3 at 310: expected a class index in '
                       r'\[0, 3\), got 5'):
        score([p(310, 3, 5)], TRUTH, 3)


def test_latency_summary_ignores_nan():
    summary = latency_summary([1.0, 2.0, math.nan, 3.0, 4.0])
    assert summary['count'] == 4 and summary['max'] == 4.0 and summary['mean'] == 2.5
    assert summary['p50'] == pytest.approx(np.percentile([1, 2, 3, 4], 50))
    assert latency_summary([math.nan])['p50'] is None


def test_compare_predictions_by_stamp_and_body():
    offline = [p(10, 1, 0), p(20, 1, 1), p(30, 1, 2), p(40, 1, -1, 'STALE')]
    live = [p(10, 1, 0), p(20, 1, 2), p(35, 1, 2)]
    assert compare_predictions(offline, live) == {
        'common': 2, 'same_class': 1, 'missing': 1, 'extra': 1, 'differing': [(20, 1, 1, 2)]}


def test_align_truth_matches_classes_by_name():
    truth = [TruthEntry(0, 'A', 1, 5, 'wave', 0, 1, 2), TruthEntry(1, 'B', 3, 0, 'sit', 2, 3, 2),
             TruthEntry(2, 'C', 5, 1, '', 4, 5, 2), TruthEntry(3, 'D', 7, 9, '', 6, 7, 2),
             TruthEntry(4, 'E', 9, 1, 'jump', 8, 9, 2)]
    alignment = align_truth(truth, ['sit', 'wave'])
    assert [(e.sequence, e.class_index) for e in alignment.truth] == [('A', 1), ('B', 0),
                                                                      ('C', 1)]
    assert alignment.class_of == (1, 0, 1, -1, -1)
    assert alignment.matched_by == {'action_id': 0, 'name': 2, 'class_index': 1}
    assert alignment.unknown == {'9': 1, 'jump': 1} and alignment.left_out_sequences == 2


#: NTU ground truth (official names, action ids), sequences S1..S5; S3 has two bodies.
NTU_TRUTH = [
    TruthEntry(0, 'S1', 1, 22, 'hand waving', 0, 9, 10, 23),
    TruthEntry(1, 'S2', 3, 57, 'handshaking', 20, 29, 10, 58),
    TruthEntry(1, 'S2', 4, 57, 'handshaking', 20, 29, 10, 58),
    TruthEntry(2, 'S3', 5, 60, 'put on headphone', 40, 49, 10, 61),
    TruthEntry(3, 'S4', 7, 9, 'clapping', 60, 69, 10, 10),
    TruthEntry(4, 'S5', 9, 60, 'put on headphone', 80, 89, 10, 61),
]


def test_align_truth_matches_by_ntu_action_id_before_name():
    classes = ['wave right hand', 'handshake', 'clapping', 'march in place']
    alignment = align_truth(NTU_TRUTH, classes, [23, 58, 11, 0])
    assert alignment.class_of == (0, 1, 1, -1, -1, -1)
    assert [(e.sequence, e.body_id, e.class_index, e.label) for e in alignment.truth] == [
        ('S1', 1, 0, 'hand waving'), ('S2', 3, 1, 'handshaking'), ('S2', 4, 1, 'handshaking')]
    assert alignment.matched_by == {'action_id': 3, 'name': 0, 'class_index': 0}
    # 'clapping' has the same name but another id (11): the ids disagree, so it is unknown
    assert alignment.unknown == {'A010 clapping': 1, 'A061 put on headphone': 2}
    assert alignment.left_out_sequences == 3
    # a class without an id (0) is matched by name
    alignment = align_truth(NTU_TRUTH, classes, [23, 58, 0, 0])
    assert alignment.class_of == (0, 1, 1, -1, 2, -1)
    assert alignment.matched_by == {'action_id': 3, 'name': 1, 'class_index': 0}
    # a model exported without ids: by name only
    alignment = align_truth(NTU_TRUTH, classes)
    assert alignment.class_of == (-1, -1, -1, -1, 2, -1)
    assert alignment.unknown == {'A023 hand waving': 1, 'A058 handshaking': 1,
                                 'A061 put on headphone': 2}
    with pytest.raises(ValueError, match=r'expected 4 NTU action ids \(one per class\), got 3'):
        align_truth(NTU_TRUTH, classes, [23, 58, 0])


def test_sequence_labels_list_every_sequence_with_its_result():
    predictions = [p(1, 1, 0), p(5, 1, 2), p(9, 1, 0),   # S1: 0, 2, 0 -> 0, correct
                   p(21, 3, 3), p(25, 4, 1), p(27, 3, 3),  # S2: both bodies -> 3, wrong
                   p(45, 5, 2),  # S3: unknown class, still voted
                   p(65, 7, -1, 'STALE')]  # S4: no label
    class_of = (0, 1, 1, -1, 2, -1)
    rows = sequence_labels(predictions, NTU_TRUTH, class_of)
    assert [(r['sequence'], r['truth'], r['action_id'], r['class_index'], r['predicted'],
             r['windows'], r['result']) for r in rows] == [
        ('S1', 'A023 hand waving', 23, 0, 0, 3, 'correct'),
        ('S2', 'A058 handshaking', 58, 1, 3, 3, 'wrong'),
        ('S3', 'A061 put on headphone', 61, -1, 2, 1, 'not scored'),
        ('S4', 'A010 clapping', 10, 2, -1, 0, 'no label'),
        ('S5', 'A061 put on headphone', 61, -1, -1, 0, 'not scored')]
    assert sequence_labels(predictions, NTU_TRUTH, class_of, 'last')[1]['predicted'] == 3
    with pytest.raises(ValueError, match=r'class_of: expected one class per truth entry \(6\)'):
        sequence_labels(predictions, NTU_TRUTH, class_of[:2])


def test_format_confusion_lists_only_the_classes_that_occur():
    matrix = np.zeros((4, 4), np.int64)
    matrix[0, 0], matrix[3, 0], matrix[3, 3] = 3, 1, 12
    assert format_confusion(matrix, ['wave', 'sit', 'stand', 'handshake'], [23, 8, 9, 58]) \
        == ('true \\ predicted     0   3\n'
            '  0 A023 wave        3   0\n'
            '  3 A058 handshake   1  12')
    assert format_confusion(matrix, ['wave', 'sit', 'stand', 'a very long class name'],
                            name_width=8).splitlines() == ['true \\ predicted   0   3',
                                                           '  0 wave           3   0',
                                                           '  3 a very ~       1  12']
    assert format_confusion(np.zeros((2, 2), int), ['a', 'b']) == '(empty)'
    with pytest.raises(ValueError, match=r'matrix: expected shape \(2, 2\), got \(4, 4\)'):
        format_confusion(matrix, ['a', 'b'])


def test_read_truth_csv(tmp_path):
    path = tmp_path / 'truth.csv'
    path.write_text('sequence,body_id,label,first_stamp_ns,last_stamp_ns,class_index\n'
                    'take1,4,wave,1000,2000,\n'
                    'take1,5,,1000,1500,3\n'
                    'take2,4,sit,3000,4000,\n')
    assert read_truth_csv(path) == [TruthEntry(0, 'take1', 4, -1, 'wave', 1000, 2000, 0),
                                    TruthEntry(0, 'take1', 5, 3, '', 1000, 1500, 0),
                                    TruthEntry(1, 'take2', 4, -1, 'sit', 3000, 4000, 0)]
    path.write_text('sequence,body_id,label,first_stamp_ns,last_stamp_ns,action_id\n'
                    'take3,6,handshaking,5000,6000,58\n'
                    'take4,6,sit,7000,8000,\n')
    assert read_truth_csv(path) == [TruthEntry(0, 'take3', 6, -1, 'handshaking', 5000, 6000, 0,
                                               58),
                                    TruthEntry(1, 'take4', 6, -1, 'sit', 7000, 8000, 0, 0)]
    path.write_text('sequence,body,label,first_stamp_ns,last_stamp_ns\n')
    with pytest.raises(ValueError, match='expected the columns sequence, body_id, label, '
                       'first_stamp_ns, last_stamp_ns .*missing body_id'):
        read_truth_csv(path)
    path.write_text('sequence,body_id,label,first_stamp_ns,last_stamp_ns\ntake1,x,a,1,2\n')
    with pytest.raises(ValueError, match=r'truth.csv, line 2: invalid literal'):
        read_truth_csv(path)
