"""OPSTL pre-training loop: schedule, resume, outputs and input errors (tiny preset, CPU)."""

import json
import os
import subprocess
import sys
import time

from iospstl_ros.datasets.format import SplitWriter
import numpy as np
import pytest
import torch

from training import pretrain as pretrain_module
from training.model import barlow_twins_loss, redundancy_loss
from training.pretrain import cross_correlation, global_batches, learning_rate, main as pretrain
from training.windows import make_windows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_random_benchmark(root, n=12, frames=40, seed=0):
    rng = np.random.default_rng(seed)
    writer = SplitWriter(str(root), 'train', num_samples=n, max_frames=frames)
    for i in range(n):
        xyz = rng.normal(0, 0.3, (3, frames, 25, 1)) + np.array([0, 0, 3.0])[:, None, None, None]
        occluded = rng.random((frames, 25, 1)) < 0.1
        writer.write(i, f'S001C001P001R001A{i % 3 + 1:03d}', i % 3, xyz, occluded,
                     np.ones((frames, 1), bool))
    writer.close({'classes': ['a', 'b', 'c']})
    make_windows(str(root), 'train', progress=False)


def test_learning_rate_schedule_is_the_reference_one():
    assert learning_rate(0, 5e-3, 10, 150) == 0.0
    assert learning_rate(5, 5e-3, 10, 150) == pytest.approx(2.5e-3)
    assert learning_rate(10, 5e-3, 10, 150) == pytest.approx(5e-3)
    assert learning_rate(80, 5e-3, 10, 150) == pytest.approx(2.5e-3)
    assert learning_rate(149, 5e-3, 10, 150) == pytest.approx(6.29e-7, rel=1e-2)


def test_a_killed_run_resumes_identically(tmp_path):
    # A real interruption: the process is killed (SIGKILL) once it has logged three epochs, at
    # whatever point of the fourth it is; the next run with the same command continues from
    # the last complete checkpoint and must end with the weights of an uninterrupted run.
    write_random_benchmark(tmp_path / 'data')
    common = ['--data', str(tmp_path / 'data'), '--preset', 'tiny', '--device', 'cpu',
              '--no-progress', '--batch-size', '6', '--epochs', '12', '--warmup', '1']
    pretrain(common + ['--out', str(tmp_path / 'straight')])
    killed = tmp_path / 'resumed'
    command = [sys.executable, '-m', 'training.pretrain'] + common + ['--out', str(killed)]
    # The same torch thread count as the runs in this process: float sums then agree bit for bit.
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    metrics = killed / 'metrics.jsonl'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.005)
    process.kill()
    process.wait()
    assert not (killed / 'encoder.pt').exists(), 'the run ended before it could be killed'
    # epoch 1 has lr 0 (warm-up): the checkpoint kept is one of a later epoch, whose weights
    # have moved, so a resume that restored nothing could not match
    assert torch.load(killed / 'checkpoint.pt', weights_only=False)['epoch'] >= 1
    pretrain(common + ['--out', str(killed)])
    straight = torch.load(tmp_path / 'straight' / 'encoder.pt', weights_only=False)
    resumed = torch.load(killed / 'encoder.pt', weights_only=False)
    assert straight['config'] == resumed['config']
    assert straight['config']['hidden_channels'] == 4
    for key, value in straight['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key
    epochs = [json.loads(line)['epoch'] for line in metrics.read_text().splitlines()]
    assert epochs[-1] == 12 and sorted(set(epochs)) == list(range(1, 13))
    assert len((killed / 'command.txt').read_text().splitlines()) == 2
    straight_losses = [json.loads(line)['loss'] for line in
                       (tmp_path / 'straight' / 'metrics.jsonl').read_text().splitlines()]
    last = {json.loads(line)['epoch']: json.loads(line)['loss']
            for line in metrics.read_text().splitlines()}
    assert [last[e] for e in range(1, 13)] == straight_losses


def test_resume_refuses_other_training_arguments(tmp_path):
    write_random_benchmark(tmp_path / 'data', n=4)
    common = ['--data', str(tmp_path / 'data'), '--preset', 'tiny', '--device', 'cpu',
              '--no-progress', '--batch-size', '2', '--out', str(tmp_path / 'run')]
    pretrain(common + ['--epochs', '1'])
    with pytest.raises(ValueError, match=r'holds a run with other arguments: --lr 0\.005 '
                                         r'there, 0\.001 now'):
        pretrain(common + ['--epochs', '2', '--lr', '1e-3'])
    pretrain(common + ['--epochs', '2'])            # more epochs is allowed
    lines = (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()
    assert [json.loads(line)['epoch'] for line in lines] == [1, 2]


def test_missing_windows_and_missing_B_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match='train_w50_data.npy: missing; run `python -m '
                                         'training.windows'):
        pretrain(['--data', str(tmp_path), '--out', str(tmp_path / 'run'), '--preset', 'tiny',
                  '--device', 'cpu'])
    write_random_benchmark(tmp_path / 'data', n=4)
    (tmp_path / 'data' / 'train_B.npy').unlink()
    with pytest.raises(ValueError, match='train_B.npy: missing'):
        pretrain(['--data', str(tmp_path / 'data'), '--out', str(tmp_path / 'run'),
                  '--preset', 'tiny', '--device', 'cpu'])


def test_cuda_request_without_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    write_random_benchmark(tmp_path / 'data', n=4)
    with pytest.raises(ValueError, match='CUDA is not available'):
        pretrain(['--data', str(tmp_path / 'data'), '--out', str(tmp_path / 'run'),
                  '--preset', 'tiny', '--device', 'cuda'])


def test_cross_correlation_loss_of_one_process_is_the_barlow_twins_loss():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(2, 6, 5, generator=generator)
    loss = redundancy_loss(cross_correlation(z1, z2, len(z1)), 2e-4)
    torch.testing.assert_close(loss, barlow_twins_loss(z1, z2, 2e-4))
    # the global batch size divides the sum of products
    torch.testing.assert_close(cross_correlation(z1, z2, 12), z1.T @ z2 / 12)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert cross_correlation(z1.bfloat16(), z2.bfloat16(), 6).dtype == torch.float32


def test_single_process_batches_follow_the_global_plan(tmp_path, monkeypatch):
    write_random_benchmark(tmp_path / 'data', n=13)
    seen = []
    real = pretrain_module.three_streams

    def spy(x, B, rng, args):
        seen.append(x[:, 0, 0, 0, 0].tolist())
        return real(x, B, rng, args)

    monkeypatch.setattr(pretrain_module, 'three_streams', spy)
    pretrain(['--data', str(tmp_path / 'data'), '--out', str(tmp_path / 'run'), '--preset',
              'tiny', '--device', 'cpu', '--no-progress', '--batch-size', '4', '--epochs', '2'])
    data = np.nan_to_num(np.load(tmp_path / 'data' / 'train_w50_data.npy')[:, 0, 0, 0, 0])
    expected = [[float(data[i]) for i in batch[0]]
                for epoch in range(2) for batch in global_batches(13, 4, 1, epoch)]
    # 13 = 3 · 4 + 1: the single last sample is dropped (BatchNorm needs 2)
    assert [len(b) for b in expected] == [4, 4, 4] * 2
    np.testing.assert_allclose(seen, expected)
