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

from iospstl_ros.bag.evaluate import Prediction
from iospstl_ros.bag.rosbag import frame_from_message
from iospstl_ros.cloud import CloudError
from iospstl_ros.model_dir import default_model_dir
from iospstl_ros.params import build_pipeline, NODE_NAME, PARAMETERS
from iospstl_ros.pipeline import ActionResult
from iospstl_ros.tracking import OnlineRecognizer
import numpy as np
from rclpy.parameter import parameter_dict_from_yaml_file, parameter_value_to_python
import yaml

#: Parameters a params file may hold that the node does not declare but ROS does.
ROS_PARAMETERS = ('use_sim_time',)


def read_params_file(path, node_name=NODE_NAME):
    """Parameters of ``node_name`` in a ROS 2 params file (``--params-file`` format).

    The sections ``/**`` and ``<namespace>/<node_name>`` apply, read by rclpy's own parser
    (``rclpy.parameter.parameter_dict_from_yaml_file``), the node's section last.

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
    keys = list(tree) if isinstance(tree, dict) else []
    targets = [key for key in keys if str(key).strip('/').split('/')[-1] == node_name]
    if not targets and '/**' not in keys:
        raise ValueError(f'{path}: expected a section "/**:" or "{node_name}:" with '
                         f'ros__parameters, found {keys}')
    try:
        parameters = parameter_dict_from_yaml_file(path, use_wildcard=True,
                                                   target_nodes=targets)
    except RuntimeError as error:
        raise ValueError(f'{path}: {error}') from error
    return {name: parameter_value_to_python(message.value)
            for name, message in parameters.items()}


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
            step = recognizer.process(frame)
        except CloudError as error:  # includes StampError, as in the node
            rejected[error.reason] += 1
            continue
        predictions.extend(prediction_from_label(label, label.inference_ms)
                           for label in step.labels)
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
            step = recognizer.process(frame)
        except CloudError:
            continue
        keys.extend((int(label.stamp_ns), int(label.body_id)) for label in step.labels
                    if label.level != 'STALE')
    return keys
