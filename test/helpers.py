"""Helpers shared by the test modules: a tiny trained model, model-file edits, NTU files.

Not a test module (no ``test_`` prefix): test modules import from here, never from each other.
"""

import hashlib
import json
import os
import shutil

from iospstl_ros.model_dir import METADATA_FILE
import numpy as np

from training.evaluate import main as evaluate
from training.export import main as export
from training.impute import main as impute
from training.pretrain import main as pretrain
from training.synthesize import main as synthesize
from training.windows import make_windows


def build_tiny_model(tmp_path_factory):
    """Build a tiny model directory with the project's own scripts, once per test session.

    Returns
    -------
    dict of str to str
        ``root``, ``data`` (synthetic xsub benchmark), ``stage1``, ``imputed``,
        ``classifier`` and ``model`` (the exported directory).
    """
    root = tmp_path_factory.getbasetemp() / 'iospstl_tiny_model'
    paths = {'root': root, 'data': root / 'synth' / 'xsub', 'stage1': root / 'pre' / 'encoder.pt',
             'imputed': root / 'imputed', 'classifier': root / 'eval' / 'classifier.pt',
             'model': root / 'models' / 'tiny'}
    paths = {key: str(value) for key, value in paths.items()}
    if os.path.exists(os.path.join(paths['model'], METADATA_FILE)):
        return paths
    shutil.rmtree(root, ignore_errors=True)
    synthesize(['--out', str(root / 'synth'), '--num-samples', '100', '--seed', '5',
                '--benchmarks', 'xsub', '--max-frames', '150', '--workers', '1'])
    for part in ('train', 'val'):
        make_windows(paths['data'], part, progress=False)
    pretrain(['--data', paths['data'], '--out', str(root / 'pre'), '--preset', 'tiny',
              '--epochs', '1', '--device', 'cpu', '--no-progress'])
    impute(['--data', paths['data'], '--encoder', paths['stage1'], '--out', paths['imputed'],
            '--clusters', '4', '--no-progress'])
    evaluate(['--data', paths['imputed'], '--encoder', paths['stage1'], '--epochs', '2',
              '--out', str(root / 'eval'), '--device', 'cpu', '--no-progress'])
    export(['--stage1', paths['stage1'], '--classifier', paths['classifier'],
            '--imputed', paths['imputed'], '--out', paths['model']])
    return paths


def sha256(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def rewrite_file(model, name, array=None, data=None):
    """Replace a file and record its new checksum, so that only the content is wrong."""
    path = model / name
    if array is not None:
        np.save(path, array)
    else:
        path.write_bytes(data)
    meta = json.loads((model / METADATA_FILE).read_text())
    meta['files'][name] = {'sha256': sha256(path), 'bytes': path.stat().st_size}
    (model / METADATA_FILE).write_text(json.dumps(meta))


#: A standing person about 3 m in front of the camera (x, y, z per joint, metres).
POSE = (
    (0.0, -0.10, 3.0), (0.0, 0.17, 3.0), (0.0, 0.42, 3.0), (0.0, 0.53, 3.0),
    (-0.17, 0.36, 3.0), (-0.22, 0.10, 3.0), (-0.25, -0.10, 3.0), (-0.26, -0.16, 3.0),
    (0.17, 0.36, 3.0), (0.22, 0.10, 3.0), (0.25, -0.10, 3.0), (0.26, -0.16, 3.0),
    (-0.08, -0.10, 3.0), (-0.09, -0.45, 3.0), (-0.09, -0.80, 3.0), (-0.09, -0.86, 2.95),
    (0.08, -0.10, 3.0), (0.09, -0.45, 3.0), (0.09, -0.80, 3.0), (0.09, -0.86, 2.95),
    (0.0, 0.35, 3.0), (-0.27, -0.22, 3.0), (-0.24, -0.18, 2.97), (0.27, -0.22, 3.0),
    (0.24, -0.18, 2.97),
)
ID_A = 72057594037931101
ID_B = 72057594037931103      # float64 cannot tell it from ID_A (spacing 16 at 7.2e16)


def pose(dx=0.0, states=None, zero=()):
    """25 (x, y, z, state) tuples: POSE shifted by dx; joints in ``zero`` at (0, 0, 0)."""
    states = states or {}
    joints = []
    for j, (x, y, z) in enumerate(POSE):
        xyz = (0.0, 0.0, 0.0) if j in zero else (round(x + dx, 6), y, z)
        joints.append(xyz + (states.get(j, 2),))
    return joints


def skeleton_text(frames, newline='\n'):
    """File text of ``frames``: a list (per frame) of lists of (body_id, 25 joints)."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines.append(f'{body_id} 0 1 1 1 1 0 0.02764709 0.05745083 2')
            lines.append('25')
            lines += [f'{x} {y} {z} 250.1 200.2 950.3 520.4 0.1 -0.2 0.3 0.9 {state}'
                      for x, y, z, state in joints]
    return newline.join(lines) + newline


def write_skeleton(path, frames, newline='\n'):
    with open(path, 'w', newline='') as f:
        f.write(skeleton_text(frames, newline))
    return str(path)
