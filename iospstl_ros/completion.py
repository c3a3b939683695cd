"""Completing occluded windows: cluster-restricted KNN, then the documented fallbacks.

The same code fills the training set (``training.impute``) and each window on the robot.
A window is ``data (3, T, 25, M)`` in relative coordinates with NaN at occluded joints (see
:mod:`iospstl_ros.preprocess`); it becomes one KNN row of ``3 * T * 25 * M`` features. In a
window to be completed, an absent body holds 0 and counts as observed (so a one-person window is
nearest to one-person donors); in donor rows an absent body is missing (NaN), so a one-person
donor never gives a two-person window's second body zeros. Only occluded joints of present
bodies are imputed.

Order of filling an occluded joint (paper Sec. III-D, plus the fallbacks the paper leaves open
for "when certain joints of all data in a cluster are missing"):

1. **KNN within the cluster**: the k nearest donors of the window's cluster that observe the
   joint, weighted by inverse NaN-euclidean distance (:mod:`iospstl_ros.imputation`).
2. **Temporal interpolation**: where no donor of the cluster observes it, linear interpolation
   in time from the frames where the same joint of the same body is known (held at the ends).
3. **Mean pose**: where the joint is unknown in every frame of the window, the training set's
   mean of that coordinate (``feature_mean``), or 0 (the centre joint) without one.
"""

from iospstl_ros.imputation import coordinate_blocks, coordinate_groups, nan_knn_impute
import numpy as np


def knn_rows(data, occluded, present, absent_as_missing=False):
    """Flatten windows into KNN rows: NaN at occluded joints of present bodies.

    Parameters
    ----------
    data : ndarray of shape (N, C, T, V, M), float
    occluded : ndarray of shape (N, T, V, M), bool
    present : ndarray of shape (N, T, M), bool
    absent_as_missing : bool
        Absent bodies as NaN (donor rows) instead of 0 (rows to complete).

    Returns
    -------
    rows : ndarray of shape (N, C * T * V * M), float32
    """
    data = np.asarray(data, dtype=np.float32)
    N, C, T, V, M = data.shape
    occluded = np.asarray(occluded, dtype=bool)
    present = np.asarray(present, dtype=bool)
    if occluded.shape != (N, T, V, M) or present.shape != (N, T, M):
        raise ValueError(f'expected occluded {(N, T, V, M)} and present {(N, T, M)}, got '
                         f'{occluded.shape} and {present.shape}')
    hidden = occluded & present[:, :, None, :]
    rows = np.where(present[:, None, :, None, :], data, 0.0).astype(np.float32)
    rows = np.where(hidden[:, None], np.nan, rows)
    if absent_as_missing:
        rows = np.where(present[:, None, :, None, :], rows, np.nan)
    visible = ~np.isnan(rows)
    if not np.isfinite(rows[visible]).all():
        raise ValueError('non-finite coordinates at visible joints')
    return rows.reshape(N, -1)


def temporal_fill(data):
    """Fill NaN by linear interpolation along time per coordinate, held at the ends.

    Parameters
    ----------
    data : ndarray of shape (..., T, V, M) with time on axis -3

    Returns
    -------
    filled : ndarray of the same shape; NaN remains only where a joint is NaN in every frame.
    """
    data = np.array(data, dtype=np.float32, copy=True)
    T = data.shape[-3]
    moved = np.moveaxis(data, -3, -1).reshape(-1, T)
    missing = np.isnan(moved)
    rows = np.flatnonzero(missing.any(axis=1) & ~missing.all(axis=1))
    frames = np.arange(T)
    for row in rows:
        known = ~missing[row]
        moved[row, ~known] = np.interp(frames[~known], frames[known], moved[row, known])
    shape = np.moveaxis(data, -3, -1).shape
    return np.moveaxis(moved.reshape(shape), -1, -3)


def complete_windows(data, occluded, present, donors=None, bank=None, clusters=None,
                     n_neighbors=5, feature_mean=None, chunk_size=256):
    """Fill the occluded joints of windows (KNN, then temporal, then mean pose).

    Give either ``bank`` and ``clusters`` (cluster-restricted imputation from a
    :class:`~iospstl_ros.imputation.ClusterBank`) or ``donors`` (KNN over those rows, e.g. one
    cluster's training rows or the whole training set), or neither (fallbacks only).

    Parameters
    ----------
    data : ndarray of shape (N, C, T, V, M), float
        NaN (or anything) at occluded joints.
    occluded : ndarray of shape (N, T, V, M), bool
    present : ndarray of shape (N, T, M), bool
    donors : ndarray of shape (m, C*T*V*M), optional
        KNN rows as made by ``knn_rows(..., absent_as_missing=True)``.
    bank : ClusterBank, optional
    clusters : ndarray of shape (N,), int, optional
    n_neighbors : int
    feature_mean : ndarray of shape (C*T*V*M,), optional
        Mean of every feature over the training rows that observe it.
    chunk_size : int

    Returns
    -------
    completed : ndarray of shape (N, C, T, V, M), float32
        No NaN; absent bodies 0.
    counts : dict
        ``occluded`` joints to fill, filled by ``knn``, ``temporal`` and ``mean``.
    """
    rows = knn_rows(data, occluded, present)
    N, C, T, V, M = np.shape(data)
    groups = coordinate_groups(T, V, M)
    need = np.isnan(rows)
    all_missing = need.all(axis=1)
    imputed = rows.copy()
    if bank is not None:
        if clusters is None:
            raise ValueError('bank given without clusters: expected the cluster of each window')
        take = np.flatnonzero(~all_missing)
        if len(take):
            imputed[take], _ = bank.impute(rows[take], np.asarray(clusters)[take],
                                           n_neighbors=n_neighbors)
    elif donors is not None:
        take = np.flatnonzero(~all_missing)
        if len(take):
            imputed[take] = nan_knn_impute(rows[take], donors, n_neighbors, groups=groups,
                                           blocks=coordinate_blocks(T, V, M),
                                           chunk_size=chunk_size)
    joints = C  # values per joint
    knn_filled = int((need & ~np.isnan(imputed)).sum()) // joints
    after_knn = np.isnan(imputed)
    windows = temporal_fill(imputed.reshape(N, C, T, V, M))
    temporal_filled = int((after_knn & ~np.isnan(windows.reshape(N, -1))).sum()) // joints
    still = np.isnan(windows)
    if still.any():
        if feature_mean is not None:
            mean = np.broadcast_to(np.asarray(feature_mean, np.float32).reshape(C, T, V, M),
                                   windows.shape)
            windows[still] = mean[still]
        windows = np.nan_to_num(windows, nan=0.0)
    counts = {'occluded': int(need.sum()) // joints, 'knn': knn_filled,
              'temporal': temporal_filled,
              'mean': int(still.sum()) // joints}
    return windows.astype(np.float32), counts


def feature_means(rows):
    """Mean of every feature over the rows that observe it (NaN if none); chunked."""
    rows_total = np.zeros(rows.shape[1], dtype=np.float64)
    count = np.zeros(rows.shape[1], dtype=np.int64)
    for start in range(0, len(rows), 1024):
        block = np.asarray(rows[start:start + 1024], dtype=np.float64)
        seen = ~np.isnan(block)
        rows_total += np.where(seen, block, 0.0).sum(axis=0)
        count += seen.sum(axis=0)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(count > 0, rows_total / np.maximum(count, 1), np.nan).astype(np.float32)
