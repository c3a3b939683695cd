"""NaN-aware K-nearest-neighbour imputation and the per-cluster donor bank (paper Sec. III-D).

The reference code fills occluded coordinates with one scikit-learn ``KNNImputer(n_neighbors=5,
weights='distance')`` per KMeans cluster (OPSTL_REFERENCE.md Sec. 3). :func:`nan_knn_impute`
gives the same numbers without scikit-learn and much faster; :class:`ClusterBank` keeps every
cluster's donors in one array keyed by cluster id, so a sample of cluster k is only ever filled
from cluster k's donors (which fixes the reference's shared-imputer bug).

Rows are flattened samples: a sample ``x`` of shape ``(C, T, V, M)`` (see
:mod:`iospstl_ros.layout`) becomes ``x.reshape(-1)``, ``d = C * T * V * M`` features, NaN where a
joint is occluded. :func:`coordinate_groups` gives the ``groups`` argument for that layout (the
x, y and z of a joint in a frame of a body are missing together).

The rule, for each missing value of a receiver row (scikit-learn's):

1. Distance to a donor row: ``sqrt(d / p * sum((a - b) ** 2))`` over the ``p`` features both
   rows observe; NaN when they share none.
2. Candidates are the donors that observe the missing feature and have a finite distance. The
   ``n_neighbors`` nearest are used; if fewer exist, all of them are.
3. Weights ``1 / distance``; if any chosen donor is at distance 0, only the donors at distance 0
   count, with equal weight. The value is the weighted mean of the donors' values.
4. If donors observe the feature but all their distances are NaN, the value is the feature's
   mean over the donors that observe it.
5. If no donor observes the feature, the value stays NaN and is counted as unfilled; the caller
   chooses the fallback. (scikit-learn instead drops such a feature from its output, or with
   ``keep_empty_features=True`` sets the whole feature to 0 in every row.)

Donors at exactly equal distance are taken lowest row first; scikit-learn's ``argpartition``
may take another of the tied donors, so exact ties can give different (equally near) donors.

Speed and precision: distances come from float32 masked matrix products,
``sum((a - b)^2) = sum(a^2) + sum(b^2) - 2 sum(a b)`` over shared features, each with a bound
on its float32 cancellation error. Only the cross term needs all d features; the mask and
squared-norm terms work on the G groups (d / 3 for skeletons), and for a few receivers (one
online window) they are donor totals less the receiver's missing groups. With the body slots
as ``blocks``, an absent body (all zeros, or all missing) costs no product: for one window it
is a term computed once per cluster, for a set imputed from itself all such rows are one row
of that block's products, whose part of the distance between two of them is exactly 0.
Every distance that might be 0, every distance whose error could change which donors are
chosen, and every chosen distance whose bound exceeds ``WEIGHT_ERROR`` of it is recomputed by
summing squared differences directly (float32, without cancellation). The chosen donors and the
zero-distance rule are therefore those of the exact distances, unless two of them differ by
less than the float32 rounding of the values (about 1e-5 relative); imputed values agree with
scikit-learn's float64 result to about 1e-5 of the data's scale (a few micrometres on
camera-space skeletons). Donor selection is vectorised over (receiver, missing group) pairs:
each receiver's nearest donors are sorted once and each pair takes the first of them that
observe its group (read from bit masks, 64 candidates to a word); pairs of a block that few
donors observe (a second body) look only among those donors; there is no loop over features.
"""

from collections import OrderedDict
import json
import os

from iospstl_ros.layout import MAX_BODIES, NUM_CHANNELS, NUM_JOINTS
import numpy as np

BANK_FORMAT = 'iospstl-cluster-bank'
BANK_FORMAT_VERSION = 1
#: Bound on the float32 error of ``sum(a^2) + sum(b^2) - 2 sum(a b)`` over d features, as a
#: multiple of ``(4 + 2 sqrt(d)) * (sum(a^2) + sum(b^2))``; measured errors stay below a
#: tenth of it.
ERROR_BOUND = float(np.finfo(np.float32).eps)
#: Largest set imputed from itself with full symmetric products (m x m float32 arrays).
SYMMETRIC_MAX_ROWS = 4096
#: Largest error bound, relative to the squared distance, that the weights of the chosen
#: donors are computed from; looser chosen distances are recomputed (actual errors are about
#: a hundredth of the bound, so weights are then good to about 1e-4 of themselves).
WEIGHT_ERROR = 0.01
#: Nearest donors of each receiver in which every missing group's donors are looked for first.
PREFIX_CANDIDATES = 64
#: Nearest donors looked at first per pair the prefix did not settle; more only where too few
#: observe a feature.
FIRST_CANDIDATES = 16
#: Candidate slots (pairs x width) the first round may use when there are few pairs.
_WIDTH_BUDGET = 1 << 14
#: Distances up to which rows are sorted whole rather than partitioned.
_SORT_WHOLE = 1 << 14
#: (Pair, candidate) slots up to which the prefix is read in one gather (few receivers).
_GATHER_WHOLE = 1 << 16
#: Receivers up to which distances use the donors' transposed group sums (online windows).
_FEW_RECEIVERS = 4
#: Largest share of a cluster's donors observing a block for which the few-receivers
#: products keep a compact copy of the block with just those donors.
_COMPACT_SHARE = 0.75
#: Donor rows prepared (validated, centred, converted to float32) per step.
_DONOR_ROWS_PER_STEP = 512
#: Row pairs whose distance is recomputed directly per step (their rows stay in cache).
_PAIRS_PER_STEP = 32
#: (Receiver, group) pairs whose weighted means are taken per step (bounds the 3-D gathers).
_PAIRS_PER_MEAN = 4096
#: Pairs of a prefix row whose candidate bits are packed for every group of their range when
#: the range is at most this many times as long (:func:`_candidate_words`).
_PACK_SPAN = 6
#: Row j: 2 ** i at column 8 j + i; times 0/1 masks of 64 candidates, the bytes of their bits.
_BYTE_WEIGHTS = np.kron(np.eye(8, dtype=np.float32), 2.0 ** np.arange(8, dtype=np.float32))
#: Multipliers that turn eight 0/1 bytes of a little-endian uint64 into their sum and into
#: one byte of bits (bit k from byte k), in the top byte of the product.
_BYTE_SUM = np.uint64(0x0101010101010101)
_BYTE_BITS = np.uint64(0x0102040810204080)


def coordinate_groups(num_frames, num_joints=NUM_JOINTS, num_bodies=MAX_BODIES):
    """Group of every feature of a flattened ``(C, T, V, M)`` sample: one group per (t, v, m).

    Parameters
    ----------
    num_frames : int
        T.
    num_joints : int
        V.
    num_bodies : int
        M.

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

    In a window to be completed an absent body is a block of observed zeros; passing these
    blocks lets one window's distances skip that body's donor values (the result is the same).
    Parameters as in :func:`coordinate_groups`.

    Returns
    -------
    blocks : ndarray of shape (3 * T * V * M,), int64
        ``blocks[i]`` is the body slot m of feature ``i``.
    """
    groups = coordinate_groups(num_frames, num_joints, num_bodies)
    return groups % int(num_bodies)


def _check_rows(name, x, n_features=None):
    """Validate a 2-D float array (NumPy array, memory map or nested list)."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f'{name}: expected a 2-D array (n_samples, n_features), got shape '
                         f'{x.shape}; reshape one sample with x.reshape(1, -1)')
    if x.dtype.kind != 'f':
        raise ValueError(f'{name}: expected a float array with NaN for missing values, got '
                         f'dtype {x.dtype}')
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f'{name}: expected {n_features} features, got shape {x.shape}')
    return x


def _check_count(name, value):
    """Validate a setting that must be an int >= 1."""
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not is_int or value < 1:
        raise ValueError(f'{name}: expected an int >= 1, got {value!r}')
    return int(value)


class _Grouping:
    """Features partitioned into groups that are always missing together.

    Work arrays hold the features in a fixed order (``order``). Where every group has the same
    size s, member k of group g sits at work position ``k * G + g``: group sums then add s
    contiguous slices, and the flattened ``(C, T, V, M)`` layout with ``coordinate_groups``
    is already in that order (no copy). Groups of different sizes sit side by side instead.

    Attributes
    ----------
    order : ndarray of shape (d,), int64, or None
        Feature at each work position; None where that is the identity.
    starts : ndarray of shape (G,), int64
        Work position of each group's first feature (groups of different sizes).
    sizes : ndarray of shape (G,), int64
    size : int
        The common group size, 0 if sizes differ.
    positions : ndarray of shape (G, s), int64
        Work positions of each group's features, padded with -1 to the largest size s.
    columns : ndarray of shape (G, s), int64
        The same as features (columns of the caller's arrays).
    group_of : ndarray of shape (d,), int64
        Group of each work position.
    blocks : list of (int, int) or None
        With ``blocks`` given, groups are numbered block by block and this holds each
        block's range of group numbers (in the order of the block ids).
    block_runs : list of list of (int, int)
        Work positions of each block: one contiguous run per group member (equal sizes), or
        one run.
    """

    def __init__(self, groups, n_features, blocks=None):
        if groups is None:
            index = np.arange(n_features)
            self.sizes = np.ones(n_features, dtype=np.int64)
        else:
            groups = np.asarray(groups)
            if groups.shape != (n_features,) or groups.dtype.kind not in 'iu':
                raise ValueError(f'groups: expected an int array of shape ({n_features},), one '
                                 f'group per feature, got {groups.dtype} {groups.shape}')
            _, index, sizes = np.unique(groups, return_inverse=True, return_counts=True)
            index = index.reshape(-1)
            self.sizes = sizes.astype(np.int64)
        self.n_groups = n_groups = len(self.sizes)
        self.blocks = None
        if blocks is not None:
            index = self._order_by_block(blocks, index, n_features)
        largest = int(self.sizes.max(initial=1))
        self.size = largest if np.all(self.sizes == largest) else 0
        side_by_side = np.argsort(index, kind='stable')
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        offset = np.arange(largest)
        if self.size:
            member = np.empty(n_features, dtype=np.int64)
            member[side_by_side] = np.tile(offset, n_groups)
            order = np.empty(n_features, dtype=np.int64)
            order[member * n_groups + index] = np.arange(n_features)
            self.positions = np.arange(n_groups)[:, None] + n_groups * offset
            self.group_of = np.tile(np.arange(n_groups), largest)
        else:
            order = side_by_side
            self.positions = self.starts[:, None] + offset
            self.positions[offset >= self.sizes[:, None]] = -1
            self.group_of = np.repeat(np.arange(n_groups), self.sizes)
        self.order = None if np.array_equal(order, np.arange(n_features)) else order
        # Blocks that take turns along the groups (body slots last in (C, T, V, M)): a
        # transposed copy puts them in work order faster than a gather.
        self._turns = None
        if self.order is not None and self.size and self.blocks is not None:
            turns = len(self.blocks)
            if n_groups % turns == 0:
                shape = (self.size, n_groups // turns, turns)
                taking = np.arange(n_features).reshape(shape).transpose(0, 2, 1).reshape(-1)
                if np.array_equal(order, taking):
                    self._turns = shape
        if self.order is None:
            self.columns = self.positions
        else:
            self.columns = np.where(self.positions >= 0, self.order[self.positions], -1)
        if self.blocks is not None:
            # Work positions of each block: one run per member (equal sizes) or one run.
            self.block_runs = []
            for lo, hi in self.blocks:
                if self.size:
                    self.block_runs.append([(k * n_groups + lo, k * n_groups + hi)
                                            for k in range(self.size)])
                else:
                    stop = self.starts[hi] if hi < n_groups else n_features
                    self.block_runs.append([(int(self.starts[lo]), int(stop))])

    def _order_by_block(self, blocks, index, n_features):
        """Renumber groups block by block; set ``blocks`` to each block's group range."""
        blocks = np.asarray(blocks)
        if blocks.shape != (n_features,) or blocks.dtype.kind not in 'iu':
            raise ValueError(f'blocks: expected an int array of shape ({n_features},), one '
                             f'block per feature, got {blocks.dtype} {blocks.shape}')
        block_of_group = np.empty(self.n_groups, dtype=blocks.dtype)
        block_of_group[index] = blocks
        if not np.array_equal(block_of_group[index], blocks):
            group = index[np.flatnonzero(block_of_group[index] != blocks)[0]]
            features = np.flatnonzero(index == group)
            raise ValueError(f'blocks: features {features.tolist()} form one group but lie in '
                             f'blocks {blocks[features].tolist()}; a group must lie inside one '
                             'block')
        renumber = np.empty(self.n_groups, dtype=np.int64)
        by_block = np.argsort(block_of_group, kind='stable')
        renumber[by_block] = np.arange(self.n_groups)
        self.sizes = self.sizes[by_block]
        _, first = np.unique(block_of_group[by_block], return_index=True)
        edges = np.append(first, self.n_groups)
        self.blocks = [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]
        return renumber[index]

    def to_work(self, x, dtype=None):
        """Features of ``x`` (r, d) in work order, as ``dtype`` (default: unchanged).

        A copy, or ``x`` itself for the identity order and the same type; a type change and
        the reordering are one pass.
        """
        if self.order is None:
            return x if dtype is None else x.astype(dtype, copy=False)
        if self._turns is not None:
            shape = (len(x),) + self._turns
            turned = x.reshape(shape).transpose(0, 1, 3, 2)
            out = np.empty(turned.shape, dtype=x.dtype if dtype is None else dtype)
            out[...] = turned
            return out.reshape(len(x), x.shape[1])
        return np.take(x, self.order, axis=1).astype(dtype or x.dtype, copy=False)

    def group_squares(self, x):
        """Sum ``x ** 2`` (r, d), in work order, over each group: (r, G), same dtype."""
        if not self.size:
            return np.add.reduceat(x * x, self.starts, axis=1)
        x = x.reshape(len(x), self.size, self.n_groups)
        return np.einsum('rkg,rkg->rg', x, x)

    def missing_groups(self, missing, name, rows):
        """Reduce a feature mask to groups, checking that each group is missing as a whole.

        Parameters
        ----------
        missing : ndarray of shape (r, d), bool
            Work order.
        name : str
            Array named in the error.
        rows : ndarray of shape (r,), int
            Row numbers named in the error.

        Returns
        -------
        missing_group : ndarray of shape (r, G), bool
        """
        if self.size == 1:
            return missing
        if self.size:
            members = missing.reshape(len(missing), self.size, self.n_groups)
            missing_group = members[:, 0]
            partial = None
            for member in range(1, self.size):
                if np.not_equal(members[:, member], missing_group).any():
                    partial = np.not_equal(members[:, member], missing_group)
                    break
        else:
            count = np.add.reduceat(missing, self.starts, axis=1, dtype=np.int64)
            missing_group = count > 0
            partial = missing_group & (count != self.sizes)
        if partial is not None and partial.any():
            row, group = np.argwhere(partial)[0]
            features = self.columns[group][self.columns[group] >= 0].tolist()
            raise ValueError(
                f'{name} row {rows[row]}: features {features} form one group but only some of '
                'them are missing; groups must only join features that are always missing '
                'together (or pass groups=None)')
        return missing_group


class _Donors:
    """Donor rows prepared for distance products, features in the grouping's work order.

    Attributes
    ----------
    values : ndarray of shape (m, d), float32
        Donors minus ``center``; 0 where missing.
    present : ndarray of shape (m, G), bool
        True where the donor observes the group.
    present_t : ndarray of shape (G, m + 1), bool
        Its transpose, for gathers along donors, with a last column of False (donor ``m``
        stands for "no donor" and observes nothing).
    present_f : ndarray of shape (m, G), float32
    squares : ndarray of shape (m, G), float32
        Sum of ``values ** 2`` over each group's features.
    center : ndarray of shape (d,), float32
        Mean of each feature over the donors that observe it (float32 sums: distances do not
        depend on the centre, it only keeps the values small); 0 where none does.
    count : ndarray of shape (G,), int64
        Donors that observe each group.
    has_group : ndarray of shape (G,), bool
        True where at least one donor observes the group.
    observe_all : bool
        Every group is observed by some donor.
    """

    def __init__(self, raw, grouping, name='donors'):
        m, d = raw.shape
        total = np.zeros(d)
        self.values = np.empty((m, d), dtype=np.float32)
        self.present = np.empty((m, grouping.n_groups), dtype=bool)
        # float64 donors are re-read and centred in float64; others are kept from the first pass.
        reread = np.asarray(raw[:0]).dtype == np.float64
        self.zero_rows = (None if grouping.blocks is None else
                          np.zeros((m, len(grouping.blocks)), dtype=bool))
        for start in range(0, m, _DONOR_ROWS_PER_STEP):
            step = np.asarray(raw[start:start + _DONOR_ROWS_PER_STEP])
            block = grouping.to_work(step, np.result_type(step.dtype, np.float32))
            stop = start + len(block)
            missing = np.isnan(block)
            self.present[start:stop] = ~grouping.missing_groups(missing, name,
                                                                np.arange(start, stop))
            if reread:
                block = np.where(missing, 0.0, block)
            else:
                # Zero the missing values with a bit mask (faster than a masked copy).
                block = _keep_present(block, self.present[start:stop], grouping,
                                      out=self.values[start:stop])
            if self.zero_rows is not None:
                self.zero_rows[start:stop] = _zero_rows(block, self.present[start:stop],
                                                        grouping)
            step_total = block.sum(axis=0)
            if not np.isfinite(step_total).all():
                if np.isinf(block).any():
                    row = start + np.argwhere(np.isinf(block))[0, 0]
                    raise ValueError(f'{name} row {row}: expected finite values or NaN, got '
                                     'inf')
                step_total = block.sum(axis=0, dtype=np.float64)
            total += step_total
        self.count = self.present.sum(axis=0)
        count = self.count
        if self.zero_rows is not None:
            # An absent body's zeros are left out of the centre: it then centres the bodies
            # that are there (distances do not depend on it, their float32 error does).
            count = count.copy()
            for (lo, hi), zeros in zip(grouping.blocks, self.zero_rows.sum(axis=0)):
                count[lo:hi] -= zeros
        count = count[grouping.group_of]
        with np.errstate(invalid='ignore', divide='ignore'):
            self.center = np.where(count > 0, total / count, 0.0).astype(np.float32)
        self.squares = squares = np.empty((m, grouping.n_groups), dtype=np.float32)
        for start in range(0, m, _DONOR_ROWS_PER_STEP):
            stop = min(m, start + _DONOR_ROWS_PER_STEP)
            block = self.values[start:stop]
            if reread:
                source = grouping.to_work(np.asarray(raw[start:stop]), np.float64)
                block[:] = _centre(source, np.isnan(source), self.center)
            else:
                block -= self.center
                _keep_present(block, self.present[start:stop], grouping, out=block)
            squares[start:stop] = grouping.group_squares(block)
        self.present_t = np.zeros((grouping.n_groups, m + 1), dtype=bool)
        self.present_t[:, :m] = self.present.T
        self.present_f = self.present.astype(np.float32)
        self._few = None
        self._blocks = None
        self._observers = None
        self._compact = None
        self.has_group = self.count > 0
        self.observe_all = bool(self.has_group.all())
        self.grouping = grouping

    def by_group(self):
        """Arrays for a few receivers (online windows), made on first use.

        Returns
        -------
        by_group_t : ndarray of shape (G, 2, m), float32
            ``squares`` and ``present_f`` transposed and interleaved: a receiver's missing
            groups are rows of it, read in one gather.
        square_total : ndarray of shape (m,), float32
            Sum of ``values ** 2`` over each donor.
        group_count : ndarray of shape (m,), float32
            Groups each donor observes.
        """
        if self._few is None:
            self._few = (np.ascontiguousarray(np.stack([self.squares.T, self.present_f.T], 1)),
                         self.squares.sum(axis=1, dtype=np.float64).astype(np.float32),
                         self.present.sum(axis=1).astype(np.float32))
        return self._few

    def block_terms(self):
        """Per-block arrays for a few receivers (online windows), made on first use.

        A receiver that observes every group of block b with value 0 (an absent body) has
        centred values ``-center`` there, the same for every such receiver, so its part of the
        products over the block is computed once per cluster. Its other blocks are multiplied
        over contiguous copies of the block's columns (a matrix-vector product streams them
        at memory speed; strided slices of ``values`` are three times slower). Donors that
        observe nothing in a block add nothing to a receiver's products over it, so where
        fewer than ``_COMPACT_SHARE`` of the donors observe a block (a second body), the
        copies hold just the donors that do.

        Returns
        -------
        zero_columns : list of ndarray, one per block
            ``-center`` on the block's columns (work order): the centred values of a zero.
        zero_terms : ndarray of shape (B, 3, m), float32
            For a receiver that observes block b as zeros: its cross term
            ``values[:, b] @ -center[b]``, norm sum ``present_f[:, b] @
            group_squares(-center)[b] + squares[:, b].sum(1)`` and shared groups
            ``present[:, b].sum(1)``.
        parts : list of _BlockPart, one per block
        """
        if self._blocks is None:
            grouping = self.grouping
            negative = -self.center
            squares = grouping.group_squares(negative[None])[0]
            m, n_blocks = len(self.values), len(grouping.blocks)
            zero_columns, parts = [], []
            zero_terms = np.empty((n_blocks, 3, m), dtype=np.float32)
            for b, ((lo, hi), runs) in enumerate(zip(grouping.blocks, grouping.block_runs)):
                zero_columns.append(np.concatenate([negative[start:stop] for start, stop in runs]))
                present = self.present_f[:, lo:hi]
                zero_terms[b, 0] = 0.0
                for start, stop in runs:
                    zero_terms[b, 0] += self.values[:, start:stop] @ negative[start:stop]
                zero_terms[b, 1] = present @ squares[lo:hi]
                zero_terms[b, 1] += self.squares[:, lo:hi].sum(axis=1)
                zero_terms[b, 2] = present.sum(axis=1)
                parts.append(_BlockPart(self, self.block_observers()[b], runs, lo, hi))
            self._blocks = (zero_columns, zero_terms, parts)
        return self._blocks

    def block_observers(self):
        """Donors that observe something in each block, where they are a minority.

        Returns
        -------
        rows : list of (ndarray of int64, ascending, or None), one per block
            None where more than ``_COMPACT_SHARE`` of the donors do (the first body).
        """
        if self._observers is None:
            m = len(self.present)
            self._observers = []
            for lo, hi in self.grouping.blocks:
                rows = np.flatnonzero(self.present[:, lo:hi].any(axis=1))
                self._observers.append(None if len(rows) > _COMPACT_SHARE * m else rows)
        return self._observers

    def feature_mean(self, positions):
        """Mean of features over the donors that observe them, in float64.

        Parameters
        ----------
        positions : ndarray of int
            Work positions, each of a group some donor observes.

        Returns
        -------
        mean : ndarray of float64, the shape of ``positions``
        """
        flat = positions.reshape(-1)
        summed = self.values[:, flat].sum(axis=0, dtype=np.float64)
        mean = self.center[flat] + summed / self.count[self.grouping.group_of[flat]]
        return mean.reshape(positions.shape)


class _BlockPart:
    """One block's donor arrays for a few receivers, contiguous, float32 (bool for ``present_t``).

    Attributes
    ----------
    rows : ndarray of int64 or None
        The donors kept (those observing something in the block), None for all.
    values : ndarray of shape (n, s G_b)
        Their values on the block's columns, work order.
    present : ndarray of shape (n, G_b)
        Their ``present_f`` on the block's groups.
    squares_t : ndarray of shape (G_b, n)
        Their group squares, transposed: a receiver's few missing groups are rows of it.
    present_t : ndarray of shape (G_b, n), bool
    square_total, count : ndarray of shape (n,)
        Their squares summed over the block, and the groups they observe there.
    """

    def __init__(self, donors, rows, runs, lo, hi):
        pick = slice(None) if rows is None else rows
        self.rows = rows
        # The block's columns are a few runs: copied slice by slice (a column gather is slower).
        self.values = np.concatenate([donors.values[pick, start:stop] for start, stop in runs],
                                     axis=1)
        self.present = np.ascontiguousarray(donors.present_f[pick, lo:hi])
        self.squares_t = np.ascontiguousarray(donors.squares[pick, lo:hi].T)
        self.present_t = np.ascontiguousarray(donors.present[pick, lo:hi].T)
        self.square_total = self.squares_t.sum(axis=0, dtype=np.float64).astype(np.float32)
        self.count = self.present.sum(axis=1)


def _zero_rows(x, present, grouping):
    """Find the rows that are all observed zeros on a block (an absent body held as 0).

    ``x`` (r, d) is in work order with 0 where missing, ``present`` (r, G) its group mask.
    Returns (r, B) bool, one column per block.
    """
    zero = np.zeros((len(x), len(grouping.blocks)), dtype=bool)
    for b, ((lo, hi), runs) in enumerate(zip(grouping.blocks, grouping.block_runs)):
        rows = np.flatnonzero(present[:, lo:hi].all(axis=1) & (x[:, runs[0][0]] == 0))
        if rows.size:
            same = np.ones(len(rows), dtype=bool)
            for start, stop in runs:
                same &= ~x[rows, start:stop].any(axis=1)
            zero[rows[same], b] = True
    return zero


def _keep_present(x, present, grouping, out):
    """Set the features of the groups not ``present`` to +0, into ``out``.

    ``x`` (r, d) is float32 in work order, ``present`` (r, G) bool: an AND of the bits with a
    per-group mask (NaN and values alike), faster than a masked copy.
    """
    mask = present.view(np.int8).astype(np.int32)
    np.negative(mask, out=mask)                               # all bits set where present
    mask = mask.view(np.uint32)
    bits, into = x.view(np.uint32), out.view(np.uint32)
    if grouping.size:
        shape = (len(x), grouping.size, grouping.n_groups)
        np.bitwise_and(bits.reshape(shape), mask[:, None, :], out=into.reshape(shape))
    else:
        np.bitwise_and(bits, np.repeat(mask, grouping.sizes, axis=1), out=into)
    return out


def _as_work_float(x):
    """``x`` as float32, or float64 if it is float64 (a view where possible)."""
    x = np.asarray(x)
    return x.astype(np.result_type(x.dtype, np.float32), copy=False)


def _centre(rows, missing, center):
    """Shift rows by the donor centre, as float32 with 0 where missing.

    The difference is taken in the precision of ``rows``, so float64 inputs lose nothing
    before the shift (and equal rows stay exactly equal).

    Parameters
    ----------
    rows : ndarray of shape (r, d), float32 or float64
    missing : ndarray of shape (r, d), bool
    center : ndarray of shape (d,), float32

    Returns
    -------
    centred : ndarray of shape (r, d), float32
    """
    centred = (rows - center.astype(rows.dtype)).astype(np.float32, copy=False)
    centred[missing] = 0.0
    return centred


def _smallest(values, width):
    """Column indices of the ``width`` smallest entries of each row, ascending (NaN last).

    Equal values are ordered by column index, so the result is deterministic. A few rows are
    sorted whole (fewer calls).

    Parameters
    ----------
    values : ndarray of shape (r, m)
    width : int
        ``1 <= width <= m``.

    Returns
    -------
    order : ndarray of shape (r, width), int64
    """
    m = values.shape[1]
    if width >= m or values.size <= _SORT_WHOLE:
        return np.argsort(values, axis=1, kind='stable')[:, :width]
    part = np.argpartition(values, width - 1, axis=1)[:, :width]
    part.sort(axis=1)
    rank = np.argsort(np.take_along_axis(values, part, axis=1), axis=1, kind='stable')
    return np.take_along_axis(part, rank, axis=1)


def _error_bound(n_features):
    """Bound on the float32 error of a squared distance, relative to the rows' squared norms."""
    return np.float32(ERROR_BOUND * (4.0 + 2.0 * np.sqrt(n_features)))


def _approximate_squared(donors, centred, observed):
    """Squared nan-euclidean distances from float32 matrix products, with an error bound.

    Over the features both rows observe, ``sum((a - b)^2) = sum(a^2) + sum(b^2) - 2 sum(a b)``,
    each term a product with the (group-level) masks. In float32 the difference loses
    precision where two rows are close next to their norms, so each value comes with a bound
    on its error; :func:`_select_donors` recomputes the values whose error could change the
    choice of donors (:func:`_refine`).

    Parameters
    ----------
    donors : _Donors
    centred : ndarray of shape (r, d), float32
        Receivers minus ``donors.center``, 0 where missing.
    observed : ndarray of shape (r, G), float32
        1 where the receiver observes the group.

    Returns
    -------
    squared : ndarray of shape (r, m), float32
        ``d / p * sum((a - b)^2)``, NaN where the rows share no observed feature (p = 0).
    error : ndarray of shape (r, m), float32
        Bound on ``abs(squared - exact)``; NaN where ``squared`` is.
    scale : ndarray of shape (r, m), float32
        ``d / p``; NaN where ``p == 0``.
    """
    grouping = donors.grouping
    r, d = centred.shape
    norms = grouping.group_squares(centred)
    if r > _FEW_RECEIVERS and grouping.blocks is not None:
        return _finish_squared(*_products_by_compact_block(donors, centred, observed, norms), d)
    if r > _FEW_RECEIVERS or not grouping.size:
        # Donors on the left: BLAS streams the donor matrix once.
        cross = np.ascontiguousarray((donors.values @ centred.T).T)
        rhs = np.concatenate([norms, observed * grouping.sizes.astype(np.float32)]).T
        both = (donors.present_f @ rhs).T
        norm_sum = both[:r] + (donors.squares @ observed.T).T
        return _finish_squared(cross, np.ascontiguousarray(norm_sum),
                               np.ascontiguousarray(both[r:]), d)
    # Few receivers (online), with body slots as blocks: block by block.
    if grouping.blocks is not None:
        return _finish_squared(*_products_by_block(donors, centred, observed, norms), d)
    # Without blocks: the donor sums over a receiver's observed groups are the donor totals
    # less the sums over its few missing groups, read as rows of the transposed arrays.
    m = len(donors.values)
    by_group_t, square_total, group_count = donors.by_group()
    cross = np.ascontiguousarray((donors.values @ centred.T).T)
    norm_sum = np.ascontiguousarray((donors.present_f @ norms.T).T)
    shared = np.empty((r, m), dtype=np.float32)
    for receiver in range(r):
        missing_squares, missing_count = np.take(
            by_group_t, np.flatnonzero(observed[receiver] == 0), axis=0).sum(axis=0)
        norm_sum[receiver] += square_total
        norm_sum[receiver] -= missing_squares
        np.subtract(group_count, missing_count, out=shared[receiver])
    shared *= np.float32(grouping.size)
    return _finish_squared(cross, norm_sum, shared, d)


def _products_by_block(donors, centred, observed, norms):
    """Compute the products of :func:`_approximate_squared` for a few receivers, by block.

    A receiver's zero blocks (an absent body) are read from :meth:`_Donors.block_terms`; its
    other blocks are matrix-vector products over the block's contiguous copies, with just
    the donors that observe something there where that is a minority (a second body). Where
    the receiver misses under a third of a block's groups, the donor sums over the groups it
    observes are the donor totals less those over its missing groups (rows of the transposed
    copies), which reads less than a product.

    Returns
    -------
    cross, norm_sum, shared : ndarray of shape (r, m), float32
        ``centred @ values.T``, ``norms @ present_f.T + observed @ squares.T`` and the
        features both rows observe.
    """
    grouping = donors.grouping
    zero_columns, zero_terms, parts = donors.block_terms()
    r, m = len(centred), len(donors.values)
    cross = np.zeros((r, m), dtype=np.float32)
    norm_sum = np.zeros((r, m), dtype=np.float32)
    shared = np.zeros((r, m), dtype=np.float32)
    for receiver in range(r):
        row, seen, norm = centred[receiver], observed[receiver], norms[receiver]
        for b, ((lo, hi), runs) in enumerate(zip(grouping.blocks, grouping.block_runs)):
            columns = np.concatenate([row[start:stop] for start, stop in runs])
            seen_b = seen[lo:hi]
            if seen_b.all() and np.array_equal(columns, zero_columns[b]):
                cross[receiver] += zero_terms[b, 0]
                norm_sum[receiver] += zero_terms[b, 1]
                shared[receiver] += zero_terms[b, 2]
                continue
            part = parts[b]
            at = slice(None) if part.rows is None else part.rows
            cross[receiver, at] += part.values @ columns
            summed = part.present @ norm[lo:hi]
            missing = np.flatnonzero(seen_b == 0)
            if 3 * len(missing) <= hi - lo:
                summed += part.square_total
                summed -= np.take(part.squares_t, missing, axis=0).sum(axis=0)
                count = part.count - np.take(part.present_t, missing, axis=0).sum(
                    axis=0, dtype=np.float32)
            else:
                summed += seen_b @ part.squares_t
                count = part.present @ seen_b
            norm_sum[receiver, at] += summed
            shared[receiver, at] += count
    shared *= np.float32(grouping.size)
    return cross, norm_sum, shared


def _approximate_squared_self(donors):
    """:func:`_approximate_squared` of every donor to every donor (receivers are the donors).

    The products are symmetric (numpy then uses BLAS ``syrk``), and the norm term of the
    receiver is the transpose of the donor's, so this costs about half the general case. With
    blocks, the products are summed block by block, and the rows that are the same in a block
    (an absent body: all zeros, or all missing) enter that block's products as one row
    (:func:`_block_rows`): where most samples show one person, the second body's products
    shrink about tenfold.

    Returns
    -------
    squared, error, scale : ndarray of shape (m, m), float32
    """
    grouping = donors.grouping
    values, present = donors.values, donors.present_f
    if grouping.blocks is None:
        norm_a = donors.squares @ present.T
        if grouping.size:
            shared = present @ present.T
            shared *= np.float32(grouping.size)
        else:
            shared = (present * grouping.sizes.astype(np.float32)) @ present.T
        cross = values @ values.T
    else:
        totals = None
        for b in range(len(grouping.blocks)):
            slot, parts = _block_rows(donors, b)
            # One side of the norm term: the other is its transpose.
            block = _block_products(parts, parts, grouping, b, both_norms=False)
            if slot is not None:
                # Two rows of the same absent body are equal on the block: their part of the
                # squared distance is exactly 0, and adds nothing to its error either.
                block[0][-2, -2] = block[1][-2, -2] = 0.0
            totals = _add_block(totals, _spread(block, slot, slot))
        cross, norm_a, shared = totals
        if grouping.size:
            shared *= np.float32(grouping.size)
    squared, error, scale = _finish_squared(cross, norm_a + norm_a.T, shared,
                                            values.shape[1])
    # A row's distance to itself is exactly 0 (it shares every observed feature with itself).
    np.fill_diagonal(squared, 0.0)
    np.fill_diagonal(error, 0.0)
    return squared, error, scale


def _block_rows(donors, block):
    """Rows of one block of the donors for block products, those that are the same taken once.

    A donor that observes none of the block's groups (an absent body held as NaN) has 0
    values, squares and mask there; one that observes all of them with value 0 (an absent
    body held as 0, :attr:`_Donors.zero_rows`) has the centred values ``-center``. Each kind
    enters the products as one row (:func:`_compact_rows`). Kept on ``donors`` for the
    next chunk of receivers.
    """
    if donors._compact is None:
        donors._compact = {}
    if block not in donors._compact:
        donors._compact[block] = _compact_rows(
            donors.values, donors.squares, donors.present_f, donors.zero_rows[:, block],
            donors.grouping, block, -donors.center)
    return donors._compact[block]


def _zero_block(centred, observed, grouping, block, negative):
    """Receivers that observe all of a block with value 0 (``-center`` once centred): (r,) bool."""
    (lo, hi), runs = grouping.blocks[block], grouping.block_runs[block]
    first = runs[0][0]
    rows = np.flatnonzero((observed[:, lo:hi] > 0).all(axis=1)
                          & (centred[:, first] == negative[first]))
    zero = np.zeros(len(centred), dtype=bool)
    if rows.size:
        same = np.ones(len(rows), dtype=bool)
        for start, stop in runs:
            same &= (centred[rows, start:stop] == negative[start:stop]).all(axis=1)
        zero[rows[same]] = True
    return zero


def _compact_rows(values, squares, mask, zero, grouping, block, negative):
    """Rows of one block for the products, the absent bodies taken once each.

    Rows that observe nothing in the block (0 values, squares and mask there) stand for one
    row, and so do the rows that are ``-center`` on all of it (``zero``), where that saves at
    least a quarter of the rows.

    Parameters
    ----------
    values : ndarray of shape (n, d), float32
        Centred, 0 where missing, work order.
    squares, mask : ndarray of shape (n, G), float32
        Group squares and observed mask.
    zero : ndarray of shape (n,), bool
        Rows that are ``-center`` on every feature of the block.
    grouping : _Grouping
    block : int
        Index of the block in ``grouping.blocks``.
    negative : ndarray of shape (d,), float32
        ``-center``.

    Returns
    -------
    slot : ndarray of shape (n,), int64, or None
        Row of the compact arrays that stands for each row (``k`` the general rows, then
        ``k`` the zeros, ``k + 1`` the rows that observe nothing); None where compacting saves
        too little.
    parts : tuple
        ``(values, squares, mask)``: a list of the values on each of the block's runs, and the
        squares and mask on its groups; compact, or views of all rows where ``slot`` is None.
    """
    (lo, hi), runs = grouping.blocks[block], grouping.block_runs[block]
    n_rows = len(values)
    nothing = ~mask[:, lo:hi].any(axis=1)
    general = np.flatnonzero(~(nothing | zero))
    if 4 * len(general) > 3 * n_rows:
        return None, ([values[:, start:stop] for start, stop in runs], squares[:, lo:hi],
                      mask[:, lo:hi])
    n = len(general)
    slot = np.empty(n_rows, dtype=np.int64)
    slot[general] = np.arange(n)
    slot[zero] = n
    slot[nothing] = n + 1
    compact = []
    for start, stop in runs:
        part = np.zeros((n + 2, stop - start), dtype=np.float32)
        part[:n] = values[general, start:stop]
        part[n] = negative[start:stop]
        compact.append(part)
    compact_squares = np.zeros((n + 2, hi - lo), dtype=np.float32)
    compact_squares[:n] = squares[general, lo:hi]
    compact_squares[n] = grouping.group_squares(negative[None])[0, lo:hi]
    compact_mask = np.zeros((n + 2, hi - lo), dtype=np.float32)
    compact_mask[:n] = mask[general, lo:hi]
    compact_mask[n] = 1.0
    return slot, (compact, compact_squares, compact_mask)


def _products_by_compact_block(donors, centred, observed, norms):
    """Compute the products of :func:`_approximate_squared` by block, absent bodies compacted.

    On each block, the receivers and the donors that hold an absent body there (all zeros,
    or all missing) are one row each of the block's products (:func:`_compact_rows`); the
    part of the distance between a receiver and a donor that both hold zeros there is
    exactly 0. The compact products are then spread over the rows they stand for.

    Returns
    -------
    cross, norm_sum, shared : ndarray of shape (r, m), float32
    """
    grouping = donors.grouping
    negative = -donors.center
    totals = None
    for b in range(len(grouping.blocks)):
        donor_slot, donor_parts = _block_rows(donors, b)
        zero = _zero_block(centred, observed, grouping, b, negative)
        slot, parts = _compact_rows(centred, norms, observed, zero, grouping, b, negative)
        # Donors on the left: BLAS streams the donor matrix once.
        block = _block_products(donor_parts, parts, grouping, b, both_norms=True)
        if slot is not None and donor_slot is not None:
            # Zeros against zeros: that part of the distance is exactly 0, and so its error.
            block[0][-2, -2] = block[1][-2, -2] = 0.0
        # (m', r') -> (m, r): spread the compact products over the rows they stand for.
        totals = _add_block(totals, _spread(block, donor_slot, slot))
    cross, norm_sum, shared = totals
    if grouping.size:
        shared *= np.float32(grouping.size)
    return (np.ascontiguousarray(cross.T), np.ascontiguousarray(norm_sum.T),
            np.ascontiguousarray(shared.T))


def _block_products(left, right, grouping, block, both_norms):
    """Products of one block between two sets of rows, as :func:`_compact_rows` gives them.

    Parameters
    ----------
    left, right : tuple
        ``(values, squares, mask)``: the values on each of the block's runs (a list), the
        group squares and the observed mask on its groups (float32), compact or not.
    grouping : _Grouping
    block : int
    both_norms : bool
        The norm term with both sides (``squares_l @ mask_r.T + mask_l @ squares_r.T``), or
        only the first (symmetric products add the transpose).

    Returns
    -------
    cross, norm, shared : ndarray of shape (len(left), len(right)), float32
        ``shared`` counts groups (times the group sizes where those differ).
    """
    (values, squares, mask), (own, own_squares, seen) = left, right
    cross = values[0] @ own[0].T
    for v, w in zip(values[1:], own[1:]):
        cross += v @ w.T
    norm = squares @ seen.T
    if both_norms:
        norm += mask @ own_squares.T
    if not grouping.size:
        lo, hi = grouping.blocks[block]
        mask = mask * grouping.sizes[lo:hi].astype(np.float32)
    return [cross, norm, mask @ seen.T]


def _spread(arrays, rows, columns):
    """Spread compact products over the rows and columns they stand for (None: as they are)."""
    if rows is not None:
        arrays = [np.take(array, rows, axis=0) for array in arrays]
    if columns is not None:
        arrays = [np.take(array, columns, axis=1) for array in arrays]
    return arrays


def _add_block(totals, block):
    """Add one block's products to the running ``totals`` (None before the first)."""
    if totals is None:
        return block
    for total, part in zip(totals, block):
        total += part
    return totals


def _finish_squared(cross, norm_sum, shared, n_features):
    """Squared distances, error bounds and scales from the products (arrays reused)."""
    squared = cross
    squared *= -2.0
    squared += norm_sum
    np.maximum(squared, 0.0, out=squared)
    with np.errstate(invalid='ignore', divide='ignore'):
        scale = np.float32(n_features) / shared
    scale[shared == 0] = np.nan
    squared *= scale
    error = norm_sum
    error *= scale
    error *= _error_bound(n_features)
    return squared, error, scale


def _refine(donors, centred, observed, scale, squared, error, row, donor):
    """Recompute squared distances of row pairs by summing squared differences directly.

    The result has no cancellation error and is exactly 0 where the rows agree on every shared
    feature. ``squared`` and ``error`` (r, m) are updated in place (error becomes 0).

    Parameters
    ----------
    donors : _Donors
    centred : ndarray of shape (r, d), float32
    observed : ndarray of shape (r, G), float32
    scale, squared, error : ndarray of shape (r, m), float32
    row, donor : ndarray of shape (P,), int64
        Receiver and donor of each pair.
    """
    exact = np.empty(len(row), dtype=np.float32)
    for start in range(0, len(row), _PAIRS_PER_STEP):
        i, s = row[start:start + _PAIRS_PER_STEP], donor[start:start + _PAIRS_PER_STEP]
        diff = np.take(donors.values, s, axis=0)
        diff -= np.take(centred, i, axis=0)
        summed = donors.grouping.group_squares(diff)
        exact[start:start + len(i)] = np.einsum('pg,pg,pg->p', summed, donors.present_f[s],
                                                observed[i])
    squared[row, donor] = exact * scale[row, donor]
    error[row, donor] = 0.0


def _select_donors(donors, centred, observed, pair_row, pair_group, n_neighbors, approx=None):
    """For each (receiver, missing group) pair, the nearest donors that observe the group.

    Donors are ranked by the float32 squared distances. A pair is settled when every usable
    donor it keeps is surely nearer than every one it leaves out, given the error bounds;
    otherwise the distances whose error bars overlap at the boundary are recomputed, or more
    candidates are looked at, and the pair is checked again. The chosen donors are therefore
    those of the exact distances (up to exact ties). Most pairs are settled from their
    receiver's nearest donors (:func:`_prefix_choice`); the rest by a search that widens.

    Parameters
    ----------
    donors : _Donors
    centred : ndarray of shape (r, d), float32
    observed : ndarray of shape (r, G), float32
    pair_row, pair_group : ndarray of shape (P,), int64
    n_neighbors : int
    approx : tuple of ndarray of shape (r, m), optional
        :func:`_approximate_squared` of these receivers, if already computed; updated.

    Returns
    -------
    chosen : ndarray of shape (P, n_neighbors), int64
        Donor rows among donors with a finite distance that observe the group, nearest first;
        -1 pads pairs with fewer such donors.
    approx : tuple of ndarray of shape (r, m), float32
        ``squared, error, scale``: squared distances exact where recomputed (every possible
        zero included, error 0 there), else within ``error``.
    """
    if approx is None:
        approx = _approximate_squared(donors, centred, observed)
    squared, error, scale = approx
    r, m = squared.shape
    finite = ~np.isnan(squared)
    # Every distance that might be 0 is recomputed, so the zero-distance rule sees true zeros.
    maybe_zero = np.nonzero(finite & (squared <= error) & (error > 0))
    if maybe_zero[0].size:
        _refine(donors, centred, observed, scale, squared, error, *maybe_zero)
    row_error = np.where(finite, error, 0.0).max(axis=1, initial=0.0)
    observers = None if donors.grouping.blocks is None else donors.block_observers()
    chosen, todo = _prefix_choice(donors, centred, observed, approx, row_error, pair_row,
                                  pair_group, n_neighbors, observers=observers)
    # Few pairs (one window online): look at more candidates at once, saving rounds.
    width = max(FIRST_CANDIDATES, 2 * n_neighbors, _WIDTH_BUDGET // max(len(todo), 1))
    width = min(m, width, 64)
    if n_neighbors <= min(m, PREFIX_CANDIDATES) // 2:
        # The prefix ran: the pairs it left open need more candidates than it had.
        width = min(m, max(width, 2 * PREFIX_CANDIDATES))
    subset = _observers(donors, pair_group[todo]) if todo.size else None
    slot_of_row = np.empty(r, dtype=np.int64)
    while todo.size:
        needed = np.zeros(r, dtype=bool)
        needed[pair_row[todo]] = True
        rows = np.flatnonzero(needed)
        slot_of_row[rows] = np.arange(len(rows))
        position = slot_of_row[pair_row[todo]]
        if subset is not None:
            # Every donor that could be usable is a candidate: nothing lies beyond.
            candidates = subset[np.argsort(squared[rows][:, subset], axis=1, kind='stable')]
            beyond = np.full(len(rows), np.inf, dtype=np.float32)
        elif width < m:
            by_distance = _smallest(squared[rows], width + 1)
            # Lower bound of every donor past the first `width`.
            beyond = squared[rows, by_distance[:, -1]] - row_error[rows]
            beyond[np.isnan(beyond)] = np.inf
            candidates = by_distance[:, :width]
        else:
            candidates = np.argsort(squared[rows], axis=1, kind='stable')
            beyond = np.full(len(rows), np.inf, dtype=np.float32)
        value = squared[rows[:, None], candidates]
        bound = error[rows[:, None], candidates]
        usable = np.take(donors.present_t,
                         (pair_group[todo] * (m + 1))[:, None] + candidates[position])
        usable &= ~np.isnan(value)[position]
        slots, settled, zone, wider = _settle(value[position], bound[position],
                                              beyond[position], usable, n_neighbors)
        picked = np.take_along_axis(candidates[position], np.maximum(slots, 0), axis=1)
        picked[slots < 0] = -1
        chosen[todo[settled]] = picked[settled]
        if zone.any():
            unit, slot = np.nonzero(zone)
            key = np.unique(rows[position[unit]] * m + candidates[position[unit], slot])
            _refine(donors, centred, observed, scale, squared, error, key // m, key % m)
        if wider.any():
            width = min(m, 2 * width)
        todo = todo[~settled]
    return chosen, approx


def _observers(donors, groups):
    """Find the donors that observe any of ``groups``, if at most half of them do.

    Donors that observe none of a pair's group are never its candidates; where the open
    pairs lie in a block few donors observe (a second body), searching just these settles
    them in one round instead of a widening search over all donors.

    Returns
    -------
    rows : ndarray of int64, ascending, or None
        None where more than half of the donors observe one of the groups, or where the
        check would read more than ``_GATHER_WHOLE * 64`` mask entries.
    """
    groups = np.unique(groups)
    m = donors.present_t.shape[1] - 1
    if len(groups) * m > _GATHER_WHOLE * 64:
        return None
    rows = np.flatnonzero(np.take(donors.present_t, groups, axis=0)[:, :m].any(axis=0))
    return rows if len(rows) <= m // 2 else None


def _prefix_choice(donors, centred, observed, approx, row_error, pair_row, pair_group,
                   n_neighbors, observers=None):
    """Settle most pairs from the nearest ``PREFIX_CANDIDATES`` donors of their receiver.

    Each receiver's nearest candidates are sorted once. A pair takes the first
    ``n_neighbors`` candidates that observe its group (:func:`_cut`); the choice is sure when
    every candidate up to the last one taken is nearer, error bounds included, than every
    candidate after it and every donor past the prefix. Where a cut is unsure, the distances
    whose error bars straddle it are recomputed (:func:`_refine`), the candidates sorted
    again and those pairs cut once more; pairs still open are left to the general search of
    :func:`_select_donors`.

    Parameters
    ----------
    donors : _Donors
    centred : ndarray of shape (r, d), float32
    observed : ndarray of shape (r, G), float32
    approx : tuple of ndarray of shape (r, m), float32
        ``squared, error, scale`` (:func:`_approximate_squared`); recomputed entries are
        updated in place.
    row_error : ndarray of shape (r,), float32
        Largest finite error bound of each receiver.
    pair_row, pair_group : ndarray of shape (P,), int64
    n_neighbors : int
    observers : list of (ndarray of int64 or None), optional
        :meth:`_Donors.block_observers`. Where a minority of the donors observe anything in
        a block (a second body), only those can be usable for the block's pairs, so their
        prefix is the nearest of those donors rather than of all (most of which would be
        unusable, leaving the pairs to the wider search): such pairs get a prefix row of
        their own, the receiver's distances with the other donors undefined.

    Returns
    -------
    chosen : ndarray of shape (P, n_neighbors), int64
        Donor rows of the settled pairs, nearest first, -1 padded; all -1 for the others.
    todo : ndarray of shape (U,), int64
        The pairs left open.
    """
    squared, error, scale = approx
    r, m = squared.shape
    width = min(m, PREFIX_CANDIDATES)
    n_pairs = len(pair_row)
    if n_neighbors > width // 2 or not n_pairs:
        return np.full((n_pairs, n_neighbors), -1, dtype=np.int64), np.arange(n_pairs)
    # Prefix rows: one per receiver, and one per receiver and minority block it has pairs in.
    kinds, kind = 1, None
    if observers is not None and any(rows is not None for rows in observers):
        kinds = len(observers) + 1
        kind = np.zeros(n_pairs, dtype=np.int64)
        for b, ((lo, hi), rows) in enumerate(zip(donors.grouping.blocks, observers)):
            if rows is not None:
                kind[(pair_group >= lo) & (pair_group < hi)] = b + 1
        if not kind.any():
            kinds, kind = 1, None
    key = pair_row if kind is None else pair_row * kinds + kind
    needed = np.zeros(r * kinds, dtype=bool)
    needed[key] = True
    rows = np.flatnonzero(needed)
    receiver = rows // kinds
    if len(rows) == r and kinds == 1:
        near, errors, row_of = squared, error, pair_row
    else:
        slot_of_row = np.zeros(r * kinds, dtype=np.int64)
        slot_of_row[rows] = np.arange(len(rows))
        near, errors, row_of = squared[receiver], error[receiver], slot_of_row[key]
        for b, block_rows in enumerate(observers or ()):
            inside = np.flatnonzero(rows % kinds == b + 1)[:, None]
            if block_rows is not None and inside.size:
                kept = near[inside, block_rows]
                near[inside] = np.nan
                near[inside, block_rows] = kept
    if width < m:
        order = _smallest(near, width + 1)
        beyond = np.take_along_axis(near, order[:, width:], axis=1)[:, 0] - row_error[receiver]
        beyond[np.isnan(beyond)] = np.inf
        order = np.ascontiguousarray(order[:, :width])
    else:
        order = np.argsort(near, axis=1, kind='stable')
        beyond = np.full(len(rows), np.inf, dtype=np.float32)
    value = np.take_along_axis(near, order, axis=1)
    bound = np.take_along_axis(errors, order, axis=1)
    chosen, settled, short, last, limits = _cut(donors, order, value, bound, beyond, row_of,
                                                pair_group, n_neighbors)
    todo = np.flatnonzero(~settled)
    unsure = todo[~short[todo]]
    if not unsure.size:
        return chosen, todo
    # Recompute the candidates whose error bars straddle an unsure cut, then cut again. The
    # candidates stay: a recomputed one may move within them, and ``beyond`` still bounds
    # every other donor. They are sorted again by value, then donor row.
    upper, lower, reach, after = limits
    row, cut = row_of[unsure], last[unsure]
    slot = np.arange(width)
    zone = np.where(slot <= cut[:, None], upper[row] >= after[row, cut][:, None],
                    lower[row] <= reach[row, cut][:, None])
    zone &= bound[row] > 0
    unit, position = np.nonzero(zone)
    key = np.unique(receiver[row[unit]] * m + order[row[unit], position])
    _refine(donors, centred, observed, scale, squared, error, key // m, key % m)
    finite = ~np.isnan(value)
    value = np.where(finite, squared[receiver[:, None], order], np.float32(np.nan))
    resort = np.lexsort((order, value))
    order = np.take_along_axis(order, resort, axis=1)
    value = np.take_along_axis(value, resort, axis=1)
    bound = error[receiver[:, None], order]
    again, settled, _, _, _ = _cut(donors, order, value, bound, beyond, row_of[unsure],
                                   pair_group[unsure], n_neighbors)
    chosen[unsure] = again
    return chosen, np.sort(np.concatenate([todo[short[todo]], unsure[~settled]]))


def _cut(donors, order, value, bound, beyond, row_of, pair_group, n_neighbors):
    """Choose each pair's donors among its prefix row's candidates, and tell if it is sure.

    Parameters
    ----------
    donors : _Donors
    order : ndarray of shape (R, W), int64
        Candidates of each prefix row, by value then donor row.
    value, bound : ndarray of shape (R, W), float32
        Their squared distances (NaN: never usable) and error bounds.
    beyond : ndarray of shape (R,), float32
        Lower bound of every donor that is not a candidate (inf if none is finite).
    row_of, pair_group : ndarray of shape (P,), int64
        Prefix row and group of each pair.
    n_neighbors : int

    Returns
    -------
    chosen : ndarray of shape (P, n_neighbors), int64
        Donor rows of the settled pairs, nearest first, -1 padded; all -1 for the others.
    settled, short : ndarray of shape (P,), bool
        The choice is sure; the pair has fewer than ``n_neighbors`` usable candidates.
    last : ndarray of shape (P,), int64
        Slot of the last candidate taken (-1 if short).
    limits : tuple of ndarray of shape (R, W)
        ``upper, lower, reach, after``: each candidate's value plus / minus its bound, the
        largest upper bound up to it and the smallest lower bound of every donor after it.
    """
    m = donors.present_t.shape[1] - 1
    width = order.shape[1]
    n_pairs = len(row_of)
    finite = ~np.isnan(value)
    # Cut after candidate k: reach[k] (farthest the first k + 1 can be) must stay below
    # after[k] (nearest any other donor can be).
    upper = np.where(finite, value + bound, -np.inf)
    reach = np.maximum.accumulate(upper, axis=1)
    lower = np.where(finite, value - bound, np.inf)
    after = np.empty_like(lower)
    after[:, -1] = beyond
    np.minimum.accumulate(lower[:, :0:-1], axis=1, out=after[:, -2::-1])
    np.minimum(after[:, :-1], beyond[:, None], out=after[:, :-1])
    sure = reach < after
    if len(order) <= _FEW_RECEIVERS and width <= 64:
        # A few receivers (online): one word per pair holds which candidates observe its group.
        if len(order) == 1:
            words = _candidate_words(donors, order[0], finite[0], pair_group)
        else:
            words = np.zeros(n_pairs, dtype=np.uint64)
            for i in range(len(order)):
                pairs = np.flatnonzero(row_of == i)
                if pairs.size:
                    words[pairs] = _candidate_words(donors, order[i], finite[i],
                                                    pair_group[pairs])
        slots = _first_bits(words, n_neighbors)
    else:
        # Many: every pair's candidates in one gather, or (more pairs) sixteen candidates at a
        # time for the pairs still short of usable ones. Donor m observes nothing: candidates
        # at an undefined distance are never usable.
        lookup = np.where(finite, order, m)
        if n_pairs * width <= _GATHER_WHOLE:
            index = np.take(lookup, row_of, axis=0)
            index += (pair_group * (m + 1))[:, None]
            slots = _first_usable(np.take(donors.present_t.reshape(-1), index), n_neighbors)
        else:
            slots = _first_usable_in_steps(donors, lookup, row_of, pair_group, n_neighbors)
    last = slots[:, -1].copy()
    short = last < 0
    settled = np.take(sure, row_of * width + np.maximum(last, 0))
    settled[short] = np.isinf(beyond[row_of[short]])
    # Slot -1 (too few usable candidates) reads a last column of -1.
    padded = np.empty((len(order), width + 1), dtype=np.int64)
    padded[:, :width] = order
    padded[:, width] = -1
    slots[slots < 0] = width
    slots += (row_of * (width + 1))[:, None]
    chosen = np.take(padded, slots)
    chosen[~settled] = -1
    return chosen, settled, short, last, (upper, lower, reach, after)


def _first_bits(words, n_neighbors):
    """Positions of the lowest ``n_neighbors`` set bits of each uint64 word (P,), ascending.

    The lowest set bit is isolated (``w & -w``), located by the exponent of its float64 value
    (exact for a power of two; ``frexp`` gives 0 for a word with no bit left, so -1) and
    cleared: a few operations on P words per position. ``words`` is not modified.

    Returns
    -------
    slots : ndarray of shape (P, n_neighbors), int64
        -1 pads words with fewer set bits.
    """
    words = np.array(words, dtype=np.uint64)
    slots = np.empty((n_neighbors, len(words)), dtype=np.int64)
    lowest = np.empty_like(words)
    for slot in slots:
        np.negative(words, out=lowest)                  # two's complement: w & -w
        lowest &= words
        slot[...] = np.frexp(lowest.astype(np.float64))[1]
        slot -= 1
        words ^= lowest
    return slots.T


def _candidate_words(donors, candidates, usable, groups):
    """One uint64 per group: bit k set where candidate k observes the group and is usable.

    Few groups are read bit by bit. Where they are many next to the range of groups they
    span (a heavily occluded window), every group of the range is packed at once: a
    product of eight rows of powers of two (1 to 128) with the candidates' 0/1 masks gives
    each group's eight bytes of bits, exactly (integers below 256 in float32).

    Parameters
    ----------
    donors : _Donors
    candidates : ndarray of shape (W,), int, W <= 64
    usable : ndarray of shape (W,), bool
        False for candidates that are never usable (an undefined distance).
    groups : ndarray of shape (P,), int
        The groups asked about.

    Returns
    -------
    words : ndarray of shape (P,), uint64
    """
    if not len(groups):
        return np.zeros(0, dtype=np.uint64)
    lo, hi = int(groups.min()), int(groups.max()) + 1
    if _PACK_SPAN * len(groups) >= hi - lo:
        width = len(candidates)
        masks = donors.present_f[candidates, lo:hi]                       # (W, hi - lo)
        packed = (_BYTE_WEIGHTS[:, :width] @ masks).astype(np.uint8)     # (8, hi - lo)
        words = np.ascontiguousarray(packed.T).view('<u8')[:, 0]
        keep = np.zeros(64, dtype=bool)
        keep[:width] = usable
        return words[groups - lo] & np.packbits(keep, bitorder='little').view('<u8')[0]
    present = donors.present
    rows = np.zeros((64, len(groups)), dtype=bool)
    # Whole candidate rows are copied first (contiguous), then the groups picked from them.
    rows[:len(candidates)] = np.take(present, candidates, axis=0)[:, groups]
    rows[:len(candidates)][~usable] = False
    packed = np.packbits(rows, axis=0, bitorder='little')          # (8, P): byte j, bits 8j..
    return np.ascontiguousarray(packed.T).view('<u8')[:, 0]


def _first_usable(usable, n_neighbors):
    """Positions of the first ``n_neighbors`` True entries of each row of ``usable`` (P, W).

    The rows are packed into 64-bit words, read with :func:`_first_bits` word by word.

    Returns
    -------
    slots : ndarray of shape (P, n_neighbors), int64
        Ascending; -1 pads rows with fewer.
    """
    n_pairs, width = usable.shape
    n_words = -(-width // 64)
    packed = np.zeros((n_pairs, 8 * n_words), dtype=np.uint8)
    bits = np.packbits(usable, axis=1, bitorder='little')
    packed[:, :bits.shape[1]] = bits
    words = packed.view('<u8')                                   # bit k of word w: 64 w + k
    if n_words == 1:
        return _first_bits(words[:, 0], n_neighbors)
    slots = np.full((n_pairs, n_neighbors), -1, dtype=np.int64)
    found = np.zeros(n_pairs, dtype=np.int64)
    for w in range(n_words):
        short = np.flatnonzero(found < n_neighbors)
        if not short.size:
            break
        more = _first_bits(words[short, w], n_neighbors) + 64 * w
        more[more < 64 * w] = -1
        # Slot j of a pair with f found takes its (j - f)-th bit of this word.
        take = np.arange(n_neighbors)[None, :] - found[short, None]
        fill = take >= 0
        got = np.take_along_axis(more, np.maximum(take, 0), axis=1)
        fill &= got >= 0
        slots[short] = np.where(fill, got, slots[short])
        found[short] += (more >= 0).sum(axis=1)
    return slots


def _first_usable_in_steps(donors, lookup, row_of, pair_group, n_neighbors):
    """:func:`_first_usable` of ``donors.present_t[pair_group, lookup[row_of]]``, in parts.

    The candidates are read sixteen at a time (sixteen 0/1 bytes read as two uint64 per
    pair), only by the pairs still short of ``n_neighbors`` usable ones; the usable ones are
    kept as bits.

    Parameters
    ----------
    donors : _Donors
    lookup : ndarray of shape (R, W), int64
        Candidates of each receiver, m (observes nothing) where unusable.
    row_of, pair_group : ndarray of shape (P,), int64
        Receiver (row of ``lookup``) and group of each pair.
    n_neighbors : int

    Returns
    -------
    slots : ndarray of shape (P, n_neighbors), int64
    """
    n_pairs, width = len(row_of), lookup.shape[1]
    nobody = donors.present_t.shape[1] - 1
    step = 16
    padded = np.full((len(lookup), -(-width // step) * step), nobody, dtype=np.int64)
    padded[:, :width] = lookup
    blocks = padded.reshape(len(lookup), -1, step).transpose(1, 0, 2).copy()
    present = donors.present_t.reshape(-1)
    bits = np.zeros(n_pairs, dtype=np.uint64)
    count = np.zeros(n_pairs, dtype=np.uint64)
    pair = np.arange(n_pairs)
    pair_base, pair_row, pair_bits = (pair_group * (nobody + 1))[:, None], row_of, bits
    for block, shift in zip(blocks, range(0, width, step)):
        index = np.take(block, pair_row, axis=0)
        index += pair_base
        eight = np.take(present, index).view(np.uint64)
        low, high = eight[:, 0], eight[:, 1]
        count += ((low * _BYTE_SUM) >> np.uint64(56)) + ((high * _BYTE_SUM) >> np.uint64(56))
        pair_bits |= ((((high * _BYTE_BITS) >> np.uint64(56)) << np.uint64(8))
                      | ((low * _BYTE_BITS) >> np.uint64(56))) << np.uint64(shift)
        short = count < n_neighbors
        if not short.all():
            if pair_bits is not bits:
                bits[pair] = pair_bits
            keep = np.flatnonzero(short)
            pair, pair_base, pair_row = pair[keep], pair_base[keep], pair_row[keep]
            pair_bits, count = pair_bits[keep], count[keep]
            if not pair.size:
                break
    if pair_bits is not bits:
        bits[pair] = pair_bits
    return _first_bits(bits, n_neighbors)


def _settle(value, bound, beyond, usable, n_neighbors):
    """Decide the donors of (receiver, group) units from sorted candidates and error bounds.

    Parameters
    ----------
    value, bound : ndarray of shape (U, W), float32
        Squared distance and its error bound of each unit's candidates, nearest first.
    beyond : ndarray of shape (U,), float32
        Lower bound of every donor that is not a candidate (inf if none is finite).
    usable : ndarray of shape (U, W), bool
        Candidate observes the unit's group and has a finite distance.
    n_neighbors : int

    Returns
    -------
    slots : ndarray of shape (U, n_neighbors), int64
        Candidate positions of the chosen donors, nearest first; -1 pads.
    settled : ndarray of shape (U,), bool
        The choice is final.
    zone : ndarray of shape (U, W), bool
        Candidates whose distance must be recomputed before the unit can settle.
    wider : ndarray of shape (U,), bool
        The unit needs more candidates.
    """
    rank = np.cumsum(usable, axis=1, dtype=np.int32)
    inside = usable & (rank <= n_neighbors)
    outside = usable & (rank > n_neighbors)
    upper_in = np.where(inside, value + bound, -np.inf).max(axis=1)
    lower_out = np.minimum(np.where(outside, value - bound, np.inf).min(axis=1), beyond)
    short = (rank[:, -1] < n_neighbors) & (beyond < np.inf)
    zone = usable & (bound > 0) & (value + bound >= lower_out[:, None])
    zone &= (value - bound <= upper_in[:, None]) & ~short[:, None]
    unsure = zone.any(axis=1)
    wider = short | (~unsure & (upper_in >= beyond))
    settled = ~short & ~unsure & ~wider
    slots = np.full((len(value), n_neighbors), -1, dtype=np.int64)
    unit, slot = np.nonzero(inside)
    slots[unit, rank[unit, slot] - 1] = slot
    return slots, settled, zone, wider


def _impute_block(donors, block, n_neighbors, first_row, approx=None, numbers=None):
    """Fill the missing values of ``block`` (r, d) in place; return the count left NaN.

    ``approx`` is :func:`_approximate_squared_self` when ``block`` holds donor rows
    ``first_row:first_row + r`` (receivers are the donors). ``numbers`` (r,) are the row
    numbers errors name (default ``first_row + i``).
    """
    grouping = donors.grouping
    if numbers is None:
        numbers = np.arange(first_row, first_row + len(block))
    if approx is None:
        if np.isinf(block).any():
            row = numbers[np.argwhere(np.isinf(block))[0, 0]]
            raise ValueError(f'receivers row {row}: expected finite values or NaN, got inf')
        todo = np.flatnonzero(np.isnan(block).any(axis=1))
        rows = grouping.to_work(block[todo])
        missing = np.isnan(rows)
        missing_group = grouping.missing_groups(missing, 'receivers', numbers[todo])
    else:
        # The rows were checked (inf, groups) when they were prepared as donors.
        missing_group = ~donors.present[first_row:first_row + len(block)]
        todo = np.flatnonzero(missing_group.any(axis=1))
        missing_group = missing_group[todo]
    if todo.size == 0:
        return 0
    empty = missing_group.all(axis=1)
    if empty.any():
        raise ValueError(
            f'receivers row {numbers[todo[np.argmax(empty)]]} is all NaN: there is no observed '
            'value to measure distances by; drop the row or fill it yourself (for example with '
            'the donor feature means) before imputing')
    fillable, unfilled = missing_group, 0
    if not donors.observe_all:
        fillable = missing_group & donors.has_group
        unfilled = int((missing_group & ~donors.has_group).sum(axis=0) @ grouping.sizes)
        keep = fillable.any(axis=1)
        if not keep.all():
            todo, missing_group, fillable = todo[keep], missing_group[keep], fillable[keep]
            if approx is None:
                rows, missing = rows[keep], missing[keep]
        if todo.size == 0:
            return unfilled
    if approx is None:
        centred = _centre(_as_work_float(rows), missing, donors.center)
        observed = (~missing_group).astype(np.float32)
    else:
        at = first_row + todo
        if len(todo) == len(block):
            at = slice(first_row, first_row + len(block))       # views, not copies
        centred, observed = donors.values[at], donors.present_f[at]
        approx = tuple(array[at] for array in approx)
    pair_row, pair_group = np.nonzero(fillable)
    chosen, approx = _select_donors(donors, centred, observed, pair_row, pair_group,
                                    n_neighbors, approx)
    squared, error, scale = approx
    valid = chosen >= 0
    safe = np.maximum(chosen, 0)
    m = squared.shape[1]
    flat = (pair_row * m)[:, None] + safe
    # Weights come from the float32 distances; recompute those whose bound is loose.
    chosen_squared = np.take(squared, flat)
    loose = np.take(error, flat) > WEIGHT_ERROR * chosen_squared
    loose &= valid
    if loose.any():
        key = np.unique(flat[loose])
        _refine(donors, centred, observed, scale, squared, error, key // m, key % m)
        chosen_squared[loose] = np.take(squared, flat[loose])
    distance = np.sqrt(chosen_squared, out=chosen_squared)
    at_zero = valid & (distance == 0)
    with np.errstate(divide='ignore', invalid='ignore'):
        weights = np.where(valid, 1.0 / distance, np.float32(0.0))
    if at_zero.any():
        exact = at_zero.any(axis=1)
        weights[exact] = at_zero[exact]
    total = np.einsum('pk->p', weights)
    with np.errstate(divide='ignore', invalid='ignore'):
        weights /= total[:, None]

    # All distances NaN: the feature's mean over the donors that observe it.
    no_distance = np.flatnonzero(total == 0)
    d = donors.values.shape[1]
    values, center = donors.values.reshape(-1), donors.center
    target = todo[pair_row] * d
    donor_start = safe * d
    if grouping.size:
        # Equal group sizes: member k of group g sits at work position k * G + g, so every
        # member of a step of pairs is read in one gather, (pairs, n_neighbors, s), and
        # written in one put (straight into the receivers where the work order is theirs).
        offsets = np.arange(grouping.size) * grouping.n_groups
        donor_start += pair_group[:, None]
        direct = grouping.order is None and block.flags.c_contiguous
        if direct:
            target += pair_group
        for lo in range(0, len(pair_row), _PAIRS_PER_MEAN):
            hi = lo + _PAIRS_PER_MEAN
            neighbours = np.take(values, donor_start[lo:hi, :, None] + offsets)
            # Centred values are averaged in float32; the centre is added back in the output
            # type.
            estimate = np.einsum('pk,pks->ps', weights[lo:hi], neighbours).astype(
                block.dtype, copy=False)
            estimate += np.take(center, pair_group[lo:hi, None] + offsets)
            if direct:
                np.put(block.reshape(-1), target[lo:hi, None] + offsets, estimate)
            else:
                np.put(block, target[lo:hi, None]
                       + np.take(grouping.columns, pair_group[lo:hi], axis=0), estimate)
        if no_distance.size:
            means = donors.feature_mean(grouping.positions[pair_group[no_distance]])
            columns = (offsets + pair_group[no_distance, None] if direct else
                       np.take(grouping.columns, pair_group[no_distance], axis=0))
            np.put(block, todo[pair_row[no_distance], None] * d + columns, means)
        return unfilled
    # Unequal groups: one member of every pair's group at a time, (P, n_neighbors) gathers.
    for member in range(grouping.positions.shape[1]):
        position = grouping.positions[pair_group, member]
        real = position >= 0
        position = np.maximum(position, 0)
        neighbours = np.take(values, donor_start + position[:, None])
        estimate = np.einsum('pk,pk->p', weights, neighbours).astype(block.dtype, copy=False)
        estimate += center[position]
        if no_distance.size:
            estimate[no_distance] = donors.feature_mean(
                np.maximum(grouping.positions[pair_group[no_distance], member], 0))
        column = grouping.columns[pair_group, member]
        np.put(block, target[real] + column[real], estimate[real])
    return unfilled


def _impute_rows(donors, receivers, n_neighbors, chunk_size, themselves=False, numbers=None):
    """Impute every chunk of ``receivers`` from prepared donors; return (copy, unfilled).

    ``themselves``: the receivers are the donors' own rows. ``numbers``: row numbers for errors.
    """
    dtype = np.result_type(receivers.dtype, np.float32)
    out = np.array(receivers, dtype=dtype, copy=True)
    approx = None
    if themselves and len(out) <= SYMMETRIC_MAX_ROWS:
        # All-pairs symmetric products cost about as much as products for half of the rows.
        if 2 * np.count_nonzero(~donors.present.all(axis=1)) >= len(out) > 0:
            approx = _approximate_squared_self(donors)
    unfilled = 0
    for start in range(0, len(out), chunk_size):
        unfilled += _impute_block(
            donors, out[start:start + chunk_size], n_neighbors, start, approx,
            None if numbers is None else numbers[start:start + chunk_size])
    return out, unfilled


def _same_array(a, b):
    """Tell whether ``a`` and ``b`` are the same data (buffer, shape, strides and dtype)."""
    return a is b or (a.__array_interface__['data'][0] == b.__array_interface__['data'][0]
                      and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


def nan_knn_impute(receivers, donors, n_neighbors=5, *, groups=None, blocks=None,
                   chunk_size=256, return_unfilled=False):
    """Fill NaN in ``receivers`` from the nearest ``donors``, as scikit-learn's KNNImputer.

    Gives ``KNNImputer(n_neighbors=n_neighbors, weights='distance').fit(donors)
    .transform(receivers)`` (the rule is in the module docstring) with these differences: a
    feature no donor observes stays NaN and is counted, instead of being dropped or set to 0;
    exact distance ties are broken by lowest donor row; weights use float32 distances (values
    agree to about 1e-5 of the data's scale). Passing the same array as receivers and donors
    (imputing a set from itself, as the reference does for the training split) uses symmetric
    products and costs about half (less with ``blocks``).

    Parameters
    ----------
    receivers : ndarray of shape (n, d), float
        Rows to complete, NaN where missing. May be a memory map; it is not modified.
    donors : ndarray of shape (m, d), float
        Rows to take values from, NaN where missing. May be a memory map or float16.
    n_neighbors : int
        Donors averaged per missing value.
    groups : ndarray of shape (d,), int, optional
        Group of each feature, for features that are always missing together (a joint's x, y
        and z; see :func:`coordinate_groups`). Donors are then chosen once per missing group
        instead of once per feature, which is faster and gives the same result. A row where a
        group is partly missing raises ValueError.
    blocks : ndarray of shape (d,), int, optional
        Block of each feature (every group inside one block), such as the body slots of
        :func:`coordinate_blocks`. Only faster, the result is the same: when at most four
        receivers come at once, a block a receiver observes entirely as zeros (an absent body)
        costs no product with the donors; with more (or a set imputed from itself), the
        receivers and the donors that are all zeros on a block, or all missing there, enter
        that block's products as one row each (with one person in most samples, the second
        body's products shrink about tenfold); the pairs of a block that a minority of the
        donors observe look only among those; and the donors' zeros are left out of the
        centre the distances are computed about (tighter float32 error bounds, fewer
        distances recomputed).
    chunk_size : int
        Receivers processed together. Memory beyond the inputs and the output: about
        ``4 * m * (d + 2.5 * G)`` bytes for the prepared donors (G groups; ``8 * m * G`` more
        when at most four receivers come at once) plus ``chunk_size * (12 * d + 40 * m)``
        bytes, or ``24 * m * m`` when receivers are donors (about ``36 * m * m`` with
        blocks), plus about 200 bytes per missing group of a chunk's receivers. Without
        blocks, the pairs of a second body that few donors have may need a wide search that
        takes more (2.7 times this estimate measured on 2,000 two-body donors; 1.1 times with
        blocks).
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
        If an array is not 2-D float, the feature counts differ, a value is infinite, a receiver
        row is all NaN, ``groups`` or ``blocks`` does not fit, or ``n_neighbors`` /
        ``chunk_size`` < 1.
    """
    receivers = _check_rows('receivers', receivers)
    donors = _check_rows('donors', donors, receivers.shape[1])
    n_neighbors = _check_count('n_neighbors', n_neighbors)
    chunk_size = _check_count('chunk_size', chunk_size)
    grouping = _Grouping(groups, receivers.shape[1], blocks)
    prepared = _Donors(donors, grouping)
    imputed, unfilled = _impute_rows(prepared, receivers, n_neighbors, chunk_size,
                                     _same_array(receivers, donors))
    if return_unfilled:
        return imputed, unfilled
    return imputed


class ClusterBank:
    """Donor rows of every cluster in one array, with the centroids that assign new samples.

    Cluster k's donors are rows ``offsets_[k]:offsets_[k + 1]`` of ``donors_``; a receiver
    assigned to cluster k is imputed from those rows only (:func:`nan_knn_impute`'s rule). This
    is the test-time (and online) path of the reference; its training pass, each cluster's rows
    imputed from themselves, is ``nan_knn_impute(rows, rows, groups=groups)`` on the float32
    rows of the cluster.

    A cluster's donors are prepared (float32, centred, about ``4 * n_k * (d + 3.5 * G)``
    bytes, 37 MB for 667 NTU windows) on first use, or ahead of it by :meth:`prepare`, and
    cached; the cache makes the object unsafe to share between threads. For one window at a
    time there is more: without blocks ``8 * n_k * G`` (13 MB), and one window reads the
    donor values and the group mask once (27 MB); with the body slots as ``blocks``,
    contiguous copies of each block, with just the donors that have a second body for the
    second slot (23 MB for 667 windows, 206 of them with a second body), and a window without
    a second body reads only the first slot's copy (13 MB), a second body only its donors.
    Latency follows memory bandwidth, so it gains from a second BLAS thread even on two cores
    (``benchmarks/bench_imputer.py``).

    Parameters
    ----------
    groups : ndarray of shape (d,), int, optional
        Group of each feature, as in :func:`nan_knn_impute`; saved with the bank.
    blocks : ndarray of shape (d,), int, optional
        Block of each feature, as in :func:`nan_knn_impute` (only a speed-up, mostly for one
        window at a time; not saved: pass it to :meth:`load`).
    chunk_size : int
        Receivers imputed together.
    max_cached_clusters : int
        Clusters whose prepared (float32, centred) donors are kept between calls; an online
        caller that sees the same few clusters in a row then pays the preparation once.

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
        grouping = _Grouping(bank.groups, donors.shape[1])
        order = np.argsort(labels, kind='stable')
        counts = np.bincount(labels, minlength=n_clusters)
        stored = np.empty(donors.shape, dtype=dtype)
        for start in range(0, len(order), _DONOR_ROWS_PER_STEP):
            index = order[start:start + _DONOR_ROWS_PER_STEP]
            block = np.asarray(donors[index])
            grouping.missing_groups(grouping.to_work(np.isnan(block)), 'donors', index)
            if np.isinf(block).any():
                raise ValueError(f'donors row {index[np.argwhere(np.isinf(block))[0, 0]]}: '
                                 'expected finite values or NaN, got inf')
            with np.errstate(over='ignore'):
                cast = block.astype(dtype)
            if np.isinf(cast).any():
                raise ValueError(f'donors: values beyond the {dtype} range (largest '
                                 f'{np.nanmax(np.abs(block))}); store the bank as float32')
            stored[start:start + len(index)] = cast
        bank._set_state(centroids.astype(np.float32), stored,
                        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                        order.astype(np.int64))
        return bank

    def _set_state(self, centroids, donors, offsets, donor_index):
        self._grouping = _Grouping(self.groups, donors.shape[1], self.blocks)
        self.centroids_ = centroids
        self.donors_ = donors
        self.offsets_ = offsets
        self.donor_index_ = donor_index
        self.n_features_in_ = donors.shape[1]
        self._prepared = OrderedDict()

    def set_blocks(self, blocks):
        """Set ``blocks`` (see the class parameters) of a built or loaded bank.

        Parameters
        ----------
        blocks : ndarray of shape (d,), int, or None

        Returns
        -------
        self : ClusterBank
        """
        self._check_fitted()
        grouping = _Grouping(self.groups, self.n_features_in_, blocks)
        self.blocks = blocks
        self._grouping = grouping
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
            prepared = _Donors(self.cluster_donors(cluster), self._grouping,
                               name=f'cluster {cluster} donors')
            self._prepared[cluster] = prepared
            while len(self._prepared) > max(0, self.max_cached_clusters):
                self._prepared.popitem(last=False)
        else:
            self._prepared.move_to_end(cluster)
        return prepared

    def prepare(self, clusters=None):
        """Prepare clusters now, as their first window would, so that no later call waits.

        Preparing a cluster (validating, centring and converting its donors, and the arrays
        one window at a time reads) takes tens of ms for an NTU-sized cluster; an online
        caller that prepares at start-up keeps that stall off its first windows of each.

        Parameters
        ----------
        clusters : sequence of int, optional
            Clusters to prepare, at most ``max_cached_clusters``; the last is kept longest.
            Default: the ``max_cached_clusters`` largest non-empty clusters (those most
            training windows fell in), the largest kept longest.

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
        prepared = []
        for cluster in clusters.tolist():
            donors = self._donors_of(cluster)
            if self._grouping.blocks is not None:
                donors.block_terms()
            elif self._grouping.size:
                donors.by_group()
            prepared.append(cluster)
        return prepared

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
        if clusters.size and low == high:
            # One cluster (one window online): its rows are the output, in order.
            return _impute_rows(self._donors_of(low), receivers, n_neighbors, chunk_size)
        out = np.empty(receivers.shape, dtype=np.result_type(receivers.dtype, np.float32))
        unfilled = 0
        for cluster in np.unique(clusters):
            rows = np.flatnonzero(clusters == cluster)
            if len(rows) == len(receivers):
                block = receivers
            else:
                block = receivers[rows]
            filled, missed = _impute_rows(self._donors_of(int(cluster)), block, n_neighbors,
                                          chunk_size, numbers=rows)
            out[rows] = filled
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
        donors = load('donors', 'r' if mmap else None)
        arrays = {'centroids': load('centroids'), 'donors': donors,
                  'offsets': load('offsets'), 'donor_index': load('donor_index')}
        expected = {'centroids': ((k, None), 'float32'), 'donors': ((n, d), meta['dtype']),
                    'offsets': ((k + 1,), 'int64'), 'donor_index': ((n,), 'int64')}
        groups = None
        if 'groups' in meta['arrays']:
            groups = arrays['groups'] = load('groups')
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
        settings['groups'] = groups
        bank = cls(**settings)
        bank._set_state(arrays['centroids'], donors, offsets, arrays['donor_index'])
        return bank
