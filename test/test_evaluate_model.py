"""Accuracy of an exported model directory through the pipeline (training.evaluate_model)."""

import json
import os

from iospstl_ros.datasets.format import open_split
import numpy as np
import pytest

from training.evaluate_model import main as evaluate_model
from training.synthesize import main as synthesize


def test_pipeline_accuracy_matches_the_offline_pytorch_evaluation(tiny, tmp_path):
    summary = evaluate_model(['--model', tiny['model'], '--data', tiny['data'],
                              '--out', str(tmp_path), '--no-progress', '--batch-size', '7'])
    # Oracle: training.evaluate scored the same classifier in PyTorch on the windows that
    # training.impute completed offline; the pipeline recomputes all of it with ONNX Runtime.
    with open(os.path.join(os.path.dirname(tiny['classifier']), 'summary.json')) as f:
        offline = json.load(f)
    assert summary['sequences'] == offline['val_samples'] == len(open_split(tiny['data'], 'val'))
    one_sample = 1.0 / offline['val_samples']
    assert abs(summary['top1_imputed'] - offline['top1_last_epoch']) <= one_sample
    assert 0.0 <= summary['top1_no_imputation'] <= 1.0
    for mode in ('imputed', 'no_imputation'):
        assert os.path.getsize(tmp_path / f'confusion_{mode}.png') > 1000
        with open(tmp_path / f'confusion_{mode}.json') as f:
            matrix = np.array(json.load(f)['matrix'])
        assert matrix.sum() == summary['sequences']
        assert np.trace(matrix) == round(summary[f'top1_{mode}'] * summary['sequences'])


def test_without_occlusion_imputation_changes_nothing(tiny, tmp_path):
    synthesize(['--out', str(tmp_path / 'clean'), '--num-samples', '24', '--seed', '5',
                '--occlusion', 'none', '--benchmarks', 'xsub', '--max-frames', '150',
                '--workers', '1'])
    summary = evaluate_model(['--model', tiny['model'], '--data', str(tmp_path / 'clean' / 'xsub'),
                              '--out', str(tmp_path / 'out'), '--no-progress', '--limit', '10'])
    assert summary['sequences'] == 10
    assert summary['occluded_joint_ratio'] == 0.0
    assert summary['top1_imputed'] == summary['top1_no_imputation']


def test_a_missing_split_is_a_clear_error(tiny, tmp_path):
    with pytest.raises((ValueError, FileNotFoundError), match='no meta.json'):
        evaluate_model(['--model', tiny['model'], '--data', str(tmp_path), '--out',
                        str(tmp_path / 'out')])
