"""NaN-aware K-nearest-neighbour imputation and the per-cluster donor bank (paper Sec. III-D).

The reference code fills occluded coordinates with one scikit-learn ``KNNImputer(n_neighbors=5,
weights='distance')`` per KMeans cluster (OPSTL_REFERENCE.md Sec. 3). :func:`nan_knn_impute`
gives the same numbers without scikit-learn and much faster; :class:`ClusterBank` keeps every
cluster's donors in one array keyed by cluster id, so a sample of cluster k is only ever filled
from cluster k's donors (which fixes the reference's shared-imputer bug).

Rows are flattened samples: a sample ``x`` of shape ``(C, T, V, M)`` (see
:mod:`iospstl_ros.layout`) becomes ``x.reshape(-1)``, ``d = C * T * V * M`` features, NaN where a
joint is occluded.

The rule, for each missing value of a receiver row (scikit-learn's):

1. Distance to a donor row: ``sqrt(d / p * sum((a - b) ** 2))`` over the ``p`` features both
   rows observe; NaN when they share none.
2. Candidates are the donors that observe the missing feature and have a finite distance. The
   ``n_neighbors`` nearest are used (exact ties: lowest donor row first); if fewer exist, all.
3. Weights ``1 / distance``; if any chosen donor is at distance 0, only the donors at distance 0
   count, with equal weight. The value is the weighted mean of the donors' values.
4. If donors observe the feature but all their distances are NaN, the value is the feature's
   mean over the donors that observe it.
5. If no donor observes the feature, the value stays NaN and is counted as unfilled; the caller
   chooses the fallback (scikit-learn drops such a feature, or sets it to 0).

How it is computed. Features that are always missing together (a joint's x, y, z) form a
*group*, found from the NaN pattern or given; donors are chosen once per missing group. Each
receiver-donor distance is first *approximated*, with a rigorous bound on its error: for a few
receivers (one online window) by compiled float32 sums of squared differences (relative error
at most ``(d + 8) * eps``, whatever the summation order), for many by float32 BLAS products
``|a|^2 + |b|^2 - 2 a.b`` on centred values (error at most ``(d + G + 16) * eps`` times the
rows' squared norms, whatever the BLAS kernel). One compiled loop then, per receiver, orders
the donors by the lower end of their bounds and, per missing group, walks that order until no
further observer can be nearer than the k-th smallest upper bound. The distances of the
donors so found are *recomputed exactly* (float64 sums), and the choice, the zero-distance rule
and the weights use only those. So the result does not depend on the CPU or the BLAS: it is
scikit-learn's float64 result on the same (float32 or float64) values, to float64 rounding.

With the body slots as ``blocks`` (:func:`coordinate_blocks`), a receiver's block of observed
zeros (an absent body) adds each donor's block total, computed once, instead of a sum.
"""

from collections import OrderedDict
import contextlib
import json
import os

from iospstl_ros.layout import MAX_BODIES, NUM_CHANNELS, NUM_JOINTS
import numba
import numpy as np

BANK_FORMAT = 'iospstl-cluster-bank'
BANK_FORMAT_VERSION = 1
#: Receivers up to which distances are summed directly, on one thread (an online call).
DIRECT_MAX_ROWS = 8
#: Largest set imputed from itself with one symmetric product (m x m arrays); larger sets go
#: in chunks of receivers.
SYMMETRIC_MAX_ROWS = 4096
#: Unit roundoff of float32.
_EPS32 = float(np.finfo(np.float32).eps) / 2
#: Donor rows validated and converted per step when a bank is built.
_ROWS_PER_STEP = 512
#: fastmath flags that keep NaN and inf semantics (NaN marks a missing value); they let LLVM
#: vectorise the reductions.
_FAST = {'reassoc', 'contract', 'nsz', 'arcp'}


def coordinate_groups(num_frames, num_joints=NUM_JOINTS, num_bodies=MAX_BODIES):
    """Group of every feature of a flattened ``(C, T, V, M)`` sample: one group per (t, v, m).

    Parameters
    ----------
    num_frames, num_joints, num_bodies : int
        T, V and M.

    Returns
    -------
    groups : ndarray of shape (3 * T * V * M,), int64
        ``groups[i]`` is the index ``(t * V + v) * M + m`` of the joint that feature ``i``
        belongs to; x, y and z of a joint share it.
    """
    per_channel = int(num_frames) * int(num_joints) * int(num_bodies)
    if per_channel < 1:
        raise ValueError('expected num_frames, num_joints and num_bodies >= 1, got '
                         f'{num_frames}, {num_joints}, {num_bodies}')
    return np.tile(np.arange(per_channel, dtype=np.int64), NUM_CHANNELS)


def coordinate_blocks(num_frames, num_joints=NUM_JOINTS, num_bodies=MAX_BODIES):
    """Body slot of every feature of a flattened ``(C, T, V, M)`` sample, for ``blocks``.

    Parameters as in :func:`coordinate_groups`.

    Returns
    -------
    blocks : ndarray of shape (3 * T * V * M,), int64
        ``blocks[i]`` is the body slot m of feature ``i``.
    """
    return coordinate_groups(num_frames, num_joints, num_bodies) % int(num_bodies)


# Validation -----------------------------------------------------------------------------------


def _check_rows(name, x, n_features=None):
    """Validate a 2-D float array (NumPy array, memory map or nested list)."""
    x = x if isinstance(x, np.ndarray) else np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f'{name}: expected a 2-D array (n_samples, n_features), got shape '
                         f'{x.shape}; reshape one sample with x.reshape(1, -1)')
    if x.dtype.kind != 'f':
        raise ValueError(f'{name}: expected a float array with NaN for missing values, got '
                         f'dtype {x.dtype}')
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f'{name}: expected {n_features} features, got shape {x.shape}')
    return x


def _check_finite(name, x, first_row=0):
    """Raise if a value is infinite (NaN is allowed: it marks a missing value)."""
    bad = np.isinf(x)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f'{name} row {first_row + row}: expected finite values or NaN, got '
                         f'inf at feature {column}')


def _check_count(name, value):
    """Validate a setting that must be an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f'{name}: expected an int >= 1, got {value!r}')
    return int(value)


def _check_labels(name, labels, n_features):
    """Validate ``groups`` or ``blocks``: one int per feature."""
    labels = np.asarray(labels)
    if labels.shape != (n_features,) or (labels.size and labels.dtype.kind not in 'iu'):
        raise ValueError(f'{name}: expected an int array of shape ({n_features},), got '
                         f'{labels.dtype} {labels.shape}')
    return labels.astype(np.int64)


def missing_groups(missing):
    """Find the groups of features that are always missing together, from a NaN pattern.

    Parameters
    ----------
    missing : ndarray of shape (n, d), bool

    Returns
    -------
    groups : ndarray of shape (d,), int64
        Features with the same column of ``missing`` share a group.
    """
    columns = np.ascontiguousarray(np.asarray(missing, dtype=bool).T)
    packed = np.packbits(columns, axis=1)                   # (d, ceil(n / 8)): one key each
    keys = packed.view(np.dtype((np.void, packed.shape[1])))[:, 0]
    return np.unique(keys, return_inverse=True)[1].reshape(-1).astype(np.int64)


class _Layout:
    """Work order of the features: by block, then group, so each group is a slice.

    Attributes: ``order`` (work position -> feature), ``inverse``, ``group_ptr`` (G + 1
    slice bounds), ``block_ptr`` (B + 1), ``group_block`` (block of each group).
    """

    def __init__(self, groups, blocks, n_features):
        groups = (np.arange(n_features) if groups is None
                  else _check_labels('groups', groups, n_features))
        blocks = (np.zeros(n_features, np.int64) if blocks is None
                  else _check_labels('blocks', blocks, n_features))
        self.order = np.lexsort((np.arange(n_features), groups, blocks))
        self.inverse = np.argsort(self.order)
        g, b = groups[self.order], blocks[self.order]
        starts = np.flatnonzero(np.diff(g) | np.diff(b)) + 1
        if len(starts) + 1 != len(np.unique(groups)):
            split = g[starts[np.isin(g[starts], g[starts - 1])][0]]
            members = np.flatnonzero(groups == split)
            raise ValueError(f'groups: features {members[:6].tolist()} form one group but lie '
                             f'in blocks {np.unique(blocks[members]).tolist()}')
        self.group_ptr = np.concatenate([[0], starts, [n_features]]).astype(np.int64)
        self.block_ptr = np.concatenate([[0], np.flatnonzero(np.diff(b)) + 1,
                                         [n_features]]).astype(np.int64)
        self.group_block = (np.searchsorted(self.block_ptr, self.group_ptr[:-1], 'right')
                            - 1).astype(np.int64)
        self.sizes = np.diff(self.group_ptr)

    def to_work(self, rows, dtype):
        """Rows in work order, as a new C-contiguous array of ``dtype``."""
        return _take_columns(np.asarray(rows, dtype=dtype), self.order)


def _raise_partial(layout, work, name, row_numbers):
    """Raise if a row of ``work`` (values in work order) has a group only partly missing.

    ``row_numbers`` gives the caller's number of each row of ``work``, for the message.
    """
    count = np.add.reduceat(np.isnan(work), layout.group_ptr[:-1], axis=1)
    partial = (count > 0) & (count < layout.sizes)
    if partial.any():
        row, group = np.argwhere(partial)[0]
        features = np.sort(layout.order[layout.group_ptr[group]:layout.group_ptr[group + 1]])
        raise ValueError(f'{name} row {row_numbers[row]}: features {features[:6].tolist()} '
                         'form one group but only some of them are missing; check groups, or '
                         'leave groups out to find them from the NaN pattern')


# Compiled kernels -----------------------------------------------------------------------------


@numba.njit(parallel=True, cache=True)
def _take_columns(x, columns):
    """``x[:, columns]`` (a new C-contiguous array)."""
    out = np.empty((x.shape[0], len(columns)), x.dtype)
    for i in numba.prange(x.shape[0]):
        for f in range(len(columns)):
            out[i, f] = x[i, columns[f]]
    return out


@numba.njit(cache=True)
def _column_means(x):
    """Mean of each column over its observed (not NaN) values; NaN where there is none."""
    total, count = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for i in range(x.shape[0]):
        for f in range(x.shape[1]):
            if x[i, f] == x[i, f]:
                total[f] += x[i, f]
                count[f] += 1
    return total / count


@numba.njit(fastmath=_FAST, cache=True)
def _squares32(x, y):
    """float32 sum of squared differences over features both observe, and their count."""
    total, count = np.float32(0.0), 0
    for f in range(x.shape[0]):
        t = np.float32(x[f] - y[f])
        seen = t == t
        total += t * t if seen else np.float32(0.0)
        count += seen
    return total, count


@numba.njit(fastmath=_FAST, cache=True)
def _squares64(x, y):
    """float64 sum of squared differences over features both observe, and their count."""
    total, count = 0.0, 0
    for f in range(x.shape[0]):
        t = np.float64(x[f]) - np.float64(y[f])
        seen = t == t
        total += t * t if seen else 0.0
        count += seen
    return total, count


@numba.njit(cache=True)
def _zero_blocks(row, block_ptr):
    """Blocks of a receiver row that are all observed zeros (an absent body)."""
    zero = np.ones(len(block_ptr) - 1, np.bool_)
    for b in range(len(zero)):
        for f in range(block_ptr[b], block_ptr[b + 1]):
            if row[f] != 0.0:                   # NaN and non-zero both end the block
                zero[b] = False
                break
    return zero


@numba.njit(cache=True)
def _exact(x, y, zero, block_ptr, block_squares, block_counts, n_features):
    """Squared distance of rows x and y (float64 sums; inf when they share no feature).

    A block in which x is all observed zeros adds y's precomputed block total.
    """
    total, count = 0.0, 0
    for b in range(len(zero)):
        if zero[b]:
            total += block_squares[b]
            count += block_counts[b]
        else:
            lo, hi = block_ptr[b], block_ptr[b + 1]
            s, c = _squares64(x[lo:hi], y[lo:hi])
            total += s
            count += c
    return total * n_features / count if count > 0 else np.inf


@numba.njit(parallel=True, cache=True)
def _direct(receivers, donors, block_ptr, block_squares, block_counts):
    """Approximate squared distances by float32 sums, and their error bounds."""
    n, m, d = receivers.shape[0], donors.shape[0], receivers.shape[1]
    approx = np.empty((n, m), np.float32)
    error = np.empty((n, m), np.float32)
    bound = np.float32((d + 8) * _EPS32)
    zero = np.empty((n, len(block_ptr) - 1), np.bool_)
    for i in range(n):
        zero[i] = _zero_blocks(receivers[i], block_ptr)
    for p in numba.prange(n * m):
        i, j = p // m, p % m
        total, count = np.float32(0.0), 0
        for b in range(zero.shape[1]):
            if zero[i, b]:
                total += np.float32(block_squares[j, b])
                count += block_counts[j, b]
            else:
                lo, hi = block_ptr[b], block_ptr[b + 1]
                s, c = _squares32(receivers[i, lo:hi], donors[j, lo:hi])
                total += s
                count += c
        if count > 0:
            approx[i, j] = total * np.float32(d) / np.float32(count)
            error[i, j] = approx[i, j] * bound
        else:
            approx[i, j], error[i, j] = np.inf, 0.0
    return approx, error


@numba.njit(parallel=True, cache=True)
def _summarise(values, centre, group_ptr, group_block, n_blocks, with_centred):
    """Summarise rows about ``centre`` for the distances.

    Per row: per group observed (0/1) and sum of centred squares, per block float64 sum of
    squares and count of observed values, whether a group is partly missing, and (if
    ``with_centred``, else an empty array) the centred float32 values, 0 where missing.
    """
    n, n_groups = values.shape[0], len(group_ptr) - 1
    centred = np.empty(values.shape if with_centred else (0, 0), np.float32)
    observed = np.empty((n, n_groups), np.float32)
    squares = np.empty((n, n_groups), np.float32)
    block_squares = np.zeros((n, n_blocks))
    block_counts = np.zeros((n, n_blocks), np.int64)
    partial = np.zeros(n, np.bool_)
    for i in numba.prange(n):
        for g in range(n_groups):
            seen, square = 0, np.float32(0.0)
            for f in range(group_ptr[g], group_ptr[g + 1]):
                v = values[i, f]
                z = np.float32(v - centre[f]) if v == v else np.float32(0.0)
                if with_centred:
                    centred[i, f] = z
                if v == v:
                    square += z * z
                    block_squares[i, group_block[g]] += np.float64(v) * np.float64(v)
                    seen += 1
            observed[i, g] = seen > 0
            squares[i, g] = square
            block_counts[i, group_block[g]] += seen
            partial[i] |= 0 < seen < group_ptr[g + 1] - group_ptr[g]
    return centred, observed, squares, block_squares, block_counts, partial


@numba.njit(parallel=True, cache=True)
def _select(receivers, donors, approx, error, group_ptr, observers, mean, block_ptr,
            block_squares, block_counts, n_neighbors, out):
    """Fill the missing groups of each receiver (rows of ``out``) by the rule.

    approx, error : (n, m) approximate squared distances (inf: no shared feature) and bounds.
    observers : (G, m) bool, donor j observes group g. Returns the values left NaN per row.
    """
    n, m = approx.shape
    d, k = receivers.shape[1], n_neighbors
    unfilled = np.zeros(n, np.int64)
    for i in numba.prange(n):
        lower = approx[i] - error[i]
        order = np.argsort(lower, kind='mergesort')
        zero = _zero_blocks(receivers[i], block_ptr)
        exact = np.full(m, -1.0)                # exact squared distances, computed on demand
        found = np.empty(m, np.int64)
        dist = np.empty(m)
        upper = np.empty(k)                     # k smallest upper bounds so far, ascending
        weights = np.empty(k)
        for g in range(len(group_ptr) - 1):
            lo, hi = group_ptr[g], group_ptr[g + 1]
            if receivers[i, lo] == receivers[i, lo]:
                continue                        # observed
            # Observers in order of their lower bound, until none can be among the k nearest.
            upper[:] = np.inf
            n_found = 0
            for p in range(m):
                j = order[p]
                if lower[j] == np.inf or lower[j] > upper[k - 1]:
                    break
                if observers[g, j]:
                    found[n_found] = j
                    n_found += 1
                    u = approx[i, j] + error[i, j]
                    q = k - 1
                    while q > 0 and upper[q - 1] > u:
                        upper[q] = upper[q - 1]
                        q -= 1
                    if upper[q] > u:
                        upper[q] = u
            if n_found == 0:
                if observers[g].any():          # rule 4: all distances undefined
                    out[i, lo:hi] = mean[lo:hi]
                else:                           # rule 5: no donor observes the group
                    unfilled[i] += hi - lo
                continue
            for c in range(n_found):
                j = found[c]
                if exact[j] < 0:
                    exact[j] = _exact(receivers[i], donors[j], zero, block_ptr,
                                      block_squares[j], block_counts[j], d)
                dist[c] = exact[j]
            chosen = min(k, n_found)
            for r in range(chosen):             # the k nearest by (distance, donor row)
                best = r
                for c in range(r + 1, n_found):
                    if dist[c] < dist[best] or (dist[c] == dist[best] and found[c] < found[best]):
                        best = c
                found[r], found[best] = found[best], found[r]
                dist[r], dist[best] = dist[best], dist[r]
            for r in range(chosen):
                if dist[0] == 0.0:
                    weights[r] = 1.0 if dist[r] == 0.0 else 0.0
                else:
                    weights[r] = 1.0 / np.sqrt(dist[r])
            total = weights[:chosen].sum()
            for f in range(lo, hi):
                value = 0.0
                for r in range(chosen):
                    value += weights[r] * donors[found[r], f]
                out[i, f] = value / total
    return unfilled


# Donors and distances -------------------------------------------------------------------------


class _Donors:
    """Donor rows prepared once (a cluster of the bank): work-order values and summaries.

    ``centred`` (what the products of many receivers need, as much memory as ``values``) is
    made only ``for_products``, or later by :meth:`add_centred`.
    """

    def __init__(self, rows, layout, dtype, name='donors', for_products=False):
        self.layout = layout
        self.values = layout.to_work(rows, dtype)
        self.mean = _column_means(self.values).astype(dtype)   # NaN where none observes
        self.centre = np.nan_to_num(self.mean)
        (self.centred, self.observed, self.squares, self.block_squares, self.block_counts,
         partial) = self._summarise(self.values, for_products)
        if partial.any():
            row = int(np.argmax(partial))
            _raise_partial(layout, self.values[row:row + 1], name, [row])
        self.observers = np.ascontiguousarray(self.observed.T, dtype=np.bool_)   # (G, m)
        self.norms = self.squares.sum(axis=1)

    def _summarise(self, rows, with_centred):
        """Summaries of rows about the donors' centre (see :func:`_summarise`)."""
        layout = self.layout
        return _summarise(rows, self.centre, layout.group_ptr, layout.group_block,
                          len(layout.block_ptr) - 1, with_centred)

    def add_centred(self):
        """Make ``centred`` if it is missing."""
        if self.centred.size == 0 and self.values.size:
            self.centred = self._summarise(self.values, True)[0]


def _products(x_centred, x_observed, x_squares, donors, symmetric):
    """Approximate squared distances by float32 BLAS products, and their error bounds."""
    layout = donors.layout
    d, n_groups = len(layout.order), len(layout.sizes)
    squared = x_squares @ donors.observed.T
    if symmetric:
        squared += squared.T
        squared -= 2 * (x_centred @ x_centred.T)
    else:
        squared += x_observed @ donors.squares.T
        squared -= 2 * (x_centred @ donors.centred.T)
    if (layout.sizes == layout.sizes[0]).all():     # equal groups (a skeleton's joints)
        count = x_observed @ x_observed.T if symmetric else x_observed @ donors.observed.T
        count *= np.float32(layout.sizes[0])
    else:
        count = (x_observed * layout.sizes.astype(np.float32)) @ donors.observed.T
    np.maximum(squared, 0, out=squared)
    undefined = count == 0
    scale = np.float32(d) / np.where(undefined, np.float32(1), count)
    error = np.add.outer(x_squares.sum(axis=1), donors.norms)
    # BLAS rounding of the cross term (d products), of the group sums (G) and of the squares
    # within a group (the largest group), plus the centring and the final steps.
    bound = (d + n_groups + layout.sizes.max() + 16) * _EPS32
    error *= np.float32(bound) * scale
    squared *= scale
    squared[undefined] = np.inf
    error[undefined] = 0
    return squared, error


@contextlib.contextmanager
def _one_thread():
    """Run the compiled kernels on one thread (a few receivers: no fork and join)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def _impute(donors, receivers, n_neighbors, chunk_size, same=False):
    """Impute receivers (rows in the caller's order) from prepared donors.

    ``same``: the receivers are the donors (a set imputed from itself).
    """
    layout, n = donors.layout, len(receivers)
    out = np.empty(receivers.shape, np.result_type(receivers.dtype, np.float32))
    symmetric = same and DIRECT_MAX_ROWS < n <= SYMMETRIC_MAX_ROWS
    step = n if symmetric else chunk_size
    unfilled = 0
    for start in range(0, n, step):
        stop = min(n, start + step)
        if same:
            rows = donors.values[start:stop]
        else:
            chunk = np.asarray(receivers[start:stop])
            _check_finite('receivers', chunk, start)
            rows = layout.to_work(chunk, donors.values.dtype)
            _raise_partial(layout, rows, 'receivers', range(start, stop))
        direct = len(rows) <= DIRECT_MAX_ROWS
        if not direct:
            donors.add_centred()
        with _one_thread() if direct else contextlib.nullcontext():
            if direct:
                approx, error = _direct(rows, donors.values, layout.block_ptr,
                                        donors.block_squares, donors.block_counts)
            elif same:
                approx, error = _products(donors.centred[start:stop],
                                          donors.observed[start:stop],
                                          donors.squares[start:stop], donors, symmetric)
            else:
                centred, observed, squares = donors._summarise(rows, True)[:3]
                approx, error = _products(centred, observed, squares, donors, False)
            filled = rows.copy()
            unfilled += int(_select(rows, donors.values, approx, error, layout.group_ptr,
                                    donors.observers, donors.mean, layout.block_ptr,
                                    donors.block_squares, donors.block_counts, n_neighbors,
                                    filled).sum())
        out[start:stop] = _take_columns(filled, layout.inverse)
    return out, unfilled


def compile_kernels():
    """Compile (or load from numba's cache) the kernels for float32 rows; returns seconds.

    The first call in a process takes about 10 s on a new machine and about 0.5 s once numba
    has cached the kernels; without it, the first imputation pays that.
    """
    import time
    started = time.perf_counter()
    rows = np.array([[0.0, 1.0, np.nan, 0.0], [1.0, 2.0, 3.0, 0.0], [2.0, np.nan, 4.0, 0.0]],
                    np.float32)
    for n in (1, DIRECT_MAX_ROWS + 1):
        receivers = np.repeat(rows[:1], n, axis=0)
        nan_knn_impute(receivers, rows, 2, groups=[0, 1, 2, 3], blocks=[0, 0, 0, 1])
    return time.perf_counter() - started


def nan_knn_impute(receivers, donors, n_neighbors=5, *, groups=None, blocks=None,
                   chunk_size=256, return_unfilled=False):
    """Fill NaN in ``receivers`` from the nearest ``donors``, as scikit-learn's KNNImputer.

    Gives ``KNNImputer(n_neighbors=n_neighbors, weights='distance').fit(donors)
    .transform(receivers)`` by the rule in the module docstring, except that a feature no
    donor observes stays NaN and is counted instead of being dropped.

    Parameters
    ----------
    receivers : ndarray of shape (n, d), float
        Rows to complete, NaN where missing. May be a memory map; it is not modified.
    donors : ndarray of shape (m, d), float
        Rows to take values from, NaN where missing. May be a memory map or float16. Passing
        the receivers array itself imputes a set from itself (symmetric products).
    n_neighbors : int
        Donors averaged per missing value.
    groups : ndarray of shape (d,), int, optional
        Group of each feature, for features always missing together (see
        :func:`coordinate_groups`); by default found from the NaN pattern of both arrays
        (:func:`missing_groups`), which gives the same result. A row in which a given group
        is only partly missing raises ValueError.
    blocks : ndarray of shape (d,), int, optional
        Block of each feature (each group inside one block), such as the body slots of
        :func:`coordinate_blocks`; only faster: a receiver's block of observed zeros (an
        absent body) costs one precomputed term per donor.
    chunk_size : int
        Receivers whose distances are held at once: memory beyond the inputs and the output
        is about ``8 * m * d`` bytes for the prepared donors plus ``12 * chunk_size * m`` (or
        ``12 * m * m`` for a set imputed from itself).
    return_unfilled : bool
        Also return the number of values left NaN.

    Returns
    -------
    imputed : ndarray of shape (n, d)
        float32 for float16/float32 receivers, float64 for float64; NaN only where no donor
        observes the feature.
    n_unfilled : int
        Number of values left NaN; only when ``return_unfilled`` is True.

    Raises
    ------
    ValueError
        If an array is not 2-D float, the feature counts differ, a value is infinite,
        ``groups`` or ``blocks`` does not fit, or ``n_neighbors`` / ``chunk_size`` < 1.
    """
    same = receivers is donors
    receivers = _check_rows('receivers', receivers)
    donors = _check_rows('donors', donors, receivers.shape[1])
    n_neighbors = _check_count('n_neighbors', n_neighbors)
    chunk_size = _check_count('chunk_size', chunk_size)
    if groups is None:
        missing = np.isnan(donors) if same else np.concatenate([np.isnan(receivers),
                                                               np.isnan(donors)])
        groups = missing_groups(missing)
        if blocks is not None:      # a pattern shared across blocks: one group per block
            blocks = _check_labels('blocks', blocks, receivers.shape[1])
            groups = np.unique(np.stack([groups, blocks]), axis=1, return_inverse=True)[1]
    layout = _Layout(groups, blocks, receivers.shape[1])
    dtype = np.float64 if np.float64 in (receivers.dtype, donors.dtype) else np.float32
    _check_finite('donors', donors)
    prepared = _Donors(donors, layout, dtype, for_products=len(receivers) > DIRECT_MAX_ROWS)
    imputed, unfilled = _impute(prepared, receivers, n_neighbors, chunk_size, same)
    return (imputed, unfilled) if return_unfilled else imputed


# The bank -------------------------------------------------------------------------------------


class ClusterBank:
    """Donor rows of every cluster in one array, with the centroids that assign new samples.

    Cluster k's donors are rows ``offsets_[k]:offsets_[k + 1]`` of ``donors_``; a receiver
    assigned to cluster k is imputed from those rows only (:func:`nan_knn_impute`'s rule).

    A cluster's donors are prepared (float32 in work order, with their summaries: about
    ``8 * n_k * d`` bytes, 40 MB for 667 NTU windows) on first use, or ahead of it by
    :meth:`prepare`, and cached; the cache makes the object unsafe to share between threads.

    Parameters
    ----------
    groups : ndarray of shape (d,), int, optional
        Group of each feature, as in :func:`nan_knn_impute`; saved with the bank. Without
        it every feature is its own group (right, but slower).
    blocks : ndarray of shape (d,), int, optional
        Block of each feature, as in :func:`nan_knn_impute` (only a speed-up; not saved:
        pass it to :meth:`load` or :meth:`set_blocks`).
    chunk_size : int
        Receivers imputed together.
    max_cached_clusters : int
        Clusters whose prepared donors are kept between calls.

    Attributes
    ----------
    centroids_ : ndarray of shape (K, e), float32
    donors_ : ndarray of shape (n_bank, d), float16 or float32
        NaN where missing; grouped by cluster, original order within a cluster.
    offsets_ : ndarray of shape (K + 1,), int64
    donor_index_ : ndarray of shape (n_bank,), int64
        Row of the ``donors`` passed to :meth:`from_clusters` that each bank row came from.
    n_features_in_ : int
        d.
    """

    def __init__(self, groups=None, blocks=None, chunk_size=256, max_cached_clusters=4):
        self.groups = groups
        self.blocks = blocks
        self.chunk_size = chunk_size
        self.max_cached_clusters = max_cached_clusters

    @classmethod
    def from_clusters(cls, centroids, donors, labels, *, dtype=np.float32, **settings):
        """Build a bank from KMeans centroids, donor rows and their cluster labels.

        Parameters
        ----------
        centroids : ndarray of shape (K, e), float
        donors : ndarray of shape (n_bank, d), float
            NaN where missing; may be a memory map (read in steps).
        labels : ndarray of shape (n_bank,), int
            Cluster of each donor, in ``0..K-1``.
        dtype : {numpy.float32, numpy.float16}
            Storage type of ``donors_``; computation is always float32.
        **settings
            Passed to :class:`ClusterBank`.

        Returns
        -------
        bank : ClusterBank
        """
        bank = cls(**settings)
        centroids = _check_rows('centroids', centroids)
        if not np.isfinite(centroids).all():
            raise ValueError('centroids: expected finite values')
        donors = _check_rows('donors', donors)
        labels = np.asarray(labels)
        n_clusters = len(centroids)
        if labels.shape != (len(donors),) or labels.dtype.kind not in 'iu':
            raise ValueError(f'labels: expected an int array of shape ({len(donors)},), got '
                             f'{labels.dtype} {labels.shape}')
        if labels.size and (labels.min() < 0 or labels.max() >= n_clusters):
            raise ValueError(f'labels: expected values in 0..{n_clusters - 1}, got '
                             f'{labels.min()}..{labels.max()}')
        dtype = np.dtype(dtype)
        if dtype not in (np.float16, np.float32):
            raise ValueError(f'dtype: expected float16 or float32, got {dtype}')
        layout = _Layout(bank.groups, None, donors.shape[1])
        order = np.argsort(labels, kind='stable')
        stored = np.empty(donors.shape, dtype=dtype)
        for start in range(0, len(order), _ROWS_PER_STEP):
            index = order[start:start + _ROWS_PER_STEP]
            block = np.asarray(donors[index])
            _raise_partial(layout, layout.to_work(block, np.result_type(block, np.float32)),
                           'donors', index)
            infinite = np.isinf(block).any(axis=1)
            if infinite.any():
                _check_finite('donors', block[infinite][:1], int(index[infinite][0]))
            with np.errstate(over='ignore'):
                cast = block.astype(dtype)
            if np.isinf(cast).any():
                raise ValueError(f'donors: values beyond the {dtype} range (largest '
                                 f'{np.nanmax(np.abs(block))}); store the bank as float32')
            stored[start:start + len(index)] = cast
        counts = np.bincount(labels, minlength=n_clusters)
        bank._set_state(centroids.astype(np.float32), stored,
                        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                        order.astype(np.int64))
        return bank

    def _set_state(self, centroids, donors, offsets, donor_index):
        self._layout = _Layout(self.groups, self.blocks, donors.shape[1])
        self.centroids_ = centroids
        self.donors_ = donors
        self.offsets_ = offsets
        self.donor_index_ = donor_index
        self.n_features_in_ = donors.shape[1]
        self._prepared = OrderedDict()

    def set_blocks(self, blocks):
        """Set ``blocks`` (see the class parameters) of a built or loaded bank; returns self."""
        self._check_fitted()
        self._layout = _Layout(self.groups, blocks, self.n_features_in_)
        self.blocks = blocks
        self._prepared = OrderedDict()
        return self

    def _check_fitted(self):
        if not hasattr(self, 'donors_'):
            raise ValueError('this ClusterBank holds no donors yet; build it with '
                             'ClusterBank.from_clusters or ClusterBank.load')

    @property
    def n_clusters(self):
        """Give the number of clusters K."""
        self._check_fitted()
        return len(self.centroids_)

    def cluster_donors(self, cluster):
        """Donor rows of one cluster: ndarray of shape (n_k, d), a view of ``donors_``."""
        self._check_fitted()
        if not 0 <= cluster < self.n_clusters:
            raise ValueError(f'cluster: expected 0..{self.n_clusters - 1}, got {cluster}')
        return self.donors_[self.offsets_[cluster]:self.offsets_[cluster + 1]]

    def assign(self, embeddings):
        """Nearest centroid (euclidean) of each embedding, as KMeans.predict.

        Parameters
        ----------
        embeddings : ndarray of shape (n, e), float

        Returns
        -------
        clusters : ndarray of shape (n,), int64
        """
        self._check_fitted()
        embeddings = _check_rows('embeddings', embeddings, self.centroids_.shape[1])
        if not np.isfinite(embeddings).all():
            raise ValueError('embeddings: expected finite values')
        x = np.asarray(embeddings, dtype=np.float64)
        c = self.centroids_.astype(np.float64)
        squared = (c * c).sum(axis=1) - 2.0 * (x @ c.T)
        return np.argmin(squared, axis=1).astype(np.int64)

    def _donors_of(self, cluster):
        prepared = self._prepared.get(cluster)
        if prepared is None:
            prepared = _Donors(np.asarray(self.cluster_donors(cluster)), self._layout,
                               np.float32, name=f'cluster {cluster} donors')
            self._prepared[cluster] = prepared
            while len(self._prepared) > max(0, self.max_cached_clusters):
                self._prepared.popitem(last=False)
        else:
            self._prepared.move_to_end(cluster)
        return prepared

    def prepare(self, clusters=None):
        """Prepare clusters now, as their first window would, so that no later call waits.

        Parameters
        ----------
        clusters : sequence of int, optional
            Clusters to prepare, at most ``max_cached_clusters``; the last is kept longest.
            Default: the ``max_cached_clusters`` largest non-empty clusters, the largest kept
            longest.

        Returns
        -------
        prepared : list of int
            The clusters prepared, in the order they were.
        """
        self._check_fitted()
        limit = _check_count('max_cached_clusters', self.max_cached_clusters)
        sizes = np.diff(self.offsets_)
        if clusters is None:
            by_size = np.argsort(-sizes, kind='stable')
            clusters = by_size[sizes[by_size] > 0][:limit][::-1]
        else:
            clusters = np.asarray(clusters)
            if clusters.ndim != 1 or (clusters.size and clusters.dtype.kind not in 'iu'):
                raise ValueError(f'clusters: expected a sequence of int, got {clusters.dtype} '
                                 f'{clusters.shape}')
            if clusters.size and (clusters.min() < 0 or clusters.max() >= self.n_clusters):
                raise ValueError(f'clusters: expected values in 0..{self.n_clusters - 1}, got '
                                 f'{clusters.min()}..{clusters.max()}')
            if len(clusters) > limit:
                raise ValueError(f'clusters: expected at most max_cached_clusters = {limit} '
                                 f'clusters (more would evict the first), got {len(clusters)}')
        for cluster in clusters.tolist():
            self._donors_of(cluster)
        return clusters.tolist()

    def impute(self, receivers, clusters, n_neighbors=5):
        """Fill NaN in each receiver from the donors of its cluster only.

        Parameters
        ----------
        receivers : ndarray of shape (n, d), float
            NaN where missing; not modified.
        clusters : ndarray of shape (n,), int
            Cluster of each receiver (see :meth:`assign`).
        n_neighbors : int

        Returns
        -------
        imputed : ndarray of shape (n, d)
            float32 for float16/float32 receivers, float64 for float64.
        n_unfilled : int
            Values left NaN because no donor of the receiver's cluster observes the feature.
        """
        self._check_fitted()
        receivers = _check_rows('receivers', receivers, self.n_features_in_)
        n_neighbors = _check_count('n_neighbors', n_neighbors)
        chunk_size = _check_count('chunk_size', self.chunk_size)
        clusters = np.asarray(clusters)
        if clusters.shape != (len(receivers),) or clusters.dtype.kind not in 'iu':
            raise ValueError(f'clusters: expected an int array of shape ({len(receivers)},), '
                             f'got {clusters.dtype} {clusters.shape}')
        low, high = (int(clusters.min()), int(clusters.max())) if clusters.size else (0, 0)
        if low < 0 or high >= self.n_clusters:
            raise ValueError(f'clusters: expected values in 0..{self.n_clusters - 1}, got '
                             f'{low}..{high}')
        out = np.empty(receivers.shape, dtype=np.result_type(receivers.dtype, np.float32))
        unfilled = 0
        for cluster in np.unique(clusters):
            rows = np.flatnonzero(clusters == cluster)
            part = receivers if len(rows) == len(receivers) else receivers[rows]
            out[rows], missed = _impute(self._donors_of(int(cluster)), part, n_neighbors,
                                        chunk_size)
            unfilled += missed
        return out, unfilled

    def save(self, directory):
        """Write the bank as ``.npy`` files and ``bank.json`` into ``directory`` (no pickle)."""
        self._check_fitted()
        os.makedirs(directory, exist_ok=True)
        arrays = {'centroids': self.centroids_, 'donors': self.donors_,
                  'offsets': self.offsets_, 'donor_index': self.donor_index_}
        if self.groups is not None:
            arrays['groups'] = np.asarray(self.groups, dtype=np.int64)
        for name, array in arrays.items():
            np.save(os.path.join(directory, f'{name}.npy'), np.asarray(array))
        meta = {'format': BANK_FORMAT, 'format_version': BANK_FORMAT_VERSION,
                'n_clusters': int(self.n_clusters), 'n_features': int(self.n_features_in_),
                'n_donors': int(len(self.donors_)), 'dtype': self.donors_.dtype.name,
                'arrays': sorted(arrays)}
        with open(os.path.join(directory, 'bank.json'), 'w') as f:
            json.dump(meta, f, indent=2, sort_keys=True)

    @classmethod
    def load(cls, directory, mmap=True, **settings):
        """Read a bank written by :meth:`save`.

        Parameters
        ----------
        directory : str
        mmap : bool
            Memory-map ``donors.npy`` (read-only) instead of reading it into memory.
        **settings
            ``blocks``, ``chunk_size`` and ``max_cached_clusters``; ``groups`` comes from the
            files.

        Returns
        -------
        bank : ClusterBank

        Raises
        ------
        ValueError
            If a file is missing, of another format version, or the arrays disagree.
        """
        meta_path = os.path.join(directory, 'bank.json')
        if not os.path.exists(meta_path):
            raise ValueError(f'{directory}: no bank.json; expected a directory written by '
                             'ClusterBank.save')
        with open(meta_path) as f:
            meta = json.load(f)
        if (meta.get('format'), meta.get('format_version')) != (BANK_FORMAT,
                                                                BANK_FORMAT_VERSION):
            raise ValueError(f'{meta_path}: expected format {BANK_FORMAT} '
                             f'v{BANK_FORMAT_VERSION}, got {meta.get("format")} '
                             f'v{meta.get("format_version")}')

        def load(name, mode=None):
            path = os.path.join(directory, f'{name}.npy')
            if not os.path.exists(path):
                raise ValueError(f'{path}: missing')
            return np.load(path, mmap_mode=mode, allow_pickle=False)

        k, d, n = meta['n_clusters'], meta['n_features'], meta['n_donors']
        arrays = {'centroids': load('centroids'), 'donors': load('donors', 'r' if mmap else None),
                  'offsets': load('offsets'), 'donor_index': load('donor_index')}
        expected = {'centroids': ((k, None), 'float32'), 'donors': ((n, d), meta['dtype']),
                    'offsets': ((k + 1,), 'int64'), 'donor_index': ((n,), 'int64')}
        if 'groups' in meta['arrays']:
            arrays['groups'] = load('groups')
            expected['groups'] = ((d,), 'int64')
        for name, (shape, dtype) in expected.items():
            array = arrays[name]
            got = tuple(s if e is not None else None for s, e in zip(array.shape, shape))
            if got != shape or array.ndim != len(shape) or array.dtype.name != dtype:
                raise ValueError(f'{directory}/{name}.npy: expected {dtype} {shape}, got '
                                 f'{array.dtype} {array.shape}')
        offsets = arrays['offsets']
        if offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 0):
            raise ValueError(f'{directory}/offsets.npy: expected non-decreasing offsets from 0 '
                             f'to {n}, got {offsets[0]}..{offsets[-1]}')
        bank = cls(**dict(settings, groups=arrays.get('groups')))
        bank._set_state(arrays['centroids'], arrays['donors'], offsets, arrays['donor_index'])
        return bank
