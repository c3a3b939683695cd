"""The sweep of benchmarks/bench_pipeline.py: three classifiers that compute the same function."""

from benchmarks.bench_pipeline import sweep, tracker_windows
from iospstl_ros.model_dir import load_model_dir
import pytest


@pytest.mark.slow
def test_the_sweep_times_the_old_export_the_new_export_and_pytorch_on_one_function(
        tiny, capsys):
    model = load_model_dir(tiny['model'])
    capsys.readouterr()
    points = sweep(model, tracker_windows(3), threads_list=[1], batches=[1, 3], rounds=2)
    assert [(p['threads'], p['batch'], p['rounds']) for p in points] == [(1, 1, 2), (1, 3, 2)]
    for point in points:
        assert 0 <= point['max_difference'] <= 1e-4
        for name in ('old_export', 'new_export', 'torch_eager'):
            p50, p99 = point[name]
            assert 0 < p50 <= p99
    assert len(capsys.readouterr().out.splitlines()) == 2   # one line per point
