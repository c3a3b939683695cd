"""The end-to-end benchmark's reports: a run of some masks and imputers, and the seed spread."""

import argparse
import json

from benchmarks import e2e_seeds
from benchmarks.end_to_end import build_parser, write_report
import pytest

SETTINGS = {'num_samples': 800, 'preset': 'cpu', 'epochs': None, 'linear_epochs': 100,
            'quality_limit': 300}
MPJPE = {'cluster-knn': 189.0, 'global-knn': 155.0, 'mean': 157.0, 'random': 501.0,
         'none': 491.0}


def report(seed, none, knn, split='xsub', **settings):
    return {'command': f'python -m benchmarks.end_to_end --seed {seed}',
            'settings': {**SETTINGS, 'seed': seed, **settings},
            'splits': {split: {'asm': {'none': none, 'cluster-knn': knn,
                                       'mpjpe_mm': dict(MPJPE)}}},
            'stage_seconds': {f'{split}/asm/stage1': 600.0}, 'wall_seconds': 1.0}


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return str(path)


def test_seed_spread_of_the_gain(tmp_path, capsys):
    paths = [write(tmp_path, 'a.json', report(0, 0.310, 0.325)),
             write(tmp_path, 'b.json', report(2, 0.300, 0.350)),
             write(tmp_path, 'c.json', report(1, 0.280, 0.320))]
    rows = e2e_seeds.main(paths + ['--out', str(tmp_path / 'seeds.md')])
    assert len(rows) == 1 and rows[0]['seeds'] == [0, 1, 2]
    assert rows[0]['gain'] == pytest.approx([1.5, 4.0, 5.0])
    assert rows[0]['mean'] == pytest.approx(3.5)
    assert rows[0]['sd'] == pytest.approx(1.8027756, abs=1e-6)   # sqrt(((2)^2+.5^2+1.5^2)/2)
    table = (tmp_path / 'seeds.md').read_text()
    assert '| xsub | OPSTL (ASM) | 1 | 28.0 | 32.0 | +4.0 |' in table
    assert '| xsub | OPSTL (ASM) | mean of 3 | 29.7 | 33.2 | **+3.5 ± 1.8** (meets +3) |' in table
    assert table in capsys.readouterr().out


def test_seed_spread_refuses_reports_it_cannot_compare(tmp_path):
    same = [write(tmp_path, 'a.json', report(0, 0.3, 0.3)),
            write(tmp_path, 'b.json', report(0, 0.3, 0.4))]
    with pytest.raises(SystemExit) as stop:
        e2e_seeds.main(same)
    assert stop.value.code == 2
    with pytest.raises(ValueError, match='both have seed 0'):
        e2e_seeds.load(same)
    other = write(tmp_path, 'c.json', report(1, 0.3, 0.3, linear_epochs=5))
    with pytest.raises(ValueError, match='linear_epochs 5 there, 100 here'):
        e2e_seeds.load([same[0], other])
    with pytest.raises(ValueError, match='expected an end_to_end.json report'):
        e2e_seeds.load([write(tmp_path, 'd.json', {'accuracy': 1})])


def test_report_of_one_mask_and_imputer(tmp_path):
    args = build_parser().parse_args(['--masks', 'asm', '--imputers', 'cluster-knn',
                                      '--no-clean'])
    assert args.masks == ['asm'] and args.imputers == ['cluster-knn']
    write_report(str(tmp_path), report(3, 0.25, 0.30), argparse.Namespace(**vars(args)))
    text = (tmp_path / 'end_to_end.md').read_text()
    assert '| OPSTL (ASM) | none | 25.0 |' in text
    assert '| OPSTL (ASM) | cluster-knn | 30.0 |' in text
    assert 'PSTL (CSM)' not in text and '| OPSTL (ASM) | random |' not in text
    assert '| imputer | xsub (ASM) |' in text and '| cluster-knn | 189 |' in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(['--masks', 'central'])
