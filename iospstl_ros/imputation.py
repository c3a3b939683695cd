"""NaN-aware K-nearest-neighbour imputation and the per-cluster donor bank (paper Sec. III-D).

:func:`nan_knn_impute` gives scikit-learn's ``KNNImputer(weights='distance')`` values, faster;
:class:`ClusterBank` fills a sample of KMeans cluster k from cluster k's donors only (the
reference shares one imputer: a bug not ported). Rows: flattened ``(C, T, V, M)``, NaN if hidden.

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
or a weight is *exact*, a float64 sum over the shared features: for a few receivers (a window)
all are; for many, float32 BLAS products on centred values give each distance with an error
bound valid for any BLAS (``(d + G + 16) eps`` times the rows' squared norms, G groups), and a
compiled loop walks the donors by lower bound until none can beat the k-th smallest upper bound,
summing exactly the distances of those it met: scikit-learn's float64 result, on any CPU. With
*blocks* (body slots, given or found as features zero in the same rows), a receiver's absent
body (observed zeros) takes each donor's block total; a donor's absent body (NaN) is skipped.
"""

import json
import os
import time

from iospstl_ros.layout import coordinate_blocks, coordinate_groups  # noqa: F401 (interface)
from iospstl_ros.validation import check_int, check_ints, check_not_infinite, check_rows
import numba
import numpy as np

BANK_FORMAT, BANK_FORMAT_VERSION = 'iospstl-cluster-bank', 2
DIRECT_MAX_ROWS = 8          # receivers up to which all distances are exact sums, on one thread
SYMMETRIC_MAX_ROWS = 4096    # largest set imputed from itself by one symmetric product
MAX_FOUND_BLOCKS = 16        # most zero patterns taken as blocks when neither hint is given
_ROWS_PER_STEP = 512                              # donor rows checked per step in from_clusters
_FAST = {'reassoc', 'contract', 'nsz', 'arcp'}   # fastmath that keeps NaN (= missing) semantics


@numba.njit(parallel=True, cache=True)
def _patterns(x):
    """Where rows x are NaN and where 0, eight rows a byte: two (ceil(n / 8), d) uint8 arrays."""
    nan_bits = np.zeros(((x.shape[0] + 7) // 8, x.shape[1]), np.uint8)
    zero_bits = np.zeros_like(nan_bits)
    for r in numba.prange(len(nan_bits)):
        for i in range(8 * r, min(8 * r + 8, x.shape[0])):
            for f in range(x.shape[1]):
                nan_bits[r, f] |= np.uint8(x[i, f] != x[i, f]) << np.uint8(i - 8 * r)
                zero_bits[r, f] |= np.uint8(x[i, f] == 0) << np.uint8(i - 8 * r)
    return nan_bits, zero_bits


def find_groups(*row_sets):
    """Label features by equal NaN columns (groups) and equal zero columns, over the sets' rows."""
    bits = [_patterns(np.asarray(rows, np.float32 if rows.dtype == np.float16 else rows.dtype))
            for rows in row_sets]
    labels = []
    for packed in (np.concatenate(part) for part in zip(*bits)):    # NaN, then zero
        keys = np.ascontiguousarray(packed.T).view(np.dtype((np.void, len(packed))))[:, 0]
        labels.append(np.unique(keys, return_inverse=True)[1].reshape(-1).astype(np.int64))
    return tuple(labels)


class _Layout:
    """Work order of the features by block, then group: ``order``, ``group_ptr``, ``block_ptr``."""

    def __init__(self, groups, blocks, n_features):
        groups = (np.arange(n_features) if groups is None
                  else check_ints('groups', groups, (n_features,)))
        blocks = (np.zeros(n_features, np.int64) if blocks is None
                  else check_ints('blocks', blocks, (n_features,)))
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
        """Return rows in work order, as a new C-contiguous array of ``dtype``."""
        return np.take(np.asarray(rows), self.order, axis=1).astype(dtype, copy=False)

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


@numba.njit(parallel=True, cache=True)
def _column_means(x):
    """Mean of each column over its observed values (NaN where none is)."""
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
def _exact(x, y, zero, block_ptr, block_squares, block_counts):
    """Squared distance of rows x and y by float64 sums (inf: no shared feature), per block.

    A block where x is all observed zeros takes y's total; one where y observes nothing, 0.
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
def _direct(receivers, donors, zero, block_ptr, block_squares, block_counts):
    """Exact squared distances of every receiver to every donor, and 0 error bounds."""
    squared = np.empty((receivers.shape[0], donors.shape[0]))
    for i in range(receivers.shape[0]):
        for j in range(donors.shape[0]):
            squared[i, j] = _exact(receivers[i], donors[j], zero[i], block_ptr,
                                   block_squares[j], block_counts[j])
    return squared, np.zeros_like(squared)


@numba.njit(parallel=True, cache=True)
def _summarise(values, centre, group_ptr, block_ptr, with_centred):
    """Summarise rows for the distances (with float32 values about ``centre`` if asked).

    Returns the centred values (0 where missing; empty unless ``with_centred``), per group
    observed (0/1) and the sum of centred squares, per block the float64 sum of squares and
    the count of observed values, and per row whether a group is partly missing.
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
            seen, square = 0, 0.0
            for f in range(group_ptr[g], group_ptr[g + 1]):
                v = values[i, f]
                if v == v:
                    z = np.float32(v - centre[f])
                    if with_centred:
                        centred[i, f] = z
                    square += np.float64(z) * np.float64(z)
                    block_squares[i, b] += np.float64(v) * np.float64(v)
                    seen += 1
            observed[i, g], squares[i, g] = seen > 0, square
            block_counts[i, b] += seen
            partial[i] |= 0 < seen < group_ptr[g + 1] - group_ptr[g]
    return centred, observed, squares, block_squares, block_counts, partial


@numba.njit(cache=True)
def _fill(i, receivers, donors, approx, error, by_lower, zero, group_ptr, columns, observers,
          mean, block_ptr, block_squares, block_counts, k, out):
    """Fill receiver i's missing groups by the rule into ``out[i]``; return the values left NaN.

    approx, error, by_lower: (n, m) approximate squared distances (inf: undefined), bounds and
    donors by lower bound; zero: (n, B) blocks of observed zeros; columns: the caller's columns.
    """
    m, unfilled = approx.shape[1], 0
    lower, order = approx[i] - error[i], by_lower[i]
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
                found[n_found], n_found = j, n_found + 1
                q, u = k - 1, approx[i, j] + error[i, j]        # keep the k smallest, sorted
                while q > 0 and upper[q - 1] > u:
                    upper[q], q = upper[q - 1], q - 1
                upper[q] = min(upper[q], u)
        if n_found == 0:                    # rule 4: the mean; rule 5: NaN, none observes it
            for f in range(lo, hi):
                out[i, columns[f]] = mean[f]
            unfilled += 0 if observers[g].any() else hi - lo
            continue
        for c in range(n_found):
            j = found[c]
            if error[i, j] == 0:            # known exactly
                exact[j] = approx[i, j]
            elif exact[j] < 0:
                exact[j] = _exact(receivers[i], donors[j], zero[i], block_ptr,
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


class _Donors:
    """Donor rows prepared once (a cluster of the bank): work-order values and summaries."""

    def __init__(self, rows, layout, dtype, name='donors', with_centred=False):
        self.layout = layout
        self.values = layout.to_work(rows, dtype)
        self.mean = _column_means(self.values)          # NaN where no donor observes
        self.centre = np.nan_to_num(self.mean).astype(dtype)
        self.centred, self.observed, self.squares, self.block_squares, self.block_counts, \
            partial = _summarise(self.values, self.centre, layout.group_ptr, layout.block_ptr,
                                 with_centred)
        if partial.any():
            layout.check_groups(self.values[partial], name, np.flatnonzero(partial))
        self.observers = np.ascontiguousarray(self.observed.T, dtype=np.bool_)   # (G, m)
        self.norms = self.squares.sum(axis=1)

    def products_of(self, rows=None):
        """Return what :func:`_products` reads of rows (default: the donors)."""
        if rows is not None:
            return _summarise(rows, self.centre, self.layout.group_ptr, self.layout.block_ptr,
                              True)[:3]
        if self.centred.size < self.values.size:    # as large as values: made when needed
            self.centred = self.products_of(self.values)[0]
        return self.centred, self.observed, self.squares


def _products(x, donors, symmetric):
    """Approximate squared distances of receivers ``x`` to the donors, and error bounds."""
    (centred, observed, squares), layout = x, donors.layout
    y_centred, y_observed, y_squares = donors.products_of()
    squared = squares @ y_observed.T
    squared += squared.T if symmetric else observed @ y_squares.T
    squared -= 2 * (centred @ (centred if symmetric else y_centred).T)
    # Shared features (exact integers): the commonest group size, then the others weighted.
    common = layout.sizes == np.bincount(layout.sizes).argmax()
    a, rest = observed[:, common], observed[:, ~common] * layout.sizes[~common].astype(np.float32)
    count = np.float32(layout.sizes[common][0]) * (a @ a.T if symmetric else
                                                   a @ y_observed[:, common].T)
    count += rest @ y_observed[:, ~common].T
    d, undefined = len(layout.order), count == 0
    scale = np.float32(d) / np.where(undefined, np.float32(1), count)
    # Rounding of the cross term (d products), of the group sums (G), of the centring and of
    # the last steps (the squares within a group are float64 sums, rounded once).
    bound = np.float32((d + len(layout.sizes) + 16) * np.finfo(np.float32).eps / 2)
    error = np.add.outer(squares.sum(axis=1), donors.norms) * (bound * scale)
    squared = np.maximum(squared, 0) * scale
    squared[undefined], error[undefined] = np.inf, 0
    return squared.astype(np.float64), error.astype(np.float64)


def _impute(donors, receivers, n_neighbors, chunk_size, same=False):
    """Impute rows (the caller's column order) from prepared donors; ``same``: they are them."""
    layout, n = donors.layout, len(receivers)
    out = np.empty(receivers.shape, np.result_type(receivers.dtype, np.float32))
    symmetric = same and DIRECT_MAX_ROWS < n <= SYMMETRIC_MAX_ROWS
    step, unfilled = (n if symmetric else chunk_size), 0
    for start in range(0, n, step):
        stop = min(n, start + step)
        chunk = np.asarray(receivers[start:stop])
        if same:
            rows = donors.values[start:stop]
        else:
            check_not_infinite('receivers', chunk, range(start, stop))
            rows = layout.to_work(chunk, donors.values.dtype)
            layout.check_groups(rows, 'receivers', range(start, stop))
        few = len(rows) <= DIRECT_MAX_ROWS
        zero = np.logical_and.reduceat(rows == 0, layout.block_ptr[:-1], axis=1)  # absent
        if few:
            approx, error = _direct(rows, donors.values, zero, layout.block_ptr,
                                    donors.block_squares, donors.block_counts)
        elif same:
            x = tuple(a[start:stop] for a in donors.products_of())
            approx, error = _products(x, donors, symmetric)
        else:
            approx, error = _products(donors.products_of(rows), donors, False)
        out[start:stop] = chunk     # one thread: while BLAS's threads still spin after products
        by_lower = np.argsort(approx - error, axis=1)      # numpy's sort: SIMD, no threads
        arguments = (rows, donors.values, approx, error, by_lower, zero, layout.group_ptr,
                     layout.order, donors.observers, donors.mean, layout.block_ptr,
                     donors.block_squares, donors.block_counts, n_neighbors, out[start:stop])
        if few:                     # a window: on this thread, no thread pool
            unfilled += sum(_fill(i, *arguments) for i in range(len(rows)))
        else:
            unfilled += int(_fill_parallel(arguments))
    return out, unfilled


def compile_kernels():
    """Compile the kernels (about 10 s) or load them from numba's cache (< 1 s); seconds."""
    started, rows = time.perf_counter(), np.float32([[0, 1, np.nan, 0], [1, 2, 3, 0]])
    for n in (1, DIRECT_MAX_ROWS + 1):      # one window, and many receivers
        nan_knn_impute(np.repeat(rows[:1], n, 0), rows, groups=[0, 1, 2, 3], blocks=[0, 0, 0, 1])
    nan_knn_impute(rows, rows)              # groups and blocks found
    return time.perf_counter() - started


def nan_knn_impute(receivers, donors, n_neighbors=5, *, groups=None, blocks=None,
                   chunk_size=256, return_unfilled=False):
    """Fill NaN in ``receivers`` from the nearest ``donors``, as scikit-learn's KNNImputer.

    Gives ``KNNImputer(n_neighbors, weights='distance').fit(donors).transform(receivers)`` by
    the rule in the module docstring, except that a feature no donor observes stays NaN.
    ``receivers`` (n, d), ``donors`` (m, d): float rows, NaN where missing (memory maps and
    float16 are fine; receivers are not modified); one array as both imputes a set from itself.
    ``groups`` (d,) int: the group of each feature, for features always missing together
    (:func:`coordinate_groups`); by default found from the NaN pattern (:func:`find_groups`),
    with the same result; a row with a given group only partly missing raises ValueError.
    ``blocks`` (d,) int: the block of each feature, each group inside one (the body slots of
    :func:`coordinate_blocks`): faster for absent bodies, the same result; found with the
    groups, as features zero in the same rows, if at most ``MAX_FOUND_BLOCKS``. ``chunk_size``:
    receivers whose distances are held at once; memory beyond the inputs and output is about
    ``8 * m * d`` bytes for the donors and ``12 * m`` per receiver of a chunk.

    Returns the imputed rows (float32; float64, and the work in float64, for float64 input), NaN
    only where no donor observes the feature; with ``return_unfilled``, also their count.
    """
    same = receivers is donors
    receivers = check_rows('receivers', receivers)
    donors = check_rows('donors', donors, receivers.shape[1])
    n_neighbors = check_int('n_neighbors', n_neighbors)
    chunk_size = check_int('chunk_size', chunk_size)
    if groups is None:
        groups, zeros = find_groups(*((donors,) if same else (receivers, donors)))
        if blocks is None:              # features observed zero in the same rows (absent bodies)
            blocks = zeros if zeros.max() < MAX_FOUND_BLOCKS else None
        if blocks is not None:          # a pattern shared by two blocks: a group in each
            blocks = check_ints('blocks', blocks, receivers.shape[1:])
            groups = groups * (blocks.max() + 1) + blocks
    layout = _Layout(groups, blocks, receivers.shape[1])
    check_not_infinite('donors', donors, range(len(donors)))
    dtype = np.float64 if np.float64 in (receivers.dtype, donors.dtype) else np.float32
    prepared = _Donors(donors, layout, dtype, with_centred=len(receivers) > DIRECT_MAX_ROWS)
    imputed, unfilled = _impute(prepared, receivers, n_neighbors, chunk_size, same)
    return (imputed, unfilled) if return_unfilled else imputed


class ClusterBank:
    """Donor rows kept per cluster, one array each, with the centroids that assign new samples.

    Cluster k's donors, :meth:`cluster_donors` (k), are rows ``offsets_[k]:offsets_[k + 1]`` of
    the ``n_donors_``: (n_k, d) ``dtype_``, NaN where missing, memory-mapped when loaded; a
    receiver of cluster k is imputed from those only, in float32. ``centroids_`` (K, e);
    ``donor_index_``: each donor's row in the ``donors`` of :meth:`from_clusters`. A cluster is
    prepared (about ``4 * n_k * (d + 5 G)`` bytes, 35 MB for 667 NTU windows, 20 MB more for
    over ``DIRECT_MAX_ROWS`` receivers at once) on first use or by :meth:`prepare`; the last
    ``max_cached_clusters`` are kept: do not share a bank between threads. ``groups`` (saved;
    without it every feature is a group: right, slower), ``blocks`` (not saved): as in
    :func:`nan_knn_impute`.
    """

    DONORS_FILE = 'donors/cluster_{:04d}.npy'   # cluster k's donor rows in a saved bank (v2)
    TRIAL_READS = 6                             # donors imputed as windows by prepare

    def __init__(self, groups=None, blocks=None, chunk_size=256, max_cached_clusters=4):
        self.groups, self.blocks = groups, blocks
        self.chunk_size, self.max_cached_clusters = chunk_size, max_cached_clusters

    @classmethod
    def from_clusters(cls, centroids, donors, labels, *, dtype=np.float32, **settings):
        """Build a bank from KMeans centroids, donor rows and their cluster labels.

        ``centroids`` (K, e) float; ``donors`` (n_bank, d) float, NaN where missing, may be a
        memory map (read in steps); ``labels`` (n_bank,) int in ``0..K-1``; ``dtype``
        float32 or float16, the storage type of the bank; ``settings`` go to the class.
        """
        bank = cls(**settings)
        centroids = check_rows('centroids', centroids)
        if not np.isfinite(centroids).all():
            raise ValueError('centroids: expected finite values')
        donors = check_rows('donors', donors)
        labels = check_ints('labels', labels, (len(donors),), len(centroids))
        if np.dtype(dtype) not in (np.float16, np.float32):
            raise ValueError(f'dtype: expected float16 or float32, got {np.dtype(dtype)}')
        layout = _Layout(bank.groups, None, donors.shape[1])
        order, stored = np.argsort(labels, kind='stable'), np.empty(donors.shape, dtype=dtype)
        for start in range(0, len(order), _ROWS_PER_STEP):
            index = order[start:start + _ROWS_PER_STEP]
            rows = np.asarray(donors[index])
            check_not_infinite('donors', rows, index)
            layout.check_groups(layout.to_work(rows, np.float32), 'donors', index)
            with np.errstate(over='ignore'):
                stored[start:start + len(index)] = rows
            if np.isinf(stored[start:start + len(index)]).any():
                raise ValueError(f'donors: values beyond the {np.dtype(dtype)} range (largest '
                                 f'{np.nanmax(np.abs(rows))}); store the bank as float32')
        offsets = np.searchsorted(labels[order], np.arange(len(centroids) + 1)).astype(np.int64)
        return bank._set_state(centroids.astype(np.float32), np.split(stored, offsets[1:-1]),
                               offsets, order, donors.shape[1], stored.dtype)

    def _set_state(self, centroids, cluster_donors, offsets, donor_index, n_features, dtype):
        self._layout = _Layout(self.groups, self.blocks, n_features)
        self.centroids_, self.offsets_, self.donor_index_ = centroids, offsets, donor_index
        self.n_features_in_, self.n_donors_, self.dtype_ = n_features, int(offsets[-1]), dtype
        self._cluster_donors, self._prepared = cluster_donors, {}
        return self

    def set_blocks(self, blocks):
        """Set ``blocks`` of a built or loaded bank; returns self."""
        self._check_fitted()
        self._layout = _Layout(self.groups, blocks, self.n_features_in_)
        self.blocks, self._prepared = blocks, {}
        return self

    def _check_fitted(self):
        if not hasattr(self, 'centroids_'):
            raise ValueError('this ClusterBank holds no donors yet; build it with '
                             'ClusterBank.from_clusters or ClusterBank.load')

    @property
    def n_clusters(self):
        """Give the number of clusters K."""
        self._check_fitted()
        return len(self.centroids_)

    def cluster_donors(self, cluster):
        """Donor rows of one cluster: ndarray of shape (n_k, d), memory-mapped when loaded."""
        if not 0 <= cluster < self.n_clusters:
            raise ValueError(f'cluster: expected 0..{self.n_clusters - 1}, got {cluster}')
        return self._cluster_donors[cluster]

    def assign(self, embeddings):
        """Nearest centroid of each (n, e) embedding, as KMeans.predict: (n,) int64."""
        self._check_fitted()
        embeddings = check_rows('embeddings', embeddings, self.centroids_.shape[1])
        if not np.isfinite(embeddings).all():
            raise ValueError('embeddings: expected finite values')
        c = self.centroids_.astype(np.float64)
        squared = (c * c).sum(axis=1) - 2.0 * (np.asarray(embeddings, np.float64) @ c.T)
        return np.argmin(squared, axis=1).astype(np.int64)

    def _donors_of(self, cluster):
        prepared = self._prepared.pop(cluster, None) or _Donors(
            self.cluster_donors(cluster), self._layout, np.float32, f'cluster {cluster} donors')
        self._prepared[cluster] = prepared          # a dict keeps order: the last used last
        while len(self._prepared) > max(0, self.max_cached_clusters):
            del self._prepared[next(iter(self._prepared))]
        return prepared

    def prepare(self, clusters=None):
        """Prepare clusters (default: the largest) now, so that no later call waits; list them.

        Explicit ``clusters``: at most ``max_cached_clusters`` ids, the last kept longest. Each
        imputes its first ``TRIAL_READS`` donors as windows (an all-missing block as an absent
        body), as a CPU may keep data read once out of its caches (20 MB: until the 4th read here).
        """
        self._check_fitted()
        limit = check_int('max_cached_clusters', self.max_cached_clusters)
        if clusters is None:    # the largest non-empty ones, the largest last (kept longest)
            sizes = np.diff(self.offsets_)
            clusters = np.argsort(-sizes, kind='stable')[:min(limit, sum(sizes > 0))][::-1]
        clusters = check_ints('clusters', clusters, np.shape(clusters)[:1], self.n_clusters)
        if len(clusters) > limit:
            raise ValueError(f'clusters: expected at most max_cached_clusters = {limit} '
                             f'clusters (more would evict the first), got {len(clusters)}')
        layout, trial = self._layout, np.empty((1, self.n_features_in_), np.float32)
        for cluster in clusters.tolist():
            for row in self._donors_of(cluster).values[:self.TRIAL_READS]:
                absent = np.logical_and.reduceat(np.isnan(row), layout.block_ptr[:-1])
                trial[:, layout.order] = np.where(
                    np.repeat(absent, np.diff(layout.block_ptr)), 0, row)
                self.impute(trial, [cluster])
        return clusters.tolist()

    def impute(self, receivers, clusters, n_neighbors=5):
        """Fill NaN in each receiver (n, d) from the donors of its cluster (n,) only.

        Returns the rows (float32, float64 for float64 input) and the count of values left NaN.
        """
        self._check_fitted()
        receivers = check_rows('receivers', receivers, self.n_features_in_)
        n_neighbors = check_int('n_neighbors', n_neighbors)
        chunk_size = check_int('chunk_size', self.chunk_size)
        clusters = check_ints('clusters', clusters, (len(receivers),), self.n_clusters)
        out, unfilled = np.empty(receivers.shape, np.result_type(receivers.dtype, np.float32)), 0
        for cluster in np.unique(clusters).tolist():
            rows = np.flatnonzero(clusters == cluster)
            part = receivers if len(rows) == len(receivers) else receivers[rows]
            out[rows], missed = _impute(self._donors_of(cluster), part, n_neighbors, chunk_size)
            unfilled += missed
        return out, unfilled

    def save(self, directory):
        """Write bank.json, the arrays and a file per cluster (DONORS_FILE) as .npy, format v2."""
        self._check_fitted()
        os.makedirs(os.path.join(directory, 'donors'), exist_ok=True)
        arrays = {'centroids': self.centroids_, 'offsets': self.offsets_,
                  'donor_index': self.donor_index_}
        if self.groups is not None:
            arrays['groups'] = np.asarray(self.groups, dtype=np.int64)
        for name, array in arrays.items():
            np.save(os.path.join(directory, f'{name}.npy'), np.asarray(array))
        for cluster, donors in enumerate(self._cluster_donors):
            np.save(os.path.join(directory, self.DONORS_FILE.format(cluster)), np.asarray(donors))
        meta = {'format': BANK_FORMAT, 'format_version': BANK_FORMAT_VERSION,
                'n_clusters': int(self.n_clusters), 'n_features': int(self.n_features_in_),
                'n_donors': self.n_donors_, 'dtype': self.dtype_.name, 'arrays': sorted(arrays)}
        with open(os.path.join(directory, 'bank.json'), 'w') as f:
            json.dump(meta, f, indent=2, sort_keys=True)

    @classmethod
    def load(cls, directory, mmap=True, **settings):
        """Read a bank written by :meth:`save` (format v2, or v1); ``mmap``: memory-map donors."""
        def read(name, dtype, shape, mmap_mode=None):       # None in shape: any size
            path = os.path.join(directory, name)
            if not os.path.exists(path):
                raise ValueError(f'{path}: missing')
            array = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
            got = tuple(s if e is not None else None for s, e in zip(array.shape, shape))
            if got != shape or array.ndim != len(shape) or array.dtype.name != dtype:
                raise ValueError(f'{path}: expected {dtype} {shape}, got {array.dtype} '
                                 f'{array.shape}')
            return array
        meta_path = os.path.join(directory, 'bank.json')
        if not os.path.exists(meta_path):
            raise ValueError(f'{directory}: no bank.json; expected a ClusterBank.save directory')
        with open(meta_path) as f:
            meta = json.load(f)
        version = meta.get('format_version')
        if meta.get('format') != BANK_FORMAT or version not in (1, BANK_FORMAT_VERSION):
            raise ValueError(f'{meta_path}: expected format {BANK_FORMAT} v1 or '
                             f'v{BANK_FORMAT_VERSION}, got {meta.get("format")} v{version}')
        k, d, n = meta['n_clusters'], meta['n_features'], meta['n_donors']
        offsets, mode = read('offsets.npy', 'int64', (k + 1,)), 'r' if mmap else None
        if offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 0):
            raise ValueError(f'{directory}/offsets.npy: expected non-decreasing offsets from 0 '
                             f'to {n}, got {offsets[0]}..{offsets[-1]}')
        if version == 1:        # one donors.npy: cluster k in rows offsets[k]:offsets[k + 1]
            donors = np.split(read('donors.npy', meta['dtype'], (n, d), mode), offsets[1:-1])
        else:
            donors = [read(cls.DONORS_FILE.format(cluster), meta['dtype'], (size, d), mode)
                      for cluster, size in enumerate(np.diff(offsets).tolist())]
        groups = read('groups.npy', 'int64', (d,)) if 'groups' in meta['arrays'] else None
        bank = cls(**dict(settings, groups=groups))
        return bank._set_state(read('centroids.npy', 'float32', (k, None)), donors, offsets,
                               read('donor_index.npy', 'int64', (n,)), d, np.dtype(meta['dtype']))
