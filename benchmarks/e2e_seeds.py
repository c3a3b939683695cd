r"""Spread of the end-to-end benchmark over data seeds: the gain of cluster-KNN imputation.

    python -m benchmarks.e2e_seeds docs/end_to_end.json runs/e2e_seed1/end_to_end.json \
        --out docs/end_to_end_seeds.md

One synthetic data set of 800 sequences has a few hundred held-out samples per split, so one
run's accuracy moves by a few points with the data seed (the sampling error of 400 samples at
30-50 % is about 2.5 points). This reads several ``end_to_end.json`` reports made with the
same settings but different ``--seed`` (``--masks asm --imputers cluster-knn`` is enough for
the OPSTL rows) and prints, for every split and method, the top-1 of each seed, the gain of
cluster-KNN imputation over no imputation, and its mean and sample standard deviation over
the seeds; ``--out`` also writes that as Markdown.
"""

import argparse
import json
import math
import os
import sys

from benchmarks.end_to_end import MASKS, SHARED_SETTINGS

#: Settings that may differ between the seeds' reports (besides the seed).
FREE_SETTINGS = ('seed',)


def load(paths):
    """Read the reports; check that they differ in nothing that changes the numbers but the seed.

    Raises
    ------
    ValueError
        If a file is not an end-to-end report, two share a seed, or their settings differ.
    """
    reports = []
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        if not isinstance(report, dict) or 'splits' not in report or 'settings' not in report:
            raise ValueError(f'{path}: expected an end_to_end.json report (with "splits" and '
                             f'"settings"), got keys {sorted(report)[:8]}')
        reports.append((path, report))
    first_path, first = reports[0]
    fixed = [k for k in SHARED_SETTINGS if k not in FREE_SETTINGS]
    seeds = {}
    for path, report in reports:
        differ = [k for k in fixed if report['settings'].get(k) != first['settings'].get(k)]
        if differ:
            raise ValueError(f'{path}: made with other settings than {first_path} ('
                             + ', '.join(f'{k} {report["settings"].get(k)!r} there, '
                                         f'{first["settings"].get(k)!r} here' for k in differ)
                             + '); their numbers are not comparable')
        seed = report['settings'].get('seed')
        if seed in seeds:
            raise ValueError(f'{path} and {seeds[seed]} both have seed {seed}; expected one '
                             'report per seed')
        seeds[seed] = path
    return sorted((r['settings']['seed'], r) for _, r in reports)


def mean_sd(values):
    """Mean and sample standard deviation (NaN for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def gains(reports):
    """Per (split, mask): the seeds' top-1 without and with cluster-KNN, and the gains.

    Returns
    -------
    rows : list of dict
        ``split, mask, seeds, none, cluster_knn, gain`` (lists over the seeds that have both
        rows, in percent), ``mean, sd`` of the gain.
    """
    rows = []
    splits = sorted({s for _, r in reports for s in r['splits']})
    for split in splits:
        for mask in ('asm', 'csm'):
            seeds, none, knn = [], [], []
            for seed, report in reports:
                row = report['splits'].get(split, {}).get(mask, {})
                if 'none' in row and 'cluster-knn' in row:
                    seeds.append(seed)
                    none.append(100.0 * row['none'])
                    knn.append(100.0 * row['cluster-knn'])
            if not seeds:
                continue
            gain = [k - n for k, n in zip(knn, none)]
            mean, sd = mean_sd(gain)
            rows.append({'split': split, 'mask': mask, 'seeds': seeds, 'none': none,
                         'cluster_knn': knn, 'gain': gain, 'mean': mean, 'sd': sd})
    return rows


def markdown(rows, goal):
    """Write the table of :func:`gains` as Markdown; check the goal on the mean gain."""
    lines = ['| split | method | seed | none | cluster-knn | gain |', '|---|---|---|---|---|---|']
    for row in rows:
        name = MASKS[row['mask']]
        for seed, none, knn, gain in zip(row['seeds'], row['none'], row['cluster_knn'],
                                         row['gain']):
            lines.append(f'| {row["split"]} | {name} | {seed} | {none:.1f} | {knn:.1f} | '
                         f'{gain:+.1f} |')
        none_mean, knn_mean = mean_sd(row['none'])[0], mean_sd(row['cluster_knn'])[0]
        sd = '' if math.isnan(row['sd']) else f' ± {row["sd"]:.1f}'
        verdict = 'meets' if row['mean'] >= goal else 'misses'
        lines.append(f'| {row["split"]} | {name} | mean of {len(row["seeds"])} | '
                     f'{none_mean:.1f} | {knn_mean:.1f} | **{row["mean"]:+.1f}{sd}** '
                     f'({verdict} +{goal:g}) |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('reports', nargs='+', help='end_to_end.json files, one per seed')
    parser.add_argument('--goal', type=float, default=3.0,
                        help='gain in points that cluster-KNN should reach (default 3)')
    parser.add_argument('--out', help='also write the table to this Markdown file')
    args = parser.parse_args(argv)
    try:
        rows = gains(load(args.reports))
    except (OSError, ValueError) as error:
        parser.exit(2, f'e2e_seeds: {error}\n')
    table = markdown(rows, args.goal)
    sys.stdout.write(table)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(table)
    return rows


if __name__ == '__main__':
    main()
