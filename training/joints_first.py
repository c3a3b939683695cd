"""The form of the ST-GCN that ``training.export`` writes: joints first, then one convolution.

Training keeps :class:`~training.model.STGCNEncoder`, whose graph convolution is a 1×1
convolution to K·C channels followed by one small product with the adjacency per frame. Traced
to ONNX that becomes, per block, a permute, a per-frame MatMul, an Expand of the adjacency per
frame and the Shape arithmetic of the reshapes; at its top optimisation level ONNX Runtime runs
the convolutions in a blocked memory layout and has to convert every one of those tensors back
(``docs/benchmarks.md``). The modules here compute the same function from the trained weights
in a form without any of that. Per block, for input ``x`` (N·M, C_in, T, V):

1. **Aggregate over joints first**, one MatMul with a constant:
   ``z = x @ A_cat`` with ``A_cat[v, w·K + k] = A_k[v, w]`` (A with the block's edge
   importance), so ``z`` is (N·M, C_in, T, W·K).
2. **Mix partitions and channels with one convolution**: kernel (1, K), stride (1, K), weight
   ``[c, c_in, 0, k] = W[k·C + c, c_in] · s[c]``, where ``W`` is the 1×1 convolution of the
   graph convolution and ``s`` the scale of the BatchNorm that follows it.
3. **Add one constant bias map** (1, C, 1, W): ``s[c] · Σ_k b[k·C + c] · Σ_v A_k[v, w] +
   shift[c]``. The graph convolution's bias passes through the aggregation, so it depends on the
   joint; that is why that BatchNorm cannot be folded into a bias vector.
4. ReLU; the temporal (9, 1) convolution with the BatchNorm after it folded in; the residual
   (identity, or a strided 1×1 convolution with its BatchNorm folded in: no Slice); ReLU.

Steps 1-2 cost ``C_in·T·V·W·K + C·C_in·K·T·W`` multiply-adds against ``K·C·C_in·T·V +
K·C·T·V·W`` for the training form: at most as many while ``C_in ≤ C`` (every block of
:meth:`EncoderConfig.block_plan` with ``hidden_dim ≥ 4·hidden_channels``). ``data_bn`` becomes
one multiply and one add of constants on the input. The body slots are stacked on the batch axis
with a reshape of constant shape; the only shape computation in the graph reads the input's body
axis for the final mean over the slots. All constants are folded in float64 and stored in
float32; ``training.export`` checks the result against the training module's forward.
"""

import torch
from torch import nn
import torch.nn.functional as F

from training.augment import bone
from training.model import STGCNEncoder

#: Value of ``graph`` in the metadata of each model exported in this form.
GRAPH_FORM = 'joints-first'


def batch_norm_affine(norm):
    """Scale and shift of a BatchNorm in eval mode, in float64.

    Parameters
    ----------
    norm : nn.BatchNorm1d or nn.BatchNorm2d
        With running statistics.

    Returns
    -------
    scale, shift : Tensor of shape (C,), float64
        ``norm(x) = x · scale + shift`` per channel.
    """
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(f'{type(norm).__name__}: expected running statistics '
                         '(track_running_stats=True) to fold it')
    variance = norm.running_var.detach().double()
    scale = 1.0 / torch.sqrt(variance + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.detach().double()
    shift = -norm.running_mean.detach().double() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach().double()
    return scale, shift


def fold_conv_norm(conv, norm):
    """Weight and bias of ``norm(conv(x))`` as one convolution, in float64.

    Parameters
    ----------
    conv : nn.Conv2d
    norm : nn.BatchNorm2d or nn.Identity
        ``nn.Identity`` where the BatchNorm was folded already (a graph read back by
        ``training.convert_model``).

    Returns
    -------
    weight : Tensor of shape conv.weight.shape, float64
    bias : Tensor of shape (C_out,), float64
    """
    if isinstance(norm, nn.Identity):
        bias = torch.zeros(conv.out_channels, dtype=torch.float64) if conv.bias is None \
            else conv.bias.detach().double()
        return conv.weight.detach().double(), bias
    scale, shift = batch_norm_affine(norm)
    weight = conv.weight.detach().double() * scale[:, None, None, None]
    bias = shift if conv.bias is None else conv.bias.detach().double() * scale + shift
    return weight, bias


def _constant(tensor):
    return tensor.detach().float().contiguous()


class JointsFirstBlock(nn.Module):
    """One ST-GCN block of a trained encoder, in the export form (see the module docstring).

    Parameters
    ----------
    block : STGCNBlock
        In eval mode.
    adjacency : Tensor of shape (K, V, W)
        The block's adjacency times its edge importance.
    """

    def __init__(self, block, adjacency):
        super().__init__()
        gcn = block.gcn.conv
        K = block.gcn.num_partitions
        C = gcn.out_channels // K
        c_in = gcn.in_channels
        if tuple(adjacency.shape[:1]) != (K,):
            raise ValueError(f'adjacency: expected {K} partitions, got shape '
                             f'{tuple(adjacency.shape)}')
        A = adjacency.detach().double()
        V, W = A.shape[1:]
        norm1, _, temporal, norm2, _ = block.tcn
        scale, shift = batch_norm_affine(norm1)
        # A_cat[v, w * K + k] = A[k, v, w]
        self.register_buffer('aggregation', _constant(A.permute(1, 2, 0).reshape(V, W * K)))
        mix = gcn.weight.detach().double().reshape(K, C, c_in) * scale[None, :, None]
        self.register_buffer('mix_weight', _constant(mix.permute(1, 2, 0).reshape(C, c_in, 1, K)))
        bias = gcn.bias.detach().double().reshape(K, C)
        bias_map = torch.einsum('kc,kw->cw', bias, A.sum(dim=1)) * scale[:, None] \
            + shift[:, None]
        self.register_buffer('bias_map', _constant(bias_map.reshape(1, C, 1, W)))
        self.partitions = K
        weight, bias = fold_conv_norm(temporal, norm2)
        self.register_buffer('temporal_weight', _constant(weight))
        self.register_buffer('temporal_bias', _constant(bias))
        self.stride = temporal.stride[0]
        self.padding = temporal.padding[0]
        self.residual = 'none' if block.residual is None else (
            'identity' if isinstance(block.residual, nn.Identity) else 'conv')
        if self.residual == 'conv':
            weight, bias = fold_conv_norm(*block.residual)
            self.register_buffer('residual_weight', _constant(weight))
            self.register_buffer('residual_bias', _constant(bias))

    def forward(self, x):
        """Apply the block to x (N, C_in, T, V); returns (N, C, ceil(T / stride), V)."""
        z = torch.matmul(x, self.aggregation)
        y = F.conv2d(z, self.mix_weight, stride=(1, self.partitions)) + self.bias_map
        y = F.conv2d(F.relu(y), self.temporal_weight, self.temporal_bias,
                     stride=(self.stride, 1), padding=(self.padding, 0))
        if self.residual == 'identity':
            y = y + x
        elif self.residual == 'conv':
            y = y + F.conv2d(x, self.residual_weight, self.residual_bias,
                             stride=(self.stride, 1))
        return F.relu(y)


class JointsFirstEncoder(nn.Module):
    """A trained :class:`STGCNEncoder` in the export form; same inputs and outputs.

    Parameters
    ----------
    encoder : STGCNEncoder
        Its weights are copied (folded); later changes to it are not seen.
    frames : int
        T of the input, fixed in the graph (the reshapes have constant shapes).
    """

    def __init__(self, encoder, frames):
        super().__init__()
        if not isinstance(encoder, STGCNEncoder):
            raise ValueError(f'encoder: expected an STGCNEncoder, got {type(encoder).__name__}')
        config = encoder.config
        self.channels, self.frames, self.joints = config.in_channels, int(frames), \
            config.num_joints
        self.hidden_dim = config.hidden_dim
        scale, shift = batch_norm_affine(encoder.data_bn)
        # data_bn normalises channel v * C + c of (N·M, V·C, T); here (C, 1, V) constants
        shape = (self.joints, self.channels)
        self.register_buffer('input_scale', _constant(scale.reshape(shape).T[:, None, :]))
        self.register_buffer('input_shift', _constant(shift.reshape(shape).T[:, None, :]))
        blocks = []
        for b, block in enumerate(encoder.blocks):
            A = encoder.A if encoder.edge_importance is None \
                else encoder.A * encoder.edge_importance[b]
            blocks.append(JointsFirstBlock(block, A))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        """Encode x (N, C, T, V, M); returns features (N, hidden_dim)."""
        bodies = x.shape[4]
        x = x.permute(0, 4, 1, 2, 3).reshape(-1, self.channels, self.frames, self.joints)
        x = x * self.input_scale + self.input_shift
        for block in self.blocks:
            x = block(x)
        x = x.mean(dim=(2, 3))
        return x.reshape(-1, bodies, self.hidden_dim).mean(dim=1)


def motion_view(x):
    """Frame differences ``x[t + 1] - x[t]``, last frame 0, as constant slices and one Pad."""
    return F.pad(x[:, :, 1:] - x[:, :, :-1], (0, 0, 0, 0, 0, 1))


class JointsFirstClassifier(nn.Module):
    """A trained classifier (input view, encoder, linear head) in the export form.

    Parameters
    ----------
    classifier : Classifier
    view : {'joint', 'motion', 'bone'}
        Input view computed inside the graph from joint coordinates.
    frames : int
    """

    VIEWS = ('joint', 'motion', 'bone')

    def __init__(self, classifier, view, frames):
        super().__init__()
        if view not in self.VIEWS:
            raise ValueError(f'view: expected one of {self.VIEWS}, got {view!r}')
        self.view = view
        self.encoder = JointsFirstEncoder(classifier.encoder, frames)
        self.fc = nn.Linear(classifier.fc.in_features, classifier.fc.out_features)
        self.fc.load_state_dict(classifier.fc.state_dict())

    def forward(self, x):
        """Logits of joint coordinates x (N, C, T, V, M): Tensor of shape (N, classes)."""
        if self.view == 'motion':
            x = motion_view(x)
        elif self.view == 'bone':
            x = bone(x)
        return self.fc(self.encoder(x))


def joints_first(module, frames):
    """Build the export form of a trained encoder or view classifier (eval mode).

    Parameters
    ----------
    module : STGCNEncoder or training.export.ViewClassifier
    frames : int
        T of the graph input.

    Returns
    -------
    JointsFirstEncoder or JointsFirstClassifier
    """
    if isinstance(module, STGCNEncoder):
        return JointsFirstEncoder(module, frames).eval()
    classifier, view = getattr(module, 'classifier', None), getattr(module, 'view', None)
    if classifier is None or view is None:
        raise ValueError(f'module: expected an STGCNEncoder or a ViewClassifier, got '
                         f'{type(module).__name__}')
    return JointsFirstClassifier(classifier, view, frames).eval()
