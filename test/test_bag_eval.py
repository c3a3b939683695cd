"""Scoring of replayed labels against ground truth (iospstl_ros.bag.evaluate), without ROS."""

import math

from iospstl_ros.bag.evaluate import (
    align_truth, compare_predictions, latency_summary, match_predictions, Prediction,
    read_truth_csv, score, TruthEntry, vote)
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
    aligned, unknown = align_truth(truth, ['sit', 'wave'])
    assert [(e.sequence, e.class_index) for e in aligned] == [('A', 1), ('B', 0), ('C', 1)]
    assert unknown == ['9', 'jump']


def test_read_truth_csv(tmp_path):
    path = tmp_path / 'truth.csv'
    path.write_text('sequence,body_id,label,first_stamp_ns,last_stamp_ns,class_index\n'
                    'take1,4,wave,1000,2000,\n'
                    'take1,5,,1000,1500,3\n'
                    'take2,4,sit,3000,4000,\n')
    assert read_truth_csv(path) == [TruthEntry(0, 'take1', 4, -1, 'wave', 1000, 2000, 0),
                                    TruthEntry(0, 'take1', 5, 3, '', 1000, 1500, 0),
                                    TruthEntry(1, 'take2', 4, -1, 'sit', 3000, 4000, 0)]
    path.write_text('sequence,body,label,first_stamp_ns,last_stamp_ns\n')
    with pytest.raises(ValueError, match='expected the columns sequence, body_id, label, '
                       'first_stamp_ns, last_stamp_ns .*missing body_id'):
        read_truth_csv(path)
    path.write_text('sequence,body_id,label,first_stamp_ns,last_stamp_ns\ntake1,x,a,1,2\n')
    with pytest.raises(ValueError, match=r'truth.csv, line 2: invalid literal'):
        read_truth_csv(path)
