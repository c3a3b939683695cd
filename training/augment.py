"""Batch-wise OPSTL augmentations, input views and the MATM / CSM / ASM masks (PyTorch).

Every function takes a batch ``x`` of shape (N, C, T, V, M) (the layout of
:mod:`iospstl_ros.layout`), works on any device and returns a new tensor. As in the reference,
one random draw is shared by the whole batch; all draws come from an explicit
``random.Random`` passed as ``rng``, so a seeded generator reproduces a run and no torch RNG
state is touched. The anchor / masked streams are built as::

    s1 = augment(x, rng)                                   # crop → shear → rotate → flip
    s2 = matm(augment(x, rng), rng=rng)                    # temporal mask, 30 frames
    s3 = augment(x, rng); ignore = asm_joints(B_batch, rng)   # encoder(s3, ignore)
"""

import math

from iospstl_ros.layout import BONE_PAIRS, DEGREES, FLIP_PERMUTATION, NUM_CHANNELS, NUM_JOINTS
import numpy as np
import torch

#: Input views of ``get_stream``.
VIEWS = ('joint', 'motion', 'bone')


def _check_batch(x, name='x'):
    if not torch.is_tensor(x) or x.dim() != 5:
        shape = tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__
        raise ValueError(f'expected {name} as a tensor of shape (N, C, T, V, M), got {shape}')
    if x.shape[1] != NUM_CHANNELS or x.shape[3] != NUM_JOINTS:
        raise ValueError(f'expected {name} with C={NUM_CHANNELS} and V={NUM_JOINTS}, got shape '
                         f'{tuple(x.shape)}')


def motion(x):
    """Frame differences: ``m_t = x_{t+1} − x_t``, last frame 0.

    Parameters
    ----------
    x : Tensor of shape (N, C, T, V, M)

    Returns
    -------
    Tensor of shape (N, C, T, V, M)
    """
    out = torch.zeros_like(x)
    out[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    return out


def bone(x):
    """Bone vectors: ``b[v1] = x[v1] − x[v2]`` for every pair of ``BONE_PAIRS``; centre is 0.

    Parameters
    ----------
    x : Tensor of shape (N, C, T, V, M)

    Returns
    -------
    Tensor of shape (N, C, T, V, M)
    """
    parent = [0] * NUM_JOINTS
    for child, other in BONE_PAIRS:
        parent[child] = other
    index = torch.tensor(parent, dtype=torch.long, device=x.device)
    return x - x.index_select(3, index)


def input_view(x, view):
    """Turn joint coordinates into one input view (reference ``get_stream``).

    Parameters
    ----------
    x : Tensor of shape (N, C, T, V, M)
    view : {'joint', 'motion', 'bone'}

    Returns
    -------
    Tensor of shape (N, C, T, V, M)
    """
    _check_batch(x)
    if view == 'joint':
        return x
    if view == 'motion':
        return motion(x)
    if view == 'bone':
        return bone(x)
    raise ValueError(f'view must be one of {VIEWS}, got {view!r}')


def crop(x, rng, padding_ratio=6):
    """Temporal crop after mirror padding (pad ``T // padding_ratio`` frames on each side).

    The first ``pad`` frames are prepended in reverse order and the last ``pad`` appended in
    reverse order; one start ``s ~ U{0..2·pad}`` is drawn for the batch and T frames are kept,
    i.e. a shift of up to ±pad frames.

    Parameters
    ----------
    x : Tensor of shape (N, C, T, V, M)
    rng : random.Random
    padding_ratio : int

    Returns
    -------
    Tensor of shape (N, C, T, V, M)
    """
    _check_batch(x)
    if padding_ratio < 1:
        raise ValueError(f'padding_ratio must be >= 1, got {padding_ratio}')
    T = x.shape[2]
    pad = T // padding_ratio
    start = rng.randint(0, 2 * pad)
    if pad == 0:
        return x.clone()
    padded = torch.cat([x[:, :, :pad].flip(2), x, x[:, :, -pad:].flip(2)], dim=2)
    return padded[:, :, start:start + T]


def _transform(x, matrix):
    """Apply ``x'_d = Σ_c x_c · matrix[c, d]`` to the coordinate axis of (N, C, T, V, M)."""
    matrix = matrix.to(device=x.device, dtype=x.dtype)
    return torch.einsum('nctvm,cd->ndtvm', x, matrix)


def shear_matrix(rng, amplitude=1.0):
    """Draw the 3×3 shear: ones on the diagonal, off-diagonals U(−amp, amp) in row-major order.

    Parameters
    ----------
    rng : random.Random
    amplitude : float

    Returns
    -------
    S : Tensor of shape (3, 3), float64; :func:`shear` maps x to Sᵀx.
    """
    S = torch.eye(3, dtype=torch.float64)
    for row in range(3):
        for col in range(3):
            if row != col:
                S[row, col] = rng.uniform(-amplitude, amplitude)
    return S


def shear(x, rng, amplitude=1.0):
    """Shear the coordinates of the whole batch: ``x' = Sᵀ x`` (reference ``shear``).

    Parameters
    ----------
    x : Tensor of shape (N, C, T, V, M)
    rng : random.Random
    amplitude : float

    Returns
    -------
    Tensor of shape (N, C, T, V, M)
    """
    _check_batch(x)
    return _transform(x, shear_matrix(rng, amplitude))


def rotation_matrix(axis, degrees):
    """Rotation matrix of the reference code about one axis.

    ``Rx = [[1,0,0],[0,c,s],[0,−s,c]]``, ``Ry = [[c,0,−s],[0,1,0],[s,0,c]]``,
    ``Rz = [[c,s,0],[−s,c,0],[0,0,1]]``; :func:`random_rotate` maps x to R x.

    Parameters
    ----------
    axis : {0, 1, 2}
        x, y or z.
    degrees : float

    Returns
    -------
    R : Tensor of shape (3, 3), float64
    """
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == 0:
        rows = [[1, 0, 0], [0, c, s], [0, -s, c]]
    elif axis == 1:
        rows = [[c, 0, -s], [0, 1, 0], [s, 0, c]]
    elif axis == 2:
        rows = [[c, s, 0], [-s, c, 0], [0, 0, 1]]
    else:
        raise ValueError(f'axis must be 0, 1 or 2, got {axis!r}')
    return torch.tensor(rows, dtype=torch.float64)


def random_rotate(x, rng, main_degrees=30.0, other_degrees=1.0):
    """Rotate the batch about x, then y, then z; angles are never negative.

    A main axis is drawn uniformly (``rng.randint(0, 2)``); it gets U(0, main_degrees), the
    other two U(0, other_degrees); angles are drawn in axis order x, y, z.

    Parameters
    ----------
    x : Tensor of shape (N, C, T, V, M)
    rng : random.Random
    main_degrees, other_degrees : float

    Returns
    -------
    Tensor of shape (N, C, T, V, M)
    """
    _check_batch(x)
    main_axis = rng.randint(0, 2)
    total = torch.eye(3, dtype=torch.float64)
    for axis in range(3):
        limit = main_degrees if axis == main_axis else other_degrees
        total = rotation_matrix(axis, rng.uniform(0, limit)) @ total
    return _transform(x, total.T)


def random_spatial_flip(x, rng, p=0.5):
    """With probability p relabel joints by ``FLIP_PERMUTATION`` (coordinates unchanged).

    Parameters
    ----------
    x : Tensor of shape (N, C, T, V, M)
    rng : random.Random
    p : float

    Returns
    -------
    Tensor of shape (N, C, T, V, M)
    """
    _check_batch(x)
    if rng.random() < p:
        index = torch.tensor(FLIP_PERMUTATION, dtype=torch.long, device=x.device)
        return x.index_select(3, index)
    return x.clone()


def augment(x, rng, padding_ratio=6, shear_amplitude=1.0):
    """One stream's augmentation: crop → shear → random_rotate → random_spatial_flip.

    Parameters
    ----------
    x : Tensor of shape (N, C, T, V, M)
    rng : random.Random
    padding_ratio : int
    shear_amplitude : float

    Returns
    -------
    Tensor of shape (N, C, T, V, M)
    """
    x = crop(x, rng, padding_ratio)
    x = shear(x, rng, shear_amplitude)
    x = random_rotate(x, rng)
    return random_spatial_flip(x, rng)


def matm(x, mask_frames=10, remain=30, rng=None):
    """Motion-attention temporal masking (MATM).

    Per sample, the ``mask_frames`` frames of highest motion energy (mean over C, V, M of
    ``(x_{t+1} − x_t)²``, last frame 0) are dropped; then one random subset of ``remain`` of
    the kept positions, shared by the batch, is taken. Time order is preserved. Works for a
    batch of one (the reference fails there).

    Parameters
    ----------
    x : Tensor of shape (N, C, T, V, M)
    mask_frames : int
    remain : int
        Frames of the output; at most ``T − mask_frames``.
    rng : random.Random

    Returns
    -------
    Tensor of shape (N, C, remain, V, M)
    """
    _check_batch(x)
    if rng is None:
        raise ValueError('matm needs rng, a random.Random; got None')
    N, C, T, V, M = x.shape
    kept = T - mask_frames
    if mask_frames < 0 or not 1 <= remain <= kept:
        raise ValueError(f'expected 0 <= mask_frames and 1 <= remain <= T - mask_frames = '
                         f'{kept}, got mask_frames={mask_frames}, remain={remain} (T={T})')
    attention = -motion(x).pow(2).mean(dim=(1, 3, 4))
    low_motion = torch.topk(attention, kept, dim=1, largest=True).indices.sort(dim=1).values
    index = low_motion[:, None, :, None, None].expand(N, C, kept, V, M)
    x = x.gather(2, index)
    chosen = sorted(rng.sample(range(kept), remain))
    return x[:, :, chosen]


def _draw_from_multiset(weights, rng, mask_joint):
    """Draw ``mask_joint`` positions without replacement from joint j repeated weights[j]×."""
    pool = [joint for joint, weight in enumerate(weights) for _ in range(int(weight))]
    if not 0 <= mask_joint <= len(pool):
        raise ValueError(f'mask_joint must be in [0, {len(pool)}] (multiset size), got '
                         f'{mask_joint}')
    return rng.sample(pool, mask_joint)


def csm_joints(rng, mask_joint=8):
    """Central spatial masking (PSTL): joints to remove, drawn by degree centrality.

    ``mask_joint`` positions are drawn without replacement from the 48-entry multiset in which
    joint j appears ``DEGREES[j]`` times, so a joint can be drawn twice (as the reference).

    Parameters
    ----------
    rng : random.Random
    mask_joint : int

    Returns
    -------
    ignore_joints : list of int, length mask_joint
        For ``STGCNEncoder.forward(x, ignore_joints)``.
    """
    return _draw_from_multiset(DEGREES, rng, mask_joint)


def _occlusion_counts(B_batch):
    """Per-joint count of samples with the joint occluded; (b, V) → (V,) float64."""
    if torch.is_tensor(B_batch):
        B_batch = B_batch.detach().cpu().numpy()
    B_batch = np.asarray(B_batch)
    if B_batch.ndim != 2 or B_batch.shape[1] != NUM_JOINTS or B_batch.shape[0] < 1:
        raise ValueError(f'expected B_batch of shape (b, {NUM_JOINTS}) with b >= 1, got '
                         f'{B_batch.shape}')
    return (B_batch != 0).sum(axis=0).astype(np.float64)


def frequency_degrees(B_batch):
    """Frequency degree of every joint in a batch (paper eq. 6).

    ``cnt_j = Σ_b B[b, j]`` and
    ``f_j = floor((cnt_j − min cnt)·3 / (max cnt − min cnt + 0.001) + 1)``, which lies in
    {1, 2, 3}.

    Parameters
    ----------
    B_batch : array-like of shape (b, V)
        1 where joint j is occluded somewhere in sample b.

    Returns
    -------
    degrees : ndarray of shape (V,), int64
    """
    counts = _occlusion_counts(B_batch)
    spread = counts.max() - counts.min() + 0.001
    return np.floor((counts - counts.min()) * 3.0 / spread + 1.0).astype(np.int64)


def asm_joints(B_batch, rng, mask_joint=9):
    """Adaptive spatial masking (OPSTL): joints to remove, favouring often-occluded ones.

    Joint j appears ``frequency_degrees(B_batch)[j]`` times in a multiset from which
    ``mask_joint`` positions are drawn without replacement (duplicates possible). If no joint is
    occluded in the batch, the degree multiset of :func:`csm_joints` is used instead, so the
    result equals ``csm_joints(rng, mask_joint)`` for the same generator state.

    Parameters
    ----------
    B_batch : array-like of shape (b, V)
    rng : random.Random
    mask_joint : int

    Returns
    -------
    ignore_joints : list of int, length mask_joint
    """
    if _occlusion_counts(B_batch).sum() == 0:
        return _draw_from_multiset(DEGREES, rng, mask_joint)
    degrees = frequency_degrees(B_batch)
    return _draw_from_multiset(degrees, rng, mask_joint)
