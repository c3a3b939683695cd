"""On-disk format of a data set split, shared by ``prepare_ntu``, ``synthesize`` and training.

A benchmark directory (for example ``data/ntu60/xsub``) holds, for each part (``train``,
``val``), memory-mappable ``.npy`` files in the layout of :mod:`iospstl_ros.layout`:

=========================  ===========================  ====================================
file                       dtype, shape                 content
=========================  ===========================  ====================================
``{part}_data.npy``        float32 (N, 3, T, 25, 2)     camera-space xyz, metres; NaN where
                                                        occluded; 0 in padding / absent body
``{part}_occluded.npy``    bool (N, T, 25, 2)           True where a joint is occluded
``{part}_present.npy``     bool (N, T, 2)               True where body m exists at frame t
``{part}_num_frames.npy``  int32 (N,)                   frames of the sequence (<= T)
``{part}_label.npy``       int64 (N,)                   0-based class index
``{part}_B.npy``           uint8 (N, 25)                1 where the joint is occluded in any
                                                        present frame of any body (paper's B)
``{part}_names.txt``       text, N lines                sample names (``S001C001P001R001A001``)
``{part}_label.pkl``       pickle (names, labels)       the CrosSCLR/AimCLR label format
``meta.json``              JSON                         classes, their NTU action ids,
                                                        source, occlusion model, sizes
=========================  ===========================  ====================================

``meta.json`` ``classes`` names the labels; ``action_ids`` (optional: absent in data sets
written before it existed) gives the NTU RGB+D action number of each class, 0 where the class is
no NTU action (:func:`meta_action_ids`).

Synthetic data and NTU data are written by the same :class:`SplitWriter`, so nothing downstream
can tell them apart.
"""

from dataclasses import dataclass
import json
import os
import pickle

from iospstl_ros.datasets.splits import check_action_ids
from iospstl_ros.layout import MAX_BODIES, MAX_FRAMES, NUM_CHANNELS, NUM_JOINTS
import numpy as np

FORMAT_NAME = 'iospstl-dataset'
FORMAT_VERSION = 1
PARTS = ('train', 'val')


def _check_part(part):
    if part not in PARTS:
        raise ValueError(f'part must be one of {PARTS}, got {part!r}')


def missing_joint_flags(occluded, present):
    """Compute the paper's B: which joints are occluded anywhere in a sample.

    Parameters
    ----------
    occluded : ndarray of shape (N, T, V, M) or (T, V, M), bool
    present : ndarray of shape (N, T, M) or (T, M), bool

    Returns
    -------
    B : ndarray of shape (N, V) or (V,), uint8
    """
    occluded = np.asarray(occluded, dtype=bool)
    present = np.asarray(present, dtype=bool)
    if occluded.ndim not in (3, 4) or present.shape != occluded.shape[:-2] + occluded.shape[-1:]:
        raise ValueError(
            'expected occluded (N, T, V, M) and present (N, T, M); '
            f'got {occluded.shape} and {present.shape}')
    hidden = occluded & present[..., None, :]
    return hidden.any(axis=(-3, -1)).astype(np.uint8)


def meta_action_ids(meta):
    """NTU action id of each class of a data set's ``meta.json``, or None if it gives none.

    Parameters
    ----------
    meta : dict
        Contents of ``meta.json``.

    Returns
    -------
    tuple of int or None
        One id per ``classes`` entry (0 = no NTU action); None without ``action_ids``.

    Raises
    ------
    ValueError
        If ``action_ids`` is there but not one id in 0..120 per class.
    """
    if meta.get('action_ids') is None:
        return None
    try:
        return check_action_ids(meta['action_ids'], len(meta.get('classes') or []))
    except ValueError as error:
        raise ValueError(f'meta.json action_ids: {error}') from None


@dataclass
class Split:
    """One part of a benchmark, arrays memory-mapped read-only."""

    data: np.ndarray
    occluded: np.ndarray
    present: np.ndarray
    num_frames: np.ndarray
    labels: np.ndarray
    B: np.ndarray
    names: list
    meta: dict

    def __len__(self):
        return len(self.labels)

    @property
    def action_ids(self):
        """NTU action id of each class (:func:`meta_action_ids`), or None."""
        return meta_action_ids(self.meta)


class SplitWriter:
    """Write one part of a benchmark sample by sample into memory-mapped files.

    Parameters
    ----------
    root : str
        Benchmark directory; created if missing.
    part : {'train', 'val'}
    num_samples : int
    max_frames : int
        Frame axis length T of the arrays.
    """

    def __init__(self, root, part, num_samples, max_frames=MAX_FRAMES):
        _check_part(part)
        if num_samples < 0:
            raise ValueError(f'num_samples must be >= 0, got {num_samples}')
        os.makedirs(root, exist_ok=True)
        self.root, self.part, self.max_frames = root, part, max_frames
        n, t, v, m = num_samples, max_frames, NUM_JOINTS, MAX_BODIES
        open_memmap = np.lib.format.open_memmap
        self.data = open_memmap(self._path('data.npy'), 'w+', np.float32,
                                (n, NUM_CHANNELS, t, v, m))
        self.occluded = open_memmap(self._path('occluded.npy'), 'w+', np.bool_, (n, t, v, m))
        self.present = open_memmap(self._path('present.npy'), 'w+', np.bool_, (n, t, m))
        self.num_frames = np.zeros(n, dtype=np.int32)
        self.labels = np.full(n, -1, dtype=np.int64)
        self.B = np.zeros((n, v), dtype=np.uint8)
        self.names = [None] * n

    def _path(self, suffix):
        return os.path.join(self.root, f'{self.part}_{suffix}')

    def write(self, index, name, label, xyz, occluded, present):
        """Store sample ``index``.

        Parameters
        ----------
        index : int
        name : str
        label : int
        xyz : ndarray of shape (3, T', 25, M'), float
            T' <= max_frames, M' <= 2. Occluded joints may hold anything; they are stored as NaN.
        occluded : ndarray of shape (T', 25, M'), bool
        present : ndarray of shape (T', M'), bool
        """
        xyz = np.asarray(xyz, dtype=np.float32)
        occluded = np.asarray(occluded, dtype=bool)
        present = np.asarray(present, dtype=bool)
        if xyz.ndim != 4 or xyz.shape[0] != NUM_CHANNELS or xyz.shape[2] != NUM_JOINTS:
            raise ValueError(f'{name}: expected xyz of shape (3, T, 25, M), got {xyz.shape}')
        _, t, v, m = xyz.shape
        if t > self.max_frames or m > MAX_BODIES:
            raise ValueError(
                f'{name}: at most {self.max_frames} frames and {MAX_BODIES} bodies fit, '
                f'got {t} frames and {m} bodies')
        if occluded.shape != (t, v, m) or present.shape != (t, m):
            raise ValueError(
                f'{name}: expected occluded {(t, v, m)} and present {(t, m)}, '
                f'got {occluded.shape} and {present.shape}')
        occluded = occluded & present[:, None, :]
        stored = np.where(present[None, :, None, :], xyz, 0.0)
        stored = np.where(occluded[None], np.nan, stored)
        if not np.isfinite(stored[:, ~occluded]).all():
            raise ValueError(f'{name}: non-finite coordinates in visible joints')
        self.data[index] = 0.0
        self.occluded[index] = False
        self.present[index] = False
        self.data[index, :, :t, :, :m] = stored
        self.occluded[index, :t, :, :m] = occluded
        self.present[index, :t, :m] = present
        self.num_frames[index] = t
        self.labels[index] = int(label)
        self.B[index, :] = 0
        self.B[index] = missing_joint_flags(self.occluded[index], self.present[index])
        self.names[index] = str(name)

    def close(self, meta):
        """Flush arrays and write labels, names and ``meta.json`` (merged with other parts)."""
        missing = [i for i, name in enumerate(self.names) if name is None]
        if missing:
            raise ValueError(f'{len(missing)} samples were never written (first: {missing[0]})')
        for array in (self.data, self.occluded, self.present):
            array.flush()
        del self.data, self.occluded, self.present
        np.save(self._path('num_frames.npy'), self.num_frames)
        np.save(self._path('label.npy'), self.labels)
        np.save(self._path('B.npy'), self.B)
        with open(self._path('names.txt'), 'w') as f:
            f.write(''.join(name + '\n' for name in self.names))
        with open(self._path('label.pkl'), 'wb') as f:
            pickle.dump((list(self.names), [int(x) for x in self.labels]), f)
        meta_path = os.path.join(self.root, 'meta.json')
        merged = {}
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                merged = json.load(f)
        merged.update(meta)
        merged['format'] = FORMAT_NAME
        merged['format_version'] = FORMAT_VERSION
        merged['max_frames'] = self.max_frames
        merged.setdefault('parts', {})[self.part] = len(self.names)
        tmp = meta_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(merged, f, indent=2, sort_keys=True)
        os.replace(tmp, meta_path)


def open_split(root, part, mmap=True):
    """Open one part of a benchmark written by :class:`SplitWriter`.

    Raises
    ------
    ValueError
        If a file is missing, of another format version, or the arrays disagree in shape.
    """
    _check_part(part)
    meta_path = os.path.join(root, 'meta.json')
    if not os.path.exists(meta_path):
        raise ValueError(f'{root}: no meta.json; expected a directory written by prepare_ntu '
                         'or synthesize')
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get('format') != FORMAT_NAME or meta.get('format_version') != FORMAT_VERSION:
        raise ValueError(f'{meta_path}: expected format {FORMAT_NAME} v{FORMAT_VERSION}, got '
                         f'{meta.get("format")} v{meta.get("format_version")}')
    mode = 'r' if mmap else None

    def load(suffix):
        path = os.path.join(root, f'{part}_{suffix}')
        if not os.path.exists(path):
            raise ValueError(f'{path}: missing')
        return np.load(path, mmap_mode=mode)

    data = load('data.npy')
    n = data.shape[0]
    t = meta['max_frames']
    expected = {
        'data.npy': ((n, NUM_CHANNELS, t, NUM_JOINTS, MAX_BODIES), np.float32),
        'occluded.npy': ((n, t, NUM_JOINTS, MAX_BODIES), np.bool_),
        'present.npy': ((n, t, MAX_BODIES), np.bool_),
        'num_frames.npy': ((n,), np.int32),
        'label.npy': ((n,), np.int64),
        'B.npy': ((n, NUM_JOINTS), np.uint8),
    }
    arrays = {'data.npy': data}
    for suffix, (shape, dtype) in expected.items():
        array = arrays.get(suffix)
        if array is None:
            array = arrays[suffix] = load(suffix)
        if array.shape != shape or array.dtype != dtype:
            path = os.path.join(root, f'{part}_{suffix}')
            raise ValueError(f'{path}: expected {np.dtype(dtype).name} {shape}, '
                             f'got {array.dtype} {array.shape}')
    with open(os.path.join(root, f'{part}_names.txt')) as f:
        names = f.read().splitlines()
    if len(names) != n:
        raise ValueError(f'{root}/{part}_names.txt: expected {n} names, got {len(names)}')
    return Split(arrays['data.npy'], arrays['occluded.npy'], arrays['present.npy'],
                 arrays['num_frames.npy'], arrays['label.npy'], arrays['B.npy'], names, meta)
