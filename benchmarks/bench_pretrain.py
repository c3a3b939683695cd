"""Time OPSTL pre-training steps and project the length of a full pre-training.

One step is what ``training.pretrain`` does per batch: the three augmented streams (crop, shear,
rotation, flip; MATM; ASM on a random occlusion matrix B), the encoder and projector forward on
each, the two Barlow Twins terms, backward and the Adam step. Inputs are random (N, 3, 50, 25, 2)
batches; the speed does not depend on the values. Prints, for the ``paper`` and ``cpu`` presets:

- samples/s on CPU (and on the GPU when ``torch.cuda.is_available()``, else the reason it is
  skipped), measured over ``--steps`` steps after ``--warmup`` steps (oneDNN creates its kernels
  for every new shape, and the masked stream's joint count varies, so the first steps are slow),
  and the process CPU time per step, which other load on the machine inflates less than the
  wall time;
- the analytical multiply-adds of one encoder forward (``training.model.flops_per_sample``) and
  the rate they imply (a training step costs about 3 forwards: forward, input and weight
  gradients);
- for the ``cpu`` preset, the projected time of a full pre-training (epochs × samples /
  throughput) on the training split of a 2,000-sequence synthetic data set::

    python -m benchmarks.bench_pretrain                    # batch as in each preset
    python -m benchmarks.bench_pretrain --batch-size 32    # quicker paper-preset figures
"""

import argparse
import random
import statistics
import time

from iospstl_ros.datasets.synthetic import sample_id, split_part
import torch

from training.model import EncoderConfig, flops_per_sample
from training.pretrain import OPSTL, PRESETS, resolve, three_streams

#: Sequences of the synthetic data set behind the projection.
SYNTHETIC_SEQUENCES = 2000


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--presets', nargs='+', choices=sorted(PRESETS),
                        default=['paper', 'cpu'], help='presets to time (default: paper cpu)')
    parser.add_argument('--batch-size', type=int,
                        help="batch for every preset (default: each preset's own)")
    parser.add_argument('--steps', type=int, default=3, help='timed steps (default 3)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed steps first (default 3)')
    parser.add_argument('--threads', type=int,
                        help="torch CPU threads (default: torch's choice, "
                             f'{torch.get_num_threads()} here)')
    parser.add_argument('--no-gpu', action='store_true', help='CPU only')
    return parser


def step_time(preset, device, batch_size, steps, warmup):
    """Wall and process-CPU seconds per training step (medians over ``steps``)."""
    args = resolve(argparse.Namespace(preset=preset, mask='asm', mask_joints=None,
                                      mask_frames=10, **dict.fromkeys(PRESETS[preset])))
    torch.manual_seed(0)
    config = EncoderConfig(hidden_channels=args.hidden_channels, hidden_dim=args.hidden_dim)
    model = OPSTL(config, args.proj_dim).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr,
                                 weight_decay=args.weight_decay)
    rng = random.Random(0)
    x = torch.randn(batch_size, 3, 50, 25, 2, device=device)
    B = (torch.rand(batch_size, 25) < 0.2).to(torch.uint8)
    times, cpu_times = [], []
    for step in range(warmup + steps):
        started, cpu_started = time.perf_counter(), time.process_time()
        s1, s2, s3, ignore = three_streams(x, B, rng, args)
        loss = model(s1, s2, s3, ignore, 2e-4)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
    return statistics.median(times), statistics.median(cpu_times), config


def training_split_size(benchmark, sequences=SYNTHETIC_SEQUENCES):
    """Training samples of a synthetic benchmark of ``sequences`` sequences."""
    return sum(split_part(sample_id(i), benchmark) == 'train' for i in range(sequences))


def main(argv=None):
    options = build_parser().parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    devices = [torch.device('cpu')]
    if options.no_gpu:
        gpu_note = 'GPU: skipped (--no-gpu)'
    elif torch.cuda.is_available():
        devices.append(torch.device('cuda'))
        gpu_note = f'GPU: {torch.cuda.get_device_name(0)}'
    else:
        gpu_note = (f'GPU: skipped, torch.cuda.is_available() is False (torch '
                    f'{torch.__version__}, CUDA build: {torch.version.cuda is not None})')
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {gpu_note}')
    print(f'{"device":6} {"preset":6} {"batch":>5} {"s/step":>7} {"CPU s/step":>10} '
          f'{"samples/s":>9} {"fwd MMAC/sample":>15} {"GMAC/s (3x fwd)":>15}')
    throughput = {}
    for device in devices:
        for preset in options.presets:
            batch = options.batch_size or PRESETS[preset]['batch_size']
            seconds, cpu_seconds, config = step_time(preset, device, batch, options.steps,
                                                     options.warmup)
            # forward of the three streams: T = 50, 30 (MATM) and 50 (an upper bound: ASM
            # removes up to 9 joints)
            macs = sum(flops_per_sample(config, T) for T in (50, 30, 50))
            rate = batch / seconds
            throughput[device.type, preset] = rate
            print(f'{device.type:6} {preset:6} {batch:5d} {seconds:7.2f} {cpu_seconds:10.2f} '
                  f'{rate:9.1f} {flops_per_sample(config) / 1e6:15.1f} '
                  f'{3 * macs * rate / 1e9:15.1f}')
    for preset in options.presets:
        config = EncoderConfig(hidden_channels=PRESETS[preset]['hidden_channels'],
                               hidden_dim=PRESETS[preset]['hidden_dim'])
        print(f'{preset}: encoder forward {flops_per_sample(config) / 1e6:.1f} M multiply-adds '
              f'per sample (T=50, 2 bodies), {flops_per_sample(config, 30) / 1e6:.1f} M at T=30')
    if ('cpu', 'cpu') in throughput:
        epochs, rate = PRESETS['cpu']['epochs'], throughput['cpu', 'cpu']
        for benchmark in ('xsub', 'xview'):
            samples = training_split_size(benchmark)
            minutes = epochs * samples / rate / 60
            print(f'cpu preset, {benchmark} training split of {SYNTHETIC_SEQUENCES} synthetic '
                  f'sequences: {epochs} epochs x {samples} samples / {rate:.1f} samples/s = '
                  f'{minutes:.1f} min on CPU ({torch.get_num_threads()} threads)')


if __name__ == '__main__':
    main()
