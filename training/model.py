"""OPSTL networks in PyTorch: the ST-GCN encoder, the Barlow Twins head and a classifier.

Only ``nn.Module``s built from a dataclass config live here (the training loops are in the stage
scripts). Every skeleton tensor uses the project layout of :mod:`iospstl_ros.layout`::

    x   (N, C, T, V, M)   float32   samples, xyz, frames, joints, bodies

The encoder is the ST-GCN variant of PSTL/OPSTL (CrosSCLR's "channel16" plan with a 256-d last
layer): ``data_bn`` over (N·M, V·C, T), ten ST-GCN blocks on the K=3 spatial-partition graph,
learnable edge importance, global average pooling over time and the remaining joints, then the
mean over the body slots. Joints are *removed* inside the network (``ignore_joints``), not zeroed.

Speed on CPU (same parameters and outputs as the textbook formulation, which the tests keep as an
oracle): activations are kept in ``channels_last`` memory order, i.e. (N, T, V, C) in memory, so
every 1×1 and (9, 1) convolution runs oneDNN's channels-last kernels and the graph aggregation
needs no permute copy (one matrix product per frame with A reshaped to (W, V·K)); dropout with p
a multiple of 1/256 (the paper's 0.5) draws one random byte per element instead of
``bernoulli_``; and the strided 1×1 residual convolution reads every second frame instead of
striding (the same numbers; it also avoids a crash of PyTorch 2.13's CPU channels-last strided
1×1 convolution backward).
"""

from dataclasses import asdict, dataclass, fields

from iospstl_ros.layout import CENTER_JOINT, EDGES, hop_distance, NUM_CHANNELS, NUM_JOINTS
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

#: Spatial partitions of the ``spatial`` strategy (root, close, further).
NUM_PARTITIONS = 3
#: From this many output channels on, the per-frame graph product runs as one explicit ``bmm``;
#: below it as a 2-D ``matmul`` (measured faster for 8 channels, slower from 16 on).
_BMM_MIN_CHANNELS = 16


@dataclass
class EncoderConfig:
    """Hyper-parameters of :class:`STGCNEncoder` (defaults reproduce the paper's encoder)."""

    in_channels: int = NUM_CHANNELS
    hidden_channels: int = 16
    hidden_dim: int = 256
    dropout: float = 0.5
    num_joints: int = NUM_JOINTS
    center: int = CENTER_JOINT
    temporal_kernel: int = 9
    edge_importance: bool = True

    def to_dict(self):
        """Return the config as a plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Build a config from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown EncoderConfig keys {unknown}; expected a subset of '
                             f'{sorted(known)}')
        return cls(**values)

    def block_plan(self):
        """Channel and stride plan of the ten blocks.

        Returns
        -------
        plan : list of (int, int, int, bool)
            ``(in_channels, out_channels, stride, residual)`` per block.
        """
        h = self.hidden_channels
        outs = (h, h, h, h, 2 * h, 2 * h, 2 * h, 4 * h, 4 * h, self.hidden_dim)
        strides = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
        ins = (self.in_channels,) + outs[:-1]
        return [(i, o, s, b > 0) for b, (i, o, s) in enumerate(zip(ins, outs, strides))]


def normalize_digraph(adjacency):
    """Divide every column by its sum (ST-GCN's ``normalize_digraph``: A · D⁻¹).

    Parameters
    ----------
    adjacency : ndarray of shape (V, V)

    Returns
    -------
    normalized : ndarray of shape (V, V), float64
        Columns with a zero sum stay zero.
    """
    adjacency = np.asarray(adjacency, dtype=np.float64)
    column_sums = adjacency.sum(axis=0)
    inverse = np.zeros_like(column_sums)
    inverse[column_sums > 0] = 1.0 / column_sums[column_sums > 0]
    return adjacency * inverse[None, :]


def spatial_adjacency(edges=EDGES, num_joints=NUM_JOINTS, center=CENTER_JOINT):
    """Build ST-GCN's K=3 ``spatial`` partition adjacency (max_hop 1, dilation 1).

    Entry ``[j, i]`` carries the message from joint j to joint i (the aggregation is
    ``x'[w] = sum_v x[v] A[v, w]``). A₀ holds the self-loops; A₁ the hop-1 pairs whose source j
    is at the same or a larger hop distance from ``center`` than i; A₂ the rest. Values come from
    the column-normalised hop ≤ 1 adjacency, so ``A₀ + A₁ + A₂`` has unit column sums.

    Parameters
    ----------
    edges : sequence of (int, int)
        Undirected skeleton edges, 0-based.
    num_joints : int
        Number of joints V.
    center : int
        Root joint of the partition.

    Returns
    -------
    A : ndarray of shape (3, V, V), float32
    """
    if not 0 <= center < num_joints:
        raise ValueError(f'center must be in [0, {num_joints}), got {center}')
    distance = hop_distance(edges, num_joints)
    if (distance < 0).any():
        raise ValueError('expected a connected skeleton graph, got unreachable joints')
    neighbours = distance <= 1
    normalized = normalize_digraph(neighbours.astype(np.float64))
    to_center = distance[:, center]
    farther_source = to_center[:, None] >= to_center[None, :]
    A = np.zeros((NUM_PARTITIONS, num_joints, num_joints), dtype=np.float64)
    A[0] = np.where(distance == 0, normalized, 0.0)
    A[1] = np.where((distance == 1) & farther_source, normalized, 0.0)
    A[2] = np.where((distance == 1) & ~farther_source, normalized, 0.0)
    return A.astype(np.float32)


def _pointwise_conv(in_channels, out_channels, stride=1):
    """``nn.Conv2d`` with a 1×1 kernel whose weight has channels-last strides.

    For a 1×1 kernel that is the same memory; it only makes the parameter's strides those of the
    gradients of oneDNN's channels-last backward (DDP warns and copies when they differ).
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride)
    weight = torch.empty_strided(conv.weight.shape, (in_channels, 1, in_channels, in_channels))
    conv.weight = nn.Parameter(weight.copy_(conv.weight.detach()))
    return conv


class GraphConv(nn.Module):
    """Spatial graph convolution: 1×1 conv to K·out channels, then sum_k X_k · Â_k."""

    def __init__(self, in_channels, out_channels, num_partitions=NUM_PARTITIONS):
        super().__init__()
        self.num_partitions = num_partitions
        self.conv = _pointwise_conv(in_channels, out_channels * num_partitions)

    def forward(self, x, A):
        """Aggregate neighbours.

        Parameters
        ----------
        x : Tensor of shape (N, C_in, T, V)
        A : Tensor of shape (K, V, V)

        Returns
        -------
        Tensor of shape (N, C_out, T, V)
            In channels-last memory order.
        """
        x = self.conv(x)
        n, _, t, v = x.shape
        k, c, w = self.num_partitions, self.conv.out_channels // self.num_partitions, A.shape[2]
        # out[n, c, t, w] = sum_{v, k} x[n, k·C + c, t, v] · A[k, v, w]; in channels-last memory
        # x is (n·t, v·k, c) for free, so this is one (w, v·k) @ (v·k, c) product per frame.
        frames = x.permute(0, 2, 3, 1).reshape(n * t, v * k, c)
        adjacency = A.permute(2, 1, 0).reshape(1, w, v * k)
        if c >= _BMM_MIN_CHANNELS:
            out = torch.bmm(adjacency.expand(n * t, w, v * k), frames)
        else:
            out = torch.matmul(adjacency[0], frames)
        return out.view(n, t, w, c).permute(0, 3, 1, 2)


class STGCNBlock(nn.Module):
    """One ST-GCN block: gcn → BN → ReLU → temporal conv → BN → Dropout, + residual, ReLU."""

    def __init__(self, in_channels, out_channels, stride=1, residual=True, dropout=0.0,
                 temporal_kernel=9):
        super().__init__()
        if temporal_kernel % 2 != 1:
            raise ValueError(f'temporal_kernel must be odd, got {temporal_kernel}')
        padding = (temporal_kernel - 1) // 2
        self.gcn = GraphConv(in_channels, out_channels)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (temporal_kernel, 1), (stride, 1),
                      (padding, 0)),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout),
        )
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                _pointwise_conv(in_channels, out_channels, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x, A):
        """Apply the block.

        Parameters
        ----------
        x : Tensor of shape (N, C_in, T, V)
        A : Tensor of shape (K, V, V)

        Returns
        -------
        Tensor of shape (N, C_out, ceil(T / stride), V)
        """
        x = x.contiguous(memory_format=torch.channels_last)
        norm1, relu, conv, norm2, drop = self.tcn
        out = conv(relu(norm1(self.gcn(x, A).contiguous(memory_format=torch.channels_last))))
        out = dropout(norm2(out), drop.p, drop.training)
        if isinstance(self.residual, nn.Sequential):
            res_conv, res_norm = self.residual
            # a strided 1x1 convolution reads every stride-th frame
            every = x[:, :, ::res_conv.stride[0]]
            out = out + res_norm(F.conv2d(every, res_conv.weight, res_conv.bias))
        elif self.residual is not None:
            out = out + x
        return self.relu(out)


class STGCNEncoder(nn.Module):
    """ST-GCN encoder of PSTL/OPSTL; maps (N, C, T, V, M) skeletons to (N, hidden_dim) features.

    Parameters
    ----------
    config : EncoderConfig
    """

    def __init__(self, config):
        super().__init__()
        if config.num_joints != NUM_JOINTS:
            raise ValueError(f'the skeleton graph has {NUM_JOINTS} joints, got num_joints='
                             f'{config.num_joints}')
        self.config = config
        V, C = config.num_joints, config.in_channels
        A = torch.from_numpy(spatial_adjacency(EDGES, V, config.center))
        self.register_buffer('A', A)
        self.data_bn = nn.BatchNorm1d(V * C)
        self.blocks = nn.ModuleList(
            STGCNBlock(cin, cout, stride, residual, config.dropout if residual else 0.0,
                       config.temporal_kernel)
            for cin, cout, stride, residual in config.block_plan())
        if config.edge_importance:
            self.edge_importance = nn.ParameterList(
                nn.Parameter(torch.ones_like(A)) for _ in self.blocks)
        else:
            self.edge_importance = None

    def _remaining_joints(self, ignore_joints):
        V = self.config.num_joints
        ignore = set()
        for joint in ignore_joints:
            joint = int(joint)
            if not 0 <= joint < V:
                raise ValueError(f'ignore_joints must hold joint indices in [0, {V}), got '
                                 f'{joint}')
            ignore.add(joint)
        remain = [v for v in range(V) if v not in ignore]
        if not remain:
            raise ValueError(f'ignore_joints removes all {V} joints; at least one must remain')
        return remain

    def forward(self, x, ignore_joints=None):
        """Encode a batch of skeleton sequences.

        Parameters
        ----------
        x : Tensor of shape (N, C, T, V, M)
            Any T ≥ 1 (50 for the anchor stream, 30 after MATM).
        ignore_joints : sequence of int, optional
            Joints removed inside the network (duplicates allowed). Features are sliced after
            ``data_bn`` and each block's A·importance is sliced to the remaining joints without
            renormalisation; pooling averages over the remaining joints only.

        Returns
        -------
        features : Tensor of shape (N, hidden_dim)
        """
        if x.dim() != 5:
            raise ValueError(f'expected x of shape (N, C, T, V, M), got {tuple(x.shape)}')
        N, C, T, V, M = x.shape
        if C != self.config.in_channels or V != self.config.num_joints:
            raise ValueError(f'expected C={self.config.in_channels} and '
                             f'V={self.config.num_joints}, got shape {tuple(x.shape)}')
        x = x.permute(0, 4, 3, 1, 2).reshape(N * M, V * C, T)
        x = self.data_bn(x)
        x = x.reshape(N * M, V, C, T).permute(0, 2, 3, 1)
        remain = None
        if ignore_joints is not None and len(ignore_joints) > 0:
            remain = self._remaining_joints(ignore_joints)
            index = torch.tensor(remain, dtype=torch.long, device=x.device)
            x = x.index_select(3, index)
        x = x.contiguous(memory_format=torch.channels_last)
        for b, block in enumerate(self.blocks):
            A = self.A if self.edge_importance is None else self.A * self.edge_importance[b]
            if remain is not None:
                A = A.index_select(1, index).index_select(2, index)
            x = block(x, A)
        x = x.mean(dim=(2, 3))
        return x.reshape(N, M, -1).mean(dim=1)


def dropout(x, p, training):
    """Inverted dropout; on CPU one random byte per element when ``256·p`` is an integer.

    ``bernoulli_`` costs as much as a small convolution on CPU; comparing uniform random bytes
    with ``256·p`` keeps each element with probability exactly ``1 − p`` (p = 0.5: byte ≥ 128)
    and scales by ``1 / (1 − p)``, as ``F.dropout`` does. The draws come from torch's default
    generator, so a seeded run is reproducible. Other p, and CUDA, use ``F.dropout``.

    Parameters
    ----------
    x : Tensor
    p : float in [0, 1]
        Probability of zeroing an element.
    training : bool
        Identity when False.

    Returns
    -------
    Tensor of the shape of x
    """
    if not training or p == 0.0:
        return x
    threshold = p * 256
    if x.device.type != 'cpu' or threshold != int(threshold) or not 0 < p < 1:
        return F.dropout(x, p, training=True)
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        x = x.contiguous()
    count = x.numel()
    # 64 random bits per int64 draw: eight uniform bytes, laid out like x in memory
    words = torch.empty((count + 7) // 8, dtype=torch.int64).random_(-2**63, None)
    random_bytes = words.view(torch.uint8)[:count].as_strided(x.shape, x.stride())
    return x.mul(random_bytes >= int(threshold)).mul_(1.0 / (1.0 - p))


class BarlowTwinsHead(nn.Module):
    """Barlow Twins projector plus the shared affine-free BatchNorm of the embeddings.

    Call it once per view: ``barlow_twins_loss(head(f1), head(f2))``. In train mode the final
    BatchNorm uses each view's own batch statistics, as the reference does.

    Parameters
    ----------
    in_dim : int
        Feature size of the encoder.
    proj_dim : int
        Width of the three projector layers (6144 in the paper; smaller for CPU runs).
    """

    def __init__(self, in_dim=256, proj_dim=6144):
        super().__init__()
        if in_dim < 1 or proj_dim < 1:
            raise ValueError(f'in_dim and proj_dim must be positive, got {in_dim}, {proj_dim}')
        self.projector = nn.Sequential(
            nn.Linear(in_dim, proj_dim, bias=False),
            nn.BatchNorm1d(proj_dim),
            nn.ReLU(),
            nn.Linear(proj_dim, proj_dim, bias=False),
            nn.BatchNorm1d(proj_dim),
            nn.ReLU(),
            nn.Linear(proj_dim, proj_dim, bias=False),
        )
        self.bn = nn.BatchNorm1d(proj_dim, affine=False)

    def forward(self, features):
        """Project and batch-normalise one view.

        Parameters
        ----------
        features : Tensor of shape (N, in_dim)

        Returns
        -------
        z : Tensor of shape (N, proj_dim)
        """
        return self.bn(self.projector(features))


def barlow_twins_loss(z1, z2, lambd=2e-4):
    """Barlow Twins redundancy-reduction loss of two batch-normalised embeddings.

    ``C = z1ᵀ z2 / N``; ``loss = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²``.

    Parameters
    ----------
    z1, z2 : Tensor of shape (N, D)
        Already normalised by :class:`BarlowTwinsHead`.
    lambd : float
        Weight of the off-diagonal term.

    Returns
    -------
    loss : Tensor of shape ()
    """
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f'expected z1 and z2 of the same shape (N, D), got {tuple(z1.shape)} '
                         f'and {tuple(z2.shape)}')
    return redundancy_loss(z1.T @ z2 / z1.shape[0], lambd)


def redundancy_loss(c, lambd):
    """``Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²`` of a (D, D) cross-correlation matrix ``C``."""
    diagonal = torch.diagonal(c)
    on_diag = (1.0 - diagonal).pow(2).sum()
    off_diag = c.pow(2).sum() - diagonal.pow(2).sum()
    return on_diag + lambd * off_diag


class Classifier(nn.Module):
    """Encoder plus a linear layer (xavier-normal weight, zero bias) for the evaluations.

    Parameters
    ----------
    encoder : STGCNEncoder
    num_classes : int
    """

    def __init__(self, encoder, num_classes):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        self.encoder = encoder
        self.fc = nn.Linear(encoder.config.hidden_dim, num_classes)
        nn.init.xavier_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x, ignore_joints=None):
        """Classify.

        Parameters
        ----------
        x : Tensor of shape (N, C, T, V, M)
        ignore_joints : sequence of int, optional

        Returns
        -------
        logits : Tensor of shape (N, num_classes)
        """
        return self.fc(self.encoder(x, ignore_joints))


def count_parameters(module, trainable_only=False):
    """Count a module's parameters (buffers excluded).

    Parameters
    ----------
    module : nn.Module
    trainable_only : bool
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def flops_per_sample(config, T=50, num_bodies=2):
    """Multiply-adds of one encoder forward for one sample (all body slots, full graph).

    Counts the convolutions (graph 1×1, temporal k×1, residual 1×1) and the dense graph
    aggregation ``K·C_out·T·V²``; BatchNorm, ReLU, biases and pooling are left out.

    Parameters
    ----------
    config : EncoderConfig
    T : int
        Input frames.
    num_bodies : int
        Body slots M; every slot is encoded.

    Returns
    -------
    int
    """
    if T < 1 or num_bodies < 1:
        raise ValueError(f'T and num_bodies must be positive, got {T}, {num_bodies}')
    V, K, kt = config.num_joints, NUM_PARTITIONS, config.temporal_kernel
    total = 0
    t = T
    for cin, cout, stride, residual in config.block_plan():
        t_out = (t - 1) // stride + 1
        total += cin * cout * K * t * V  # graph 1x1 conv
        total += K * cout * t * V * V  # aggregation
        total += cout * cout * kt * t_out * V  # temporal conv
        if residual and (cin != cout or stride != 1):
            total += cin * cout * t_out * V
        t = t_out
    return total * num_bodies
