"""How much of a data set is occluded, and where: tables, JSON and pictures.

``python -m training.occlusion_stats data/synthetic/xsub --part train --png occlusion.png``
reads one part of a benchmark written by ``training.prepare_ntu`` or ``training.synthesize``
and reports

- per joint: the share of its present slots (frames x bodies) that are occluded, and the share
  of samples where it is occluded at least once (the paper's B);
- per sample: the occluded share of its present joint slots (mean, median, 90th percentile,
  maximum, share of samples without occlusion);
- per class: the mean occluded share of its samples.

It prints the tables, writes them as JSON (``--json``, default ``DIR/occlusion_stats_PART.json``)
and, with ``--png OUT.png``, draws ``OUT.png`` (a few occluded sequences, several frames each,
occluded joints in red) and ``OUT_occluders.png`` (one scene's occluder boxes with the skeleton,
side and top views, camera at the origin).

For synthetic data of this generator version the true positions of occluded joints and the
exact boxes are regenerated from the seed in ``meta.json`` (checked against the stored visible
joints and occlusion mask). Other data (NTU) stores occluded joints as NaN: ``OUT.png`` draws
them as hollow red circles at a position *estimated* by linear interpolation in time between
the nearest frames before and after where the same joint of the same body slot is visible;
occluded joints without a visible frame on both sides are not drawn (the panel title counts
them and the row names the joints never visible). Their boxes are not stored either:
``OUT_occluders.png`` then draws no boxes for data prepared with realistic occlusion (a new
scene cannot stand in for the lost one: the stored skeleton lacks the hidden joints that locate
the floor), and for other data (no furniture occlusion) an *illustrative* scene drawn now by
:func:`iospstl_ros.datasets.occlusion.realistic_occlusion`, dashed grey, watermarked and titled
as such.
"""

import argparse
import json
import os
import sys
import textwrap

from iospstl_ros.datasets.format import open_split, PARTS
from iospstl_ros.datasets.occlusion import box_corners, realistic_occlusion
from iospstl_ros.datasets.synthetic import GENERATOR_VERSION, realistic_scene, sample_index
from iospstl_ros.layout import EDGES, JOINT_NAMES, NUM_JOINTS
import numpy as np

#: Samples per chunk when scanning the memory-mapped masks.
CHUNK = 256
# Characters per line of the "never visible" note under a row of plot_sequences.
_NOTE_WIDTH = 110
# Corner pairs of a box's 12 edges (corner 4 i + 2 j + k, see box_corners).
_BOX_EDGES = tuple((a, a | bit) for bit in (1, 2, 4) for a in range(8) if not a & bit)


def occlusion_statistics(occluded, present, labels, B=None, classes=None):
    """Occlusion frequencies of a data set part.

    Parameters
    ----------
    occluded : array_like of shape (N, T, 25, M), bool
        May be a memory map; read in chunks of :data:`CHUNK` samples.
    present : array_like of shape (N, T, M), bool
    labels : array_like of shape (N,), int
    B : array_like of shape (N, 25), optional
        Stored "ever occluded" flags; recomputed from the masks when None.
    classes : sequence of str, optional
        Class names; labels index into it.

    Returns
    -------
    stats : dict
        ``num_samples``; ``slot_fraction`` (occluded share of all present joint slots);
        ``per_joint``: {joint name: {'slots': share of the joint's present slots occluded,
        'samples': share of samples where it is ever occluded}}; ``per_sample``: summary
        ('mean', 'median', 'p90', 'max', 'none') of each sample's occluded share;
        ``per_class``: {class: {'samples': count, 'mean': mean occluded share}}.

    Raises
    ------
    ValueError
        If the shapes disagree or a sample has no present joint slot.
    """
    n = len(labels)
    if (np.ndim(occluded) != 4 or occluded.shape[0] != n or occluded.shape[2] != NUM_JOINTS
            or tuple(present.shape) != (n, occluded.shape[1], occluded.shape[3])):
        raise ValueError('expected occluded (N, T, 25, M), present (N, T, M) and labels (N,); '
                         f'got {np.shape(occluded)}, {np.shape(present)} and ({n},)')
    labels = np.asarray(labels)
    hidden_per_joint = np.zeros(NUM_JOINTS, dtype=np.int64)
    ever = np.zeros(NUM_JOINTS, dtype=np.int64)
    fractions = np.zeros(n)
    slots_per_joint = 0
    for start in range(0, n, CHUNK):
        mask = np.asarray(occluded[start:start + CHUNK], dtype=bool)
        alive = np.asarray(present[start:start + CHUNK], dtype=bool)
        hidden = mask & alive[:, :, None, :]                             # (n, T, V, M)
        slots = alive.sum(axis=(1, 2))                                   # (n,)
        if (slots == 0).any():
            first = start + int(np.flatnonzero(slots == 0)[0])
            raise ValueError(f'sample {first} has no present body')
        hidden_per_joint += hidden.sum(axis=(0, 1, 3))
        slots_per_joint += int(slots.sum())
        fractions[start:start + CHUNK] = hidden.sum(axis=(1, 2, 3)) / (NUM_JOINTS * slots)
        if B is None:
            ever += hidden.any(axis=(1, 3)).sum(axis=0)
    if B is not None:
        ever = (np.asarray(B) > 0).sum(axis=0)
    names = list(classes) if classes is not None else [str(k) for k in range(labels.max() + 1)]
    per_class = {}
    for label in np.unique(labels):
        chosen = fractions[labels == label]
        name = names[label] if 0 <= label < len(names) else str(label)
        per_class[name] = {'samples': int(len(chosen)), 'mean': float(chosen.mean())}
    joint_slots = max(slots_per_joint, 1)
    return {
        'num_samples': int(n),
        'slot_fraction': float(hidden_per_joint.sum() / (NUM_JOINTS * joint_slots)),
        'per_joint': {JOINT_NAMES[v]: {'slots': float(hidden_per_joint[v] / joint_slots),
                                       'samples': float(ever[v] / max(n, 1))}
                      for v in range(NUM_JOINTS)},
        'per_sample': {'mean': float(fractions.mean()), 'median': float(np.median(fractions)),
                       'p90': float(np.percentile(fractions, 90)),
                       'max': float(fractions.max()), 'none': float((fractions == 0).mean())},
        'per_class': per_class,
    }


def split_statistics(split):
    """:func:`occlusion_statistics` of an opened :class:`iospstl_ros.datasets.format.Split`."""
    return occlusion_statistics(split.occluded, split.present, split.labels, split.B,
                                split.meta.get('classes'))


def format_tables(stats):
    """Format the statistics as printable text tables."""
    lines = [f'{stats["num_samples"]} samples; occluded share of all present joint slots: '
             f'{100 * stats["slot_fraction"]:.1f} %']
    summary = stats['per_sample']
    lines.append('occluded share per sample: mean {:.1f} %, median {:.1f} %, p90 {:.1f} %, '
                 'max {:.1f} %, samples without occlusion {:.1f} %'.format(
                     *(100 * summary[key] for key in ('mean', 'median', 'p90', 'max', 'none'))))
    lines += ['', f'{"joint":<16} {"slots %":>8} {"samples %":>10}']
    for name, row in sorted(stats['per_joint'].items(), key=lambda item: -item[1]['slots']):
        lines.append(f'{name:<16} {100 * row["slots"]:8.1f} {100 * row["samples"]:10.1f}')
    lines += ['', f'{"class":<24} {"samples":>8} {"mean %":>8}']
    for name, row in stats['per_class'].items():
        lines.append(f'{name:<24} {row["samples"]:8d} {100 * row["mean"]:8.1f}')
    return '\n'.join(lines)


def interpolate_occluded(xyz, present):
    """Estimate the non-finite joints of present bodies by interpolating in time.

    Each joint of each body slot is interpolated linearly between the nearest frames before
    and after where it is finite and its body present; there is no extrapolation, so a joint
    before its first or after its last finite frame stays NaN. The estimate is only a drawing
    aid: a slot that changes person between frames, or a long gap, gives a poor estimate.

    Parameters
    ----------
    xyz : array_like of shape (3, T, 25, M)
    present : array_like of shape (T, M), bool

    Returns
    -------
    filled : ndarray of shape (3, T, 25, M), float64
        ``xyz`` with the estimated joints filled in.
    estimated : ndarray of shape (T, 25, M), bool
        True where ``filled`` holds an estimate.
    """
    filled = np.array(xyz, dtype=np.float64)
    present = np.asarray(present, dtype=bool)
    _, t, v, m = filled.shape
    finite = np.isfinite(filled).all(axis=0) & present[:, None, :]
    missing = ~np.isfinite(filled).all(axis=0) & present[:, None, :]
    frames = np.arange(t)
    for joint, body in zip(*np.nonzero(missing.any(axis=0) & finite.any(axis=0))):
        known = finite[:, joint, body]
        seen = frames[known]
        gaps = missing[:, joint, body] & (frames > seen[0]) & (frames < seen[-1])
        for axis in range(3):
            filled[axis, gaps, joint, body] = np.interp(
                frames[gaps], frames[known], filled[axis, known, joint, body])
    return filled, missing & np.isfinite(filled).all(axis=0)


def _regenerable(split):
    meta = split.meta
    return (meta.get('source') == 'synthetic'
            and meta.get('generator_version') == GENERATOR_VERSION and 'seed' in meta)


def true_sequence(split, index):
    """Coordinates of one stored sample, with occluded joints filled in where possible.

    For synthetic data of this generator version the sequence is regenerated from the seed
    and checked against the stored visible joints; otherwise occluded joints stay NaN. The
    scene is returned only when the regenerated occlusion mask equals the stored one (data
    written by an older occlusion model gets None).

    Returns
    -------
    xyz : ndarray of shape (3, T, 25, M), float32
        T = the sample's frame count.
    occluded : ndarray of shape (T, 25, M), bool
    present : ndarray of shape (T, M), bool
    scene : iospstl_ros.datasets.occlusion.Scene or None
        The exact occluders for synthetic data with realistic occlusion.
    """
    t = int(split.num_frames[index])
    xyz = np.array(split.data[index, :, :t], dtype=np.float32)
    occluded = np.array(split.occluded[index, :t], dtype=bool)
    present = np.array(split.present[index, :t], dtype=bool)
    if not _regenerable(split):
        return xyz, occluded, present, None
    sequence, scene = realistic_scene(int(split.meta['seed']), sample_index(split.names[index]))
    m = sequence.xyz.shape[-1]
    visible = ~occluded[..., :m] & present[:, None, :m]
    if (sequence.xyz.shape[1] != t
            or not np.array_equal(sequence.xyz[:, visible], xyz[:, :, :, :m][:, visible])):
        return xyz, occluded, present, None
    full = np.where(present[None, :, None, :m], sequence.xyz, 0.0).astype(np.float32)
    xyz[:, :, :, :m] = full
    same = np.array_equal(sequence.occluded & sequence.present[:, None, :], occluded[..., :m])
    if split.meta.get('occlusion') != 'realistic' or not same:
        scene = None
    return xyz, occluded, present, scene


def pick_samples(split, count, min_fraction=0.05):
    """Choose up to ``count`` samples of different classes with visible occlusion (indices)."""
    chosen, seen = [], set()
    for index in range(len(split)):
        label = int(split.labels[index])
        if label in seen:
            continue
        hidden = split.occluded[index] & split.present[index][:, None, :]
        slots = NUM_JOINTS * split.present[index].sum()
        if slots and hidden.sum() / slots >= min_fraction:
            chosen.append(index)
            seen.add(label)
        if len(chosen) == count:
            break
    return chosen


def _draw_skeleton(ax, points, hidden, horizontal, vertical, estimated=None):
    """Bones and joints of one body at one frame.

    Visible joints blue, occluded joints red; occluded joints whose position is an estimate
    (``estimated``, (25,) bool) hollow red with dotted bones.
    """
    estimated = np.zeros(len(hidden), bool) if estimated is None else estimated
    for a, b in EDGES:
        if np.isfinite(points[:, [a, b]]).all():
            style = 'r:' if estimated[a] or estimated[b] else (
                'r--' if hidden[a] or hidden[b] else 'b-')
            ax.plot(horizontal(points[:, [a, b]]), vertical(points[:, [a, b]]), style, lw=1.2)
    shown = np.isfinite(points).all(axis=0)
    for chosen, style in ((shown & ~hidden & ~estimated, {'s': 6, 'c': 'tab:blue'}),
                          (shown & hidden & ~estimated, {'s': 10, 'c': 'red', 'zorder': 4}),
                          (shown & estimated, {'s': 14, 'facecolors': 'none',
                                               'edgecolors': 'red', 'linewidths': 0.8,
                                               'zorder': 4})):
        style.setdefault('zorder', 3)
        ax.scatter(horizontal(points[:, chosen]), vertical(points[:, chosen]), **style)


def plot_sequences(split, indices, path, frames=5):
    """Draw ``frames`` frames of each chosen sample in camera view; occluded joints red.

    The horizontal axis is -x (the sensor's left on the left of the picture), vertical y.
    Occluded joints whose true position is not known (not regenerable from a synthetic seed)
    are drawn hollow at the position :func:`interpolate_occluded` estimates.

    Returns
    -------
    estimated : bool
        Whether any drawn position is an estimate.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    classes = split.meta.get('classes')
    fig, axes = plt.subplots(len(indices), frames, figsize=(2.2 * frames, 3.0 * len(indices)),
                             squeeze=False)
    any_estimated = notes = False
    for row, index in enumerate(indices):
        xyz, occluded, present, _ = true_sequence(split, index)
        xyz, estimated = interpolate_occluded(xyz, present)
        any_estimated |= bool(estimated.any())
        t = xyz.shape[1]
        label = int(split.labels[index])
        title = classes[label] if classes else str(label)
        finite = xyz[:, present[:, None, :] & np.isfinite(xyz).all(axis=0)]
        for col, frame in enumerate(np.linspace(0, t - 1, frames).round().astype(int)):
            ax = axes[row, col]
            for body in np.flatnonzero(present[frame]):
                _draw_skeleton(ax, xyz[:, frame, :, body], occluded[frame, :, body],
                               lambda p: -p[0], lambda p: p[1], estimated[frame, :, body])
            if finite.size:
                ax.set_xlim(-finite[0].max() - 0.2, -finite[0].min() + 0.2)
                ax.set_ylim(finite[1].min() - 0.1, finite[1].max() + 0.1)
            ax.set_aspect('equal')
            ax.tick_params(labelsize=6)
            alive = present[frame][None]
            hidden = int((occluded[frame] & alive).sum())
            lost = int((occluded[frame] & alive & ~np.isfinite(xyz[:, frame]).all(axis=0)).sum())
            ax.set_title(f'frame {frame}: {hidden} hidden'
                         + (f', {lost} not drawn' if lost else ''), fontsize=7)
            if col == 0:
                ax.set_ylabel(f'{split.names[index]}\n{title}', fontsize=7)
        undrawn = ~np.isfinite(xyz).all(axis=0) | ~present[:, None, :]
        never = undrawn.all(axis=0) & present.any(axis=0)                   # (V, M)
        if never.any():
            names = ', '.join(JOINT_NAMES[v] for v in np.flatnonzero(never.any(axis=1)))
            text = textwrap.shorten(f'never visible, never drawn: {names}', 2 * _NOTE_WIDTH)
            note = axes[row, 0].annotate(textwrap.fill(text, _NOTE_WIDTH), (0.0, -0.17),
                                         xycoords='axes fraction', fontsize=6, color='red',
                                         va='top')
            note.set_in_layout(False)
            notes = True
    if any_estimated:
        what = ('red: occluded joints; hollow red, dotted: occluded joint at a position '
                'estimated by interpolating in time (true position not stored)')
    else:
        what = 'red: occluded joints at their true positions'
    fig.suptitle(f'{what}\n(-x right to left as the sensor sees, y up, metres)', fontsize=8)
    fig.tight_layout(h_pad=5.0 if notes else 1.08)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return any_estimated


def plot_occluders(split, index, path, seed=0):
    """Draw one sample's occluder boxes with its skeleton: side (z, y) and top (x, z) views.

    Which boxes, by the kind returned:

    - ``'exact'``: synthetic data, boxes regenerated from the seed (solid brown); red joints
      are the stored occlusion.
    - ``'not stored'``: data prepared with realistic occlusion that cannot be regenerated
      (NTU): the producing boxes were not kept and a new scene cannot stand in for them (the
      stored skeleton already lacks the hidden joints that locate the floor), so no boxes are
      drawn; red joints are the stored occlusion.
    - ``'illustrative'``: other data without furniture occlusion: a scene drawn now by
      :func:`iospstl_ros.datasets.occlusion.realistic_occlusion` with ``default_rng(seed)`` (dashed
      grey, watermarked, titled as such); red joints are the ones it would hide.

    Occluded joints are drawn at their true position when known, otherwise hollow at the
    position :func:`interpolate_occluded` estimates. With boxes, the side view shows the floor
    (the plane ``scene.up @ p = scene.floor_y``) cut at x = 0; it slopes when the camera is
    pitched.

    Returns
    -------
    kind : {'exact', 'not stored', 'illustrative'}
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    xyz, occluded, present, scene = true_sequence(split, index)
    xyz, estimated = interpolate_occluded(xyz, present)
    if scene is not None:
        kind = 'exact'
    elif split.meta.get('occlusion') == 'realistic':
        kind = 'not stored'
    else:
        kind = 'illustrative'
        occluded, scene = realistic_occlusion(xyz, present, np.random.default_rng(seed))
    hidden = occluded & present[:, None, :]
    frame = int(np.argmax(hidden.sum(axis=(1, 2))))
    corners = box_corners(scene) if scene is not None else np.zeros((0, 8, 3))
    box_style = ({'color': 'tab:brown', 'lw': 1} if kind == 'exact'
                 else {'color': 'gray', 'lw': 1, 'ls': '--'})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    views = (('side view', lambda p: p[2], lambda p: p[1], 'z depth (m)', 'y (m)'),
             ('top view', lambda p: -p[0], lambda p: p[2], '-x (m)', 'z depth (m)'))
    for ax, (title, horizontal, vertical, xlabel, ylabel) in zip(axes, views):
        for k, box in enumerate(corners):
            for a, b in _BOX_EDGES:
                ax.plot(horizontal(box[[a, b]].T), vertical(box[[a, b]].T), **box_style)
            centre = box.mean(axis=0)
            ax.annotate(scene.kinds[k], (horizontal(centre), vertical(centre)), fontsize=7,
                        color=box_style['color'])
        for body in np.flatnonzero(present[frame]):
            _draw_skeleton(ax, xyz[:, frame, :, body], hidden[frame, :, body], horizontal,
                           vertical, estimated[frame, :, body])
        ax.plot(0.0, 0.0, 'k^', ms=8)
        ax.annotate('camera', (0.0, 0.0), fontsize=7)
        if title == 'side view' and scene is not None and np.isfinite(scene.floor_y):
            up = scene.up
            depth = np.array(ax.get_xlim())
            ax.plot(depth, (scene.floor_y - up[2] * depth) / up[1], color='gray', lw=0.8)
            ax.annotate('floor', (depth[1], (scene.floor_y - up[2] * depth[1]) / up[1]),
                        fontsize=7, color='gray', ha='right', va='bottom')
        if kind == 'illustrative':
            ax.text(0.5, 0.5, 'ILLUSTRATIVE', transform=ax.transAxes, fontsize=28,
                    color='gray', alpha=0.15, ha='center', va='center', rotation=20)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_aspect('equal')
        ax.set_title(title, fontsize=9)
    if kind == 'exact':
        what = 'the occluders that produced the stored occlusion; red: stored occluded joints'
    elif kind == 'not stored':
        what = ('no boxes: the occluders that produced this realistic occlusion are not '
                'stored;\nred: stored occluded joints')
    else:
        what = (f'ILLUSTRATIVE occluders drawn now (seed {seed}), not part of the data;\n'
                'red: joints this scene would hide')
    if estimated[frame].any():
        what += '; hollow red: positions interpolated in time'
    lines = [f'{split.names[index]} frame {frame}: {what}']
    if scene is not None and np.isfinite(scene.floor_y):
        lines.append(f'camera pitch {scene.pitch_deg:.1f} deg, {-scene.floor_y:.2f} m above '
                     f'the floor, {int(hidden[frame].sum())} joints hidden in this frame')
    fig.suptitle('\n'.join(lines), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return kind


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m training.occlusion_stats',
        description='Occlusion statistics of one part of a benchmark directory: per joint, '
                    'per sample and per class; optional pictures.')
    parser.add_argument('root', metavar='DIR',
                        help='benchmark directory written by training.synthesize or '
                             'training.prepare_ntu, e.g. data/synthetic/xsub')
    parser.add_argument('--part', choices=PARTS, default='train',
                        help='part to analyse; default: %(default)s')
    parser.add_argument('--json', metavar='PATH',
                        help='where to write the statistics; default: '
                             'DIR/occlusion_stats_PART.json')
    parser.add_argument('--png', metavar='OUT.png',
                        help='draw occluded sequences to OUT.png and one scene with its '
                             'occluders to OUT_occluders.png')
    parser.add_argument('--num-sequences', type=int, default=4,
                        help='sequences (of different classes) drawn in OUT.png; '
                             'default: %(default)s')
    parser.add_argument('--frames', type=int, default=5,
                        help='frames drawn per sequence; default: %(default)s')
    args = parser.parse_args(argv)
    if args.num_sequences < 1 or args.frames < 1:
        parser.error('--num-sequences and --frames must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        split = open_split(args.root, args.part)
        stats = split_statistics(split)
    except ValueError as error:
        sys.exit(f'occlusion_stats: {error}')
    stats.update({'root': os.path.abspath(args.root), 'part': args.part,
                  'occlusion': split.meta.get('occlusion'), 'source': split.meta.get('source')})
    print(format_tables(stats))
    path = args.json or os.path.join(args.root, f'occlusion_stats_{args.part}.json')
    with open(path, 'w') as f:
        json.dump(stats, f, indent=2)
    print(f'\nwrote {path}')
    if args.png:
        indices = pick_samples(split, args.num_sequences)
        if not indices:
            indices = list(range(min(args.num_sequences, len(split))))
        estimated = plot_sequences(split, indices, args.png, args.frames)
        stem, ext = os.path.splitext(args.png)
        scene_path = f'{stem}_occluders{ext or ".png"}'
        kind = plot_occluders(split, indices[0], scene_path)
        print(f'wrote {args.png}' + (' (hollow red: occluded joints at interpolated, '
                                     'estimated positions)' if estimated else ''))
        notes = {'exact': '', 'not stored': ' (no boxes: the occluders of this data are not '
                                            'stored)',
                 'illustrative': ' (illustrative occluders, not part of the data)'}
        print(f'wrote {scene_path}{notes[kind]}')
    return stats


if __name__ == '__main__':
    main()
