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
* **the sweep**: the classifier alone at batch sizes ``--batches`` (default 1, 2, 4, 10, 20
  windows of two body slots, completed by the pipeline) on each thread count, three ways side by
  side, call by call in rounds so that all three see the same machine load: ONNX Runtime with
  the graph as ``training.export`` wrote it before the joints-first form (``old export``: the
  training module traced as it is), ONNX Runtime with the joints-first graph of
  :mod:`training.joints_first` (``new export``, what ``training.export`` writes now), and
  PyTorch eager (the training module, eval mode, ``torch.no_grad``). All three hold the same
  weights: the architecture of the model directory with seeded random weights (BatchNorm
  statistics included), since the time does not depend on the values. ONNX Runtime runs as
  the pipeline runs it (:class:`~iospstl_ros.runtime.OnnxRunner`: intra-op threads, no
  spinning); the ratios are p50 over p50;
* multiply-adds per window (``training.model.flops_per_sample``, both body slots, both
  networks; the FLOP/s count the slots actually computed), the FLOP/s reached by each network
  and its share of the cores' peak: FP32 FLOP per
  cycle per core (``--flops-per-cycle``; default 64 for Intel AVX-512 with two FMA units, else 32:
  two 256-bit FMA pipes, as on AMD Zen 2-4 and Intel AVX2) x clock (``--ghz``, default the
  ``cpu MHz`` of /proc/cpuinfo) x threads.

Windows are synthetic tracker output (``iospstl_ros.datasets.synthetic``: 40-150 frames at 30 Hz,
realistic furniture occlusion, one or two bodies)::

    python -m benchmarks.bench_pipeline --model models/default
    python -m benchmarks.bench_pipeline --model models/default --skip-stages   # the sweep only
    python -m benchmarks.bench_pipeline --build paper --samples 1000 --clusters 1
"""

import argparse
import json
import os
import platform
import tempfile
import time

from iospstl_ros.datasets.synthetic import generate_sequence
from iospstl_ros.pipeline import Pipeline, STAGES
from iospstl_ros.runtime import OnnxRunner
import numpy as np
from threadpoolctl import threadpool_limits
import torch

from training.evaluate import main as evaluate
from training.export import export_onnx, main as export, ViewClassifier
from training.impute import main as impute
from training.joints_first import joints_first
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


def classifier_module(model, seed=0):
    """Build the classifier architecture of a model directory (seeded random weights, eval).

    The BatchNorms get running statistics and affine values away from the identity, as after
    training, so that no layer is trivially cheap.
    """
    entry = model.metadata['models']['classifier']
    torch.manual_seed(seed)
    encoder = STGCNEncoder(EncoderConfig.from_dict(entry['config']))
    module = ViewClassifier(Classifier(encoder, entry['num_classes']), entry['view'])
    with torch.no_grad():
        for child in module.modules():
            if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
                child.running_mean.uniform_(-0.5, 0.5)
                child.running_var.uniform_(0.5, 2.0)
                child.weight.uniform_(0.5, 1.5)
                child.bias.uniform_(-0.2, 0.2)
    return module.eval()


def completed_windows(pipeline, windows):
    """Return the completed two-slot windows the classifier sees, (n, 3, 50, 25, 2) float32."""
    completed = []
    for start in range(0, len(windows), 10):
        for result in pipeline.run(windows[start:start + 10]):
            pad = 2 - result.imputed.shape[-1]
            completed.append(np.concatenate(
                [result.imputed, np.zeros(result.imputed.shape[:-1] + (pad,), np.float32)], -1))
    return np.stack(completed)


def sweep(model, windows, threads_list, batches, rounds):
    """Classifier alone: old export, new export and PyTorch eager, side by side.

    Parameters
    ----------
    model : ModelDir
    windows : list
        Raw tracker windows (at least ``max(batches)``).
    threads_list, batches : sequence of int
    rounds : int or None
        Timed rounds per point (one call of each of the three per round); None: 200 // batch,
        at least 20.

    Returns
    -------
    list of dict
        Per point: ``threads``, ``batch``, ``rounds``, ``max_difference`` (largest difference
        of the three outputs, relative to max(1, largest logit); more than 1e-4 raises) and
        p50 / p99 ms of ``old_export``, ``new_export`` and ``torch_eager``.
    """
    module = classifier_module(model)
    x = completed_windows(Pipeline(model, backend='cpu'), windows[:max(batches)])
    points, torch_threads = [], torch.get_num_threads()   # restored after the sweep
    with tempfile.TemporaryDirectory(prefix='bench_sweep_') as root:
        paths = {'old_export': os.path.join(root, 'old.onnx'),
                 'new_export': os.path.join(root, 'new.onnx')}
        export_onnx(module, paths['old_export'], 'logits')
        export_onnx(joints_first(module, x.shape[2]), paths['new_export'], 'logits')
        for threads in threads_list:
            with threadpool_limits(threads):
                torch.set_num_threads(threads)
                runners = {name: OnnxRunner(path, 'cpu', threads)
                           for name, path in paths.items()}
                for batch in batches:
                    batch_x = np.ascontiguousarray(x[:batch])
                    tensor = torch.from_numpy(batch_x)

                    def eager():
                        with torch.no_grad():
                            return module(tensor)

                    calls = {name: (lambda r=runner: r.run(batch_x))
                             for name, runner in runners.items()}
                    calls['torch_eager'] = eager
                    times = {name: [] for name in calls}
                    outputs = {name: np.asarray(function()) for name, function in calls.items()}
                    scale = max(1.0, float(np.abs(outputs['torch_eager']).max()))
                    difference = max(float(np.abs(out - outputs['torch_eager']).max()) / scale
                                     for out in outputs.values())
                    if difference > 1e-4:  # the three must compute the same function
                        raise ValueError(f'the three classifiers differ by {difference:.3g} '
                                         f'of the output scale at batch {batch}')
                    for function in calls.values():  # a second untimed call each
                        function()
                    count = rounds or max(20, 200 // batch)
                    for _ in range(count):
                        for name, function in calls.items():
                            start = time.perf_counter()
                            function()
                            times[name].append(1000.0 * (time.perf_counter() - start))
                    point = {'threads': threads, 'batch': batch, 'rounds': count,
                             'max_difference': difference,
                             **{name: percentiles(values) for name, values in times.items()}}
                    points.append(point)
                    print_point(point)
    torch.set_num_threads(torch_threads)
    return points


def print_point(point):
    """Print one point of the sweep."""
    old, new, eager = (point[k][0] for k in ('old_export', 'new_export', 'torch_eager'))
    print(f'  {point["threads"]:>7d} {point["batch"]:>5d} {old:10.2f} {new:10.2f} '
          f'{eager:10.2f} {eager / new:9.2f}x {old / new:8.2f}x', flush=True)


def bench(model_dir, threads_list, bodies_list, repeats, ghz, flops_per_cycle, batches=(),
          sweep_rounds=None, stages=True):
    """Run every measurement; returns a JSON-ready dict."""
    probe = Pipeline(model_dir, backend='cpu')
    model = probe.model
    configs = {name: EncoderConfig.from_dict(model.metadata['models'][name]['config'])
               for name in ('stage1_encoder', 'classifier')}
    macs = {name: flops_per_sample(config) for name, config in configs.items()}
    windows = tracker_windows(max(list(bodies_list) + list(batches)))
    report = {'model': model_dir, 'cpu': platform.processor() or platform.machine(),
              'cpus': os.cpu_count(), 'torch': torch.__version__,
              'graphs': {name: entry.get('graph', 'before joints-first')
                         for name, entry in model.metadata['models'].items()},
              'mmac_per_window': {k: v / 1e6 for k, v in macs.items()},
              'donors': model.bank.n_donors_, 'clusters': int(model.bank.n_clusters),
              'runs': []}
    if batches:
        report['load_average_before_sweep'] = os.getloadavg()
        print(f'\nclassifier alone, p50 ms (ratios: PyTorch eager / new export, old export / new '
              f'export); load average {os.getloadavg()[0]:.2f}')
        print(f'  {"threads":>7s} {"batch":>5s} {"old export":>10s} {"new export":>10s} '
              f'{"PyTorch":>10s} {"eager/new":>10s} {"old/new":>9s}', flush=True)
        report['sweep'] = sweep(model, windows, threads_list, batches, sweep_rounds)
        report['load_average_after_sweep'] = os.getloadavg()
        print(f'load average after the sweep {os.getloadavg()[0]:.2f} (other work on the cores '
              'slows the threads of PyTorch most)')
    for threads in threads_list if stages else ():
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
                stages_ms = {stage: [] for stage in STAGES}
                both_totals = []
                for _ in range(repeats):  # interleaved: the two see the same machine load
                    result = pipeline.run(batch)[0]
                    for stage in STAGES:
                        stages_ms[stage].append(result.timings_ms[stage])
                    both_totals.append(both.run(batch)[0].timings_ms['total'])
                run = {'threads': threads, 'bodies': bodies, 'repeats': repeats,
                       'stages_ms': {s: percentiles(v) for s, v in stages_ms.items()},
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
    parser.add_argument('--repeats', type=int, default=50,
                        help='timed calls per stage configuration (default: 50)')
    parser.add_argument('--batches', type=int, nargs='*', default=[1, 2, 4, 10, 20],
                        help='batch sizes of the classifier sweep (default: 1 2 4 10 20; none '
                             'skips the sweep)')
    parser.add_argument('--sweep-rounds', type=int,
                        help='timed rounds per sweep point (default: 200 // batch, at least 20)')
    parser.add_argument('--skip-stages', action='store_true',
                        help='only the sweep: skip the per-stage pipeline timings')
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
                       options.flops_per_cycle, options.batches, options.sweep_rounds,
                       not options.skip_stages)
    print('\nmultiply-adds per window (both body slots): '
          + ', '.join(f'{k} {v:.1f} M' for k, v in report['mmac_per_window'].items())
          + f'; bank {report["donors"]} donors in {report["clusters"]} clusters')
    if options.json:
        with open(options.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == '__main__':
    main()
