"""Evaluation protocols: linear (frozen encoder), finetune, and semi-supervised (1 % / 10 %).

    python -m training.evaluate --data data/synthetic/xsub --encoder runs/stage2/encoder.pt \
        --protocol linear --out runs/linear

Trains a linear classifier on ``train`` and tests on ``val`` every epoch, with the reference's
settings (Adam, cosine over the epochs, no weight decay, no augmentation; linear lr 0.01 with the
encoder in eval mode; finetune / semi lr 5e-3 end to end). Reports the **per-sample top-1
accuracy at the last epoch** (our headline number) and, labelled as such, the reference's
number: the best over epochs of the mean of per-batch accuracies, which selects a model on the
test set. Writes ``summary.json``, ``metrics.jsonl``, ``confusion.json``, ``confusion.png`` and
``classifier.pt`` (encoder config, encoder and head weights) next to the command line. A
``checkpoint.pt`` is written atomically every epoch; running the same command again resumes
from it (fine-tuning takes a while on a CPU).
"""

import argparse
import json
import sys

from iospstl_ros.plots import confusion_matrix, plot_confusion
from iospstl_ros.validation import int_argument
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from training.augment import input_view
from training.common import check_resume_arguments, RunDir, seed_everything, select_device
from training.data import class_stratified_subset, WindowDataset
from training.model import Classifier, EncoderConfig, STGCNEncoder

DEFAULT_LR = {'linear': 0.01, 'finetune': 5e-3, 'semi': 5e-3}


def load_encoder(path, device, view=None, why=None):
    """Rebuild the encoder saved by ``pretrain`` (or the encoder part of ``classifier.pt``).

    Parameters
    ----------
    path : str
    device : torch.device
    view : {'joint', 'motion', 'bone'}, optional
        The input view the caller feeds; a ValueError if the encoder was trained on another.
    why : str, optional
        Why the caller feeds that view, for the error (default: advice to pass ``--view``).
    """
    state = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(state, dict) or 'config' not in state or 'state_dict' not in state:
        raise ValueError(f'{path}: expected an encoder file with "config" and "state_dict" '
                         '(written by training.pretrain)')
    trained = state.get('view') or 'joint'
    if view is not None and view != trained:
        raise ValueError(f'{path}: the encoder was pre-trained on the {trained} view, but this '
                         f'step feeds it the {view} view' + (
                             f'; pass --view {trained}' if why is None else f' ({why})'))
    encoder = STGCNEncoder(EncoderConfig.from_dict(state['config']))
    encoder.load_state_dict(state['state_dict'])
    return encoder.to(device)


def encoder_view(path):
    """Return the input view an ``encoder.pt`` (or ``classifier.pt``) was trained on."""
    state = torch.load(path, map_location='cpu', weights_only=False)
    return (state.get('view') if isinstance(state, dict) else None) or 'joint'


def _fraction(text):
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f'expected a fraction in (0, 1], got {value}')
    return value


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True,
                        help='benchmark directory with {train,val}_w50_*.npy and labels')
    parser.add_argument('--encoder', required=True, help='encoder.pt from training.pretrain')
    parser.add_argument('--protocol', choices=('linear', 'finetune', 'semi'), default='linear',
                        help='linear: frozen encoder; finetune: end to end; semi: end to end '
                             'on a class-stratified fraction of the labels')
    parser.add_argument('--label-fraction', type=_fraction, default=0.1,
                        help='semi: fraction of labelled training samples per class '
                             '(0.01 or 0.1 in the paper)')
    parser.add_argument('--out', required=True, help='output folder (resumed if it holds a '
                        'checkpoint of the same command)')
    parser.add_argument('--epochs', type=int_argument(1), default=150,
                        help='epochs (reference 150)')
    parser.add_argument('--batch-size', type=int_argument(1), default=128, help='batch size')
    parser.add_argument('--lr', type=float,
                        help='learning rate (default: linear 0.01, finetune/semi 5e-3)')
    parser.add_argument('--view', choices=('joint', 'motion', 'bone'),
                        help='input view (default and only accepted value: the one the '
                             'encoder was pre-trained on)')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda', 'cuda:N' or 'auto'")
    parser.add_argument('--seed', type=int, default=1, help='random seed')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    return parser


@torch.no_grad()
def _features(encoder, loader, device, view):
    encoder.eval()
    feats, labels = [], []
    for x, y, _ in loader:
        feats.append(encoder(input_view(x.to(device), view)).float().cpu())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.protocol]
    seed_everything(args.seed)
    device = select_device(args.device)
    if args.view is None:
        args.view = encoder_view(args.encoder)
    encoder = load_encoder(args.encoder, device, args.view)
    check_resume_arguments(args)
    run = RunDir(args.out, args, module='training.evaluate', argv=argv)
    train_set = WindowDataset(args.data, 'train')
    if args.protocol == 'semi':
        subset = class_stratified_subset(train_set.labels, args.label_fraction, args.seed)
        train_set = WindowDataset(args.data, 'train', indices=subset)
    val_set = WindowDataset(args.data, 'val')
    classes = train_set.classes
    num_classes = len(classes) if classes else int(max(train_set.labels.max(),
                                                       val_set.labels.max()) + 1)
    model = Classifier(encoder, num_classes).to(device)
    generator = torch.Generator().manual_seed(args.seed)
    frozen = args.protocol == 'linear'
    if frozen:
        # The frozen encoder runs in eval mode without augmentation, so its features are the
        # same every epoch: compute them once (exactly what the reference computes per epoch).
        for p in encoder.parameters():
            p.requires_grad_(False)
        plain = DataLoader(train_set, batch_size=256)
        train_feats, train_labels = _features(encoder, plain, device, args.view)
        val_feats, val_labels = _features(encoder, DataLoader(val_set, batch_size=256),
                                          device, args.view)
        train_loader = DataLoader(TensorDataset(train_feats, train_labels),
                                  batch_size=args.batch_size, shuffle=True, generator=generator)
        val_loader = DataLoader(TensorDataset(val_feats, val_labels), batch_size=args.batch_size)
        params = model.fc.parameters()
    else:
        train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                                  generator=generator,
                                  drop_last=len(train_set) % args.batch_size == 1)
        val_loader = DataLoader(val_set, batch_size=args.batch_size)
        params = model.parameters()
    optimizer = torch.optim.Adam(params, lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss()

    def forward(batch):
        if frozen:
            return model.fc(batch.to(device))
        return model(input_view(batch.to(device), args.view))

    best_reference, start_epoch = 0.0, 0
    state = run.load_checkpoint(map_location=device)
    if state is not None:
        (model.fc if frozen else model).load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        scheduler.T_max = args.epochs          # --epochs may have changed (see the note)
        generator.set_state(state['generator'])
        torch.set_rng_state(state['torch_rng'])
        best_reference, start_epoch = state['best_reference'], state['epoch'] + 1
        print(f'resuming {args.out} at epoch {start_epoch + 1}')
    bar = tqdm(range(start_epoch, args.epochs), desc=f'{args.protocol}', unit='epoch',
               disable=args.no_progress, initial=start_epoch, total=args.epochs)
    for epoch in bar:
        model.train(not frozen)
        if frozen:
            encoder.eval()
        total, seen = 0.0, 0
        for batch in train_loader:
            x, y = batch[0], batch[1]
            loss = loss_fn(forward(x), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.item()) * len(y)
            seen += len(y)
        scheduler.step()
        predictions, labels, batch_means = _predict(model, val_loader, forward, device)
        accuracy = float((predictions == labels).mean())
        reference = float(np.mean(batch_means))
        best_reference = max(best_reference, reference)
        run.log(epoch=epoch + 1, loss=total / max(seen, 1), top1=accuracy,
                top1_batch_mean=reference, lr=scheduler.get_last_lr()[0])
        run.save_checkpoint({'model': (model.fc if frozen else model).state_dict(),
                             'optimizer': optimizer.state_dict(),
                             'scheduler': scheduler.state_dict(),
                             'generator': generator.get_state(),
                             'torch_rng': torch.get_rng_state(), 'epoch': epoch,
                             'best_reference': best_reference, 'top1': accuracy})
        bar.set_postfix(top1=f'{100 * accuracy:.1f}')
    if start_epoch >= args.epochs:
        # The run had finished: evaluate the saved model again for the outputs.
        predictions, labels, _ = _predict(model, val_loader, forward, device)
        accuracy = float((predictions == labels).mean())
    matrix = confusion_matrix(labels, predictions, num_classes)
    summary = {'protocol': args.protocol, 'epochs': args.epochs, 'lr': lr,
               'train_samples': len(train_set), 'val_samples': len(val_set),
               'top1_last_epoch': accuracy,
               'reference_best_over_epochs_batch_mean': best_reference,
               'label_fraction': args.label_fraction if args.protocol == 'semi' else None}
    with open(run.file('summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    with open(run.file('confusion.json'), 'w') as f:
        json.dump({'classes': classes, 'matrix': matrix.tolist()}, f)
    plot_confusion(matrix, classes, run.file('confusion.png'),
                   title=f'{args.protocol} evaluation')
    run.save_checkpoint({'config': encoder.config.to_dict(),
                         'state_dict': encoder.state_dict(), 'fc': model.fc.state_dict(),
                         'num_classes': num_classes, 'classes': classes, 'view': args.view},
                        name='classifier.pt')
    print(f'{args.protocol}: top-1 at the last epoch {100 * accuracy:.2f} % '
          f'(reference-style best over epochs, batch mean: {100 * best_reference:.2f} %)')
    return summary


@torch.no_grad()
def _predict(model, loader, forward, device):
    model.eval()
    predictions, labels, batch_means = [], [], []
    for batch in loader:
        x, y = batch[0], batch[1]
        predicted = forward(x).argmax(dim=1).cpu()
        predictions.append(predicted)
        labels.append(y)
        batch_means.append(float((predicted == y).float().mean()))
    return torch.cat(predictions).numpy(), torch.cat(labels).numpy(), batch_means


if __name__ == '__main__':
    main()
