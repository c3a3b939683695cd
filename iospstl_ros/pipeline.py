"""What the robot runs on each window: preprocess, embed, assign, impute, classify.

For a batch of raw windows (one per tracked person or interacting pair), :class:`Pipeline`:

1. **preprocess**: :func:`iospstl_ros.preprocess.preprocess_sequence`, the code that made the
   training windows (relative coordinates, 50 frames, shoulder alignment as recorded in the
   model's metadata); a one-body window (M = 1) gets an empty second body slot (zeros, absent),
   as every training window without a second person has;
2. **embed**: the stage-1 encoder on the window with occluded joints at 0 (the centre joint),
   as ``training.impute`` embedded the training windows;
3. **assign**: the nearest KMeans centroid (:meth:`ClusterBank.assign`);
4. **impute**: :func:`iospstl_ros.completion.complete_windows` with the model's
   :class:`~iospstl_ros.imputation.ClusterBank` and that cluster: the k nearest training
   windows of the cluster, then temporal interpolation, then the training mean pose;
5. **classify**: the stage-2 encoder and linear head on the completed window; softmax.

All windows of one call go through each network in one batch. No NaN reaches a network: the
runners of :mod:`iospstl_ros.runtime` refuse non-finite input with a ``ValueError``. Results are
bitwise reproducible for the same batch; the same window in batches of other sizes agrees to
float32 rounding (a few micrometres in the imputed joints: the KNN distances are batched
float32 matrix products).

How an empty second body slot is skipped, exactly: the encoder computes a feature per body slot
with the same weights (``data_bn`` normalises each slot alike) and averages the two, and the
head is affine. An all-zero slot does not give a zero feature (the convolution biases and the
BatchNorm shifts make it a constant, input-independent vector ``f(0)``), so encoding the one
body alone (M = 1) would give ``f(b)`` instead of ``(f(b) + f(0)) / 2``: a different function
(on the demo's 'cpu'-preset model it changed the predicted class of 45 % of the one-body
windows). But ``f(0)`` is a constant: for a window whose second slot is all zero, each graph
runs with M = 1 and the pipeline adds the graph's output for an all-zero one-body window,
computed once when the pipeline is created, and halves (for the classifier the logits: the head
is affine, so averaging logits equals classifying the averaged feature). The result equals the
two-slot graph's to float rounding (``training.export`` checks it, about 1e-7 relative), at about
half the encoder cost for a lone person. It needs graphs with a dynamic body axis (exports
since this change) on ONNX Runtime CPU or CUDA; older model directories and the TensorRT
back-ends run both slots (``single_body`` tells which).
"""

import contextlib
from dataclasses import dataclass
import os
import time

from iospstl_ros.completion import complete_windows
from iospstl_ros.imputation import compile_kernels, DIRECT_MAX_ROWS
from iospstl_ros.layout import MAX_BODIES, NUM_CHANNELS, NUM_JOINTS
from iospstl_ros.model_dir import CLASSIFIER_FILE, load_model_dir, ModelDir, STAGE1_FILE
from iospstl_ros.preprocess import fill_occluded, preprocess_sequence
from iospstl_ros.runtime import BACKENDS, MAX_BATCH, open_runner
from iospstl_ros.validation import check_int
import numba
import numpy as np
from threadpoolctl import threadpool_limits

#: What stage 4 can do with occluded joints (see :class:`Pipeline`).
IMPUTATION_MODES = ('cluster-knn', 'mean', 'none')
#: Per-stage timings of a result, in this order.
STAGES = ('preprocess', 'embed', 'assign', 'impute', 'classify', 'total')


@dataclass(frozen=True, eq=False)
class ActionResult:
    """The recognised action of one window (one person, or one interacting pair).

    Attributes
    ----------
    label : str
        Most probable class.
    class_index : int
        Its index in the model's class list.
    confidence : float
        Its softmax probability.
    top_k : tuple of (str, float)
        The ``top_k`` most probable classes, most probable first.
    imputed : ndarray of shape (3, 50, 25, M), float32
        The completed window the classifier saw (relative coordinates, no NaN; M as given).
    num_imputed_joints : int
        Occluded joints of present bodies that were filled (joint-frames, not coordinates).
    cluster : int
        KMeans cluster the window was assigned to.
    timings_ms : dict of str to float
        Milliseconds per stage (``STAGES``) of the call that produced this result. The stages
        run batched, so every result of one call reports the same times.
    batch_size : int
        Windows in that call.
    """

    label: str
    class_index: int
    confidence: float
    top_k: tuple
    imputed: np.ndarray
    num_imputed_joints: int
    cluster: int
    timings_ms: dict
    batch_size: int


def softmax(logits):
    """Row-wise softmax, computed in float64.

    Parameters
    ----------
    logits : ndarray of shape (N, K)

    Returns
    -------
    ndarray of shape (N, K), float64
        Rows sum to 1.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def split_windows(windows):
    """Turn the accepted input forms into a list of ``(xyz, occluded, present)`` triples.

    Parameters
    ----------
    windows : sequence of (xyz, occluded, present), or one triple of batched arrays
        Per window ``xyz`` (3, T, 25, M), ``occluded`` (T, 25, M), ``present`` (T, M); or
        ``xyz`` (N, 3, T, 25, M), ``occluded`` (N, T, 25, M), ``present`` (N, T, M).

    Returns
    -------
    list of tuple
    """
    if isinstance(windows, tuple) and len(windows) == 3 \
            and getattr(windows[0], 'ndim', None) == 5:
        xyz, occluded, present = windows
        if not len(xyz) == len(occluded) == len(present):
            raise ValueError(f'expected batches of one length, got {len(xyz)} xyz, '
                             f'{len(occluded)} occluded and {len(present)} present')
        return list(zip(xyz, occluded, present))
    items = list(windows)
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise ValueError(f'window {i}: expected a triple (xyz (3, T, 25, M), occluded '
                             f'(T, 25, M), present (T, M)), got {type(item).__name__}')
    return items


class Pipeline:
    """Occlusion-robust action recognition on windows, from an exported model directory.

    The model directory is loaded and validated, and both graphs are opened, when the pipeline
    is created (fail at start-up, not on the first window); :meth:`warm_up` then runs a
    synthetic window through every stage. Not thread-safe (the bank caches prepared clusters):
    use one pipeline per thread.

    Parameters
    ----------
    model_dir : str or ModelDir
        Directory written by ``python -m training.export``.
    backend : {'auto', 'cpu', 'cuda', 'tensorrt', 'tensorrt-native'}
        See :mod:`iospstl_ros.runtime`; ``providers`` tells which one serves.
    threads : int
        ONNX Runtime intra-op threads per graph, and numba's threads for the imputation of
        batches (set for the thread that builds the pipeline); one window is imputed on the
        calling thread alone.
    top_k : int
        Classes listed in each result (at most the number of classes).
    cache_dir : str, optional
        Root of the TensorRT engine caches.
    verify_checksums : bool
        Hash every file of the model directory when loading it.
    max_batch : int
        Largest batch of the TensorRT profiles (bigger calls are sliced).
    spin : bool
        Let idle ONNX Runtime threads spin-wait (see :class:`~iospstl_ros.runtime.OnnxRunner`).
    max_cached_clusters : int
        Clusters whose prepared donors stay in memory between calls (about 35 MB each for an
        NTU-sized cluster with the body slots as blocks); :meth:`warm_up` prepares the
        largest ones, and calls whose windows span more clusters re-prepare them.
    imputation : bool or {'cluster-knn', 'mean', 'none'}
        Stage 4: ``True`` / ``'cluster-knn'`` (default) as described above; ``'mean'`` fills
        every occluded coordinate with the training mean of that coordinate (the model's
        ``feature_mean``; 0 where no training window observes it), the baseline of
        benchmarks/bench_trackers.py; ``False`` / ``'none'`` skips it (the ablation "without
        imputation"): the classifier sees the occluded joints at the centre joint, as the
        stage-1 encoder does.
    skip_empty_slot : bool
        Run windows whose second slot is empty as one body where the graphs allow it (see
        the module docstring); ``False`` always runs both slots (for comparisons).

    Attributes
    ----------
    model : ModelDir
    classes : tuple of str
    providers : dict of str to str
        Provider serving each graph (``stage1_encoder``, ``classifier``).
    single_body : dict of str to bool
        Whether each graph runs an empty second slot as one body.
    """

    def __init__(self, model_dir, backend='auto', threads=1, top_k=5, cache_dir=None,
                 verify_checksums=True, max_batch=MAX_BATCH, spin=False, max_cached_clusters=4,
                 imputation=True, skip_empty_slot=True):
        if backend not in BACKENDS:
            raise ValueError(f'backend: expected one of {BACKENDS}, got {backend!r}')
        self.backend = backend
        self.threads = check_int('threads', threads)
        # Threads, on purpose: ONNX Runtime runs each graph on `threads`; the imputation of a
        # few windows of a cluster runs on the calling thread (no pool, no BLAS), and more at
        # once (offline batches) on numba's pool and numpy's BLAS, limited to `threads` as well
        # (numba's here, BLAS's while a batch is imputed: see run).
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        self.top_k = check_int('top_k', top_k)
        if isinstance(imputation, (bool, np.bool_)):
            imputation = 'cluster-knn' if imputation else 'none'
        if imputation not in IMPUTATION_MODES:
            raise ValueError(f'imputation: expected True, False or one of '
                             f'{", ".join(IMPUTATION_MODES)}, got {imputation!r}')
        self.imputation = imputation
        if isinstance(model_dir, ModelDir):
            self.model = model_dir
        else:
            self.model = load_model_dir(model_dir, verify_checksums=verify_checksums,
                                        max_cached_clusters=max_cached_clusters)
        model = self.model
        self.classes = model.classes
        self._stage1 = open_runner(model.stage1_path, backend, self.threads,
                                   model.checksums[STAGE1_FILE], cache_dir,
                                   max_batch=max_batch, spin=spin)
        self._classifier = open_runner(model.classifier_path, backend, self.threads,
                                       model.checksums[CLASSIFIER_FILE], cache_dir,
                                       max_batch=max_batch, spin=spin)
        self.providers = {'stage1_encoder': self._stage1.provider,
                          'classifier': self._classifier.provider}
        expected = (NUM_CHANNELS, model.window_frames, NUM_JOINTS, MAX_BODIES)
        for runner, size, what in ((self._stage1, model.embedding_dim, 'embedding size'),
                                   (self._classifier, model.num_classes, 'class count')):
            name = os.path.basename(runner.path)
            if tuple(runner.sample_shape) != expected:
                raise ValueError(f'{runner.path}: input shape (N, {runner.sample_shape}), '
                                 f'expected (N, {expected})')
            got = runner.output_shape[1] if len(runner.output_shape) == 2 else None
            if got != size:
                raise ValueError(f'{runner.path}: output shape {runner.output_shape}, but '
                                 f'metadata.json gives the {what} as {size} ({name})')
        # The output of an empty slot, once: what the second slot adds to a lone body's.
        self._empty = {}
        for runner in (self._stage1, self._classifier):
            if skip_empty_slot and getattr(runner, 'single_body', False):
                empty = np.zeros((1,) + expected[:-1] + (1,), np.float32)
                self._empty[runner] = runner.run(empty)[0]
        self.single_body = {'stage1_encoder': self._stage1 in self._empty,
                            'classifier': self._classifier in self._empty}

    def _run_graph(self, runner, x):
        """Run a graph on (N, 3, T, 25, 2) windows, an empty second slot as one body."""
        empty = self._empty.get(runner)
        if empty is None:
            return runner.run(x)
        alone = ~x[..., 1].reshape(len(x), -1).any(axis=1)
        if not alone.any():
            return runner.run(x)
        if alone.all():
            return (runner.run(x[..., :1]) + empty) * np.float32(0.5)
        out = np.empty((len(x),) + empty.shape, np.float32)
        out[alone] = (runner.run(x[alone][..., :1]) + empty) * np.float32(0.5)
        out[~alone] = runner.run(x[~alone])
        return out

    def warm_up(self, batch_sizes=(1,)):
        """Run synthetic windows through every stage (allocations, kernels, engines, bank).

        The imputer's compiled kernels are compiled, or loaded from numba's cache
        (:func:`~iospstl_ros.imputation.compile_kernels`), and the largest clusters of the KNN
        bank, as many as it keeps, are prepared (see :meth:`ClusterBank.prepare`), so that no
        window waits for either.

        Parameters
        ----------
        batch_sizes : sequence of int
            Batch sizes to prepare (TensorRT tunes per shape).

        Returns
        -------
        prepared : list of int
            The clusters of the bank now prepared (none without imputation).
        """
        knn = self.imputation == 'cluster-knn'
        if knn:
            compile_kernels()
        frames = self.model.window_frames
        rng = np.random.default_rng(0)
        for n in batch_sizes:
            xyz = rng.normal(0.0, 0.3, (n, NUM_CHANNELS, frames, NUM_JOINTS, 1))
            occluded = np.zeros((n, frames, NUM_JOINTS, 1), bool)
            occluded[:, :, 13:16] = True
            present = np.ones((n, frames, 1), bool)
            self.run((xyz, occluded, present))
        return self.model.bank.prepare() if knn else []

    def _prepare(self, index, xyz, occluded, present):
        xyz = np.asarray(xyz)
        if xyz.ndim != 4 or xyz.shape[-1] not in (1, MAX_BODIES):
            raise ValueError(f'window {index}: expected xyz of shape (3, T, {NUM_JOINTS}, M) '
                             f'with M = 1 or {MAX_BODIES}, got {xyz.shape}')
        try:
            window = preprocess_sequence(xyz, np.asarray(occluded), np.asarray(present),
                                         window=self.model.window_frames,
                                         align_shoulders=self.model.align_shoulders)
        except ValueError as error:
            raise ValueError(f'window {index}: {error}') from error
        data, hidden, alive = window
        if data.shape[-1] < MAX_BODIES:  # an absent second body: zeros, as in training
            pad = MAX_BODIES - data.shape[-1]
            data = np.concatenate([data, np.zeros(data.shape[:-1] + (pad,), np.float32)], -1)
            hidden = np.concatenate([hidden, np.zeros(hidden.shape[:-1] + (pad,), bool)], -1)
            alive = np.concatenate([alive, np.zeros(alive.shape[:-1] + (pad,), bool)], -1)
        return data, hidden, alive, xyz.shape[-1]

    def run(self, windows):
        """Recognise the action of each window.

        Parameters
        ----------
        windows : sequence of (xyz, occluded, present), or one triple of batched arrays
            Per window, camera-space frames ``xyz`` (3, T, 25, M) float (values at occluded
            joints and absent bodies are ignored), ``occluded`` (T, 25, M) bool and ``present``
            (T, M) bool, M = 1 or 2 (see :func:`split_windows`).

        Returns
        -------
        list of ActionResult
            One per window, in order.

        Raises
        ------
        ValueError
            On a malformed window (the message names it).
        """
        items = split_windows(windows)
        if not items:
            return []
        started = time.perf_counter()
        prepared = [self._prepare(i, *item) for i, item in enumerate(items)]
        data = np.stack([p[0] for p in prepared])
        occluded = np.stack([p[1] for p in prepared])
        present = np.stack([p[2] for p in prepared])
        bodies = [p[3] for p in prepared]
        marks = [time.perf_counter()]
        embeddings = self._run_graph(self._stage1, fill_occluded(data, occluded, 0.0))
        marks.append(time.perf_counter())
        clusters = self.model.bank.assign(embeddings)
        marks.append(time.perf_counter())
        if self.imputation == 'cluster-knn':
            few = len(items) <= DIRECT_MAX_ROWS         # then no BLAS: skip the limit's cost
            with contextlib.nullcontext() if few else threadpool_limits(self.threads, 'blas'):
                completed, _ = complete_windows(data, occluded, present, bank=self.model.bank,
                                                clusters=clusters,
                                                n_neighbors=self.model.n_neighbors,
                                                feature_mean=self.model.feature_mean)
        elif self.imputation == 'mean':
            mean = np.nan_to_num(self.model.feature_mean.reshape(data.shape[1:]), nan=0.0)
            hidden = (occluded & present[:, :, None, :])[:, None]
            completed = np.where(hidden, mean, fill_occluded(data, occluded, 0.0))
            completed = completed.astype(np.float32)
        else:
            completed = fill_occluded(data, occluded, 0.0)
        marks.append(time.perf_counter())
        probabilities = softmax(self._run_graph(self._classifier, completed))
        marks.append(time.perf_counter())
        bounds = [started] + marks
        timings = {stage: 1000.0 * (b - a) for stage, a, b in zip(STAGES, bounds, bounds[1:])}
        timings['total'] = 1000.0 * (marks[-1] - started)
        imputed_counts = (occluded & present[:, :, None, :]).sum(axis=(1, 2, 3))
        if self.imputation == 'none':
            imputed_counts[:] = 0
        k = min(self.top_k, len(self.classes))
        results = []
        for n, p in enumerate(probabilities):
            order = np.argsort(-p, kind='stable')[:k]
            best = int(order[0])
            results.append(ActionResult(
                label=self.classes[best], class_index=best, confidence=float(p[best]),
                top_k=tuple((self.classes[i], float(p[i])) for i in order),
                imputed=np.ascontiguousarray(completed[n, ..., :bodies[n]]),
                num_imputed_joints=int(imputed_counts[n]), cluster=int(clusters[n]),
                timings_ms=dict(timings), batch_size=len(items)))
        return results
