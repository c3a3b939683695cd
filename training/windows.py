"""Stage "frame50": turn a data set split into fixed-length network windows.

``python -m training.windows --data data/synthetic/xsub`` reads ``{part}_data.npy`` and its
masks (written by ``prepare_ntu`` or ``synthesize``) and writes, next to them, for each part::

    {part}_w50_data.npy       float32 (N, 3, 50, 25, 2)  relative coordinates, NaN = occluded
    {part}_w50_occluded.npy   bool    (N, 50, 25, 2)
    {part}_w50_present.npy    bool    (N, 50, 2)

with :func:`iospstl_ros.preprocess.preprocess_batch`, the same code the robot runs on each
window. Written memory-mapped, in chunks, with a progress bar.
"""

import argparse
import os

from iospstl_ros.datasets.format import open_split, PARTS
from iospstl_ros.layout import MAX_BODIES, NUM_CHANNELS, NUM_JOINTS, WINDOW_FRAMES
from iospstl_ros.preprocess import preprocess_batch
import numpy as np
from tqdm import tqdm

PREFIX = 'w50'


def window_paths(root, part):
    """Paths of the window files of ``part`` in ``root`` as a dict data/occluded/present."""
    return {key: os.path.join(root, f'{part}_{PREFIX}_{key}.npy')
            for key in ('data', 'occluded', 'present')}


def load_windows(root, part, mmap=True):
    """Open the window arrays of ``part`` (memory-mapped by default).

    Returns
    -------
    data : ndarray (N, 3, 50, 25, 2) float32
    occluded : ndarray (N, 50, 25, 2) bool
    present : ndarray (N, 50, 2) bool
    """
    paths = window_paths(root, part)
    for path in paths.values():
        if not os.path.exists(path):
            raise ValueError(f'{path}: missing; run `python -m training.windows --data {root}` '
                             'first')
    mode = 'r' if mmap else None
    data, occluded, present = (np.load(paths[k], mmap_mode=mode)
                               for k in ('data', 'occluded', 'present'))
    n = data.shape[0]
    expected = ((n, NUM_CHANNELS, WINDOW_FRAMES, NUM_JOINTS, MAX_BODIES),
                (n, WINDOW_FRAMES, NUM_JOINTS, MAX_BODIES), (n, WINDOW_FRAMES, MAX_BODIES))
    for array, shape, key in zip((data, occluded, present), expected, paths):
        if array.shape != shape:
            raise ValueError(f'{paths[key]}: expected shape {shape}, got {array.shape}')
    return data, occluded, present


def make_windows(root, part, chunk=256, align_shoulders=True, progress=True):
    """Preprocess every sample of ``part`` into window files; returns the number of samples."""
    split = open_split(root, part)
    n = len(split)
    paths = window_paths(root, part)
    open_memmap = np.lib.format.open_memmap
    tmp = {key: path + '.partial.npy' for key, path in paths.items()}
    out_data = open_memmap(tmp['data'], 'w+', np.float32,
                           (n, NUM_CHANNELS, WINDOW_FRAMES, NUM_JOINTS, MAX_BODIES))
    out_occ = open_memmap(tmp['occluded'], 'w+', np.bool_,
                          (n, WINDOW_FRAMES, NUM_JOINTS, MAX_BODIES))
    out_present = open_memmap(tmp['present'], 'w+', np.bool_, (n, WINDOW_FRAMES, MAX_BODIES))
    bar = tqdm(total=n, desc=f'windows {part}', unit='seq', disable=not progress)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        preprocess_batch(split.data[start:stop], split.occluded[start:stop],
                         split.present[start:stop], split.num_frames[start:stop],
                         window=WINDOW_FRAMES, align_shoulders=align_shoulders,
                         out=(out_data[start:stop], out_occ[start:stop],
                              out_present[start:stop]))
        bar.update(stop - start)
    bar.close()
    for array in (out_data, out_occ, out_present):
        array.flush()
    del out_data, out_occ, out_present
    for key in paths:
        os.replace(tmp[key], paths[key])
    return n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True,
                        help='benchmark directory written by prepare_ntu or synthesize')
    parser.add_argument('--parts', nargs='+', default=list(PARTS), choices=PARTS,
                        help='parts to process (default: both)')
    parser.add_argument('--no-align-shoulders', action='store_true',
                        help="skip the reference's per-frame shoulder-alignment rotation")
    parser.add_argument('--chunk', type=int, default=256, help='samples per chunk in memory')
    args = parser.parse_args(argv)
    for part in args.parts:
        n = make_windows(args.data, part, chunk=args.chunk,
                         align_shoulders=not args.no_align_shoulders)
        print(f'{part}: {n} windows -> {window_paths(args.data, part)["data"]}')


if __name__ == '__main__':
    main()
