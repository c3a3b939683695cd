"""One worker pool for the data-preparation scripts: ordered results, a progress bar."""

from concurrent.futures import ProcessPoolExecutor
import os
import sys

from tqdm import tqdm


def available_cpus():
    """Return how many CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def map_with_progress(function, tasks, workers, description, unit='sample'):
    """Yield ``function(task)`` for each task, in order, over ``workers`` processes.

    Results are yielded as they come (a generator, not a list), so a caller can write each one
    out without holding the whole data set in memory. ``workers == 1`` runs in this process.
    """
    bar = {'total': len(tasks), 'desc': description, 'unit': unit, 'file': sys.stderr}
    if workers == 1 or len(tasks) < 2:
        yield from tqdm(map(function, tasks), **bar)
        return
    chunksize = max(1, min(64, len(tasks) // (4 * workers)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from tqdm(pool.map(function, tasks, chunksize=chunksize), **bar)
