"""Convert the ONNX graphs of an existing model directory to the joints-first form, in place.

    python -m training.convert_model models/default

Model directories exported before the joints-first form (:mod:`training.joints_first`) hold
graphs that ONNX Runtime runs slower than PyTorch from a few windows per batch up. This command
rewrites both graphs from the weights inside them, without the training checkpoints:

1. the directory is loaded and verified (:func:`iospstl_ros.model_dir.load_model_dir`: metadata,
   sizes, sha256), so a damaged directory is refused;
2. each graph's trained weights are read from its ONNX initializers into the training module
   (:func:`read_encoder`, :func:`read_classifier`; the BatchNorms that the exporter had already
   folded into the convolutions stay folded), and that PyTorch module must reproduce the old
   graph within ``--tolerance`` on random input;
3. the joints-first graphs are exported from it, and must match its PyTorch forward within
   ``--tolerance`` (batch 1 and 3, two body slots and one, as ``training.export`` checks), and
   the one-body shortcut must hold;
4. held-out check: ``--windows`` synthetic windows that no model was trained on
   (:mod:`iospstl_ros.datasets.synthetic`, seed ``--seed``) go through the robot's
   :class:`~iospstl_ros.pipeline.Pipeline` with the old graphs and with the new ones; every
   window must get the same cluster and the same class (a difference is accepted only where
   the old pipeline's two best classes are within ``--tolerance`` of each other);
5. ``metadata.json`` gets the new parity figures, ``graph: joints-first`` for both models, a
   ``provenance.conversion`` record (command, time, git commit, the old graphs' sha256) and the
   new sizes and checksums. The converted directory is written next to the old one and renamed
   over it at the end, so a failure leaves the old directory untouched.

Only graphs written by ``training.export`` (TorchScript exporter, opset 17 or later) are read;
anything else is refused with a ``ValueError`` that says what was expected.
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
import tempfile

from iospstl_ros.datasets.synthetic import generate_sequence
from iospstl_ros.layout import WINDOW_FRAMES
from iospstl_ros.model_dir import (
    CLASSIFIER_FILE, EMBEDDING_NAME, load_model_dir, LOGITS_NAME, METADATA_FILE, STAGE1_FILE)
from iospstl_ros.pipeline import Pipeline
import numpy as np
import torch
from torch import nn

from training.export import (
    checksums, empty_slot_error, export_onnx, git_commit, PARITY_BATCHES, parity_error,
    replace_directory, ViewClassifier)
from training.joints_first import GRAPH_FORM, joints_first
from training.model import Classifier, EncoderConfig, STGCNEncoder

#: Synthetic data set seed of the held-out windows (the built-in model was trained on seed 0).
HELD_OUT_SEED = 2024
#: Held-out windows run through both pipelines.
HELD_OUT_WINDOWS = 200
#: Metadata entry of each graph file.
ENTRIES = {STAGE1_FILE: 'stage1_encoder', CLASSIFIER_FILE: 'classifier'}
#: Name of the node that ends the data_bn of a graph written by training.export.
_DATA_BN = 'data_bn/BatchNormalization'


def _graph_error(path, message):
    return ValueError(f'{path}: {message}; expected a graph written by python -m '
                      'training.export before the joints-first form')


class _GraphReader:
    """The initializers and named nodes of one ONNX graph."""

    def __init__(self, path):
        from google.protobuf.message import DecodeError
        import onnx
        from onnx import numpy_helper

        self.path = path
        try:
            model = onnx.load(path)
        except (OSError, DecodeError) as error:
            raise ValueError(f'{path}: not a readable ONNX file ({type(error).__name__}: '
                             f'{error})') from error
        self.arrays = {init.name: numpy_helper.to_array(init) for init in
                       model.graph.initializer}
        self.nodes = {node.name: node for node in model.graph.node}
        # the exporter keeps one copy of identical constants, the others as Identity of it
        self.aliases = {node.output[0]: node.input[0] for node in model.graph.node
                        if node.op_type == 'Identity'}
        scopes = [name[:-len(_DATA_BN)] for name, node in self.nodes.items()
                  if name.endswith(_DATA_BN) and node.op_type == 'BatchNormalization']
        if len(scopes) != 1:
            raise _graph_error(path, f'found {len(scopes)} nodes named .../{_DATA_BN}')
        self.scope = scopes[0]    # '/' for the stage-1 encoder, '/classifier/encoder/' ...

    def constant(self, name):
        """Return the initializer name behind ``name`` (through Identity nodes), or None."""
        while name in self.aliases:
            name = self.aliases[name]
        return name if name in self.arrays else None

    def node(self, name, op_type):
        node = self.nodes.get(self.scope + name)
        if node is None or node.op_type != op_type:
            raise _graph_error(self.path, f'no {op_type} node named {self.scope + name}')
        return node

    def array(self, node, index, shape):
        """Return input ``index`` of a node, a constant, checked against the module's shape."""
        name = self.constant(node.input[index]) if index < len(node.input) else None
        if name is None:
            raise _graph_error(self.path, f'input {index} of {node.name} is not a constant')
        array = self.arrays[name]
        if tuple(array.shape) != tuple(shape) or array.dtype != np.float32:
            raise ValueError(f'{self.path}: {name} of {node.name} is {array.dtype} '
                             f'{tuple(array.shape)}, the config in metadata.json gives float32 '
                             f'{tuple(shape)}')
        return torch.from_numpy(array.copy())

    def attribute(self, node, name, default=None):
        from onnx import helper

        for attribute in node.attribute:
            if attribute.name == name:
                return helper.get_attribute_value(attribute)
        return default


def _load_norm(reader, norm, name):
    """Fill a BatchNorm from a BatchNormalization node (scale, bias, mean, variance)."""
    node = reader.node(name, 'BatchNormalization')
    with torch.no_grad():
        for index, tensor in enumerate((norm.weight, norm.bias, norm.running_mean,
                                        norm.running_var), start=1):
            tensor.copy_(reader.array(node, index, tensor.shape))
    norm.eps = float(reader.attribute(node, 'epsilon', 1e-5))


def _load_conv(reader, conv, name):
    node = reader.node(name, 'Conv')
    with torch.no_grad():
        conv.weight.copy_(reader.array(node, 1, conv.weight.shape))
        conv.bias.copy_(reader.array(node, 2, conv.bias.shape))


def _adjacency(reader, block, shape):
    """Return the block's A · edge importance (the exporter stores it as (W, V, K))."""
    prefix = reader.scope + f'blocks.{block}/gcn/'
    found = [reader.constant(name) for node_name, node in reader.nodes.items()
             if node_name.startswith(prefix) for name in node.input
             if reader.constant(name) is not None
             and reader.arrays[reader.constant(name)].shape == shape[::-1]]
    if len(set(found)) != 1:
        raise _graph_error(reader.path, f'found {len(set(found))} constants of shape '
                           f'{shape[::-1]} (the adjacency) in {prefix}')
    return torch.from_numpy(reader.arrays[found[0]].transpose(2, 1, 0).copy())


def read_encoder(path, config):
    """Rebuild the trained :class:`STGCNEncoder` of an ONNX graph written by ``training.export``.

    The exporter folded the BatchNorm after each temporal convolution, and the one after each
    strided residual convolution, into the convolution: they come back as that convolution with
    ``nn.Identity`` in place of the BatchNorm (the same function). Each block's adjacency times
    its edge importance is stored in ``edge_importance`` with the ``A`` buffer set to ones, which
    reproduces the stored products exactly.

    Parameters
    ----------
    path : str
        ``stage1_encoder.onnx``, or ``classifier.onnx`` (its encoder).
    config : EncoderConfig
        From ``metadata.json``.

    Returns
    -------
    STGCNEncoder
        In eval mode.

    Raises
    ------
    ValueError
        If the graph is not of the expected form or its weights do not fit ``config``.
    """
    reader = path if isinstance(path, _GraphReader) else _GraphReader(path)
    encoder = STGCNEncoder(config).eval()
    _load_norm(reader, encoder.data_bn, 'data_bn/BatchNormalization')
    K, V = encoder.A.shape[:2]
    products = []
    for b, block in enumerate(encoder.blocks):
        _load_conv(reader, block.gcn.conv, f'blocks.{b}/gcn/conv/Conv')
        _load_norm(reader, block.tcn[0], f'blocks.{b}/tcn.0/BatchNormalization')
        _load_conv(reader, block.tcn[2], f'blocks.{b}/tcn.2/Conv')
        block.tcn[3] = nn.Identity()
        if isinstance(block.residual, nn.Sequential):
            _load_conv(reader, block.residual[0], f'blocks.{b}/Conv')
            block.residual[1] = nn.Identity()
        products.append(_adjacency(reader, b, (K, V, V)))
    with torch.no_grad():
        if encoder.edge_importance is None:
            if any(not torch.equal(A, products[0]) for A in products):
                raise _graph_error(reader.path, 'the blocks have different adjacencies but the '
                                   'config has no edge importance')
            encoder.A.copy_(products[0])
        else:
            encoder.A.fill_(1.0)
            for importance, A in zip(encoder.edge_importance, products):
                importance.copy_(A)
    return encoder


def read_classifier(path, entry):
    """Rebuild the trained classifier (input view, encoder, head) of a ``classifier.onnx``.

    Parameters
    ----------
    path : str
    entry : dict
        ``metadata['models']['classifier']`` (``config``, ``num_classes``, ``view``).

    Returns
    -------
    ViewClassifier
        In eval mode.
    """
    reader = _GraphReader(path)
    encoder = read_encoder(reader, EncoderConfig.from_dict(entry['config']))
    classifier = Classifier(encoder, int(entry['num_classes']))
    heads = [node for node in reader.nodes.values() if node.op_type == 'Gemm']
    if len(heads) != 1 or reader.attribute(heads[0], 'transB', 0) != 1:
        raise _graph_error(path, f'expected one Gemm node (transB = 1) for the linear head, '
                           f'found {len(heads)}')
    with torch.no_grad():
        classifier.fc.weight.copy_(reader.array(heads[0], 1, classifier.fc.weight.shape))
        classifier.fc.bias.copy_(reader.array(heads[0], 2, classifier.fc.bias.shape))
    return ViewClassifier(classifier, entry.get('view') or 'joint').eval()


def held_out_windows(count, seed=HELD_OUT_SEED):
    """Raw tracker windows of synthetic sequences: (xyz, occluded, present) each.

    One-person sequences keep one body slot (M = 1), as the node sends a lone person.
    """
    if count < 1:
        raise ValueError(f'windows: expected at least 1, got {count}')
    windows = []
    for index in range(count):
        s = generate_sequence(seed, index, occlusion='realistic')
        if s.present[:, 1].any():
            windows.append((s.xyz, s.occluded, s.present))
        else:
            windows.append((s.xyz[..., :1], s.occluded[..., :1], s.present[:, :1]))
    return windows


def compare_pipelines(old_dir, new_dir, windows, tolerance):
    """Run the same windows through the pipelines of two model directories.

    Returns
    -------
    dict
        ``windows``, ``same_cluster``, ``same_class``, ``ties`` (classes that differ where the
        old pipeline's two best probabilities are within ``tolerance``) and
        ``max_probability_difference``.

    Raises
    ------
    ValueError
        If a cluster differs, or a class differs outside a tie.
    """
    old = Pipeline(old_dir, backend='cpu', top_k=1_000_000, verify_checksums=False)
    new = Pipeline(new_dir, backend='cpu', top_k=1_000_000, verify_checksums=False)
    figures = {'windows': len(windows), 'same_cluster': 0, 'same_class': 0, 'ties': 0,
               'max_probability_difference': 0.0}
    for start in range(0, len(windows), 20):
        batch = windows[start:start + 20]
        for a, b in zip(old.run(batch), new.run(batch)):
            p, q = dict(a.top_k), dict(b.top_k)
            difference = max(abs(p[name] - q[name]) for name in p)
            figures['max_probability_difference'] = max(
                figures['max_probability_difference'], difference)
            figures['same_cluster'] += a.cluster == b.cluster
            figures['same_class'] += a.label == b.label
            if a.label != b.label and a.top_k[0][1] - a.top_k[1][1] <= tolerance:
                figures['ties'] += 1
    if figures['same_cluster'] != len(windows) \
            or figures['same_class'] + figures['ties'] != len(windows):
        raise ValueError(f'the converted graphs change the decisions of the pipeline on held-out '
                         f'windows: {figures}')
    return figures


def _graph_forms(meta):
    return {name: (meta.get('models', {}).get(name) or {}).get('graph')
            for name in ('stage1_encoder', 'classifier')}


def convert_model_dir(path, tolerance=1e-4, windows=HELD_OUT_WINDOWS, seed=HELD_OUT_SEED,
                      argv=None):
    """Rewrite a model directory's graphs in the joints-first form (see the module docstring).

    Parameters
    ----------
    path : str
        Model directory written by ``training.export``.
    tolerance : float
        Largest ONNX Runtime vs PyTorch difference accepted, relative to ``max(1, largest
        output)`` (as ``training.export --tolerance``).
    windows : int
        Held-out synthetic windows compared through both pipelines.
    seed : int
        Synthetic data set seed of those windows.
    argv : list of str, optional
        The command's arguments, for the provenance.

    Returns
    -------
    dict
        The new ``metadata.json``.

    Raises
    ------
    ValueError
        A directory that does not load, graphs already in the joints-first form or not
        written by ``training.export``, or a check that fails.
    """
    model = load_model_dir(path)
    path, meta = model.path, model.metadata
    if any(form == GRAPH_FORM for form in _graph_forms(meta).values()):
        raise ValueError(f'{path}: the graphs are already in the {GRAPH_FORM} form '
                         f'({_graph_forms(meta)}); nothing to convert')
    entries = meta['models']
    modules = {
        STAGE1_FILE: read_encoder(model.stage1_path,
                                  EncoderConfig.from_dict(entries['stage1_encoder']['config'])),
        CLASSIFIER_FILE: read_classifier(model.classifier_path, entries['classifier'])}
    parity = {'batch_sizes': list(PARITY_BATCHES), 'tolerance': tolerance}
    for name, module in modules.items():
        error = parity_error(module, os.path.join(path, name))
        if not error <= tolerance:
            raise ValueError(f'{os.path.join(path, name)}: the weights read from it do not '
                             f'reproduce it in PyTorch (difference {error:.3g} > --tolerance '
                             f'{tolerance})')
        parity[f'{name} read back'] = error
    parent = os.path.dirname(path)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(path)}.partial-', dir=parent)
    try:
        target = os.path.join(tmp, 'model')
        shutil.copytree(path, target)
        for name, output in ((STAGE1_FILE, EMBEDDING_NAME), (CLASSIFIER_FILE, LOGITS_NAME)):
            graph = os.path.join(target, name)
            export_onnx(joints_first(modules[name], WINDOW_FRAMES), graph, output,
                        int(meta.get('opset', 17)))
            error = parity_error(modules[name], graph)
            if not error <= tolerance:
                raise ValueError(f'{name}: the {GRAPH_FORM} graph and PyTorch differ by '
                                 f'{error:.3g} of the output scale (> --tolerance {tolerance})')
            parity[name] = error
            shortcut = empty_slot_error(graph)
            if not shortcut <= tolerance:
                raise ValueError(f'{name}: running an empty second slot as one body differs '
                                 f'from the two-slot graph by {shortcut:.3g}')
            parity[f'{name} empty second slot'] = shortcut
            entries[ENTRIES[name]]['graph'] = GRAPH_FORM
        commit, dirty = git_commit()
        meta['parity'] = parity
        meta.setdefault('provenance', {})['conversion'] = {
            'command': shlex.join(['python', '-m', 'training.convert_model',
                                   *(sys.argv[1:] if argv is None else argv)]),
            'created': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
            'git_commit': commit, 'git_dirty': dirty, 'torch': torch.__version__,
            'previous_graphs': {name: model.checksums[name] for name in modules}}
        _write_metadata(target, meta)
        parity['held_out'] = dict(compare_pipelines(path, target,
                                                    held_out_windows(windows, seed), tolerance),
                                  seed=seed,
                                  data='iospstl_ros.datasets.synthetic, realistic occlusion')
        _write_metadata(target, meta)
        load_model_dir(target)      # the result must load, checksums included
        replace_directory(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def _write_metadata(root, meta):
    meta['files'] = checksums(root)
    with open(os.path.join(root, METADATA_FILE), 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model_dir', help='model directory written by training.export; '
                                          'converted in place')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest ONNX Runtime vs PyTorch difference accepted, relative to '
                             'max(1, largest output) (default 1e-4)')
    parser.add_argument('--windows', type=int, default=HELD_OUT_WINDOWS,
                        help='held-out synthetic windows run through the old and the new '
                             f'pipeline (default {HELD_OUT_WINDOWS})')
    parser.add_argument('--seed', type=int, default=HELD_OUT_SEED,
                        help=f'synthetic data set seed of those windows (default '
                             f'{HELD_OUT_SEED})')
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    meta = convert_model_dir(args.model_dir, args.tolerance, args.windows, args.seed, argv)
    parity, held_out = meta['parity'], meta['parity']['held_out']
    print(f'{args.model_dir}: {GRAPH_FORM} graphs vs PyTorch {parity[STAGE1_FILE]:.2g} / '
          f'{parity[CLASSIFIER_FILE]:.2g}; held-out windows: {held_out["same_cluster"]}/'
          f'{held_out["windows"]} same cluster, {held_out["same_class"]}/{held_out["windows"]} '
          f'same class, probabilities within {held_out["max_probability_difference"]:.2g}')
    return meta


if __name__ == '__main__':
    main()
