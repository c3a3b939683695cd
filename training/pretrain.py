"""OPSTL pre-training: Barlow Twins over anchor, MATM and ASM (or CSM) streams.

    python -m training.pretrain --data data/synthetic/xsub --out runs/stage1 --preset cpu

``--data`` is a benchmark directory with window files (``python -m training.windows``); for the
second stage it is the directory written by ``python -m training.impute``. The run folder gets
``command.txt``, ``args.json``, ``metrics.jsonl``, ``checkpoint.pt`` (every epoch, atomic; a
second run with the same ``--out`` resumes from it) and, at the end, ``encoder.pt`` holding the
encoder config and weights. Multi-GPU or multi-process: ``torchrun --nproc-per-node N -m
training.pretrain ...`` (DistributedDataParallel; nccl on GPUs, gloo on CPU).
"""

import argparse
import math
import random
import sys
import time

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from training import augment
from training.common import (cleanup_distributed, init_distributed, RunDir, seed_everything)
from training.data import WindowDataset
from training.model import (barlow_twins_loss, BarlowTwinsHead, count_parameters, EncoderConfig,
                            STGCNEncoder)

#: ``paper`` reproduces the reference; ``cpu`` is small enough for the synthetic pipeline on
#: two CPU cores; ``tiny`` is for tests.
PRESETS = {
    'paper': {'epochs': 150, 'batch_size': 128, 'lr': 5e-3, 'weight_decay': 1e-5, 'warmup': 10,
              'proj_dim': 6144, 'hidden_channels': 16, 'hidden_dim': 256},
    'cpu': {'epochs': 30, 'batch_size': 64, 'lr': 5e-3, 'weight_decay': 1e-5, 'warmup': 3,
            'proj_dim': 1024, 'hidden_channels': 8, 'hidden_dim': 128},
    'tiny': {'epochs': 2, 'batch_size': 16, 'lr': 5e-3, 'weight_decay': 1e-5, 'warmup': 1,
             'proj_dim': 64, 'hidden_channels': 4, 'hidden_dim': 32},
}


class OPSTL(nn.Module):
    """Encoder and projector trained together (one module, so DDP wraps both)."""

    def __init__(self, encoder_config, proj_dim):
        super().__init__()
        self.encoder = STGCNEncoder(encoder_config)
        self.head = BarlowTwinsHead(encoder_config.hidden_dim, proj_dim)

    def forward(self, s1, s2, s3, ignore_joints, lambd):
        z1 = self.head(self.encoder(s1))
        z2 = self.head(self.encoder(s2))
        z3 = self.head(self.encoder(s3, ignore_joints))
        return barlow_twins_loss(z1, z2, lambd) + barlow_twins_loss(z1, z3, lambd)


def learning_rate(epoch, base_lr, warmup, epochs):
    """Per-epoch schedule of the reference: linear warm-up from 0, then cosine to 0."""
    if epoch < warmup:
        return base_lr * epoch / warmup
    return base_lr * (1 + math.cos(math.pi * (epoch - warmup) / max(1, epochs - warmup))) / 2


def three_streams(x, B, rng, args):
    """Anchor, MATM and spatially masked streams of a batch, and the joints to remove."""
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
    parser.add_argument('--batch-size', type=int, help='batch per process (paper 128)')
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
    run = RunDir(args.out, args, dist_info.is_main, module='training.pretrain', argv=argv)
    indices = range(args.limit) if args.limit else None
    dataset = WindowDataset(args.data, 'train', indices=indices)
    if len(dataset) < 2:
        raise ValueError(f'{args.data}: pre-training needs at least 2 samples, got '
                         f'{len(dataset)}')
    config = EncoderConfig(hidden_channels=args.hidden_channels, hidden_dim=args.hidden_dim)
    model = OPSTL(config, args.proj_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr,
                                 weight_decay=args.weight_decay)
    rng = random.Random(args.seed * 1000 + dist_info.rank)
    start_epoch = 0
    state = run.load_checkpoint(map_location=device)
    if state is not None:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        rng.setstate(state['rng'])
        torch.set_rng_state(state['torch_rng'])
        start_epoch = state['epoch'] + 1
        if dist_info.is_main:
            print(f'resuming {args.out} at epoch {start_epoch}')
    if dist_info.is_main and start_epoch == 0:
        print(f'encoder parameters: {count_parameters(model.encoder):,}; '
              f'projector: {count_parameters(model.head):,}')
    trainable = model
    if dist_info.world_size > 1:
        trainable = DistributedDataParallel(model, device_ids=[device.index]
                                            if device.type == 'cuda' else None)
        sampler = DistributedSampler(dataset, shuffle=True, seed=args.seed)
    else:
        sampler = None
    use_amp = args.amp and device.type == 'cuda'
    for epoch in range(start_epoch, args.epochs):
        lr = learning_rate(epoch, args.lr, args.warmup, args.epochs)
        for group in optimizer.param_groups:
            group['lr'] = lr
        if sampler is not None:
            sampler.set_epoch(epoch)
            epoch_sampler = sampler
        else:
            generator = torch.Generator().manual_seed(args.seed * 100003 + epoch)
            epoch_sampler = RandomSampler(dataset, generator=generator)
        loader = DataLoader(dataset, batch_size=args.batch_size, sampler=epoch_sampler,
                            num_workers=args.workers,
                            drop_last=len(dataset) % args.batch_size == 1)
        model.train()
        started, total, seen = time.time(), 0.0, 0
        bar = tqdm(loader, desc=f'pretrain {epoch + 1}/{args.epochs}', unit='batch',
                   disable=args.no_progress or not dist_info.is_main, leave=False)
        for x, _, B in bar:
            x = augment.input_view(x.to(device, non_blocking=True), args.view)
            s1, s2, s3, ignore = three_streams(x, B, rng, args)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = trainable(s1, s2, s3, ignore, args.lambd)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
            seen += len(x)
            bar.set_postfix(loss=f'{loss.item():.3f}')
        elapsed = time.time() - started
        metrics = {'epoch': epoch + 1, 'loss': total / max(seen, 1), 'lr': lr,
                   'seconds': round(elapsed, 3),
                   'samples_per_s': round(seen * dist_info.world_size / elapsed, 2)}
        run.log(**metrics)
        if dist_info.is_main and not args.no_progress:
            print(f'epoch {epoch + 1}: loss {metrics["loss"]:.4f} lr {lr:.2e} '
                  f'{metrics["samples_per_s"]} samples/s')
        run.save_checkpoint({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                             'rng': rng.getstate(), 'torch_rng': torch.get_rng_state(),
                             'epoch': epoch, 'encoder_config': config.to_dict(),
                             'args': vars(args)})
    if dist_info.is_main:
        run.save_checkpoint({'config': config.to_dict(), 'state_dict': model.encoder.state_dict(),
                             'epochs': args.epochs, 'data': args.data, 'mask': args.mask,
                             'view': args.view}, name='encoder.pt')
    return run.file('encoder.pt')


if __name__ == '__main__':
    main()
