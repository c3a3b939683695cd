"""PyTorch access to the window files (``{part}_w50_*.npy``) of a benchmark directory.

Occluded joints are NaN in the files; a network never sees NaN: :class:`WindowDataset` fills
them with ``fill`` (0, the centre joint, for "no imputation"), and raises if an imputed file
still holds NaN outside the occlusion mask.
"""

import json
import os

from iospstl_ros.layout import NUM_JOINTS
import numpy as np
import torch
from torch.utils.data import Dataset

from training.windows import load_windows


class WindowDataset(Dataset):
    """Windows, labels and the paper's B of one part of a benchmark.

    Parameters
    ----------
    root : str
        Benchmark directory holding ``{part}_w50_*.npy``, ``{part}_label.npy``, ``{part}_B.npy``.
    part : {'train', 'val'}
    fill : float
        Value given to occluded (NaN) coordinates.
    indices : sequence of int, optional
        Subset of samples (semi-supervised protocols, tests).
    in_memory : bool
        Load the windows into RAM instead of reading the memory map per item.

    Items are ``(x, label, B)``: float32 (3, 50, 25, 2), int64, uint8 (25,).
    """

    def __init__(self, root, part, fill=0.0, indices=None, in_memory=True):
        data, _, _ = load_windows(root, part, mmap=True)
        labels = _load(root, f'{part}_label.npy', (data.shape[0],))
        B = _load(root, f'{part}_B.npy', (data.shape[0], NUM_JOINTS))
        self.indices = np.arange(data.shape[0]) if indices is None else np.asarray(indices)
        if in_memory:
            data = np.nan_to_num(np.asarray(data[self.indices]), nan=fill)
            labels, B = labels[self.indices], B[self.indices]
            self._offset = False
        else:
            self._offset = True
        self.data, self.labels, self.B, self.fill = data, np.asarray(labels), np.asarray(B), fill
        self.classes = _classes(root)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, item):
        index = self.indices[item] if self._offset else item
        x = np.nan_to_num(np.asarray(self.data[index], dtype=np.float32), nan=self.fill)
        return torch.from_numpy(x), int(self.labels[index]), torch.from_numpy(self.B[index])


def _load(root, name, shape):
    path = os.path.join(root, name)
    if not os.path.exists(path):
        raise ValueError(f'{path}: missing (a benchmark directory written by prepare_ntu, '
                         'synthesize or impute is expected)')
    array = np.load(path, mmap_mode='r')
    if array.shape != shape:
        raise ValueError(f'{path}: expected shape {shape}, got {array.shape}')
    return array


def _classes(root):
    path = os.path.join(root, 'meta.json')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get('classes')


def class_stratified_subset(labels, fraction, seed):
    """Pick ``round(fraction * n_c)`` (at least 1) samples of every class c, seeded.

    Parameters
    ----------
    labels : ndarray of shape (N,), int
    fraction : float in (0, 1]
    seed : int

    Returns
    -------
    indices : ndarray of int64, sorted
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f'fraction must be in (0, 1], got {fraction}')
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)
