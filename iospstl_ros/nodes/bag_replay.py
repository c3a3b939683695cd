"""Offline replay of a skeleton bag through the node's own code path, without DDS.

The node (:mod:`iospstl_ros.nodes.action_node`) does, per ``skeletons`` message,
:func:`iospstl_ros.cloud.decode_skeletons` and
:meth:`iospstl_ros.tracking.OnlineRecognizer.process` with a
:class:`~iospstl_ros.pipeline.Pipeline` built from its parameters. :func:`replay_offline` does
exactly that on the bag's messages in bag order, with the same parameters
(:func:`node_parameters`: the node's defaults, then a params file, then overrides), so it
produces the labels the node publishes when the bag is played into it without loss.
"""

from collections import Counter
import os

from iospstl_ros.bag_eval import Prediction
from iospstl_ros.cloud import CloudError
from iospstl_ros.nodes._ros_helpers import default_model_dir
from iospstl_ros.nodes.action_node import (
    build_pipeline, NODE_NAME, PARAMETERS, TRACKER_FIELDS)
from iospstl_ros.nodes.bag_io import frame_from_message
from iospstl_ros.pipeline import ActionResult
from iospstl_ros.tracking import OnlineRecognizer, TrackerConfig
import numpy as np
import yaml

#: Parameters a params file may hold that the node does not declare but ROS does.
ROS_PARAMETERS = ('use_sim_time',)


def _parameter_sections(tree, path=()):
    """Yield (path, ros__parameters dict) of a ROS 2 params-file tree, in file order."""
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        if key == 'ros__parameters' and isinstance(value, dict):
            yield path, value
        elif isinstance(value, dict):
            yield from _parameter_sections(value, path + (str(key),))


def _applies(path, node_name):
    """Whether a params-file section applies to a node called ``node_name`` in any namespace."""
    name = '/'.join(part.strip('/') for part in path if part.strip('/'))
    return name in ('**', '*', node_name) or name.endswith('/' + node_name) \
        or name == f'**/{node_name}'


def read_params_file(path, node_name=NODE_NAME):
    """Parameters of ``node_name`` in a ROS 2 params file (``--params-file`` format).

    Sections ``/**`` and ``<namespace>/<node_name>`` apply, merged in file order.

    Returns
    -------
    dict of str to object

    Raises
    ------
    ValueError
        If the file is missing, is not YAML, or has no section for the node.
    """
    if not os.path.isfile(path):
        raise ValueError(f'{path}: no such params file')
    with open(path) as f:
        try:
            tree = yaml.safe_load(f)
        except yaml.YAMLError as error:
            raise ValueError(f'{path}: not a YAML params file: {error}') from error
    values, found = {}, False
    for section, params in _parameter_sections(tree):
        if _applies(section, node_name):
            values.update(params)
            found = True
    if not found:
        raise ValueError(f'{path}: expected a section "/**:" or "{node_name}:" with '
                         'ros__parameters, found none')
    return values


def parse_override(text):
    """Parse ``name:=value`` (ROS syntax; the value is read as YAML, as ``-p`` does)."""
    name, sep, value = text.partition(':=')
    if not sep or not name:
        raise ValueError(f'expected a parameter override as name:=value, got {text!r}')
    return name, yaml.safe_load(value) if value else ''


def node_parameters(params_file=None, overrides=()):
    """Resolve the node's parameters: its defaults, then ``params_file``, then ``overrides``.

    Parameters
    ----------
    params_file : str, optional
    overrides : sequence of (str, object)

    Returns
    -------
    values : dict of str to object
    ignored : list of str
        Names that are not parameters of the node (reported, not used).
    """
    values = {p.name: p.default for p in PARAMETERS}
    given = dict(read_params_file(params_file)) if params_file else {}
    given.update(dict(overrides))
    ignored = sorted(k for k in given if k not in values and k not in ROS_PARAMETERS)
    values.update({k: v for k, v in given.items() if k in values})
    return values, ignored


def tracker_config(values):
    """Build the node's TrackerConfig for these parameter values (``keep_imputed`` off)."""
    return TrackerConfig(**{name: values[name] for name in TRACKER_FIELDS})


def make_pipeline(values, model_dir=None):
    """Build the node's Pipeline for these parameter values, warmed up.

    Parameters
    ----------
    values : dict
        From :func:`node_parameters`.
    model_dir : str, optional
        Overrides ``values['model_dir']``; both empty: the node's default model.
    """
    model_dir = model_dir or values['model_dir'] or default_model_dir()
    pipeline = build_pipeline(values, os.path.abspath(model_dir))
    pipeline.warm_up()
    return pipeline


def prediction_from_label(label, latency_ms=float('nan')):
    """Turn a :class:`~iospstl_ros.tracking.BodyLabel` into a ``Prediction``."""
    return Prediction(int(label.stamp_ns), int(label.body_id), int(label.class_index),
                      label.label, label.level, float(label.confidence), float(latency_ms))


def replay_offline(reader, pipeline, config, max_bodies_per_message, progress=None):
    """Run the bag's skeleton messages through decode + OnlineRecognizer, in bag order.

    Parameters
    ----------
    reader : BagReader
    pipeline : Pipeline
    config : TrackerConfig
    max_bodies_per_message : int
        The node's ``max_bodies_per_message``.
    progress : callable, optional
        Called once per message.

    Returns
    -------
    predictions : list of Prediction
        Every label in order, STALE ones included (those of the bodies still tracked at the end
        come from :meth:`OnlineRecognizer.flush`, as the node reports them once the input goes
        silent). Latency = the pipeline time of the label's window.
    stats : dict
        ``messages``, ``rejected`` and ``handled`` (reason -> count), ``tracker`` (the
        recogniser's counts).
    """
    recognizer = OnlineRecognizer(pipeline, config)
    predictions, rejected, handled = [], Counter(), Counter()
    messages = 0
    for _, _, message in reader.skeleton_messages():
        messages += 1
        if progress is not None:
            progress(1)
        try:
            frame, issues = frame_from_message(message, max_bodies_per_message)
            handled.update(issues)
            labels = recognizer.process(frame)
        except CloudError as error:  # includes StampError, as in the node
            rejected[error.reason] += 1
            continue
        predictions.extend(prediction_from_label(label, label.inference_ms) for label in labels)
    predictions.extend(prediction_from_label(label) for label in recognizer.flush())
    return predictions, {'messages': messages, 'rejected': dict(rejected),
                         'handled': dict(handled), 'tracker': dict(recognizer.counts)}


class _SchedulePipeline:
    """Stands in for a Pipeline to find which windows are due, without running a network."""

    def __init__(self, classes):
        self.classes = tuple(classes)

    def run(self, windows):
        result = ActionResult(label=self.classes[0], class_index=0, confidence=1.0,
                              top_k=((self.classes[0], 1.0),), imputed=np.zeros(0, np.float32),
                              num_imputed_joints=0, cluster=0, timings_ms={'total': 0.0},
                              batch_size=len(windows))
        return [result] * len(windows)


def scheduled_windows(reader, classes, config, max_bodies_per_message):
    """Keys ``(stamp_ns, body_id)`` of every window the node runs on this bag, if nothing is lost.

    The same :class:`~iospstl_ros.tracking.OnlineRecognizer` bookkeeping as
    :func:`replay_offline`, with a stand-in for the networks; used by the live mode to count
    dropped windows.

    Returns
    -------
    list of (int, int)
    """
    recognizer = OnlineRecognizer(_SchedulePipeline(classes), config)
    keys = []
    for _, _, message in reader.skeleton_messages():
        try:
            frame, _ = frame_from_message(message, max_bodies_per_message)
            labels = recognizer.process(frame)
        except CloudError:
            continue
        keys.extend((int(label.stamp_ns), int(label.body_id)) for label in labels
                    if label.level != 'STALE')
    return keys
