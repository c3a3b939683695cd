"""How many bodies iospstl_node serves at 30 Hz, its end-to-end latency and its memory.

The installed console script (``.venv/bin/iospstl_node``) runs as a separate process with a
parameter file (``--threads`` ONNX Runtime threads, ``--backend``, stride ``--stride``,
otherwise the defaults of config/iospstl.yaml) and the Fast DDS quick-discovery profile of
test/fastdds_fast_discovery.xml. This process publishes ``skeletons`` at 30 Hz with N bodies
per message (synthetic one-person sequences with realistic occlusion, looped, 2 m apart so
that no two are paired) and receives ``action_labels``.

1. **Sweep.** For each N of ``--bodies``, ``--sweep-seconds`` of input. A body's window is due
   at its ``min_frames``-th frame and every ``stride`` frames after (body i starts i mod
   stride frames late, so windows spread over frames; ``--no-stagger`` makes all N due in the
   same message, the worst case); N is *served without
   backlog* when every due window got a label, the node took every message (its /diagnostics
   ``messages_received``) and the latency did not grow (median of the last third of the
   labels at most 20 ms + 50 % above the median of the first third), and *meets the goal*
   when besides its p99 is at most ``--p99-limit`` (50 ms). Latency is the wall time from the
   header stamp (set when publishing) to the label's receipt here, p50 / p99.
2. **Where the node's time goes**, per load level: the CPU time the node process used per
   second of input (``utime + stime`` of /proc/<pid>/stat; 2.0 = both cores busy), and the
   means the node reports on /diagnostics: per message ``decode``, ``track`` (the recogniser:
   ring buffers, pairing, windows and the pipeline call), ``publish`` and the whole
   ``callback``; per pipeline call its stages (preprocess, embed, assign, impute, classify).
   ``--profile FILE`` runs the node under cProfile instead (slower: for the profile only, not
   for capacity) and writes its statistics to FILE when the node stops.
3. **Memory.** The node's resident memory (``VmRSS`` of /proc/<pid>/status) after start-up
   (model loaded, warmed up, no input yet), then every second during ``--duration`` seconds of
   input at the largest N that meets the goal (default 600 s), with its growth over the run
   and over its second half (a leak shows as steady growth there).

The node keeps every cluster of the model's KNN bank prepared (``cached_clusters``, default
``--cached-clusters``: all of them; 17 clusters of about 2 MB for models/default, as the README
advises where memory allows): with fewer, the windows of many people span more clusters than
are kept, and the imputer prepares clusters again and again.

Figures are printed, written as JSON (``bench_node.json``; every label latency, in arrival
order, in ``latencies.json``), and the latency histogram of the memory run as a PNG
(``--out``, default runs/bench_node)::

    .venv/bin/python -m benchmarks.bench_node --duration 30 --bodies 1,5,10
    .venv/bin/python -m benchmarks.bench_node --model models/default   # the 10-minute run

The model is ``--model``, else models/default when it exists, else a tiny one built with the
project's scripts in a temporary folder (about 30 s).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from iospstl_ros.datasets.synthetic import generate_sequence
from iospstl_ros.nodes._ros_helpers import skeleton_cloud, status_values
from iospstl_ros.plots import plot_histogram
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE = os.path.join(REPO, 'test', 'fastdds_fast_discovery.xml')
NAMESPACE = '/bench'
RATE_HZ = 30.0
MIN_FRAMES = 40  # the node's default (config/iospstl.yaml)


def cpu_seconds(pid):
    """Return the CPU time (user + system) a process used so far, in seconds, or None."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def node_script():
    """Return the installed ``iospstl_node`` console script of this interpreter's venv."""
    path = os.path.join(os.path.dirname(sys.executable), 'iospstl_node')
    if not os.path.exists(path):
        raise SystemExit(f'{path} not found: install the package (pip install -e .) first')
    return path


def resident_mb(pid):
    """Return the resident memory (VmRSS) of a process in MiB, None once it has exited."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def choose_model(path):
    """Return the model directory to serve: ``path``, models/default, or a tiny one built now."""
    if path:
        return path
    default = os.path.join(REPO, 'models', 'default')
    if os.path.exists(os.path.join(default, 'metadata.json')):
        return default
    from benchmarks.bench_pipeline import build_model
    root = tempfile.mkdtemp(prefix='bench_node_')
    print(f'no --model and no models/default: building a tiny model in {root}', flush=True)
    return build_model(root, 'tiny', 100, 4)


def body_sequences(count, seed=11):
    """Make ``count`` one-person sequences: (xyz (T, 25, 3), occluded (T, 25)) each."""
    sequences = []
    index = 0
    while len(sequences) < count:
        s = generate_sequence(seed, index, occlusion='realistic')
        index += 1
        if s.present[:, 1].any():
            continue  # two-person sample: keep one-person bodies only
        xyz = np.moveaxis(s.xyz[:, :, :, 0], 0, -1) + (2.0 * len(sequences), 0.0, 0.0)
        sequences.append((xyz.astype(np.float32), s.occluded[:, :, 0]))
    return sequences


def due_windows(frames, stride, min_frames=MIN_FRAMES):
    """Count the windows of a body with ``frames`` frames (the labels the node owes it)."""
    return 0 if frames < min_frames else (frames - min_frames) // stride + 1


class Client(Node):
    """Publishes skeletons, collects label latencies and the node's health."""

    def __init__(self, **kwargs):
        super().__init__('iospstl_bench_client', **kwargs)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.publisher = self.create_publisher(PointCloud2, f'{NAMESPACE}/skeletons',
                                               reliable)
        self.create_subscription(DiagnosticArray, f'{NAMESPACE}/action_labels', self._on_labels,
                                 reliable)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_health, reliable)
        self.lock = threading.Lock()
        self.latencies = []   # (receipt time s, latency ms, body id)
        self.health = {}
        self.pipeline_ms = []  # the node's mean pipeline time of each health period
        self.stage_ms = {}     # stage -> the node's mean time of each health period

    def _on_labels(self, msg):
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            for status in msg.status:
                if status.level != status.STALE:
                    self.latencies.append((now / 1e9, (now - stamp) / 1e6,
                                           int(status.hardware_id)))

    def _on_health(self, msg):
        for status in msg.status:
            if status.hardware_id == f'{NAMESPACE}/iospstl_node':
                self.health = status_values(status)
                if 'latency_ms/pipeline_total/mean' in self.health:
                    self.pipeline_ms.append(float(self.health['latency_ms/pipeline_total/mean']))
                for key, value in self.health.items():
                    if key.startswith('latency_ms/') and key.endswith('/mean'):
                        stage = key[len('latency_ms/'):-len('/mean')]
                        self.stage_ms.setdefault(stage, []).append(float(value))


def spin_until(executor, condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)
    return condition()


def stream(client, executor, sequences, ids, offsets, seconds, rss=None, pid=None):
    """Publish N bodies at 30 Hz for ``seconds`` (body i from frame ``offsets[i]``).

    Returns the number of messages sent; appends (seconds, MiB) samples to ``rss``.
    """
    start = time.monotonic()
    frames = int(seconds * RATE_HZ)
    next_rss = start
    for k in range(frames):
        due = start + k / RATE_HZ
        while True:
            left = due - time.monotonic()
            if left <= 0:
                break
            executor.spin_once(timeout_sec=min(left, 0.005))
        now = [i for i, offset in enumerate(offsets) if k >= offset]
        xyz = np.stack([sequences[i][0][k % len(sequences[i][0])] for i in now])
        occluded = np.stack([sequences[i][1][k % len(sequences[i][1])] for i in now])
        header = Header(frame_id='bench')
        header.stamp.sec, header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        client.publisher.publish(skeleton_cloud(header, [ids[i] for i in now], xyz, occluded))
        if rss is not None and time.monotonic() >= next_rss:
            rss.append((time.monotonic() - start, resident_mb(pid)))
            next_rss += 1.0
    return frames


def percentile(values, q):
    return float(np.percentile(values, q)) if len(values) else float('nan')


def run_load(client, executor, sequences, ids, seconds, stride, stagger, sent_before,
             rss=None, pid=None, p99_limit=50.0):
    """One load level; return its figures."""
    with client.lock:
        client.latencies.clear()
        client.pipeline_ms.clear()
        client.stage_ms.clear()
    offsets = [i % stride if stagger else 0 for i in range(len(ids))]
    cpu_before, started = cpu_seconds(pid), time.monotonic()
    frames = stream(client, executor, sequences, ids, offsets, seconds, rss, pid)
    cpu_after, streamed = cpu_seconds(pid), time.monotonic() - started
    expected = sum(due_windows(frames - offset, stride) for offset in offsets)
    spin_until(executor, lambda: len(client.latencies) >= expected, 5.0)
    spin_until(executor, lambda: int(client.health.get('messages_received', 0))
               >= sent_before + frames, 3.0)
    with client.lock:
        samples = list(client.latencies)
    latencies = [latency for _, latency, body in samples if body in set(ids)]
    third = max(1, len(latencies) // 3)
    first, last = percentile(latencies[:third], 50), percentile(latencies[-third:], 50)
    received = int(client.health.get('messages_received', 0)) - sent_before
    growing = bool(last > first * 1.5 + 20.0) if latencies else True
    served = bool(len(latencies) >= expected and received >= frames and not growing)
    with client.lock:
        stages = {stage: float(np.mean(values)) for stage, values in client.stage_ms.items()}
    return {
        'bodies': len(ids), 'frames_sent': frames, 'frames_taken_by_node': received,
        'labels_due': expected, 'labels_received': len(latencies),
        'latency_p50_ms': percentile(latencies, 50), 'latency_p99_ms': percentile(latencies, 99),
        'latency_p50_first_third_ms': first, 'latency_p50_last_third_ms': last,
        'node_pipeline_mean_ms': float(np.mean(client.pipeline_ms)) if client.pipeline_ms
        else float('nan'),
        'node_cpu_per_second': (cpu_after - cpu_before) / streamed
        if cpu_before is not None and cpu_after is not None else float('nan'),
        'node_stage_mean_ms': dict(sorted(stages.items())),
        'served': served,
        'meets_goal': served and percentile(latencies, 99) <= p99_limit,
        'latencies_ms': latencies,
    }


#: Stages of the node's own timing, in the order of the breakdown table.
STAGE_ORDER = ('decode', 'track', 'pipeline_preprocess', 'pipeline_embed', 'pipeline_assign',
               'pipeline_impute', 'pipeline_classify', 'pipeline_total', 'publish', 'callback')


def print_breakdown(sweep):
    """Print where the node's time went at each load level (see the module docstring)."""
    print('\nnode time per message / per pipeline call, ms (means from /diagnostics); CPU s '
          'used per s of input')
    names = [stage.replace('pipeline_', '') for stage in STAGE_ORDER]
    print(f'{"N":>4} {"cpu":>5} ' + ' '.join(f'{name:>10s}' for name in names), flush=True)
    for result in sweep:
        means = result['node_stage_mean_ms']
        print(f'{result["bodies"]:>4} {result["node_cpu_per_second"]:5.2f} '
              + ' '.join(f'{means.get(stage, float("nan")):10.2f}' for stage in STAGE_ORDER),
              flush=True)


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', help='model directory (default: models/default, else a tiny '
                                        'model built now)')
    parser.add_argument('--bodies', default='1,5,10,20,40',
                        help='comma-separated body counts of the sweep (default: 1,5,10,20,40)')
    parser.add_argument('--sweep-seconds', type=float, default=10.0,
                        help='seconds of input per body count (default: 10)')
    parser.add_argument('--duration', type=float, default=600.0,
                        help='seconds of the memory run at the largest N served (default: 600)')
    parser.add_argument('--memory-bodies', type=int,
                        help='bodies of the memory run (default: the largest N served)')
    parser.add_argument('--stride', type=int, default=10, help='node stride (default: 10)')
    parser.add_argument('--no-stagger', dest='stagger', action='store_false',
                        help='start all bodies on the same frame, so that all their windows '
                             'are due together (worst case); by default body i starts i %% '
                             'stride frames later, as bodies entering a scene do')
    parser.add_argument('--threads', type=int, default=2,
                        help='ONNX Runtime threads of the node (default: 2)')
    parser.add_argument('--backend', default='cpu', help='node backend (default: cpu)')
    parser.add_argument('--domain-id', type=int, default=int(os.environ.get('ROS_DOMAIN_ID',
                                                                            '41')),
                        help='ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 41)')
    parser.add_argument('--cached-clusters', type=int,
                        help='cached_clusters of the node (default: every cluster of the '
                             "model's bank)")
    parser.add_argument('--p99-limit', type=float, default=50.0,
                        help='largest label p99 of a load level that meets the goal, ms '
                             '(default: 50)')
    parser.add_argument('--profile', metavar='FILE',
                        help='run the node under cProfile and write its statistics to FILE '
                             '(slows the node: for the profile, not for capacity)')
    parser.add_argument('--out', default=os.path.join(REPO, 'runs', 'bench_node'),
                        help='folder of the JSON figures and the histogram PNG')
    options = parser.parse_args(args)
    counts = [int(n) for n in options.bodies.split(',') if n.strip()]
    if not counts or min(counts) < 1:
        parser.error(f'--bodies: expected positive integers, got {options.bodies!r}')
    if options.memory_bodies is not None and not 1 <= options.memory_bodies <= max(counts):
        parser.error(f'--memory-bodies: expected 1 to {max(counts)} (the largest of --bodies), '
                     f'got {options.memory_bodies}')
    os.makedirs(options.out, exist_ok=True)
    model = choose_model(options.model)
    with open(os.path.join(model, 'metadata.json')) as f:
        clusters = int(json.load(f)['imputation']['n_clusters'])
    cached = min(1024, options.cached_clusters or clusters)
    env = dict(os.environ, ROS_DOMAIN_ID=str(options.domain_id),
               FASTRTPS_DEFAULT_PROFILES_FILE=PROFILE, PYTHONUNBUFFERED='1')
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                                           'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    params = os.path.join(options.out, 'bench_params.yaml')
    with open(params, 'w') as f:
        f.write('/**:\n  ros__parameters:\n'
                f"    model_dir: '{os.path.abspath(model)}'\n"
                f"    backend: '{options.backend}'\n    threads: {options.threads}\n"
                f'    stride: {options.stride}\n    max_bodies: {min(256, max(counts) + 1)}\n'
                f'    max_bodies_per_message: {max(64, max(counts))}\n'
                f'    cached_clusters: {cached}\n'
                "    input_axes: 'ntu'\n")  # the synthetic sequences are in NTU axes
    log_path = os.path.join(options.out, 'node.log')
    log = open(log_path, 'w')
    command = [node_script(), '--ros-args', '--params-file', params, '-r', f'__ns:={NAMESPACE}']
    if options.profile:
        command = [sys.executable, '-m', 'cProfile', '-o', os.path.abspath(options.profile)] \
            + command
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    rclpy.init()
    client = Client()
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    report = {'model': os.path.abspath(model), 'stride': options.stride,
              'stagger': options.stagger, 'cached_clusters': cached, 'clusters': clusters,
              'p99_limit_ms': options.p99_limit, 'profile': options.profile,
              'threads': options.threads, 'backend': options.backend, 'rate_hz': RATE_HZ,
              'cpus': os.cpu_count(), 'load_average': os.getloadavg()}
    try:
        if not spin_until(executor, lambda: client.publisher.get_subscription_count() > 0
                          or process.poll() is not None, 120.0) or process.poll() is not None:
            raise SystemExit(f'the node did not start; see {log_path}')
        spin_until(executor, lambda: bool(client.health), 5.0)
        report['rss_start_mb'] = resident_mb(process.pid)
        print(f'node pid {process.pid}: {report["rss_start_mb"]:.1f} MiB resident after start-up '
              f'(model {model}, providers {client.health.get("provider/classifier")})',
              flush=True)
        sequences = body_sequences(max(counts))
        sent = 0
        sweep = []
        print(f'{"N":>4} {"sent":>6} {"taken":>6} {"due":>6} {"labels":>7} {"p50 ms":>8} '
              f'{"p99 ms":>8} {"first/last p50":>16} {"pipeline ms":>11}  served  goal',
              flush=True)
        for run, n in enumerate(counts):
            ids = [1000 * (run + 1) + i for i in range(n)]
            result = run_load(client, executor, sequences[:n], ids, options.sweep_seconds,
                              options.stride, options.stagger, sent, pid=process.pid,
                              p99_limit=options.p99_limit)
            sent += result['frames_sent']
            sweep.append(result)
            print(f'{n:>4} {result["frames_sent"]:>6} {result["frames_taken_by_node"]:>6} '
                  f'{result["labels_due"]:>6} {result["labels_received"]:>7} '
                  f'{result["latency_p50_ms"]:>8.1f} {result["latency_p99_ms"]:>8.1f} '
                  f'{result["latency_p50_first_third_ms"]:>7.1f}/'
                  f'{result["latency_p50_last_third_ms"]:<8.1f} '
                  f'{result["node_pipeline_mean_ms"]:>11.1f}  {str(result["served"]):6s} '
                  f'{result["meets_goal"]}', flush=True)
            spin_until(executor, lambda: False, 1.5)  # let the old tracks time out
        print_breakdown(sweep)
        served = [r['bodies'] for r in sweep if r['served']]
        met = [r['bodies'] for r in sweep if r['meets_goal']]
        report['largest_n_served'] = max(served) if served else None
        report['largest_n_meeting_goal'] = max(met) if met else None
        memory_n = options.memory_bodies or (max(met) if met else min(counts))
        ids = [100000 + i for i in range(memory_n)]
        rss = []
        print(f'memory run: {memory_n} bodies for {options.duration:.0f} s', flush=True)
        memory = run_load(client, executor, sequences[:memory_n], ids, options.duration,
                          options.stride, options.stagger, sent, rss, process.pid,
                          options.p99_limit)
        rss_values = [mb for _, mb in rss if mb is not None]
        half = rss_values[len(rss_values) // 2:]
        report['sweep'] = [{k: v for k, v in r.items() if k != 'latencies_ms'} for r in sweep]
        report['memory_run'] = {
            **{k: v for k, v in memory.items() if k != 'latencies_ms'},
            'seconds': options.duration, 'rss_first_mb': rss_values[0] if rss_values else None,
            'rss_last_mb': rss_values[-1] if rss_values else None,
            'rss_growth_mb': rss_values[-1] - rss_values[0] if rss_values else None,
            'rss_growth_second_half_mb': half[-1] - half[0] if len(half) > 1 else None,
            'rss_samples_mb': rss_values}
        m = report['memory_run']
        print(f'  labels {m["labels_received"]}/{m["labels_due"]}, latency p50 '
              f'{m["latency_p50_ms"]:.1f} ms p99 {m["latency_p99_ms"]:.1f} ms; RSS at start-up '
              f'{report["rss_start_mb"]:.1f} MiB, run {m["rss_first_mb"]:.1f} -> '
              f'{m["rss_last_mb"]:.1f} MiB (growth {m["rss_growth_mb"]:+.1f} MiB, second half '
              f'{m["rss_growth_second_half_mb"] or 0.0:+.1f} MiB)', flush=True)
        png = os.path.join(options.out, 'latency_histogram.png')
        plot_histogram(memory['latencies_ms'], png,
                       f'iospstl_node: header stamp to label, {memory_n} bodies at 30 Hz, '
                       f'stride {options.stride}')
        with open(os.path.join(options.out, 'bench_node.json'), 'w') as f:
            json.dump(report, f, indent=2)
        with open(os.path.join(options.out, 'latencies.json'), 'w') as f:
            json.dump({'sweep': {r['bodies']: r['latencies_ms'] for r in sweep},
                       'memory_run': memory['latencies_ms']}, f)
        print(f'largest N served without backlog: {report["largest_n_served"]}; with p99 <= '
              f'{options.p99_limit:g} ms too: {report["largest_n_meeting_goal"]}; wrote {png} '
              f'and bench_node.json to {options.out}', flush=True)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        executor.shutdown()
        client.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return report


if __name__ == '__main__':
    main()
