"""The end-to-end occlusion benchmark: the paper's Table II/V structure on synthetic data.

    python -m benchmarks.end_to_end --out runs/end_to_end --docs docs

For each benchmark split of the synthetic data set (realistic furniture occlusion), trains
PSTL (CSM) and OPSTL (ASM) with the ``cpu`` preset and evaluates them linearly with

* no imputation (the stage-1 encoder on the occluded windows, occluded joints at the centre);
* the paper's random imputation, then stage-2 pre-training on the completed windows;
* cluster-restricted KNN imputation (IosPSTL), then stage-2 pre-training;

plus OPSTL on the same sequences without occlusion (the clean upper bound, first split only),
and the imputation error (MPJPE over hidden visible joints) of every imputer. Every stage is a
``python -m training.*`` command, printed and timed; a stage whose output already exists is
reused (so an interrupted run resumes), with the time it took when it ran. Writes
``end_to_end.json`` and ``end_to_end.md`` to ``--out`` and, with ``--docs``, copies them there.
With ``--export DIR`` the first split's OPSTL + cluster-KNN model is exported to ``DIR`` (this
is how ``models/default`` is made; see ``models/README.md``).

Takes about 1.5-2 hours on 2 CPU cores with the defaults; ``--epochs 1 --num-samples 120
--linear-epochs 2`` checks the plumbing in minutes. Not part of the test suite.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

MASKS = {'csm': 'PSTL (CSM)', 'asm': 'OPSTL (ASM)'}
IMPUTERS = ('none', 'random', 'cluster-knn')
QUALITY_METHODS = ('cluster-knn', 'global-knn', 'mean', 'random', 'none')


class Runner:
    """Run stages as subprocesses, time them, reuse finished ones, log the commands."""

    def __init__(self, out):
        self.out = out
        self.times_path = os.path.join(out, 'stage_times.json')
        self.times = {}
        if os.path.exists(self.times_path):
            with open(self.times_path) as f:
                self.times = json.load(f)
        self.commands = []

    def __call__(self, name, module, args, done):
        """Run ``python -m module args`` unless ``done`` exists; return its seconds."""
        command = [sys.executable, '-m', module] + [str(a) for a in args]
        self.commands.append(shlex.join(['python', '-m', module] + [str(a) for a in args]))
        if os.path.exists(done) and name in self.times:
            print(f'== {name}: reused ({self.times[name]:.0f} s when it ran)', flush=True)
            return self.times[name]
        print(f'== {name}: {self.commands[-1]}', flush=True)
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - start
        self.times[name] = seconds
        with open(self.times_path, 'w') as f:
            json.dump(self.times, f, indent=2)
        print(f'== {name}: {seconds:.0f} s', flush=True)
        return seconds


def read_json(path):
    with open(path) as f:
        return json.load(f)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='runs/end_to_end', help='work and output folder')
    parser.add_argument('--docs', help='also copy end_to_end.{md,json} into this folder')
    parser.add_argument('--export', help='export split 1 OPSTL + cluster-KNN to this model dir')
    parser.add_argument('--benchmarks', nargs='+', default=['xsub', 'xview'],
                        help='synthetic benchmark splits (default: xsub xview)')
    parser.add_argument('--num-samples', type=int, default=1000,
                        help='synthetic sequences (about half train, half val per split)')
    parser.add_argument('--preset', default='cpu', help='pre-training preset (default cpu)')
    parser.add_argument('--epochs', type=int, help='override the preset epochs')
    parser.add_argument('--linear-epochs', type=int, default=100,
                        help='linear evaluation epochs (reference 150)')
    parser.add_argument('--quality-limit', type=int, default=300,
                        help='validation windows scored by the MPJPE check')
    parser.add_argument('--no-clean', action='store_true', help='skip the clean upper bound')
    parser.add_argument('--seed', type=int, default=0, help='data seed')
    parser.add_argument('--masks', nargs='+', choices=sorted(MASKS), default=['asm', 'csm'],
                        help='pre-training masks to run (default: asm csm; asm is OPSTL)')
    parser.add_argument('--imputers', nargs='+', choices=['cluster-knn', 'random'],
                        default=['cluster-knn', 'random'],
                        help='imputers followed by stage-2 training (default: both; '
                             '"none" always runs)')
    parser.add_argument('--merge', metavar='JSON',
                        help='an end_to_end.json of an earlier run with the same settings: its '
                             'splits that this run does not compute join the report (to run '
                             'the splits one at a time)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    run = Runner(out)
    started = time.perf_counter()
    pretrain_flags = ['--preset', args.preset, '--device', 'cpu', '--no-progress']
    if args.epochs:
        pretrain_flags += ['--epochs', args.epochs]
    linear_flags = ['--epochs', args.linear_epochs, '--device', 'cpu', '--no-progress']
    data_root = os.path.join(out, 'data')
    synth = ['--num-samples', args.num_samples, '--max-frames', 150, '--seed', args.seed,
             '--benchmarks'] + args.benchmarks
    run('synthesize', 'training.synthesize', ['--out', data_root, '--occlusion', 'realistic']
        + synth, os.path.join(data_root, args.benchmarks[-1], 'val_label.npy'))
    for split in args.benchmarks:
        run(f'windows/{split}', 'training.windows', ['--data', os.path.join(data_root, split)],
            os.path.join(data_root, split, 'val_w50_data.npy'))
    results = {'command': shlex.join(['python', '-m', 'benchmarks.end_to_end']
                                     + (argv if argv is not None else sys.argv[1:])),
               'settings': vars(args), 'splits': {}}

    def linear(name, data, encoder, dest):
        run(name, 'training.evaluate', ['--data', data, '--encoder', encoder, '--out', dest]
            + linear_flags, os.path.join(dest, 'summary.json'))
        return read_json(os.path.join(dest, 'summary.json'))['top1_last_epoch']

    for index, split in enumerate(args.benchmarks):
        data = os.path.join(data_root, split)
        table = {}
        split_runs = os.path.join(out, 'runs', split)
        # OPSTL first: it gives the default model.
        for mask in sorted(set(args.masks), key=('asm', 'csm').index):
            base = os.path.join(split_runs, mask)
            stage1 = os.path.join(base, 'stage1')
            run(f'{split}/{mask}/stage1', 'training.pretrain',
                ['--data', data, '--out', stage1, '--mask', mask] + pretrain_flags,
                os.path.join(stage1, 'encoder.pt'))
            row = {'none': linear(f'{split}/{mask}/linear-none', data,
                                  os.path.join(stage1, 'encoder.pt'),
                                  os.path.join(base, 'linear-none'))}
            for imputer in [i for i in ('cluster-knn', 'random') if i in args.imputers]:
                imputed = os.path.join(base, f'data-{imputer}')
                run(f'{split}/{mask}/impute-{imputer}', 'training.impute',
                    ['--data', data, '--encoder', os.path.join(stage1, 'encoder.pt'), '--out',
                     imputed, '--method', imputer, '--device', 'cpu', '--no-progress'],
                    os.path.join(imputed, 'imputation.json'))
                stage2 = os.path.join(base, f'stage2-{imputer}')
                run(f'{split}/{mask}/stage2-{imputer}', 'training.pretrain',
                    ['--data', imputed, '--out', stage2, '--mask', mask] + pretrain_flags,
                    os.path.join(stage2, 'encoder.pt'))
                dest = os.path.join(base, f'linear-{imputer}')
                row[imputer] = linear(f'{split}/{mask}/linear-{imputer}', imputed,
                                      os.path.join(stage2, 'encoder.pt'), dest)
                if mask == 'asm' and imputer == 'cluster-knn' and index == 0 and args.export:
                    run('export', 'training.export',
                        ['--stage1', os.path.join(stage1, 'encoder.pt'), '--classifier',
                         os.path.join(dest, 'classifier.pt'), '--imputed', imputed, '--out',
                         args.export, '--force'],
                        os.path.join(args.export, 'metadata.json'))
            table[mask] = row
            quality = os.path.join(base, 'quality')
            run(f'{split}/{mask}/mpjpe', 'training.imputation_quality',
                ['--data', data, '--encoder', os.path.join(stage1, 'encoder.pt'), '--out',
                 quality, '--limit', args.quality_limit, '--device', 'cpu', '--no-progress'],
                os.path.join(quality, 'quality.json'))
            methods = read_json(os.path.join(quality, 'quality.json'))['methods']
            table[mask]['mpjpe_mm'] = {m: methods[m]['mpjpe_mm'] for m in methods}
        if index == 0 and not args.no_clean:
            clean_root = os.path.join(out, 'data-clean')
            run('synthesize-clean', 'training.synthesize',
                ['--out', clean_root, '--occlusion', 'none'] + synth[:-len(args.benchmarks)]
                + [split], os.path.join(clean_root, split, 'val_label.npy'))
            clean = os.path.join(clean_root, split)
            run(f'windows-clean/{split}', 'training.windows', ['--data', clean],
                os.path.join(clean, 'val_w50_data.npy'))
            stage1 = os.path.join(split_runs, 'clean', 'stage1')
            run(f'{split}/clean/stage1', 'training.pretrain',
                ['--data', clean, '--out', stage1, '--mask', 'asm'] + pretrain_flags,
                os.path.join(stage1, 'encoder.pt'))
            table['clean'] = {'none': linear(f'{split}/clean/linear', clean,
                                             os.path.join(stage1, 'encoder.pt'),
                                             os.path.join(split_runs, 'clean', 'linear'))}
        results['splits'][split] = table
    results['stage_seconds'] = {k: round(v, 1) for k, v in run.times.items()}
    results['commands'] = run.commands
    results['wall_seconds'] = round(time.perf_counter() - started, 1)
    if args.merge:
        results = merge_results(read_json(args.merge), results, args.merge)
    write_report(out, results, args)
    print(open(os.path.join(out, 'end_to_end.md')).read())
    if args.docs:
        os.makedirs(args.docs, exist_ok=True)
        for name in ('end_to_end.md', 'end_to_end.json'):
            shutil.copy(os.path.join(out, name), os.path.join(args.docs, name))
    return results


#: Settings two runs must share for their splits to appear in one table.
SHARED_SETTINGS = ('num_samples', 'preset', 'epochs', 'linear_epochs', 'quality_limit', 'seed')


def merge_results(earlier, current, path):
    """Join the splits of an earlier report that ``current`` did not compute.

    Raises
    ------
    ValueError
        If the two runs differ in a setting of :data:`SHARED_SETTINGS`.
    """
    differ = [k for k in SHARED_SETTINGS
              if earlier.get('settings', {}).get(k) != current['settings'].get(k)]
    if differ:
        raise ValueError(f'--merge {path}: made with other settings ('
                         + ', '.join(f'{k} {earlier.get("settings", {}).get(k)!r} there, '
                                     f'{current["settings"].get(k)!r} now' for k in differ)
                         + '); its numbers are not comparable')
    added = [s for s in earlier['splits'] if s not in current['splits']]
    merged = dict(current)
    merged['splits'] = {**{s: earlier['splits'][s] for s in added}, **current['splits']}
    times = {}
    for key, value in earlier.get('stage_seconds', {}).items():
        if any(key.startswith(f'{s}/') or key.endswith(f'/{s}') for s in added) \
                or key not in current['stage_seconds']:
            times[key] = value
        else:
            times[f'{key} (earlier run)'] = value
    merged['stage_seconds'] = {**times, **current['stage_seconds']}
    merged['commands'] = earlier.get('commands', []) + [
        c for c in current['commands'] if c not in earlier.get('commands', [])]
    merged['merged'] = {'splits': added, 'command': earlier.get('command'), 'from': path}
    return merged


def percent(value):
    return f'{100.0 * value:.1f}'


def write_report(out, results, args):
    with open(os.path.join(out, 'end_to_end.json'), 'w') as f:
        json.dump(results, f, indent=2)
    splits = list(results['splits'])
    lines = ['# End-to-end occlusion benchmark (synthetic, realistic furniture occlusion)', '',
             f'Produced by `{results["command"]}`'
             + (f' and, for {", ".join(results["merged"]["splits"])}, '
                f'`{results["merged"]["command"]}`' if 'merged' in results else '')
             + f' ({args.num_samples} synthetic sequences, '
             f'`{args.preset}` pre-training preset, linear evaluation '
             f'{args.linear_epochs} epochs, top-1 at the last epoch on the held-out split).', '',
             '## Linear evaluation top-1 (%)', '',
             '| method | imputation | ' + ' | '.join(splits) + ' |',
             '|---|---|' + '---|' * len(splits)]
    for mask, name in MASKS.items():
        for imputer in IMPUTERS:
            cells = [percent(results['splits'][s][mask][imputer])
                     if imputer in results['splits'][s].get(mask, {}) else '-' for s in splits]
            if set(cells) != {'-'}:
                lines.append(f'| {name} | {imputer} | ' + ' | '.join(cells) + ' |')
    if 'clean' in results['splits'][splits[0]]:
        cells = [percent(results['splits'][s]['clean']['none'])
                 if 'clean' in results['splits'][s] else '-' for s in splits]
        lines.append('| OPSTL (ASM), no occlusion | none | ' + ' | '.join(cells) + ' |')
    columns = [(s, m) for s in splits for m in ('asm', 'csm') if m in results['splits'][s]]
    lines += ['', '## Imputation error: MPJPE over hidden visible joints (mm)', '',
              '| imputer | ' + ' | '.join(f'{s} ({m.upper()})' for s, m in columns)
              + ' |', '|---|' + '---|' * len(columns)]
    for method in QUALITY_METHODS:
        cells = [f'{results["splits"][s][m]["mpjpe_mm"][method]:.0f}' for s, m in columns]
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    lines += ['', '(cluster-knn depends on the stage-1 encoder that clusters; the other imputers '
              'do not, so their columns agree.)', '', '## Stage times (s, 2 CPU cores)', '',
              '| stage | seconds |', '|---|---|']
    lines += [f'| {k} | {v:.0f} |' for k, v in results['stage_seconds'].items()]
    total = sum(results['stage_seconds'].values())
    lines += ['', f'Sum of the stage times: {total:.0f} s ({total / 3600:.1f} h). Stages may have '
              'run in earlier invocations (a stage whose output exists is reused, with the time '
              f'it took); this invocation took {results["wall_seconds"]:.0f} s. The cores were '
              'shared with other jobs, so single stage times vary by up to 2x.', '']
    with open(os.path.join(out, 'end_to_end.md'), 'w') as f:
        f.write('\n'.join(lines))


if __name__ == '__main__':
    main()
