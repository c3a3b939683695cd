"""Time the robot's pipeline per stage, and ONNX Runtime against PyTorch eager, on CPU.

For a model directory (``--model``), or one built here with the project's own scripts in a
temporary folder (``--build tiny``: like the tests' fixture; ``--build paper``: the paper-size
encoder, 821k parameters, with random weights, for latency only), this measures with the CPU
back-end of :class:`iospstl_ros.pipeline.Pipeline`:

* p50 / p99 of every stage (preprocess, embed, assign, impute, classify) and end to end, for
  calls of 1 and of 10 windows (``--bodies``), on 1 and 2 threads (``--threads``; ONNX Runtime
  intra-op threads, BLAS threads of numpy via threadpoolctl, and torch threads together);
* the same calls end to end with both body slots always computed (``skip_empty_slot=False``),
  interleaved call by call with the default pipeline, which runs a lone person's window as one
  body (see :mod:`iospstl_ros.pipeline`);
* the classifier alone, ONNX Runtime vs PyTorch eager (the same architecture and batch, eval
  mode, ``torch.no_grad``), in the same run;
* multiply-adds per window (``training.model.flops_per_sample``, both body slots, both
  networks; the FLOP/s count the slots actually computed), the FLOP/s reached by each network
  and its share of the cores' peak: FP32 FLOP per
  cycle per core (``--flops-per-cycle``; default 64 for Intel AVX-512 with two FMA units, else 32:
  two 256-bit FMA pipes, as on AMD Zen 2-4 and Intel AVX2) x clock (``--ghz``, default the
  ``cpu MHz`` of /proc/cpuinfo) x threads.

Windows are synthetic tracker output (``iospstl_ros.synthetic``: 40-150 frames at 30 Hz,
realistic furniture occlusion, one or two bodies)::

    python -m benchmarks.bench_pipeline --model models/synthetic_xsub
    python -m benchmarks.bench_pipeline --build paper --samples 1000 --clusters 1
"""

import argparse
import json
import os
import platform
import tempfile
import time

from iospstl_ros.pipeline import Pipeline, STAGES
from iospstl_ros.runtime import OnnxRunner
from iospstl_ros.synthetic import generate_sequence
import numpy as np
from threadpoolctl import threadpool_limits
import torch

from training.evaluate import main as evaluate
from training.export import main as export, ViewClassifier
from training.impute import main as impute
from training.model import Classifier, EncoderConfig, flops_per_sample, STGCNEncoder
from training.pretrain import main as pretrain
from training.synthesize import main as synthesize
from training.windows import make_windows


def build_model(root, preset, samples, clusters, seed=0):
    """Make a model directory with the training scripts; returns its path.

    Parameters
    ----------
    root : str
        Working folder.
    preset : {'tiny', 'paper'}
        ``tiny``: one epoch of ``training.pretrain --preset tiny``; ``paper``: the paper's
        encoder with random weights (no training).
    samples : int
        Synthetic sequences (half train, half validation); the training half is the bank.
    clusters : int
        KMeans clusters of the bank (donors per cluster = samples / 2 / clusters).
    seed : int
    """
    synthesize(['--out', os.path.join(root, 'synth'), '--num-samples', str(samples),
                '--seed', str(seed), '--benchmarks', 'xsub', '--max-frames', '150',
                '--workers', '1'])
    data = os.path.join(root, 'synth', 'xsub')
    for part in ('train', 'val'):
        make_windows(data, part, progress=False)
    if preset == 'tiny':
        encoder = pretrain(['--data', data, '--out', os.path.join(root, 'pre'), '--preset',
                            'tiny', '--epochs', '1', '--device', 'cpu', '--no-progress'])
    else:
        torch.manual_seed(seed)
        config = EncoderConfig()
        encoder = os.path.join(root, 'encoder.pt')
        torch.save({'config': config.to_dict(), 'state_dict': STGCNEncoder(config).state_dict()},
                   encoder)
    imputed = os.path.join(root, 'imputed')
    impute(['--data', data, '--encoder', encoder, '--out', imputed, '--clusters', str(clusters),
            '--no-progress'])
    evaluate(['--data', imputed, '--encoder', encoder, '--epochs', '1', '--device', 'cpu',
              '--out', os.path.join(root, 'eval'), '--no-progress'])
    model = os.path.join(root, 'model')
    export(['--stage1', encoder, '--classifier', os.path.join(root, 'eval', 'classifier.pt'),
            '--imputed', imputed, '--out', model])
    return model


def tracker_windows(count, seed=7):
    """Return synthetic raw windows ``(xyz, occluded, present)``, one-person ones with M = 1.

    The first window is a one-person one (the one-body figures are for a lone person).
    """
    windows = []
    for index in range(count):
        s = generate_sequence(seed, index, occlusion='realistic')
        if not s.present[:, 1].any():
            windows.append((s.xyz[..., :1], s.occluded[..., :1], s.present[:, :1]))
        else:
            windows.append((s.xyz, s.occluded, s.present))
    first = next(i for i, w in enumerate(windows) if w[0].shape[-1] == 1)
    return [windows[first]] + windows[:first] + windows[first + 1:]


def percentiles(values):
    """Return (p50, p99) of a list of milliseconds."""
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def time_calls(function, repeats):
    """Milliseconds of ``repeats`` calls of ``function()``, after two untimed ones."""
    function()
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def cpu_peak(threads, ghz=None, flops_per_cycle=None):
    """Peak FP32 GFLOP/s of ``threads`` cores, and how it was derived."""
    flags, vendor, mhz = '', '', None
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'flags' and not flags:
                    flags = value
                elif key == 'vendor_id' and not vendor:
                    vendor = value.strip()
                elif key == 'cpu MHz' and mhz is None:
                    mhz = float(value)
    except OSError:
        pass
    if flops_per_cycle is None:
        flops_per_cycle = 64 if vendor == 'GenuineIntel' and ' avx512f' in flags else 32
    if ghz is None:
        ghz = (mhz or 2000.0) / 1000.0
    return threads * ghz * flops_per_cycle, f'{threads} x {ghz:.2f} GHz x {flops_per_cycle}'


def classifier_module(model):
    """Build the classifier architecture of a model directory (random weights, eval mode)."""
    entry = model.metadata['models']['classifier']
    torch.manual_seed(0)
    encoder = STGCNEncoder(EncoderConfig.from_dict(entry['config']))
    return ViewClassifier(Classifier(encoder, entry['num_classes']), entry['view']).eval()


def bench(model_dir, threads_list, bodies_list, repeats, ghz, flops_per_cycle):
    """Run every measurement; returns a JSON-ready dict."""
    probe = Pipeline(model_dir, backend='cpu')
    model = probe.model
    configs = {name: EncoderConfig.from_dict(model.metadata['models'][name]['config'])
               for name in ('stage1_encoder', 'classifier')}
    macs = {name: flops_per_sample(config) for name, config in configs.items()}
    windows = tracker_windows(max(bodies_list))
    module = classifier_module(model)
    report = {'model': model_dir, 'cpu': platform.processor() or platform.machine(),
              'cpus': os.cpu_count(), 'torch': torch.__version__,
              'mmac_per_window': {k: v / 1e6 for k, v in macs.items()},
              'donors': int(len(model.bank.donors_)), 'clusters': int(model.bank.n_clusters),
              'runs': []}
    for threads in threads_list:
        peak, peak_text = cpu_peak(threads, ghz, flops_per_cycle)
        with threadpool_limits(threads):
            torch.set_num_threads(threads)
            pipeline = Pipeline(model, backend='cpu', threads=threads)
            pipeline.warm_up((1, max(bodies_list)))
            both = Pipeline(model, backend='cpu', threads=threads, skip_empty_slot=False)
            both.warm_up((1, max(bodies_list)))
            for bodies in bodies_list:
                batch = windows[:bodies]
                alone = sum(w[0].shape[-1] == 1 for w in batch)
                stages = {stage: [] for stage in STAGES}
                both_totals = []
                for _ in range(repeats):  # interleaved: the two see the same machine load
                    result = pipeline.run(batch)[0]
                    for stage in STAGES:
                        stages[stage].append(result.timings_ms[stage])
                    both_totals.append(both.run(batch)[0].timings_ms['total'])
                completed = np.stack([np.concatenate(
                    [r.imputed, np.zeros(r.imputed.shape[:-1] + (2 - r.imputed.shape[-1],),
                                         np.float32)], -1) for r in pipeline.run(batch)])
                runner = OnnxRunner(model.classifier_path, 'cpu', threads)
                onnx_ms = time_calls(lambda: runner.run(completed), repeats)
                tensor = torch.from_numpy(completed)
                with torch.no_grad():
                    torch_ms = time_calls(lambda: module(tensor), repeats)
                run = {'threads': threads, 'bodies': bodies, 'repeats': repeats,
                       'stages_ms': {s: percentiles(v) for s, v in stages.items()},
                       'classifier_onnxruntime_ms': percentiles(onnx_ms),
                       'classifier_torch_eager_ms': percentiles(torch_ms),
                       'one_body_windows': int(alone), 'single_body': dict(pipeline.single_body),
                       'total_both_slots_ms': percentiles(both_totals),
                       'peak_gflops': peak, 'peak': peak_text}
                for stage, name in (('embed', 'stage1_encoder'), ('classify', 'classifier')):
                    seconds = run['stages_ms'][stage][0] / 1000.0
                    # body slots actually computed (macs counts two per window)
                    slots = 2 * bodies - (alone if pipeline.single_body[name] else 0)
                    achieved = 2.0 * macs[name] * slots / 2 / seconds / 1e9
                    run[f'{name}_gflops'] = achieved
                    run[f'{name}_peak_share'] = achieved / peak
                report['runs'].append(run)
                print_run(run)
    return report


def print_run(run):
    """Print one configuration's figures."""
    bodies = run['bodies']
    print(f'\n{run["threads"]} thread(s), {bodies} window(s) per call, {run["repeats"]} calls '
          f'(peak {run["peak_gflops"]:.0f} GFLOP/s = {run["peak"]})')
    print(f'  {"stage":10s} {"p50 ms":>9s} {"p99 ms":>9s} {"p50/window":>11s}')
    for stage, (p50, p99) in run['stages_ms'].items():
        print(f'  {stage:10s} {p50:9.2f} {p99:9.2f} {p50 / bodies:11.2f}')
    total, both = run['stages_ms']['total'], run['total_both_slots_ms']
    print(f'  {run["one_body_windows"]} of {bodies} window(s) with one body; end to end with '
          f'both slots always computed: {both[0]:.2f} / {both[1]:.2f} ms (p50 / p99), the '
          f'one-body shortcut {both[0] / total[0]:.2f}x faster at p50')
    onnx, eager = run['classifier_onnxruntime_ms'], run['classifier_torch_eager_ms']
    print(f'  classifier alone: ONNX Runtime {onnx[0]:.2f} / {onnx[1]:.2f} ms, PyTorch eager '
          f'{eager[0]:.2f} / {eager[1]:.2f} ms (p50 / p99), ratio {eager[0] / onnx[0]:.2f}x')
    for name in ('stage1_encoder', 'classifier'):
        print(f'  {name}: {run[f"{name}_gflops"]:.1f} GFLOP/s in the pipeline, '
              f'{100 * run[f"{name}_peak_share"]:.1f} % of peak')


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', help='model directory written by training.export')
    source.add_argument('--build', choices=('tiny', 'paper'),
                        help='build a model directory in a temporary folder first')
    parser.add_argument('--samples', type=int, default=100,
                        help='--build: synthetic sequences, half of them the bank (default 100)')
    parser.add_argument('--clusters', type=int, default=4, help='--build: KMeans clusters')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2],
                        help='thread counts (default: 1 2)')
    parser.add_argument('--bodies', type=int, nargs='+', default=[1, 10],
                        help='windows per call (default: 1 10)')
    parser.add_argument('--repeats', type=int, default=50, help='timed calls (default: 50)')
    parser.add_argument('--ghz', type=float, help='core clock for the peak (default: cpuinfo)')
    parser.add_argument('--flops-per-cycle', type=int,
                        help='FP32 FLOP per cycle per core (default: 64 Intel AVX-512, else 32)')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    options = parser.parse_args(args)
    with tempfile.TemporaryDirectory(prefix='bench_pipeline_') as root:
        model = options.model
        if model is None:
            started = time.perf_counter()
            model = build_model(root, options.build, options.samples, options.clusters)
            print(f'built {options.build} model in {time.perf_counter() - started:.0f} s')
        report = bench(model, options.threads, options.bodies, options.repeats, options.ghz,
                       options.flops_per_cycle)
    print('\nmultiply-adds per window (both body slots): '
          + ', '.join(f'{k} {v:.1f} M' for k, v in report['mmac_per_window'].items())
          + f'; bank {report["donors"]} donors in {report["clusters"]} clusters')
    if options.json:
        with open(options.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == '__main__':
    main()
