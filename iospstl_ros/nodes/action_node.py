"""``iospstl_node``: skeletons in, action labels out.

A ``rclpy.lifecycle.LifecycleNode``:

* **configure** reads the parameters, loads and checks the model directory, opens the ONNX
  graphs and runs a warm-up window, and creates the publishers. A missing or corrupt model, an
  unknown backend or an unusable parameter makes the transition fail with one error line.
* **activate** subscribes to ``skeletons`` and starts serving.
* With ``autostart`` (default true) the node runs configure and activate itself, so it needs no
  lifecycle manager; if either fails the process exits with status 1.

The callback converts the message (:func:`iospstl_ros.cloud.decode_skeletons`), makes one core
call (:meth:`iospstl_ros.tracking.OnlineRecognizer.process`, which runs one batched pipeline call
for all bodies due) and publishes ``action_labels`` (plus the optional ``~/action_markers`` and
``~/imputed_skeletons``). Bad input is rejected or repaired by the core, logged with a throttled
warning and counted on ``/diagnostics`` (1 Hz by default, with the input rate, rejections per
reason, providers in use and per-stage latency). Tracks are dropped after ``timeout_s`` of message
time; when messages stop altogether the remaining tracks are reported STALE once ``timeout_s`` of
node-clock time (ROS time, so sim time with ``use_sim_time``) passed since the last message,
checked at each diagnostics tick.

Axes: ``input_axes`` (read-only, default ``rep103``) names the convention of the input
coordinates (``rep103`` x forward / y left / z up, ``optical`` x right / y down / z forward,
``ntu`` x left / y up / z forward). The core rotates them into the model's NTU axes
(:mod:`iospstl_ros.axes`); ``~/imputed_skeletons`` and ``~/action_markers`` are published in the
input message's frame and axes.
"""

from collections import Counter
import os
import sys
import time

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from iospstl_ros.axes import up_vector
from iospstl_ros.cloud import CloudError, decode_skeletons
from iospstl_ros.layout import CENTER_JOINT
from iospstl_ros.model_dir import default_model_dir
from iospstl_ros.nodes._ros_helpers import (
    declare, input_qos, labels_message, run_node, skeleton_cloud, stamp_to_ns)
from iospstl_ros.params import (
    build_pipeline, check_choices, NODE_NAME, PARAMETERS, tracker_config)
from iospstl_ros.pipeline import STAGES
from iospstl_ros.tracking import OnlineRecognizer
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

#: Head joint (NTU 3): where ``~/action_markers`` puts the text.
HEAD_JOINT = 3
#: Text height above the head, metres, along the input axes' up (+z rep103, -y optical, +y ntu).
MARKER_OFFSET = 0.25


def _mean(values):
    return sum(values) / len(values) if values else 0.0


class ActionNode(LifecycleNode):
    """The action recognition node (see the module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.params = declare(self, PARAMETERS)
        self.pipeline = None
        self.recognizer = None
        self.model_dir = None
        self._subscription = None
        self._labels_pub = self._markers_pub = self._imputed_pub = None
        self._diagnostics_pub = None
        self._timer = None
        self._received = 0
        self._period_received = 0
        self._labels_published = 0
        self._rejected = Counter()
        self._handled = Counter()
        self._period_problems = 0
        self._empty_frames = 0
        self._latency = {}
        self._period_start = time.monotonic()
        self._last_message_ns = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ---------------------------------------------------------------- lifecycle

    def on_configure(self, state):
        values = self.params
        problem = check_choices(PARAMETERS, values)
        try:
            if problem:
                raise ValueError(problem)
            config = tracker_config(values, keep_imputed=bool(values['publish_imputed']))
            model_dir = values['model_dir'] or default_model_dir()
            self.model_dir = os.path.abspath(model_dir)
            pipeline = build_pipeline(values, self.model_dir)
            prepared = pipeline.warm_up()
        except (ValueError, OSError, RuntimeError) as error:
            self.get_logger().error(f'configure failed: {error}')
            return TransitionCallbackReturn.FAILURE
        except Exception as error:  # noqa: B902 -- rclpy would swallow it without a word
            self.get_logger().error(f'configure failed: unexpected {type(error).__name__}: '
                                    f'{error}')
            return TransitionCallbackReturn.FAILURE
        self.pipeline = pipeline
        self.recognizer = OnlineRecognizer(pipeline, config)
        self._labels_pub = self.create_lifecycle_publisher(
            DiagnosticArray, 'action_labels',
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                       reliability=ReliabilityPolicy.RELIABLE))
        if values['publish_markers']:
            self._markers_pub = self.create_lifecycle_publisher(MarkerArray, '~/action_markers',
                                                                10)
        if values['publish_imputed']:
            self._imputed_pub = self.create_lifecycle_publisher(PointCloud2,
                                                                '~/imputed_skeletons', 10)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._timer = self.create_timer(values['diagnostics_period_s'], self._on_timer)
        providers = ', '.join(f'{k}={v}' for k, v in sorted(pipeline.providers.items()))
        shortcut = ', '.join(f'{k}={"yes" if v else "no"}'
                             for k, v in sorted(pipeline.single_body.items()))
        self.get_logger().info(f'model {self.model_dir} ({len(pipeline.classes)} classes) '
                               f'loaded and warmed up; providers: {providers}; lone person '
                               f'run as one body: {shortcut}; KNN bank clusters prepared: '
                               f'{len(prepared)} of {pipeline.model.bank.n_clusters}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        self._subscription = self.create_subscription(
            PointCloud2, 'skeletons', self._on_skeletons,
            input_qos(self.params['input_reliability'], self.params['input_depth']))
        self.get_logger().info(f'active: {self.resolve_topic_name("skeletons")} -> '
                               f'{self.resolve_topic_name("action_labels")}')
        return super().on_activate(state)

    def on_deactivate(self, state):
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        return super().on_deactivate(state)

    def _release(self):
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        for name in ('_labels_pub', '_markers_pub', '_imputed_pub'):
            publisher = getattr(self, name)
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
                setattr(self, name, None)
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self.pipeline = self.recognizer = None

    def on_cleanup(self, state):
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self._release()
        return TransitionCallbackReturn.SUCCESS

    @property
    def lifecycle_state(self):
        """Label of the current lifecycle state ('unconfigured', 'inactive', 'active', ...)."""
        return self._state_machine.current_state[1]

    def _on_set_parameters(self, parameters):
        values = dict(self.params)
        values.update({p.name: p.value for p in parameters})
        try:
            config = tracker_config(values, keep_imputed=bool(values['publish_imputed']))
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.params = values
        if self.recognizer is not None:
            self.recognizer.config = config
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- input

    def _warn(self, text):
        self.get_logger().warning(text, throttle_duration_sec=self.params['warning_throttle_s'])

    def _time(self, stage, started):
        self._latency.setdefault(stage, []).append(1000.0 * (time.perf_counter() - started))

    def _on_skeletons(self, msg):
        started = time.perf_counter()
        self._received += 1
        self._period_received += 1
        self._last_message_ns = self.get_clock().now().nanoseconds
        stamp_ns = stamp_to_ns(msg.header.stamp)
        try:
            frame, issues = decode_skeletons(
                msg.height, msg.width, msg.fields, msg.is_bigendian, msg.point_step,
                msg.row_step, msg.data, stamp_ns=stamp_ns, frame_id=msg.header.frame_id,
                max_bodies=self.params['max_bodies_per_message'])
        except CloudError as error:
            self._reject(error)
            return
        self._time('decode', started)
        if issues:
            self._handled.update(issues)
            self._period_problems += sum(issues.values())
            self._warn('skeletons: repaired input: ' + ', '.join(
                f'{reason} x{n}' for reason, n in sorted(issues.items())))
        if not frame.num_bodies:
            self._empty_frames += 1
        tracked = time.perf_counter()
        try:
            step = self.recognizer.process(frame)
        except CloudError as error:  # StampError
            self._reject(error)
            return
        self._time('track', tracked)
        self._note_tracker(step)
        if step.labels:
            published = time.perf_counter()
            self._publish(msg, frame, step.labels)
            self._time('publish', published)
        self._time('callback', started)

    def _reject(self, error):
        self._rejected[error.reason] += 1
        self._period_problems += 1
        self._warn(f'skeletons: message rejected ({error}); {sum(self._rejected.values())} '
                   'rejected so far')

    def _note_tracker(self, step):
        for key in ('body_limit', 'pipeline_error', 'time_reset'):
            new = step.counts.get(key, 0)
            if new:
                self._handled[key] += new
                self._period_problems += new
                detail = f': {step.errors[-1]}' if key == 'pipeline_error' else ''
                self._warn(f'skeletons: {key} x{new}{detail}')
        if step.timings_ms:
            for stage in STAGES:
                self._latency.setdefault(f'pipeline_{stage}', []).append(step.timings_ms[stage])

    def _publish(self, msg, frame, labels):
        now_ns = self.get_clock().now().nanoseconds
        end_to_end_ms = (now_ns - stamp_to_ns(msg.header.stamp)) / 1e6
        self._labels_pub.publish(labels_message(msg.header, labels, end_to_end_ms))
        self._labels_published += len(labels)
        if self._markers_pub is not None:
            self._markers_pub.publish(self._markers(msg.header, frame, labels))
        if self._imputed_pub is not None:
            done = [label for label in labels if label.completed_xyz is not None]
            if done:
                self._imputed_pub.publish(skeleton_cloud(
                    msg.header, [label.body_id for label in done],
                    np.stack([label.completed_xyz for label in done]),
                    np.zeros((len(done), 25), bool), np.stack([label.filled for label in done])))

    def _markers(self, header, frame, labels):
        rows = {} if frame is None else {int(body): b for b, body in enumerate(frame.body_ids)}
        markers = []
        lifetime_ns = int(self.params['timeout_s'] * 1e9)
        up = MARKER_OFFSET * up_vector(self.params['input_axes'])
        for label in labels:
            marker = Marker(header=header, ns='iospstl_labels', id=label.body_id % (1 << 31))
            if label.level == 'STALE' or label.body_id not in rows:
                marker.action = Marker.DELETE
                markers.append(marker)
                continue
            xyz, occluded = frame.xyz[rows[label.body_id]], frame.occluded[rows[label.body_id]]
            visible = np.flatnonzero(~occluded)
            if not visible.size:
                continue
            for joint in (HEAD_JOINT, CENTER_JOINT):
                if not occluded[joint]:
                    anchor = xyz[joint]
                    break
            else:
                anchor = xyz[visible].mean(axis=0)
            marker.type = Marker.TEXT_VIEW_FACING
            marker.action = Marker.ADD
            anchor = np.asarray(anchor, np.float64) + up
            marker.pose.position.x = float(anchor[0])
            marker.pose.position.y = float(anchor[1])
            marker.pose.position.z = float(anchor[2])
            marker.pose.orientation.w = 1.0
            marker.scale.z = 0.12
            ok = label.level == 'OK'
            marker.color.r, marker.color.g, marker.color.b, marker.color.a = \
                (0.1, 0.9, 0.1, 1.0) if ok else (1.0, 0.8, 0.0, 1.0)
            marker.text = f'{label.body_id}: {label.label} {label.confidence:.2f}'
            marker.lifetime = Duration(sec=lifetime_ns // 1_000_000_000,
                                       nanosec=lifetime_ns % 1_000_000_000)
            markers.append(marker)
        return MarkerArray(markers=markers)

    # ---------------------------------------------------------------- timer

    def _on_timer(self):
        self._evict_when_silent()
        self._publish_health()

    def _evict_when_silent(self):
        recognizer = self.recognizer
        if recognizer is None or not recognizer.tracked_ids or self._last_message_ns is None \
                or self.lifecycle_state != 'active':
            return
        silent_ns = self.get_clock().now().nanoseconds - self._last_message_ns
        if silent_ns <= self.params['timeout_s'] * 1e9 or self._labels_pub is None:
            return
        labels = recognizer.flush()
        header = DiagnosticArray().header
        header.stamp.sec, header.stamp.nanosec = divmod(labels[0].stamp_ns, 1_000_000_000)
        header.frame_id = labels[0].frame_id
        self._labels_pub.publish(labels_message(header, labels, silent_ns / 1e6))
        self._labels_published += len(labels)
        if self._markers_pub is not None:
            self._markers_pub.publish(self._markers(header, None, labels))

    def _publish_health(self):
        if self._diagnostics_pub is None:
            return
        now = time.monotonic()
        elapsed = max(now - self._period_start, 1e-9)
        values = {
            'state': self.lifecycle_state,
            'model_dir': str(self.model_dir),
            'input_rate_hz': f'{self._period_received / elapsed:.2f}',
            'messages_received': str(self._received),
            'messages_rejected': str(sum(self._rejected.values())),
            'frames_without_bodies': str(self._empty_frames),
            'labels_published': str(self._labels_published),
        }
        if self.pipeline is not None:
            for graph, provider in sorted(self.pipeline.providers.items()):
                values[f'provider/{graph}'] = provider
        if self.recognizer is not None:
            values['tracked_bodies'] = str(len(self.recognizer.tracked_ids))
            for key, n in sorted(self.recognizer.counts.items()):
                values[f'tracker/{key}'] = str(n)
        for reason, n in sorted(self._rejected.items()):
            values[f'rejected/{reason}'] = str(n)
        for reason, n in sorted(self._handled.items()):
            values[f'handled/{reason}'] = str(n)
        for stage, samples in sorted(self._latency.items()):
            values[f'latency_ms/{stage}/mean'] = f'{_mean(samples):.3f}'
            values[f'latency_ms/{stage}/max'] = f'{max(samples):.3f}'
        problems = self._period_problems
        if problems:
            level, message = DiagnosticStatus.WARN, f'{problems} bad inputs in the last period'
        elif self.lifecycle_state != 'active':
            level, message = DiagnosticStatus.WARN, f'not active ({self.lifecycle_state})'
        else:
            level, message = DiagnosticStatus.OK, 'ok'
        status = DiagnosticStatus(level=level, name=f'{self.get_name()}: health',
                                  message=message, hardware_id=self.get_fully_qualified_name(),
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)
        self._period_start, self._period_received, self._period_problems = now, 0, 0
        self._latency = {}

    def start(self):
        """Configure and activate (autostart); return True when active."""
        self.trigger_configure()
        if self.lifecycle_state != 'inactive':
            return False
        self.trigger_activate()
        return self.lifecycle_state == 'active'


def main(args=None):
    """Run the node until shutdown; exit status 1 when autostart fails."""
    return run_node(NODE_NAME, ActionNode,
                    lambda node: not node.params['autostart'] or node.start(), args)


if __name__ == '__main__':
    sys.exit(main())
