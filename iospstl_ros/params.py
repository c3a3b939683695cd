"""The node's parameters, ROS-free: the table, and what the node builds from their values.

:data:`PARAMETERS` is the one list of ``iospstl_node``'s parameters (name, default, meaning,
range or choices). The node declares them (:func:`iospstl_ros.nodes._ros_helpers.declare`);
``iospstl_bag eval`` resolves the same values from a params file without a node
(:func:`iospstl_ros.bag.replay.node_parameters`) and builds the same
:class:`~iospstl_ros.pipeline.Pipeline` and :class:`~iospstl_ros.tracking.TrackerConfig`.
"""

from dataclasses import dataclass

from iospstl_ros.axes import AXES
from iospstl_ros.pipeline import Pipeline
from iospstl_ros.runtime import BACKENDS
from iospstl_ros.tracking import TrackerConfig

RELIABILITIES = ('best_effort', 'reliable')


@dataclass(frozen=True)
class Param:
    """One parameter: name, default, meaning, and its constraints (range or choices)."""

    name: str
    default: object
    description: str
    read_only: bool = True
    low: object = None
    high: object = None
    step: object = None
    choices: tuple = ()


def check_choices(params, values):
    """Return an error text for a value outside its ``choices``, else None."""
    for param in params:
        if param.choices and values.get(param.name) not in param.choices:
            return (f'parameter {param.name}: expected one of {", ".join(param.choices)}, got '
                    f'{values.get(param.name)!r}')
    return None


NODE_NAME = 'iospstl_node'
#: Pipeline top-k: every class, so that smoothing averages complete distributions.
ALL_CLASSES = 1_000_000
_DEFAULT = TrackerConfig()

#: Every parameter of the node (mirrored in config/iospstl.yaml).
PARAMETERS = (
    Param('autostart', True, 'Configure and activate at start-up without a lifecycle manager; '
          'exit with status 1 if that fails.'),
    Param('model_dir', '', 'Model directory written by training.export; empty = '
          '<share>/iospstl_ros/models/default (or models/default of the source tree).'),
    Param('backend', 'auto', 'Inference back-end; auto = TensorRT, else CUDA, else CPU, '
          'whichever ONNX Runtime offers.', choices=BACKENDS),
    Param('threads', 2, 'ONNX Runtime intra-op threads per graph.', low=1, high=64),
    Param('top_k', 5, 'Classes listed in each label (values key topk).', low=1, high=100),
    Param('verify_checksums', True, 'Hash every model file against metadata.json when '
          'loading.'),
    Param('cache_dir', '', 'Root of the TensorRT engine caches; empty = $IOSPSTL_CACHE_DIR or '
          '~/.cache/iospstl_ros.'),
    Param('cached_clusters', 4, 'Clusters of the KNN bank kept prepared in memory (about 35 MB '
          'each for an NTU-sized cluster), the largest prepared at start-up; a window of another '
          'cluster prepares it first, which delays its label by tens of ms.', low=1, high=1024),
    Param('window', _DEFAULT.window, 'Frames per body window (ring buffer length).', low=1,
          high=900),
    Param('min_frames', _DEFAULT.min_frames, 'Frames a body needs before its first label '
          '(<= window); labels are WARN until the window is full.', low=1, high=900),
    Param('stride', _DEFAULT.stride, 'Frames of a body between two of its labels.',
          read_only=False, low=1, high=300),
    Param('timeout_s', _DEFAULT.timeout_s, 'Message time after which an unseen body is '
          'dropped and reported STALE (also node-clock time after the last message).',
          read_only=False, low=0.05, high=60.0),
    Param('pair_bodies', _DEFAULT.pair_bodies, 'Put the nearest other body within '
          'pair_distance into the second body slot (two-person actions).', read_only=False),
    Param('pair_distance', _DEFAULT.pair_distance, 'Largest median spine-shoulder distance of '
          'a partner, metres.', read_only=False, low=0.0, high=10.0),
    Param('smoothing', _DEFAULT.smoothing, 'Windows whose class probabilities are averaged '
          '(1 = off).', low=1, high=30),
    Param('max_bodies', _DEFAULT.max_bodies, 'Bodies tracked at once; further new ids are '
          'ignored and counted.', low=1, high=256),
    Param('max_bodies_per_message', 64, 'Messages with more rows are rejected '
          '(too_many_bodies).', low=1, high=4096),
    Param('min_confidence', _DEFAULT.min_confidence, 'Labels below this confidence are WARN.',
          read_only=False, low=0.0, high=1.0),
    Param('max_occluded_ratio', _DEFAULT.max_occluded_ratio, 'Labels of windows with a larger '
          'occluded share of joint slots are WARN.', read_only=False, low=0.0, high=1.0),
    Param('input_axes', _DEFAULT.input_axes, 'Axes of the skeletons coordinates: rep103 = x '
          'forward, y left, z up (REP-103 body frame); optical = x right, y down, z forward '
          '(camera optical frame); ntu = x left, y up, z forward (Kinect v2 camera space). '
          'Rotated into the NTU axes of the model; outputs stay in the input frame and axes.',
          choices=AXES),
    Param('input_reliability', 'best_effort', 'Reliability of the skeletons subscription.',
          choices=RELIABILITIES),
    Param('input_depth', 5, 'Queue depth (keep last) of the skeletons subscription.', low=1,
          high=1000),
    Param('publish_markers', False, 'Publish ~/action_markers (RViz text above each head).'),
    Param('publish_imputed', False, 'Publish ~/imputed_skeletons (newest frame with occluded '
          'joints filled, extra field imputed).'),
    Param('diagnostics_period_s', 1.0, 'Period of the node health status on /diagnostics.',
          low=0.1, high=60.0),
    Param('warning_throttle_s', 5.0, 'Least time between two warnings about bad input.',
          low=0.0, high=3600.0),
)

#: Parameters that go into TrackerConfig, by TrackerConfig field name.
TRACKER_FIELDS = ('window', 'min_frames', 'stride', 'timeout_s', 'pair_bodies', 'pair_distance',
                  'smoothing', 'max_bodies', 'top_k', 'min_confidence', 'max_occluded_ratio',
                  'input_axes')


def build_pipeline(values, model_dir):
    """Build the node's :class:`~iospstl_ros.pipeline.Pipeline` for these parameter values.

    Parameters
    ----------
    values : dict of str to object
        Every parameter of :data:`PARAMETERS` by name.
    model_dir : str
        The model directory (``values['model_dir']`` resolved).
    """
    return Pipeline(model_dir, backend=values['backend'], threads=values['threads'],
                    top_k=ALL_CLASSES, cache_dir=values['cache_dir'] or None,
                    verify_checksums=values['verify_checksums'],
                    max_cached_clusters=values['cached_clusters'])


def tracker_config(values, keep_imputed=False):
    """Build the node's TrackerConfig for these parameter values."""
    return TrackerConfig(keep_imputed=keep_imputed,
                         **{name: values[name] for name in TRACKER_FIELDS})
