"""OPSTL pre-training: Barlow Twins over anchor, MATM and ASM (or CSM) streams.

    python -m training.pretrain --data data/synthetic/xsub --out runs/stage1 --preset cpu

``--data`` is a benchmark directory with window files (``python -m training.windows``); for the
second stage it is the directory written by ``python -m training.impute``. The run folder gets
``command.txt``, ``args.json``, ``metrics.jsonl``, ``checkpoint.pt`` (every epoch, atomic; a
second run with the same ``--out`` resumes from it) and, at the end, ``encoder.pt`` holding the
encoder config and weights.

Multi-GPU or multi-process: ``torchrun --nproc-per-node W -m training.pretrain ...``
(DistributedDataParallel; nccl on GPUs, gloo on CPU). ``--batch-size`` is per process, and W
processes of batch b train like one process of batch W·b:

* every epoch one permutation of the samples is cut into global batches of W·b; process r takes
  the positions r, r + W, ... of each (``DistributedSampler`` order), so the union of the
  processes' k-th batches is the single-process k-th batch (a last, partial batch that would
  leave a process fewer than 2 samples is dropped, so there the two can differ);
* every process draws the augmentations from the same seeded ``random.Random`` (one draw per
  batch, as the reference), and ASM counts the occluded joints of the all-gathered global B;
* the Barlow Twins cross-correlation is summed over the processes and divided by the global
  batch size, and each process back-propagates W times its loss, so DDP's gradient average is
  the single-process gradient;
* BatchNorm statistics cover the global batch: ``SyncBatchNorm`` on CUDA; PyTorch's
  ``SyncBatchNorm`` does not run on CPU, so with gloo :class:`AllReduceBatchNorm` all-reduces the
  mean and variance (and their gradients) instead. ``--local-bn`` keeps each process's own
  statistics, as plain DDP does; in ``test/test_distributed.py`` (2 × 8 samples) that alone moves
  the first epoch's loss by 13 %, against 6e-6 with synchronised statistics.

Dropout masks are drawn per process, so they cannot match a single process; ``--dropout 0``
makes W processes and one process agree to float rounding. On one machine's CPU, one process
using all cores is the faster choice: the all-reduce BatchNorm synchronises four times per
BatchNorm call (2 cores, 128-d ``cpu`` preset: 2 processes × 1 thread 20 samples/s, with
``--local-bn`` 36, one process × 2 threads 36).
"""

import argparse
import math
import random
import sys
import time

import torch
from torch import nn
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from training import augment
from training.common import (
    check_resume_arguments, cleanup_distributed, init_distributed, RunDir, seed_everything)
from training.data import WindowDataset
from training.model import (
    BarlowTwinsHead, count_parameters, EncoderConfig, redundancy_loss, STGCNEncoder)

#: ``paper`` reproduces the reference; ``cpu`` is small enough for the synthetic pipeline on
#: two CPU cores; ``tiny`` is for tests. ``cpu`` has a 64-d feature: on 2 cores (AMD EPYC,
#: AVX-512, shared) batch-64 steps train 41-52 samples/s, against 30-39 with 128-d, whose last
#: block alone holds 58 % of the multiply-adds (``python -m benchmarks.bench_pretrain``); two
#: 30-epoch pre-trainings of 1,000 samples then take 19-24 minutes instead of 26-33.
PRESETS = {
    'paper': {'epochs': 150, 'batch_size': 128, 'lr': 5e-3, 'weight_decay': 1e-5, 'warmup': 10,
              'proj_dim': 6144, 'hidden_channels': 16, 'hidden_dim': 256},
    'cpu': {'epochs': 30, 'batch_size': 64, 'lr': 5e-3, 'weight_decay': 1e-5, 'warmup': 3,
            'proj_dim': 1024, 'hidden_channels': 8, 'hidden_dim': 64},
    'tiny': {'epochs': 2, 'batch_size': 16, 'lr': 5e-3, 'weight_decay': 1e-5, 'warmup': 1,
             'proj_dim': 64, 'hidden_channels': 4, 'hidden_dim': 32},
}


def world_size():
    """Return the number of processes in the default group (1 without ``torch.distributed``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def cross_correlation(z1, z2, batch_size):
    """Barlow Twins ``C = Σ_b z1_bᵀ z2_b / batch_size`` over the global batch.

    Under ``torch.distributed`` the per-process sums are all-reduced (as the official Barlow
    Twins does); the gradient flows through this process's own term only, so a loss of the
    returned C scaled by the world size gives, after DDP's gradient average, the gradient of the
    single-process loss.

    Parameters
    ----------
    z1, z2 : Tensor of shape (b, D)
        This process's part of the batch-normalised embeddings.
    batch_size : int
        Global batch size (the sum of b over the processes).

    Returns
    -------
    C : Tensor of shape (D, D), at least float32 (also under bfloat16 autocast)
    """
    dtype = torch.promote_types(z1.dtype, torch.float32)
    with torch.autocast(z1.device.type, enabled=False):
        c = z1.to(dtype).T @ z2.to(dtype)
    if world_size() > 1:
        total = c.detach().clone()
        dist.all_reduce(total)
        c = c + (total - c.detach())
    return c / batch_size


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes; gradients are summed too, since every process uses the sum."""

    @staticmethod
    def forward(ctx, tensor):
        total = tensor.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad):
        total = grad.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all processes, for CPU (gloo) training.

    PyTorch's ``SyncBatchNorm`` runs only on accelerators. In training mode this module
    all-reduces the per-channel count and sum, then the sum of squared deviations from the global
    mean (two passes, like ``nn.BatchNorm``), through an autograd function whose backward
    all-reduces the gradients, so outputs, gradients and running statistics (unbiased global
    variance) equal those of ``nn.BatchNorm`` on the concatenated batch. Without
    ``torch.distributed``, and in eval mode, it is ``nn.BatchNorm``.
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f'expected input of shape (N, C, ...), got {tuple(x.shape)}')

    def forward(self, x):
        """Normalise ``x`` of shape (N, C, ...) with the statistics of the global batch."""
        if not self.training or world_size() == 1:
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.new_tensor([x.numel() // x.shape[1]])
        sums = _AllReduceSum.apply(torch.cat([x.sum(dims), count]))
        total = sums[-1]
        mean = sums[:-1] / total
        centered = x - mean.view(shape)
        var = _AllReduceSum.apply(centered.pow(2).sum(dims)) / total
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / self.num_batches_tracked.item() if self.momentum is None
                            else self.momentum)
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * total / (total - 1), momentum)
        return out


def synchronize_batch_norm(module, device):
    """Make every BatchNorm of ``module`` use global-batch statistics (in place).

    ``SyncBatchNorm`` on CUDA, :class:`AllReduceBatchNorm` on CPU; parameters and buffers are
    kept (the same tensors), so state-dict keys do not change.
    """
    if device.type == 'cuda':
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            replacement = AllReduceBatchNorm(child.num_features, child.eps, child.momentum,
                                             child.affine, child.track_running_stats)
            replacement.weight, replacement.bias = child.weight, child.bias
            replacement.running_mean = child.running_mean
            replacement.running_var = child.running_var
            replacement.num_batches_tracked = child.num_batches_tracked
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            synchronize_batch_norm(child, device)
    return module


class OPSTL(nn.Module):
    """Encoder and projector trained together (one module, so DDP wraps both)."""

    def __init__(self, encoder_config, proj_dim):
        super().__init__()
        self.encoder = STGCNEncoder(encoder_config)
        self.head = BarlowTwinsHead(encoder_config.hidden_dim, proj_dim)

    def forward(self, s1, s2, s3, ignore_joints, lambd, batch_size=None):
        """Loss of one batch: BT(anchor, MATM) + BT(anchor, masked).

        ``batch_size`` is the global batch size (default: this process's batch).
        """
        batch_size = len(s1) if batch_size is None else batch_size
        z1 = self.head(self.encoder(s1))
        z2 = self.head(self.encoder(s2))
        z3 = self.head(self.encoder(s3, ignore_joints))
        return (redundancy_loss(cross_correlation(z1, z2, batch_size), lambd)
                + redundancy_loss(cross_correlation(z1, z3, batch_size), lambd))


def learning_rate(epoch, base_lr, warmup, epochs):
    """Per-epoch schedule of the reference: linear warm-up from 0, then cosine to 0."""
    if epoch < warmup:
        return base_lr * epoch / warmup
    return base_lr * (1 + math.cos(math.pi * (epoch - warmup) / max(1, epochs - warmup))) / 2


def global_batches(num_samples, batch_size, seed, epoch, world=1):
    """One epoch's batches of every process, in ``DistributedSampler`` order.

    A permutation seeded with ``seed + epoch`` is cut into global batches of ``world ·
    batch_size`` samples; process r gets the positions r, r + world, ... of each. The last,
    partial global batch is dropped when a process would get fewer than 2 samples (BatchNorm
    needs 2).

    Parameters
    ----------
    num_samples, batch_size, seed, epoch, world : int

    Returns
    -------
    batches : list of list of list of int
        ``batches[k][r]`` are the sample indices of process r's k-th batch.
    """
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(num_samples, generator=generator).tolist()
    size = world * batch_size
    batches = []
    for start in range(0, num_samples, size):
        chunk = order[start:start + size]
        if len(chunk) < 2 * world:
            break
        batches.append([chunk[rank::world] for rank in range(world)])
    return batches


def gather_rows(B, rows):
    """All-gather every process's (b, V) matrix B, zero-padded to ``rows`` rows each.

    Zero rows add no occlusion, so column counts of the result are those of the global batch.
    """
    if world_size() == 1:
        return B
    padded = B.new_zeros((rows, B.shape[1]))
    padded[:len(B)] = B
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    return torch.cat(parts)


def three_streams(x, B, rng, args):
    """Anchor, MATM and spatially masked streams of a batch, and the joints to remove.

    ``B`` may be the all-gathered B of the global batch: ASM uses only its column counts.
    """
    s1 = augment.augment(x, rng)
    s2 = augment.matm(augment.augment(x, rng), mask_frames=args.mask_frames,
                      remain=x.shape[2] - 2 * args.mask_frames, rng=rng)
    s3 = augment.augment(x, rng)
    if args.mask == 'asm':
        ignore = augment.asm_joints(B, rng, args.mask_joints)
    else:
        ignore = augment.csm_joints(rng, args.mask_joints)
    return s1, s2, s3, ignore


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True,
                        help='benchmark directory with train_w50_*.npy, train_label.npy, '
                             'train_B.npy')
    parser.add_argument('--out', required=True, help='run folder (resumed if it exists)')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='paper',
                        help='hyper-parameter set; flags below override it (default: paper)')
    parser.add_argument('--epochs', type=int, help='epochs (paper 150)')
    parser.add_argument('--batch-size', type=int,
                        help='batch per process (paper 128); W torchrun processes of batch b '
                             'train like one process of batch W*b')
    parser.add_argument('--lr', type=float, help='Adam learning rate (paper 5e-3)')
    parser.add_argument('--weight-decay', type=float, help='coupled L2 (paper 1e-5)')
    parser.add_argument('--warmup', type=int, help='linear warm-up epochs (paper 10)')
    parser.add_argument('--proj-dim', type=int, help='projector width (paper 6144)')
    parser.add_argument('--hidden-channels', type=int, help='ST-GCN base width (paper 16)')
    parser.add_argument('--hidden-dim', type=int, help='feature size (paper 256)')
    parser.add_argument('--mask', choices=('asm', 'csm'), default='asm',
                        help='spatial masking: ASM (OPSTL) or CSM (PSTL ablation)')
    parser.add_argument('--mask-joints', type=int,
                        help='joints removed in stream 3 (default 9 for ASM, 8 for CSM)')
    parser.add_argument('--mask-frames', type=int, default=10,
                        help='MATM: high-motion frames dropped, then as many random ones '
                             '(default 10: 30 of 50 frames remain)')
    parser.add_argument('--lambd', type=float, default=2e-4, help='Barlow Twins lambda')
    parser.add_argument('--dropout', type=float, default=0.5,
                        help='dropout of ST-GCN blocks 2-10 (paper 0.5)')
    parser.add_argument('--local-bn', action='store_true',
                        help="torchrun only: BatchNorm statistics of each process's own batch "
                             '(plain DDP) instead of the global batch')
    parser.add_argument('--view', choices=('joint', 'motion', 'bone'), default='joint',
                        help='input view')
    parser.add_argument('--device', default='auto',
                        help="'cpu', 'cuda', 'cuda:N' or 'auto' (default)")
    parser.add_argument('--amp', action='store_true',
                        help='bfloat16 autocast (GPU only; ignored on CPU)')
    parser.add_argument('--workers', type=int, default=0, help='DataLoader workers')
    parser.add_argument('--seed', type=int, default=1, help='random seed (reference: 1)')
    parser.add_argument('--limit', type=int, help='use only the first N training samples')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    return parser


def resolve(args):
    """Fill unset flags from the preset."""
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.mask_joints is None:
        args.mask_joints = 9 if args.mask == 'asm' else 8
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = resolve(build_parser().parse_args(argv))
    dist_info, device = init_distributed(args.device)
    try:
        return train(args, dist_info, device, argv)
    finally:
        cleanup_distributed()


def train(args, dist_info, device, argv):
    seed_everything(args.seed)
    check_resume_arguments(args, dist_info.is_main)
    run = RunDir(args.out, args, dist_info.is_main, module='training.pretrain', argv=argv)
    indices = range(args.limit) if args.limit else None
    dataset = WindowDataset(args.data, 'train', indices=indices)
    world, rank = dist_info.world_size, dist_info.rank
    if len(dataset) < 2 * world:
        raise ValueError(f'{args.data}: pre-training needs at least 2 samples per process, got '
                         f'{len(dataset)} for {world} process(es)')
    config = EncoderConfig(hidden_channels=args.hidden_channels, hidden_dim=args.hidden_dim,
                           dropout=args.dropout)
    model = OPSTL(config, args.proj_dim).to(device)
    if world > 1 and not args.local_bn:
        model = synchronize_batch_norm(model, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr,
                                 weight_decay=args.weight_decay)
    # one augmentation stream shared by all processes; dropout masks differ per process
    rng = random.Random(args.seed)
    if rank > 0:
        torch.manual_seed(args.seed * 1000 + rank)
    start_epoch = 0
    state = run.load_checkpoint(map_location=device)
    if state is not None:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        rng.setstate(state['rng'])
        _set_torch_rng(state, rank, device)
        start_epoch = state['epoch'] + 1
        if dist_info.is_main:
            print(f'resuming {args.out} at epoch {start_epoch}')
    if dist_info.is_main and start_epoch == 0:
        print(f'encoder parameters: {count_parameters(model.encoder):,}; '
              f'projector: {count_parameters(model.head):,}')
    trainable = model
    if world > 1:
        trainable = DistributedDataParallel(model, device_ids=[device.index]
                                            if device.type == 'cuda' else None)
    use_amp = args.amp and device.type == 'cuda'
    for epoch in range(start_epoch, args.epochs):
        lr = learning_rate(epoch, args.lr, args.warmup, args.epochs)
        for group in optimizer.param_groups:
            group['lr'] = lr
        plan = global_batches(len(dataset), args.batch_size, args.seed, epoch, world)
        loader = DataLoader(dataset, batch_sampler=[batch[rank] for batch in plan],
                            num_workers=args.workers)
        model.train()
        started, total, seen = time.time(), 0.0, 0
        bar = tqdm(zip(plan, loader), total=len(plan), unit='batch',
                   desc=f'pretrain {epoch + 1}/{args.epochs}',
                   disable=args.no_progress or not dist_info.is_main, leave=False)
        for batch, (x, _, B) in bar:
            global_size = sum(len(part) for part in batch)
            x = augment.input_view(x.to(device, non_blocking=True), args.view)
            B = gather_rows(B.to(device), args.batch_size).cpu()
            s1, s2, s3, ignore = three_streams(x, B, rng, args)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = trainable(s1, s2, s3, ignore, args.lambd, global_size)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages the gradients of the W processes: W × loss gives the sum
            (loss * world).backward()
            optimizer.step()
            total += loss.item() * global_size
            seen += global_size
            bar.set_postfix(loss=f'{loss.item():.3f}')
        elapsed = time.time() - started
        metrics = {'epoch': epoch + 1, 'loss': total / max(seen, 1), 'lr': lr,
                   'seconds': round(elapsed, 3), 'samples_per_s': round(seen / elapsed, 2)}
        run.log(**metrics)
        if dist_info.is_main and not args.no_progress:
            print(f'epoch {epoch + 1}: loss {metrics["loss"]:.4f} lr {lr:.2e} '
                  f'{metrics["samples_per_s"]} samples/s')
        torch_rng = _gather_torch_rng(device)
        run.save_checkpoint({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                             'rng': rng.getstate(), 'torch_rng': torch_rng,
                             'epoch': epoch, 'encoder_config': config.to_dict(),
                             'args': vars(args)})
    if dist_info.is_main:
        run.save_checkpoint({'config': config.to_dict(), 'state_dict': model.encoder.state_dict(),
                             'epochs': args.epochs, 'data': args.data, 'mask': args.mask,
                             'view': args.view}, name='encoder.pt')
    return run.file('encoder.pt')


def _gather_torch_rng(device):
    """Every process's torch generator states (CPU, and CUDA when used), rank by rank."""
    mine = {'cpu': torch.get_rng_state()}
    if device.type == 'cuda':
        mine['cuda'] = torch.cuda.get_rng_state(device)
    if world_size() == 1:
        return [mine]
    states = [None] * world_size()
    dist.all_gather_object(states, mine)
    return states


def _set_torch_rng(state, rank, device):
    """Restore this process's torch generators from a checkpoint (older ones hold one state)."""
    states = state['torch_rng']
    if torch.is_tensor(states):
        states = [{'cpu': states}]
    if rank >= len(states):
        return  # resumed with more processes: keep the fresh per-process seed
    torch.set_rng_state(states[rank]['cpu'])
    if device.type == 'cuda' and 'cuda' in states[rank]:
        torch.cuda.set_rng_state(states[rank]['cuda'], device)


if __name__ == '__main__':
    main()
