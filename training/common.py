"""Plumbing shared by the training scripts: devices, seeds, run folders, checkpoints, torchrun.

Every script writes, next to its outputs, the command line that produced them
(``command.txt``), its arguments (``args.json``) and one JSON line of metrics per epoch
(``metrics.jsonl``). Checkpoints are written to a temporary file and renamed, so a run killed at
any moment leaves either the previous or the new checkpoint, never a corrupt one, and the next
run with the same ``--out`` resumes from it.
"""

from dataclasses import dataclass
import json
import os
import random
import shlex
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

CHECKPOINT = 'checkpoint.pt'


def select_device(spec):
    """Turn ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'auto'`` into a usable ``torch.device``.

    Raises
    ------
    ValueError
        If the spec is malformed or asks for a GPU that this machine does not have.
    """
    if spec == 'auto':
        spec = 'cuda' if torch.cuda.is_available() else 'cpu'
    if spec == 'cpu':
        return torch.device('cpu')
    if spec == 'cuda' or spec.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise ValueError(f'--device {spec}: CUDA is not available on this machine '
                             f'(torch {torch.__version__}); use --device cpu')
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f'--device {spec}: only {torch.cuda.device_count()} CUDA '
                             'device(s) present')
        return device
    raise ValueError(f"--device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {spec!r}")


def seed_everything(seed):
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class DistInfo:
    """Where this process stands in a ``torchrun`` job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self):
        return self.rank == 0


def init_distributed(device_spec):
    """Join the process group when started by ``torchrun``; pick this rank's device.

    ``gloo`` on CPU, ``nccl`` on CUDA. Without torchrun's environment this is a no-op.

    Returns
    -------
    info : DistInfo
    device : torch.device
    """
    if 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
        return DistInfo(), select_device(device_spec)
    info = DistInfo(int(os.environ['RANK']), int(os.environ['WORLD_SIZE']),
                    int(os.environ.get('LOCAL_RANK', 0)))
    device = select_device(device_spec)
    if device.type == 'cuda':
        device = torch.device('cuda', info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return info, device


def cleanup_distributed():
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class RunDir:
    """An output folder holding the command, the arguments, metrics and checkpoints.

    Parameters
    ----------
    path : str
    args : argparse.Namespace or dict
        Written to ``args.json``.
    is_main : bool
        Only the main process writes.
    module : str
        The script's module, for ``command.txt`` (``python -m <module> <argv>``).
    argv : list of str, optional
        The script's arguments (default: ``sys.argv[1:]``).
    """

    def __init__(self, path, args, is_main=True, module=None, argv=None):
        self.path = path
        self.is_main = is_main
        if not is_main:
            return
        os.makedirs(path, exist_ok=True)
        values = vars(args) if not isinstance(args, dict) else args
        argv = sys.argv[1:] if argv is None else list(argv)
        command = shlex.join(['python', '-m', module or _module_name(), *argv])
        with open(os.path.join(path, 'command.txt'), 'a') as f:
            f.write(f'{time.strftime("%Y-%m-%dT%H:%M:%S")} {command}\n')
        _write_json(os.path.join(path, 'args.json'), values)

    def file(self, name):
        """Path of ``name`` inside the run folder."""
        return os.path.join(self.path, name)

    def log(self, **metrics):
        """Append one JSON line to ``metrics.jsonl``."""
        if self.is_main:
            with open(self.file('metrics.jsonl'), 'a') as f:
                f.write(json.dumps(metrics, sort_keys=True) + '\n')

    def save_checkpoint(self, state, name=CHECKPOINT):
        """Write ``state`` atomically (temporary file, fsync, rename)."""
        if self.is_main:
            atomic_torch_save(state, self.file(name))

    def load_checkpoint(self, map_location, name=CHECKPOINT):
        """Return the saved state, or ``None`` when there is none yet."""
        path = self.file(name)
        if not os.path.exists(path):
            return None
        return torch.load(path, map_location=map_location, weights_only=False)


#: Arguments a resumed run may change: where and how it runs, not what it trains.
RESUMABLE_CHANGES = ('out', 'device', 'workers', 'no_progress', 'amp')


def check_resume_arguments(args, is_main=True):
    """Refuse to resume ``--out`` with other training arguments than the run it holds.

    ``--epochs`` may change (to train a finished run further), with a note that the cosine
    schedule then changes; where and how the run executes (device, workers, progress) may too.
    Used by every script that resumes from ``checkpoint.pt``.

    Raises
    ------
    ValueError
        Naming the arguments that differ from those of the saved run.
    """
    saved_path = os.path.join(args.out, 'args.json')
    if not (os.path.exists(os.path.join(args.out, CHECKPOINT)) and os.path.exists(saved_path)):
        return
    with open(saved_path) as f:
        saved = json.load(f)
    current = json.loads(json.dumps(vars(args), default=str))
    differ = [key for key in sorted(set(saved) | set(current))
              if key not in RESUMABLE_CHANGES + ('epochs',)
              and saved.get(key) != current.get(key)]
    if differ:
        raise ValueError(
            f'{args.out} holds a run with other arguments: '
            + ', '.join(f'--{key.replace("_", "-")} {saved.get(key)!r} there, '
                        f'{current.get(key)!r} now' for key in differ)
            + '; resume with the same arguments or choose a new --out')
    if saved.get('epochs') != current.get('epochs') and is_main:
        print(f'resuming {args.out} with --epochs {current.get("epochs")} (it was started with '
              f'{saved.get("epochs")}): the learning-rate schedule of the remaining epochs '
              'follows the new count')


def atomic_torch_save(state, path):
    """``torch.save`` that never leaves a partial file at ``path``."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path, values):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(values, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def _module_name():
    main = sys.modules.get('__main__')
    spec = getattr(main, '__spec__', None)
    if spec is not None and spec.name:
        return spec.name
    return os.path.basename(sys.argv[0])
