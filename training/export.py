"""Export what the robot runs: two ONNX graphs, the cluster bank and metadata, in one directory.

    python -m training.export --stage1 runs/s1/encoder.pt --classifier runs/eval/classifier.pt \
        --imputed data/synthetic/xsub_imputed --out models/synthetic_xsub

Writes the model directory described in :mod:`iospstl_ros.model_dir`:

* ``stage1_encoder.onnx``: the stage-1 encoder (cluster assignment), exactly as
  ``training.impute`` embeds windows (joint coordinates, occluded joints at 0);
* ``classifier.onnx``: the stage-2 encoder and the linear head of ``classifier.pt``, with the
  input view it was trained on (joint, motion or bone) inside the graph, giving logits;
* ``centroids.npy``, ``feature_mean.npy`` and ``bank/`` from the ``training.impute`` output
  (the bank must come from ``--method cluster-knn``; it is written in the current bank format,
  v2, with one donors file per cluster, whichever format the output holds);
* ``metadata.json``: format name and version, classes and their NTU action ids (from the
  classifier, else from the data set's ``meta.json`` when its classes are the classifier's;
  null when neither gives them), joint layout, window length,
  preprocessing constants, k, the graphs' parity errors and provenance (command, git commit,
  input paths, metrics of ``summary.json`` beside the classifier), and the sha256 of every file.

Both graphs are written in the joints-first form of :mod:`training.joints_first` (aggregate
over joints with one MatMul, then one convolution; every foldable BatchNorm folded; no
Shape/Expand/Slice chains), which ONNX Runtime runs faster than PyTorch eager at every batch size
(``docs/benchmarks.md``); training keeps its own forward. They take ``skeleton`` float32
(N, 3, 50, 25, M) with M = 2 body slots, dynamic N, opset 17 (TorchScript exporter; the dynamo
exporter needs onnxscript). M is dynamic too: M = 1 serves a window whose second slot is empty,
and the pipeline adds the cached output of an empty slot, which gives the two-slot result
(exactly, up to float rounding: the slots share every weight, their features are averaged and
the head is affine) at about half the cost. Before anything is written the stage-1 encoder is
checked to reproduce the embeddings the bank was clustered with. After export each graph must
match the training module's PyTorch forward within ``--tolerance`` on random input at batch
sizes 1 and 3, with two slots and with one (ONNX Runtime, CPU); the one-body shortcut must match
the two-slot graph within the same tolerance; and on the held-out windows of ``--imputed``
(``val``) the classifier graph must give PyTorch's class and the stage-1 graph PyTorch's
cluster for every window (up to ties within the tolerance). Model directories exported before
the joints-first form are converted with ``python -m training.convert_model``.
Everything is written into a temporary directory next to ``--out`` and renamed at the end, so a
failed export never leaves a partial model.
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings

from iospstl_ros.datasets.splits import check_action_ids
from iospstl_ros.imputation import ClusterBank
from iospstl_ros.layout import CENTER_JOINT, FRAME_RATE, WINDOW_FRAMES
from iospstl_ros.model_dir import (
    BANK_DIR, CENTROIDS_FILE, CLASSIFIER_FILE, EMBEDDING_NAME, FEATURE_MEAN_FILE,
    INPUT_NAME, layout_metadata, LOGITS_NAME, METADATA_FILE, MODEL_FORMAT, MODEL_FORMAT_VERSION,
    NUM_FEATURES, SAMPLE_SHAPE, sha256_file, STAGE1_FILE)
from iospstl_ros.preprocess import SHOULDER_NORM_EPS
import numpy as np
import torch
from torch import nn

from training.augment import input_view
from training.evaluate import load_encoder
from training.impute import STAGE1_VIEW
from training.joints_first import GRAPH_FORM, joints_first
from training.model import Classifier, EncoderConfig, STGCNEncoder
from training.windows import load_windows

#: Windows re-embedded to check that ``--stage1`` is the encoder the bank was clustered with.
PROVENANCE_WINDOWS = 8
#: Largest difference allowed between those embeddings and the stored ones.
PROVENANCE_TOLERANCE = 1e-3
#: Batch sizes of the parity check.
PARITY_BATCHES = (1, 3)
#: Most held-out windows compared between ONNX Runtime and PyTorch.
HELD_OUT_WINDOWS = 256


class ViewClassifier(nn.Module):
    """Classifier that turns joint coordinates into its input view first (part of the graph).

    Parameters
    ----------
    classifier : Classifier
    view : {'joint', 'motion', 'bone'}
    """

    def __init__(self, classifier, view='joint'):
        super().__init__()
        self.classifier = classifier
        self.view = view

    def forward(self, x):
        """Logits of joint coordinates x (N, C, T, V, M): Tensor of shape (N, num_classes)."""
        return self.classifier(input_view(x, self.view))


def load_classifier(path):
    """Rebuild the classifier saved by ``training.evaluate`` (CPU, eval mode).

    Parameters
    ----------
    path : str
        ``classifier.pt``.

    Returns
    -------
    model : ViewClassifier
    state : dict
        The file's contents (``classes``, ``num_classes``, ``view``, ``config``).
    """
    state = torch.load(path, map_location='cpu', weights_only=False)
    keys = ('config', 'state_dict', 'fc', 'num_classes')
    if not isinstance(state, dict) or any(key not in state for key in keys):
        raise ValueError(f'{path}: expected a classifier file with {keys} (written by '
                         'training.evaluate)')
    encoder = STGCNEncoder(EncoderConfig.from_dict(state['config']))
    encoder.load_state_dict(state['state_dict'])
    classifier = Classifier(encoder, int(state['num_classes']))
    classifier.fc.load_state_dict(state['fc'])
    model = ViewClassifier(classifier, state.get('view') or 'joint')
    return model.eval(), state


def export_onnx(module, path, output_name, opset=17, dynamic_bodies=True):
    """Export a module taking ``skeleton`` (N, 3, 50, 25, M) to ONNX with a dynamic batch.

    The body axis M is dynamic too (``bodies``; 2, or 1 for a window whose second slot is
    empty): the encoder treats the slots alike and averages their features, so the pipeline
    runs such a window as one body and adds the cached output of an empty slot (see
    :mod:`iospstl_ros.pipeline`).

    Parameters
    ----------
    module : nn.Module
        In eval mode.
    path : str
    output_name : str
    opset : int
    dynamic_bodies : bool
        ``False`` fixes M = 2 (the format of the first exports; still loaded).
    """
    import onnx

    example = torch.randn((2,) + SAMPLE_SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), warnings.catch_warnings():
        # shape checks on fixed axes (C, V, M) are constants of the trace, as intended; the
        # TorchScript exporter is deprecated but the dynamo one needs onnxscript
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(module, (example,), path, input_names=[INPUT_NAME],
                          output_names=[output_name], opset_version=opset, dynamo=False,
                          dynamic_axes={INPUT_NAME: {0: 'batch', 4: 'bodies'} if dynamic_bodies
                                        else {0: 'batch'}, output_name: {0: 'batch'}},
                          do_constant_folding=True)
    with torch.no_grad():
        size = module(example).shape[1]
    graph = onnx.load(path)
    dim = graph.graph.output[0].type.tensor_type.shape.dim[1]
    dim.Clear()
    dim.dim_value = int(size)  # the exporter leaves the feature / class axis symbolic
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, path)


def parity_error(module, path, batch_sizes=PARITY_BATCHES, seed=0):
    """Largest difference between ONNX Runtime (CPU) and PyTorch on random input.

    The input is normal noise (sd 0.3 m) with the centre joint at 0, as after preprocessing.
    The difference is divided by ``max(1, largest output magnitude)``: random poses are far
    from the training data and can give logits in the thousands, where float32 rounding alone
    exceeds 1e-4; on outputs of order 1 it is the absolute difference.

    Parameters
    ----------
    module : nn.Module
        In eval mode.
    path : str
        Its ONNX export.
    batch_sizes : sequence of int
    seed : int

    Returns
    -------
    float
        ``max |onnx - torch| / max(1, max |torch|)`` over the batches.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # idle-spinning pool threads would slow PyTorch down
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in batch_sizes:
        x = rng.normal(0.0, 0.3, (n,) + SAMPLE_SHAPE).astype(np.float32)
        x[:, :, :, CENTER_JOINT] = 0.0
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        got = session.run(None, {INPUT_NAME: x})[0]
        if got.shape != expected.shape:
            raise ValueError(f'{path}: output shape {got.shape} at batch {n}, PyTorch gives '
                             f'{expected.shape}')
        scale = max(1.0, float(np.abs(expected).max()))
        worst = max(worst, float(np.abs(got - expected).max()) / scale)
        if session.get_inputs()[0].shape[-1] != SAMPLE_SHAPE[-1]:   # a dynamic body axis
            one = np.ascontiguousarray(x[..., :1])
            with torch.no_grad():
                expected = module(torch.from_numpy(one)).numpy()
            got = session.run(None, {INPUT_NAME: one})[0]
            worst = max(worst, float(np.abs(got - expected).max())
                        / max(1.0, float(np.abs(expected).max())))
    return worst


def empty_slot_error(path, seed=0):
    """How far the one-body shortcut is from the two-slot graph, in ONNX Runtime.

    For windows whose second slot is all zero, compares ``(g(x[..., :1]) + g(0)) / 2`` (what
    the pipeline computes) with ``g(x)``, relative to ``max(1, max |g(x)|)``.

    Returns
    -------
    float or None
        None when the graph's body axis is fixed (no shortcut).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    if session.get_inputs()[0].shape[-1] == SAMPLE_SHAPE[-1]:
        return None
    x = np.random.default_rng(seed).normal(0.0, 0.3, (3,) + SAMPLE_SHAPE).astype(np.float32)
    x[:, :, :, CENTER_JOINT] = 0.0
    x[..., 1] = 0.0
    full = session.run(None, {INPUT_NAME: x})[0]
    one = session.run(None, {INPUT_NAME: np.ascontiguousarray(x[..., :1])})[0]
    empty = session.run(None, {INPUT_NAME: np.zeros((1,) + SAMPLE_SHAPE[:-1] + (1,),
                                                    np.float32)})[0]
    return float(np.abs((one + empty) * 0.5 - full).max()) / max(1.0, float(np.abs(full).max()))


def compare_decisions(expected, got, tolerance, centroids=None):
    """Count the windows on which two sets of network outputs take the same decision.

    The decision is the class (largest logit), or with ``centroids`` the cluster (nearest
    centroid of the embedding). A different decision counts as a tie where outputs that
    differ from ``expected`` by at most ``tolerance · max(1, largest expected output)`` could
    swap the two best candidates of ``expected``, else as a flip.

    Parameters
    ----------
    expected, got : ndarray of shape (n, D)
        Logits or embeddings; ``expected`` is the reference (PyTorch).
    tolerance : float
    centroids : ndarray of shape (K, D), optional

    Returns
    -------
    dict
        ``windows``, ``same``, ``ties``, ``flips`` and ``max_difference`` (largest output
        difference relative to max(1, largest expected output), as in :func:`parity_error`).
    """
    expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    if expected.shape != got.shape or expected.ndim != 2:
        raise ValueError(f'expected two (n, D) arrays of one shape, got {expected.shape} and '
                         f'{got.shape}')
    if not len(expected):
        return {'windows': 0, 'same': 0, 'ties': 0, 'flips': 0, 'max_difference': 0.0}
    scale = max(1.0, float(np.abs(expected).max()))
    # how far one candidate's score can move when every output moves by tolerance * scale
    slack = tolerance * scale
    if centroids is None:
        score_expected, score_got = expected, got
    else:   # minus the squared distance to each centroid, up to a per-row constant
        c = np.asarray(centroids, np.float64)
        score_expected = 2.0 * expected @ c.T - (c * c).sum(axis=1)
        score_got = 2.0 * got @ c.T - (c * c).sum(axis=1)
        slack *= 2.0 * float(np.abs(c).sum(axis=1).max())
    best = np.sort(score_expected, axis=1)
    margin = best[:, -1] - best[:, -2] if best.shape[1] > 1 else np.full(len(best), np.inf)
    differ = score_expected.argmax(axis=1) != score_got.argmax(axis=1)
    ties = differ & (margin <= 2.0 * slack)
    return {'windows': int(len(expected)), 'same': int((~differ).sum()),
            'ties': int(ties.sum()), 'flips': int((differ & ~ties).sum()),
            'max_difference': float(np.abs(got - expected).max()) / scale}


def held_out_check(module, path, x, tolerance, centroids=None):
    """Compare the decisions of an ONNX graph and its PyTorch module on held-out windows.

    See :func:`compare_decisions` (PyTorch is the reference).

    Parameters
    ----------
    module : nn.Module
        In eval mode.
    path : str
        Its ONNX export.
    x : ndarray of shape (n, 3, 50, 25, 2), float32
        Held-out windows, finite.
    tolerance : float
    centroids : ndarray of shape (K, e), optional
        Compare clusters instead of classes.

    Returns
    -------
    dict
        :func:`compare_decisions`'s figures.

    Raises
    ------
    ValueError
        If a decision differs outside a tie.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    width = session.get_outputs()[0].shape[1]
    got, expected = [np.zeros((0, width), np.float32)], [np.zeros((0, width), np.float32)]
    for start in range(0, len(x), 32):
        batch = np.ascontiguousarray(x[start:start + 32], np.float32)
        got.append(session.run(None, {INPUT_NAME: batch})[0])
        with torch.no_grad():
            expected.append(module(torch.from_numpy(batch)).numpy())
    figures = compare_decisions(np.concatenate(expected), np.concatenate(got), tolerance,
                                centroids)
    if figures['flips']:
        what = 'cluster' if centroids is not None else 'class'
        raise ValueError(f'{path}: ONNX Runtime and PyTorch give a different {what} on '
                         f'{figures["flips"]} of {len(x)} held-out windows ({figures})')
    return figures


def held_out_inputs(imputed, meta, count=HELD_OUT_WINDOWS):
    """Held-out windows of an export: the classifier's and the stage-1 encoder's inputs.

    The classifier gets the completed ``val`` windows of ``imputed``; the stage-1 encoder the
    occluded ``val`` windows they were completed from (``meta['imputed_from']``), occluded
    joints at 0 as ``training.impute`` embeds them, or the completed ones when those are gone.

    Returns
    -------
    classifier_x, stage1_x : ndarray of shape (n, 3, 50, 25, 2), float32
    """
    completed, _, _ = load_windows(imputed, 'val')
    n = min(count, len(completed))
    classifier_x = np.nan_to_num(np.asarray(completed[:n], np.float32), nan=0.0)
    source = meta.get('imputed_from')
    stage1_x = classifier_x
    if source and os.path.exists(os.path.join(source, 'val_w50_data.npy')):
        occluded, _, _ = load_windows(source, 'val')
        stage1_x = np.nan_to_num(np.asarray(occluded[:n], np.float32), nan=0.0)
    return classifier_x, stage1_x


def check_stage1_provenance(encoder, imputed, meta):
    """Check that ``encoder`` reproduces the training embeddings the bank was clustered with.

    Re-embeds the first few occluded training windows of the benchmark ``training.impute``
    read (``meta['imputed_from']``) and compares with ``train_embedding.npy``.

    Returns
    -------
    str
        What was checked (``'skipped: ...'`` when the source windows are gone).

    Raises
    ------
    ValueError
        If the embeddings differ.
    """
    stored_path = os.path.join(imputed, 'train_embedding.npy')
    source = meta.get('imputed_from')
    windows = os.path.join(source, 'train_w50_data.npy') if source else None
    if not os.path.exists(stored_path) or not windows or not os.path.exists(windows):
        return 'skipped: the source windows or train_embedding.npy are missing'
    stored = np.load(stored_path, mmap_mode='r')
    data = np.load(windows, mmap_mode='r')
    n = min(PROVENANCE_WINDOWS, len(data))
    if stored.shape[1] != encoder.config.hidden_dim:
        raise ValueError(f'--stage1 gives {encoder.config.hidden_dim}-d embeddings, the bank in '
                         f'{imputed} was clustered on {stored.shape[1]}-d ones: it was made '
                         'with another encoder')
    x = np.nan_to_num(np.asarray(data[:n], np.float32), nan=0.0)
    with torch.no_grad():
        got = encoder(torch.from_numpy(x)).numpy()
    difference = float(np.abs(got - np.asarray(stored[:n])).max())
    if difference > PROVENANCE_TOLERANCE:
        raise ValueError(f'--stage1 does not reproduce {stored_path} (largest difference '
                         f'{difference:.3g} on {n} windows): the bank was clustered with another '
                         'encoder (see args.json there)')
    return f'{n} training embeddings reproduced within {difference:.2g}'


def git_commit():
    """Commit of the code doing the export and whether tracked files were modified.

    Returns
    -------
    commit : str or None
    dirty : bool or None
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                                cwd=root, capture_output=True, text=True, timeout=10,
                                check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def _read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def upstream_commands(stage1, classifier, imputed):
    """List the recorded commands of the runs an export builds on, in pipeline order.

    Reads ``command.txt`` (one timestamped line per invocation, resumed runs included) of the
    stage-1 run, the imputation, the stage-2 run (the classifier's ``--encoder``, when it is
    another run) and the classifier. A folder without one gives an empty list.

    Returns
    -------
    list of dict
        ``{'stage', 'folder', 'commands'}`` per run.
    """
    classifier_dir = os.path.dirname(os.path.abspath(classifier))
    stages = [('stage1', os.path.dirname(os.path.abspath(stage1))),
              ('impute', os.path.abspath(imputed))]
    encoder = (_read_json(os.path.join(classifier_dir, 'args.json')) or {}).get('encoder')
    if encoder and os.path.exists(encoder):
        stages.append(('stage2', os.path.dirname(os.path.abspath(encoder))))
    stages.append(('classifier', classifier_dir))
    runs, seen = [], set()
    for stage, folder in stages:
        if os.path.realpath(folder) in seen:
            continue            # e.g. a classifier trained on the stage-1 encoder itself
        seen.add(os.path.realpath(folder))
        path = os.path.join(folder, 'command.txt')
        commands = []
        if os.path.exists(path):
            with open(path) as f:
                commands = [line.rstrip('\n') for line in f if line.strip()]
        runs.append({'stage': stage, 'folder': folder, 'commands': commands})
    return runs


def _check_imputed(imputed):
    """Validate a ``training.impute`` output folder; return its meta and the bank."""
    meta = _read_json(os.path.join(imputed, 'meta.json'))
    if meta is None:
        raise ValueError(f'{imputed}/meta.json: missing; expected the --out folder of '
                         'python -m training.impute')
    stats = meta.get('imputation') or {}
    if stats.get('method') != 'cluster-knn':
        raise ValueError(f'{imputed}: imputed with --method {stats.get("method")}; the robot '
                         'needs the cluster bank of --method cluster-knn')
    for name in (CENTROIDS_FILE, FEATURE_MEAN_FILE):
        if not os.path.exists(os.path.join(imputed, name)):
            raise ValueError(f'{imputed}/{name}: missing')
    bank = ClusterBank.load(os.path.join(imputed, BANK_DIR))
    centroids = np.load(os.path.join(imputed, CENTROIDS_FILE), allow_pickle=False)
    if centroids.shape != bank.centroids_.shape or not np.array_equal(centroids,
                                                                      bank.centroids_):
        raise ValueError(f'{imputed}: centroids.npy {centroids.shape} and bank/centroids.npy '
                         f'{bank.centroids_.shape} disagree')
    if bank.n_features_in_ != NUM_FEATURES:
        raise ValueError(f'{imputed}/bank: expected {NUM_FEATURES} features per row, got '
                         f'{bank.n_features_in_}')
    return meta, bank


def _copy_bank(imputed, target):
    """Write the bank in format v2 (read and saved a cluster at a time), copy the other arrays."""
    ClusterBank.load(os.path.join(imputed, BANK_DIR)).save(os.path.join(target, BANK_DIR))
    for name in (CENTROIDS_FILE, FEATURE_MEAN_FILE):
        shutil.copyfile(os.path.join(imputed, name), os.path.join(target, name))
    mean = np.load(os.path.join(target, FEATURE_MEAN_FILE), allow_pickle=False)
    if mean.dtype != np.float32 or mean.shape != (NUM_FEATURES,):
        raise ValueError(f'{imputed}/{FEATURE_MEAN_FILE}: expected float32 ({NUM_FEATURES},), '
                         f'got {mean.dtype} {mean.shape}')


def checksums(root):
    """Sha256 and size of every file under ``root`` but metadata.json, by relative path."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root).replace(os.sep, '/')
            if relative != METADATA_FILE:
                files[relative] = {'sha256': sha256_file(path),
                                   'bytes': os.path.getsize(path)}
    return dict(sorted(files.items()))


def class_action_ids(state, meta, classes):
    """NTU action id of each class, or None: the classifier's, else the data set's.

    Parameters
    ----------
    state : dict
        The classifier checkpoint (``action_ids`` optional).
    meta : dict
        ``meta.json`` of ``--imputed`` (a copy of the data set's); its ``action_ids`` are used
        only when its ``classes`` are ``classes``.
    classes : list of str

    Returns
    -------
    tuple of int or None
    """
    ids = state.get('action_ids')
    if ids is None and list(meta.get('classes') or []) == list(classes):
        ids = meta.get('action_ids')
    if ids is None:
        return None
    try:
        return check_action_ids(ids, len(classes))
    except ValueError as error:
        raise ValueError(f'NTU action ids of the classes: {error}') from None


def export_model(stage1, classifier, imputed, out, opset=17, tolerance=1e-4,
                 align_shoulders=True, force=False, argv=None):
    """Write a model directory (see the module docstring); used by :func:`main`.

    Parameters
    ----------
    stage1 : str
        Stage-1 ``encoder.pt`` (``training.pretrain``).
    classifier : str
        ``classifier.pt`` (``training.evaluate``).
    imputed : str
        Output folder of ``training.impute --method cluster-knn``.
    out : str
        The model directory to create.
    opset : int
        ONNX opset (>= 17).
    tolerance : float
        Largest ONNX vs PyTorch difference accepted (see :func:`parity_error`).
    align_shoulders : bool
        Preprocessing setting of the windows (``training.windows``) the networks saw.
    force : bool
        Replace an existing ``out``.
    argv : list of str, optional
        The command's arguments, for the provenance.

    Returns
    -------
    dict
        The metadata written.
    """
    if opset < 17:
        raise ValueError(f'--opset: expected 17 or later, got {opset}')
    out = os.path.abspath(out)
    if os.path.exists(out) and not force:
        raise ValueError(f'{out} exists; pass --force to replace it')
    for path, what in ((stage1, '--stage1'), (classifier, '--classifier')):
        if not os.path.isfile(path):
            raise ValueError(f'{what} {path}: missing')
    meta, bank = _check_imputed(imputed)
    encoder = load_encoder(stage1, 'cpu', view='joint', why=STAGE1_VIEW).eval()
    if bank.centroids_.shape[1] != encoder.config.hidden_dim:
        raise ValueError(f'--stage1 gives {encoder.config.hidden_dim}-d embeddings, the '
                         f'centroids in {imputed} are {bank.centroids_.shape[1]}-d')
    provenance_check = check_stage1_provenance(encoder, imputed, meta)
    model, state = load_classifier(classifier)
    num_classes = int(state['num_classes'])
    classes = state.get('classes') or meta.get('classes') or [
        f'class_{i}' for i in range(num_classes)]
    if len(classes) != num_classes:
        raise ValueError(f'{classifier}: {num_classes} outputs but {len(classes)} class names')
    action_ids = class_action_ids(state, meta, classes)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(out)}.partial-', dir=parent)
    try:
        export_onnx(joints_first(encoder, WINDOW_FRAMES), os.path.join(tmp, STAGE1_FILE),
                    EMBEDDING_NAME, opset)
        export_onnx(joints_first(model, WINDOW_FRAMES), os.path.join(tmp, CLASSIFIER_FILE),
                    LOGITS_NAME, opset)
        parity = {'batch_sizes': list(PARITY_BATCHES), 'tolerance': tolerance}
        classifier_x, stage1_x = held_out_inputs(imputed, meta)
        held_out = {'data': os.path.join(os.path.abspath(imputed), 'val')}
        for name, module in ((STAGE1_FILE, encoder), (CLASSIFIER_FILE, model)):
            error = parity_error(module, os.path.join(tmp, name))
            if not error <= tolerance:
                raise ValueError(f'{name}: ONNX Runtime and PyTorch differ by {error:.3g} of '
                                 f'the output scale (> --tolerance {tolerance})')
            parity[name] = error
            shortcut = empty_slot_error(os.path.join(tmp, name))
            if not shortcut <= tolerance:
                raise ValueError(f'{name}: running an empty second slot as one body differs '
                                 f'from the two-slot graph by {shortcut:.3g} (> --tolerance '
                                 f'{tolerance}); the encoder does not treat the slots alike')
            parity[f'{name} empty second slot'] = shortcut
            held_out[name] = held_out_check(
                module, os.path.join(tmp, name), stage1_x if name == STAGE1_FILE else classifier_x,
                tolerance, bank.centroids_ if name == STAGE1_FILE else None)
        parity['held_out'] = held_out
        _copy_bank(imputed, tmp)
        commit, dirty = git_commit()
        stats = meta['imputation']
        metadata = {
            'format': MODEL_FORMAT, 'format_version': MODEL_FORMAT_VERSION,
            'classes': list(classes),
            'action_ids': None if action_ids is None else list(action_ids),
            'window_frames': WINDOW_FRAMES,
            'layout': layout_metadata(),
            'preprocessing': {
                'align_shoulders': bool(align_shoulders), 'window': WINDOW_FRAMES,
                'relative_to': 'center_joint', 'resampling': 'linear, half-pixel centres',
                'shoulder_norm_eps': SHOULDER_NORM_EPS, 'frame_rate_hz': FRAME_RATE,
                'stage1_occluded_fill': 0.0, 'absent_body_fill': 0.0},
            'imputation': {
                'method': 'cluster-knn', 'n_neighbors': int(stats.get('neighbors', 5)),
                'n_clusters': int(bank.n_clusters), 'n_features': NUM_FEATURES,
                'n_donors': bank.n_donors_, 'bank_dtype': bank.dtype_.name,
                'order': 'knn within the cluster, then temporal interpolation, then mean'},
            'models': {
                'stage1_encoder': {'file': STAGE1_FILE, 'input': INPUT_NAME,
                                   'output': EMBEDDING_NAME,
                                   'output_dim': int(encoder.config.hidden_dim),
                                   'view': 'joint', 'config': encoder.config.to_dict(),
                                   'graph': GRAPH_FORM},
                'classifier': {'file': CLASSIFIER_FILE, 'input': INPUT_NAME,
                               'output': LOGITS_NAME, 'num_classes': num_classes,
                               'view': model.view, 'config': state['config'],
                               'graph': GRAPH_FORM}},
            'input_shape': ['N', *SAMPLE_SHAPE],
            'bodies_axis': 'dynamic: M = 2, or 1 for a window whose second slot is empty (add '
                           'the output of an all-zero one-body window and halve)',
            'opset': opset, 'parity': parity,
            'provenance': {
                'command': shlex.join(['python', '-m', 'training.export',
                                       *(sys.argv[1:] if argv is None else argv)]),
                'created': datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec='seconds'),
                'git_commit': commit, 'git_dirty': dirty,
                'stage1': os.path.abspath(stage1), 'classifier': os.path.abspath(classifier),
                'imputed': os.path.abspath(imputed), 'data': meta.get('imputed_from'),
                'stage1_check': provenance_check,
                'pipeline': upstream_commands(stage1, classifier, imputed),
                'classifier_args': _read_json(os.path.join(os.path.dirname(classifier),
                                                           'args.json')),
                'metrics': _read_json(os.path.join(os.path.dirname(classifier),
                                                   'summary.json')),
                'imputation': {k: stats[k] for k in ('train', 'val') if k in stats},
                'torch': torch.__version__},
        }
        metadata['files'] = checksums(tmp)
        with open(os.path.join(tmp, METADATA_FILE), 'w') as f:
            json.dump(metadata, f, indent=2)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        replace_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metadata


def replace_directory(source, out):
    """Rename the complete directory ``source`` to ``out``, replacing ``out`` if it exists.

    The old ``out`` is first moved aside into a temporary sibling, so that ``out`` is always
    either the old or the new directory, never a mix.
    """
    os.chmod(source, 0o755)
    if not os.path.exists(out):
        os.replace(source, out)
        return
    old = tempfile.mkdtemp(prefix=f'.{os.path.basename(out)}.old-', dir=os.path.dirname(out))
    os.replace(out, os.path.join(old, 'model'))
    os.replace(source, out)
    shutil.rmtree(old)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--stage1', required=True,
                        help='stage-1 encoder.pt (training.pretrain on the occluded data); '
                             'must be the encoder training.impute clustered with')
    parser.add_argument('--classifier', required=True,
                        help='classifier.pt of training.evaluate (stage-2 encoder + head); '
                             'summary.json beside it is copied into the metadata')
    parser.add_argument('--imputed', required=True,
                        help='output folder of training.impute --method cluster-knn (bank/, '
                             'centroids.npy, feature_mean.npy, meta.json)')
    parser.add_argument('--out', required=True, help='model directory to create')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (>= 17)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest ONNX Runtime vs PyTorch difference accepted, relative to '
                             'max(1, largest output)')
    parser.add_argument('--no-align-shoulders', action='store_true',
                        help='the windows were made with training.windows --no-align-shoulders')
    parser.add_argument('--force', action='store_true', help='replace an existing --out')
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    metadata = export_model(args.stage1, args.classifier, args.imputed, args.out,
                            opset=args.opset, tolerance=args.tolerance,
                            align_shoulders=not args.no_align_shoulders, force=args.force,
                            argv=argv)
    parity = metadata['parity']
    print(f'{len(metadata["classes"])} classes, {metadata["imputation"]["n_clusters"]} '
          f'clusters, {metadata["imputation"]["n_donors"]} donors; ONNX vs PyTorch '
          f'{parity[STAGE1_FILE]:.2g} / {parity[CLASSIFIER_FILE]:.2g} -> {args.out}')
    return os.path.abspath(args.out)


if __name__ == '__main__':
    main()
