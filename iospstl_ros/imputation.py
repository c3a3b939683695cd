"""NaN-aware K-nearest-neighbour imputation and the per-cluster donor bank (paper Sec. III-D).

:func:`nan_knn_impute` gives scikit-learn's ``KNNImputer(weights='distance')`` values, faster.
:class:`ClusterBank` keys each KMeans cluster's donors by cluster id, so a sample of cluster k
is only filled from cluster k's donors (the reference shares one imputer: a bug not ported).
Rows are flattened ``(C, T, V, M)`` samples (:mod:`iospstl_ros.layout`), NaN where occluded.

The rule, for each missing value of a receiver row (scikit-learn's):

1. Distance to a donor row: ``sqrt(d / p * sum((a - b) ** 2))`` over the ``p`` features both
   observe; undefined when they share none.
2. Candidates are the donors that observe the feature at a defined distance; the
   ``n_neighbors`` nearest are used (exact ties: lowest donor row first), all if fewer.
3. Weights ``1 / distance``; if a chosen donor is at distance 0, only those at 0 count, equally.
4. If donors observe the feature but all at undefined distances: their mean of the feature.
5. If no donor observes the feature, it stays NaN and is counted (scikit-learn drops it).

How. Features always missing together (a joint's x, y, z) form a *group*, given or found from
the NaN pattern; donors are chosen once per missing group. Every distance that decides a choice
or a weight is *exact*: a float64 sum over the shared features. For a few receivers (an online
window) all are summed so. For many, float32 BLAS products on centred values first give each
distance with an error bound that holds for any BLAS and summation order (``(d + G + s + 16)
eps`` times the rows' squared norms; G groups, s the largest); per receiver and missing group, a
compiled loop walks the donors by lower bound until no further observer can beat the k-th
smallest upper bound, and sums exactly the distances of those it met. So the result is
scikit-learn's float64 result on the same values, on any CPU. With body slots as ``blocks``,
a receiver's block of observed zeros (an absent body) adds each donor's block total, computed
once, and a donor's block with nothing observed (an absent body in a bank) is skipped.
"""

from collections import OrderedDict
import json
import os
import time

from iospstl_ros.layout import MAX_BODIES, NUM_CHANNELS, NUM_JOINTS
import numba
import numpy as np

BANK_FORMAT = 'iospstl-cluster-bank'
BANK_FORMAT_VERSION = 1
#: Receivers up to which distances are summed directly, on one thread (an online call).
DIRECT_MAX_ROWS = 8
#: Largest set imputed from itself by one symmetric product (m x m arrays); larger in chunks.
SYMMETRIC_MAX_ROWS = 4096
_EPS32 = float(np.finfo(np.float32).eps) / 2      # unit roundoff of float32
_ROWS_PER_STEP = 512                              # donor rows checked per step in from_clusters
#: fastmath flags that keep NaN semantics (NaN marks a missing value): reductions vectorise.
_FAST = {'reassoc', 'contract', 'nsz', 'arcp'}


def coordinate_groups(num_frames, num_joints=NUM_JOINTS, num_bodies=MAX_BODIES):
    """Group of every feature of a flattened ``(C, T, V, M)`` sample: one per (t, v, m).

    Returns an int64 array of shape ``(3 * T * V * M,)``: feature i belongs to joint
    ``(t * V + v) * M + m``; x, y and z of a joint share it.
    """
    per_channel = int(num_frames) * int(num_joints) * int(num_bodies)
    if per_channel < 1:
        raise ValueError('expected num_frames, num_joints and num_bodies >= 1, got '
                         f'{num_frames}, {num_joints}, {num_bodies}')
    return np.tile(np.arange(per_channel, dtype=np.int64), NUM_CHANNELS)


def coordinate_blocks(num_frames, num_joints=NUM_JOINTS, num_bodies=MAX_BODIES):
    """Body slot m of every feature of a flattened ``(C, T, V, M)`` sample, for ``blocks``."""
    return coordinate_groups(num_frames, num_joints, num_bodies) % int(num_bodies)


def missing_groups(missing):
    """Find the groups of features always missing together: equal columns of ``missing``.

    ``missing`` is an (n, d) bool array; returns an int64 group label per feature.
    """
    packed = np.packbits(np.ascontiguousarray(np.asarray(missing, dtype=bool).T), axis=1)
    keys = packed.view(np.dtype((np.void, packed.shape[1])))[:, 0]   # a column's bits
    return np.unique(keys, return_inverse=True)[1].reshape(-1).astype(np.int64)


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


def _check_finite(name, x, row_numbers):
    """Raise if a value is infinite (NaN is allowed: it marks a missing value)."""
    bad = np.isinf(x)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f'{name} row {row_numbers[row]}: expected finite values or NaN, got '
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


class _Layout:
    """Work order of the features, by block then group, so that each group is a slice.

    ``order[w]`` is the feature at work position w; ``group_ptr`` (G + 1) and ``block_ptr``
    (B + 1) bound the slices; ``sizes`` are the group sizes.
    """

    def __init__(self, groups, blocks, n_features):
        groups = (np.arange(n_features) if groups is None
                  else _check_labels('groups', groups, n_features))
        blocks = (np.zeros(n_features, np.int64) if blocks is None
                  else _check_labels('blocks', blocks, n_features))
        self.order = np.lexsort((np.arange(n_features), groups, blocks))
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
        self.sizes = np.diff(self.group_ptr)

    def to_work(self, rows, dtype):
        """Rows in work order: a new C-contiguous array of ``dtype``."""
        return _take_columns(np.asarray(rows).astype(dtype, copy=False), self.order)

    def check_groups(self, work, name, row_numbers):
        """Raise if a row of ``work`` (work order) has a group only partly missing."""
        count = np.add.reduceat(np.isnan(work), self.group_ptr[:-1], axis=1)
        partial = (count > 0) & (count < self.sizes)
        if partial.any():
            row, group = np.argwhere(partial)[0]
            members = np.sort(self.order[self.group_ptr[group]:self.group_ptr[group + 1]])
            raise ValueError(f'{name} row {row_numbers[row]}: features {members[:6].tolist()} '
                             'form one group but only some of them are missing; check groups, '
                             'or leave them out to find them from the NaN pattern')


# Compiled kernels -----------------------------------------------------------------------------


@numba.njit(cache=True)
def _take_columns(x, columns):
    """``x[:, columns]`` as a new C-contiguous array."""
    out = np.empty((x.shape[0], len(columns)), x.dtype)
    for i in range(x.shape[0]):
        for f in range(len(columns)):
            out[i, f] = x[i, columns[f]]
    return out


@numba.njit(parallel=True, cache=True)
def _column_means(x):
    """Mean of each column over its observed values (NaN where there is none)."""
    mean = np.empty(x.shape[1])
    for f in numba.prange(x.shape[1]):
        total, count = 0.0, 0
        for i in range(x.shape[0]):
            if x[i, f] == x[i, f]:
                total, count = total + x[i, f], count + 1
        mean[f] = total / count if count else np.nan
    return mean


@numba.njit(fastmath=_FAST, cache=True)
def _squares(x, y):
    """float64 sum of squared differences over the features both observe, and their count."""
    total, count = 0.0, 0
    for f in range(x.shape[0]):
        t = np.float64(x[f]) - np.float64(y[f])
        total += t * t if t == t else 0.0
        count += t == t
    return total, count


@numba.njit(cache=True)
def _zero_blocks(row, block_ptr):
    """Blocks of a receiver row that are all observed zeros (an absent body)."""
    zero = np.ones(len(block_ptr) - 1, np.bool_)
    for b in range(len(zero)):
        for f in range(block_ptr[b], block_ptr[b + 1]):
            if row[f] != 0.0:                   # NaN or a value ends it
                zero[b] = False
                break
    return zero


@numba.njit(cache=True)
def _exact(x, y, zero, block_ptr, block_squares, block_counts):
    """Squared distance of rows x and y by float64 sums; inf when they share no feature.

    Where x is all observed zeros, y's block total counts; where y observes nothing, skipped.
    """
    total, count = 0.0, 0
    for b in range(len(zero)):
        if zero[b]:
            total += block_squares[b]
            count += block_counts[b]
        elif block_counts[b] > 0:
            lo, hi = block_ptr[b], block_ptr[b + 1]
            s, c = _squares(x[lo:hi], y[lo:hi])
            total, count = total + s, count + c
    return total * len(x) / count if count > 0 else np.inf


@numba.njit(cache=True)
def _direct(receivers, donors, block_ptr, block_squares, block_counts):
    """Exact squared distances of every receiver to every donor, and 0 error bounds."""
    squared = np.empty((receivers.shape[0], donors.shape[0]))
    for i in range(receivers.shape[0]):
        zero = _zero_blocks(receivers[i], block_ptr)
        for j in range(donors.shape[0]):
            squared[i, j] = _exact(receivers[i], donors[j], zero, block_ptr, block_squares[j],
                                   block_counts[j])
    return squared, np.zeros_like(squared)


@numba.njit(parallel=True, cache=True)
def _summarise(values, centre, group_ptr, block_ptr, with_centred):
    """Summarise rows for the distances.

    Returns per row and group: observed (0/1) and the sum of squares about ``centre``; per
    row and block: float64 sum of squares and count of the observed values; per row: whether a
    group is partly missing; and, if ``with_centred`` (else empty), the values about
    ``centre`` in float32, 0 where missing.
    """
    n, n_groups, n_blocks = values.shape[0], len(group_ptr) - 1, len(block_ptr) - 1
    centred = np.zeros(values.shape if with_centred else (0, 0), np.float32)
    observed, squares = np.empty((n, n_groups), np.float32), np.empty((n, n_groups), np.float32)
    block_squares, block_counts = np.zeros((n, n_blocks)), np.zeros((n, n_blocks), np.int64)
    partial = np.zeros(n, np.bool_)
    for i in numba.prange(n):
        b = 0
        for g in range(n_groups):
            while group_ptr[g] >= block_ptr[b + 1]:
                b += 1
            seen, square = 0, np.float32(0.0)
            for f in range(group_ptr[g], group_ptr[g + 1]):
                v = values[i, f]
                if v == v:
                    z = np.float32(v - centre[f])
                    if with_centred:
                        centred[i, f] = z
                    square += z * z
                    block_squares[i, b] += np.float64(v) * np.float64(v)
                    seen += 1
            observed[i, g], squares[i, g] = seen > 0, square
            block_counts[i, b] += seen
            partial[i] |= 0 < seen < group_ptr[g + 1] - group_ptr[g]
    return centred, observed, squares, block_squares, block_counts, partial


@numba.njit(cache=True)
def _fill(i, receivers, donors, approx, error, group_ptr, columns, observers, mean, block_ptr,
          block_squares, block_counts, k, out):
    """Fill the missing groups of receiver i by the rule into ``out[i]`` (caller's columns).

    receivers, donors: work order; approx, error: (n, m) approximate squared distances (inf:
    undefined) and their bounds; columns: caller's column of each work position; observers:
    (G, m) bool. Returns the number of values left NaN.
    """
    m = approx.shape[1]
    unfilled = 0
    lower = approx[i] - error[i]
    order = np.argsort(lower)
    zero = _zero_blocks(receivers[i], block_ptr)
    exact = np.full(m, -1.0)                # exact squared distances, made on demand
    found, dist = np.empty(m, np.int64), np.empty(m)
    upper, weights = np.empty(k), np.empty(k)
    for g in range(len(group_ptr) - 1):
        lo, hi = group_ptr[g], group_ptr[g + 1]
        if receivers[i, lo] == receivers[i, lo]:
            continue                        # observed
        # Observers by lower bound, until none can beat the k-th smallest upper bound.
        upper[:] = np.inf
        n_found = 0
        for p in range(m):
            j = order[p]
            if lower[j] == np.inf or lower[j] > upper[k - 1]:
                break
            if observers[g, j]:
                found[n_found] = j
                n_found += 1
                q, u = k - 1, approx[i, j] + error[i, j]
                while q > 0 and upper[q - 1] > u:
                    upper[q] = upper[q - 1]
                    q -= 1
                upper[q] = min(upper[q], u)
        if n_found == 0:
            if observers[g].any():          # rule 4: every distance undefined
                for f in range(lo, hi):
                    out[i, columns[f]] = mean[f]
            else:                           # rule 5: no donor observes the group
                unfilled += hi - lo
            continue
        for c in range(n_found):
            j = found[c]
            if error[i, j] == 0:            # known exactly
                exact[j] = approx[i, j]
            elif exact[j] < 0:
                exact[j] = _exact(receivers[i], donors[j], zero, block_ptr,
                                  block_squares[j], block_counts[j])
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
            weights[r] = (dist[r] == 0.0) if dist[0] == 0.0 else 1.0 / np.sqrt(dist[r])
        total = weights[:chosen].sum()
        for f in range(lo, hi):
            value = 0.0
            for r in range(chosen):
                value += weights[r] * donors[found[r], f]
            out[i, columns[f]] = value / total
    return unfilled


@numba.njit(parallel=True, cache=True)
def _fill_parallel(arguments):
    """:func:`_fill` for every receiver, on numba's threads; returns the values left NaN."""
    unfilled = np.zeros(arguments[0].shape[0], np.int64)
    for i in numba.prange(len(unfilled)):
        unfilled[i] = _fill(i, *arguments)
    return unfilled.sum()


@numba.njit(cache=True)
def _fill_serial(arguments):
    """:func:`_fill` for every receiver on this thread (one window: no thread pool)."""
    unfilled = 0
    for i in range(arguments[0].shape[0]):
        unfilled += _fill(i, *arguments)
    return unfilled


# Donors and the two routes --------------------------------------------------------------------


class _Donors:
    """Donor rows prepared once (a cluster of the bank): work-order values and summaries.

    ``centred``, which only the products for many receivers read (as large as ``values``), is
    made when first needed.
    """

    def __init__(self, rows, layout, dtype, name='donors', with_centred=False):
        self.layout = layout
        self.values = layout.to_work(rows, dtype)
        self.mean = _column_means(self.values)          # NaN where no donor observes
        self.centre = np.nan_to_num(self.mean).astype(dtype)
        self.centred, self.observed, self.squares, self.block_squares, self.block_counts, \
            partial = _summarise(self.values, self.centre, layout.group_ptr, layout.block_ptr,
                                 with_centred)
        if partial.any():
            row = int(np.argmax(partial))
            layout.check_groups(self.values[row:row + 1], name, [row])
        self.observers = np.ascontiguousarray(self.observed.T, dtype=np.bool_)   # (G, m)
        self.norms = self.squares.sum(axis=1)

    def products_of(self, rows=None):
        """Centred values, observed groups and group squares of rows (default: the donors').

        These are what :func:`_products` reads.
        """
        if rows is not None:
            return _summarise(rows, self.centre, self.layout.group_ptr, self.layout.block_ptr,
                              True)[:3]
        if self.centred.size < self.values.size:
            self.centred = self.products_of(self.values)[0]
        return self.centred, self.observed, self.squares


def _products(x, donors, symmetric):
    """Approximate squared distances by float32 BLAS products, and their error bounds.

    ``x``: (centred, observed, squares) of the receivers; ``symmetric``: they are the donors.
    """
    (centred, observed, squares), layout = x, donors.layout
    y_centred, y_observed, y_squares = donors.products_of()
    squared = squares @ y_observed.T
    if symmetric:
        squared += squared.T
        squared -= 2 * (centred @ centred.T)
    else:
        squared += observed @ y_squares.T
        squared -= 2 * (centred @ y_centred.T)
    if (layout.sizes == layout.sizes[0]).all():         # equal groups (a skeleton's joints)
        count = observed @ observed.T if symmetric else observed @ y_observed.T
        count *= np.float32(layout.sizes[0])
    else:
        count = (observed * layout.sizes.astype(np.float32)) @ y_observed.T
    d, undefined = len(layout.order), count == 0
    scale = np.float32(d) / np.where(undefined, np.float32(1), count)
    # BLAS rounding of the cross term (d products), of the group sums (G) and of the squares
    # within a group (the largest), plus the centring and the last steps.
    bound = np.float32((d + len(layout.sizes) + layout.sizes.max() + 16) * _EPS32)
    error = np.add.outer(squares.sum(axis=1), donors.norms) * (bound * scale)
    squared = np.maximum(squared, 0) * scale
    squared[undefined], error[undefined] = np.inf, 0
    return squared.astype(np.float64), error.astype(np.float64)


def _impute(donors, receivers, n_neighbors, chunk_size, same=False):
    """Impute rows (the caller's column order) from prepared donors; ``same``: they are them."""
    layout, n = donors.layout, len(receivers)
    out = np.empty(receivers.shape, np.result_type(receivers.dtype, np.float32))
    symmetric = same and DIRECT_MAX_ROWS < n <= SYMMETRIC_MAX_ROWS
    step = n if symmetric else chunk_size
    unfilled = 0
    for start in range(0, n, step):
        stop = min(n, start + step)
        chunk = np.asarray(receivers[start:stop])
        out[start:stop] = chunk
        if same:
            rows = donors.values[start:stop]
        else:
            _check_finite('receivers', chunk, range(start, stop))
            rows = layout.to_work(chunk, donors.values.dtype)
            layout.check_groups(rows, 'receivers', range(start, stop))
        few = len(rows) <= DIRECT_MAX_ROWS
        if few:
            approx, error = _direct(rows, donors.values, layout.block_ptr,
                                    donors.block_squares, donors.block_counts)
        elif same:
            x = tuple(a[start:stop] for a in donors.products_of())
            approx, error = _products(x, donors, symmetric)
        else:
            approx, error = _products(donors.products_of(rows), donors, False)
        arguments = (rows, donors.values, approx, error, layout.group_ptr, layout.order,
                     donors.observers, donors.mean, layout.block_ptr, donors.block_squares,
                     donors.block_counts, n_neighbors, out[start:stop])
        unfilled += int((_fill_serial if few else _fill_parallel)(arguments))
    return out, unfilled


def compile_kernels():
    """Compile the kernels for float32 rows, or load them from numba's cache; return seconds.

    About 10 s on a new machine, under 1 s once numba has cached them; else the first
    imputation of a process pays it.
    """
    started = time.perf_counter()
    rows = np.array([[0, 1, np.nan, 0], [1, 2, 3, 0], [2, np.nan, 4, 0]], np.float32)
    for n in (1, DIRECT_MAX_ROWS + 1):
        nan_knn_impute(np.repeat(rows[:1], n, axis=0), rows, 2, groups=[0, 1, 2, 3],
                       blocks=[0, 0, 0, 1])
    return time.perf_counter() - started


def nan_knn_impute(receivers, donors, n_neighbors=5, *, groups=None, blocks=None,
                   chunk_size=256, return_unfilled=False):
    """Fill NaN in ``receivers`` from the nearest ``donors``, as scikit-learn's KNNImputer.

    Gives ``KNNImputer(n_neighbors, weights='distance').fit(donors).transform(receivers)`` by
    the rule in the module docstring, except that a feature no donor observes stays NaN.

    Parameters
    ----------
    receivers : ndarray of shape (n, d), float
        Rows to complete, NaN where missing; not modified. May be a memory map.
    donors : ndarray of shape (m, d), float
        Rows to take values from, NaN where missing; may be a memory map or float16. The
        receivers array itself imputes a set from itself (symmetric products).
    n_neighbors : int
        Donors averaged per missing value.
    groups : ndarray of shape (d,), int, optional
        Group of each feature, for features always missing together (see
        :func:`coordinate_groups`); by default found from the NaN pattern of both arrays
        (:func:`missing_groups`): the same result. A row in which a given group is only
        partly missing raises ValueError.
    blocks : ndarray of shape (d,), int, optional
        Block of each feature (each group inside one), such as the body slots of
        :func:`coordinate_blocks`: only faster for absent bodies (see the module docstring).
    chunk_size : int
        Receivers whose distances are held at once: memory beyond the inputs and the output
        is about ``8 * m * d`` bytes for the prepared donors plus ``12 * m`` per receiver of
        a chunk (of all of them for a set imputed from itself).
    return_unfilled : bool
        Also return the number of values left NaN.

    Returns
    -------
    imputed : ndarray of shape (n, d)
        float32 for float16/float32 receivers, float64 for float64 (then the work is in
        float64); NaN only where no donor observes the feature.
    n_unfilled : int
        Number of values left NaN; only when ``return_unfilled`` is True.
    """
    same = receivers is donors
    receivers = _check_rows('receivers', receivers)
    donors = _check_rows('donors', donors, receivers.shape[1])
    n_neighbors = _check_count('n_neighbors', n_neighbors)
    chunk_size = _check_count('chunk_size', chunk_size)
    if groups is None:
        missing = np.isnan(donors) if same else np.isnan(np.concatenate([receivers, donors]))
        groups = missing_groups(missing)
        if blocks is not None:          # a pattern shared by two blocks: a group in each
            blocks = _check_labels('blocks', blocks, receivers.shape[1])
            groups = np.unique(np.stack([groups, blocks]), axis=1, return_inverse=True)[1]
    layout = _Layout(groups, blocks, receivers.shape[1])
    _check_finite('donors', donors, range(len(donors)))
    dtype = np.float64 if np.float64 in (receivers.dtype, donors.dtype) else np.float32
    prepared = _Donors(donors, layout, dtype, with_centred=len(receivers) > DIRECT_MAX_ROWS)
    imputed, unfilled = _impute(prepared, receivers, n_neighbors, chunk_size, same)
    return (imputed, unfilled) if return_unfilled else imputed


# The bank -------------------------------------------------------------------------------------


class ClusterBank:
    """Donor rows of every cluster in one array, with the centroids that assign new samples.

    Cluster k's donors are rows ``offsets_[k]:offsets_[k + 1]`` of ``donors_``; a receiver
    assigned to cluster k is imputed from those only, in float32. A cluster is prepared
    (float32 work-order copy and summaries, about ``4 * n_k * d`` bytes, 20 MB for 667 NTU
    windows; twice that once more than ``DIRECT_MAX_ROWS`` receivers come at once) on first
    use, or ahead of it by :meth:`prepare`, and cached: do not share the object between threads.

    Parameters
    ----------
    groups : ndarray of shape (d,), int, optional
        As in :func:`nan_knn_impute`; saved with the bank. Without it each feature is its own
        group (right, but slower).
    blocks : ndarray of shape (d,), int, optional
        As in :func:`nan_knn_impute`; not saved: pass it to :meth:`load` or :meth:`set_blocks`.
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
        Row of the ``donors`` given to :meth:`from_clusters` that each bank row came from.
    n_features_in_ : int
    """

    def __init__(self, groups=None, blocks=None, chunk_size=256, max_cached_clusters=4):
        self.groups = groups
        self.blocks = blocks
        self.chunk_size = chunk_size
        self.max_cached_clusters = max_cached_clusters

    @classmethod
    def from_clusters(cls, centroids, donors, labels, *, dtype=np.float32, **settings):
        """Build a bank from KMeans centroids, donor rows and their cluster labels.

        ``centroids`` (K, e) float; ``donors`` (n_bank, d) float, NaN where missing, may be a
        memory map (read in steps); ``labels`` (n_bank,) int in ``0..K-1``; ``dtype``
        float32 or float16, the storage type of ``donors_``; ``settings`` go to the class.
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
            rows = np.asarray(donors[index])
            _check_finite('donors', rows, index)
            layout.check_groups(layout.to_work(rows, np.float32), 'donors', index)
            with np.errstate(over='ignore'):
                stored[start:start + len(index)] = rows.astype(dtype)
            if np.isinf(stored[start:start + len(index)]).any():
                raise ValueError(f'donors: values beyond the {dtype} range (largest '
                                 f'{np.nanmax(np.abs(rows))}); store the bank as float32')
        offsets = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=n_clusters))])
        bank._set_state(centroids.astype(np.float32), stored, offsets.astype(np.int64),
                        order.astype(np.int64))
        return bank

    def _set_state(self, centroids, donors, offsets, donor_index):
        self._layout = _Layout(self.groups, self.blocks, donors.shape[1])
        self.centroids_, self.donors_ = centroids, donors
        self.offsets_, self.donor_index_ = offsets, donor_index
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
        """Nearest centroid (euclidean) of each (n, e) embedding, as KMeans.predict: (n,) int64."""
        self._check_fitted()
        embeddings = _check_rows('embeddings', embeddings, self.centroids_.shape[1])
        if not np.isfinite(embeddings).all():
            raise ValueError('embeddings: expected finite values')
        c = self.centroids_.astype(np.float64)
        squared = (c * c).sum(axis=1) - 2.0 * (np.asarray(embeddings, np.float64) @ c.T)
        return np.argmin(squared, axis=1).astype(np.int64)

    def _donors_of(self, cluster):
        prepared = self._prepared.get(cluster)
        if prepared is None:
            prepared = _Donors(self.cluster_donors(cluster), self._layout, np.float32,
                               name=f'cluster {cluster} donors')
            self._prepared[cluster] = prepared
            while len(self._prepared) > max(0, self.max_cached_clusters):
                self._prepared.popitem(last=False)
        self._prepared.move_to_end(cluster)
        return prepared

    def prepare(self, clusters=None):
        """Prepare clusters now, as their first window would, so that no later call waits.

        ``clusters``: at most ``max_cached_clusters`` ids, the last kept longest; by default
        the largest non-empty clusters, the largest kept longest. Returns the list prepared.
        """
        self._check_fitted()
        limit = _check_count('max_cached_clusters', self.max_cached_clusters)
        sizes = np.diff(self.offsets_)
        if clusters is None:
            by_size = np.argsort(-sizes, kind='stable')
            clusters = by_size[sizes[by_size] > 0][:limit][::-1]
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

        ``receivers`` (n, d) float, NaN where missing (not modified); ``clusters`` (n,) int,
        see :meth:`assign`. Returns the imputed rows (float32, float64 for float64 input) and
        the number of values left NaN (no donor of the cluster observes the feature).
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
        for cluster in np.unique(clusters).tolist():
            rows = np.flatnonzero(clusters == cluster)
            part = receivers if len(rows) == len(receivers) else receivers[rows]
            out[rows], missed = _impute(self._donors_of(cluster), part, n_neighbors, chunk_size)
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

        ``mmap``: memory-map ``donors.npy`` (read-only); ``settings``: ``blocks``,
        ``chunk_size`` and ``max_cached_clusters`` (``groups`` comes from the files). Raises
        ValueError if a file is missing, of another format version, or the arrays disagree.
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
        k, d, n = meta['n_clusters'], meta['n_features'], meta['n_donors']
        expected = {'centroids': ((k, None), 'float32'), 'donors': ((n, d), meta['dtype']),
                    'offsets': ((k + 1,), 'int64'), 'donor_index': ((n,), 'int64')}
        if 'groups' in meta['arrays']:
            expected['groups'] = ((d,), 'int64')
        arrays = {}
        for name, (shape, dtype) in expected.items():
            path = os.path.join(directory, f'{name}.npy')
            if not os.path.exists(path):
                raise ValueError(f'{path}: missing')
            mode = 'r' if mmap and name == 'donors' else None
            array = arrays[name] = np.load(path, mmap_mode=mode, allow_pickle=False)
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
