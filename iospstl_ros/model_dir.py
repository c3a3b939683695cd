"""The exported model directory: what the robot loads, and the checks made when loading it.

``python -m training.export`` writes one directory per model::

    metadata.json           format name + version, classes and their NTU action ids, joint
                            layout, window length, preprocessing constants, k, provenance,
                            sha256 of every file
    stage1_encoder.onnx     stage-1 encoder: skeleton (N, 3, 50, 25, 2) -> embedding (N, e)
    classifier.onnx         stage-2 encoder + linear head: skeleton -> logits (N, classes)
    centroids.npy           float32 (K, e): KMeans centroids of the stage-1 embeddings
    feature_mean.npy        float32 (7500,): training mean of every KNN feature (NaN if never
                            observed), the last fallback of the imputation
    bank/                   the :class:`~iospstl_ros.imputation.ClusterBank` of
                            ``training.impute`` (format v2): bank.json, donors/cluster_0000.npy
                            and on (one per cluster: its float16 KNN rows of the training
                            windows, NaN = occluded, memory-mapped), offsets.npy,
                            donor_index.npy, centroids.npy, groups.npy

Both networks take ``skeleton`` float32 ``(N, C, T, V, M) = (N, 3, 50, 25, 2)`` in the layout of
:mod:`iospstl_ros.layout` (relative coordinates after :mod:`iospstl_ros.preprocess`, absent
bodies 0, no NaN); the batch axis is dynamic. The classifier graph includes the input view
(joint, motion or bone) it was trained on, so both take joint coordinates.

:func:`load_model_dir` checks everything it can without opening the ONNX files (that is done by
:mod:`iospstl_ros.runtime`, which also checks each graph's input and output shapes against this
metadata) and fails with one ``ValueError`` that names the file and what is wrong. Only numpy,
json and hashlib are used.
"""

from dataclasses import dataclass
import hashlib
import json
import os

from iospstl_ros.datasets.splits import check_action_ids
from iospstl_ros.imputation import ClusterBank, coordinate_blocks, coordinate_groups
from iospstl_ros.layout import (
    CENTER_JOINT, EDGES, JOINT_NAMES, MAX_BODIES, NUM_CHANNELS, NUM_JOINTS, WINDOW_FRAMES)
from iospstl_ros.validation import is_int
import numpy as np

#: Name and version of the directory format written by ``training.export``.
PACKAGE = 'iospstl_ros'
#: Model directory below the package share (or the source tree), used when model_dir is ''.
DEFAULT_MODEL_SUBDIR = os.path.join('models', 'default')
MODEL_FORMAT = 'iospstl-model'
MODEL_FORMAT_VERSION = 1
METADATA_FILE = 'metadata.json'
STAGE1_FILE = 'stage1_encoder.onnx'
CLASSIFIER_FILE = 'classifier.onnx'
CENTROIDS_FILE = 'centroids.npy'
FEATURE_MEAN_FILE = 'feature_mean.npy'
BANK_DIR = 'bank'
#: Files of the bank that every model directory holds (``groups.npy`` is optional); the donor
#: rows are one file per cluster (``donors/cluster_0000.npy`` and on; ``donors.npy`` in bank
#: format v1), and every file under ``bank/`` must be listed in ``metadata.json``.
BANK_FILES = ('bank.json', 'centroids.npy', 'offsets.npy', 'donor_index.npy')
#: Files that must be listed in ``metadata.json`` and present.
REQUIRED_FILES = (STAGE1_FILE, CLASSIFIER_FILE, CENTROIDS_FILE, FEATURE_MEAN_FILE) + tuple(
    f'{BANK_DIR}/{name}' for name in BANK_FILES)
#: Graph input and output names.
INPUT_NAME = 'skeleton'
EMBEDDING_NAME = 'embedding'
LOGITS_NAME = 'logits'
#: Shape of one network input sample (C, T, V, M).
SAMPLE_SHAPE = (NUM_CHANNELS, WINDOW_FRAMES, NUM_JOINTS, MAX_BODIES)
#: KNN features of one window: 3 * 50 * 25 * 2.
NUM_FEATURES = int(np.prod(SAMPLE_SHAPE))
_HASH_BLOCK = 1 << 22


def sha256_file(path):
    """Hex sha256 of a file, read in 4 MiB blocks.

    Parameters
    ----------
    path : str

    Returns
    -------
    str
        64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b''):
            digest.update(block)
    return digest.hexdigest()


def layout_metadata():
    """Joint layout of this code, as stored in (and compared with) ``metadata.json``.

    Returns
    -------
    dict
        ``axes``, ``joint_names``, ``center_joint``, ``edges``, ``num_joints``,
        ``num_bodies``, ``channels``.
    """
    return {'axes': 'N, C, T, V, M', 'joint_names': list(JOINT_NAMES),
            'center_joint': CENTER_JOINT, 'edges': [list(edge) for edge in EDGES],
            'num_joints': NUM_JOINTS, 'num_bodies': MAX_BODIES, 'channels': NUM_CHANNELS}


@dataclass(eq=False)
class ModelDir:
    """A model directory that passed :func:`load_model_dir`.

    Attributes
    ----------
    path : str
        The directory.
    metadata : dict
        Contents of ``metadata.json``.
    classes : tuple of str
        Class names, in the order of the classifier's outputs.
    stage1_path, classifier_path : str
        Paths of the two ONNX graphs.
    centroids : ndarray of shape (K, e), float32
    feature_mean : ndarray of shape (7500,), float32
        NaN where no training window observes the feature.
    bank : ClusterBank
        Donors memory-mapped (float16 or float32), centroids equal to ``centroids``.
    n_neighbors : int
        k of the KNN imputation.
    align_shoulders : bool
        Preprocessing setting the networks were trained with.
    window_frames : int
        T (50).
    embedding_dim : int
        e, the stage-1 feature size.
    checksums : dict of str to str
        sha256 of every file, by path relative to the directory.
    action_ids : tuple of int or None
        NTU RGB+D action number (1..120) of each class, 0 for a class that is no NTU action;
        None for a directory exported before ``action_ids`` existed (classes are then matched
        to ground truth by name only).
    """

    path: str
    metadata: dict
    classes: tuple
    stage1_path: str
    classifier_path: str
    centroids: np.ndarray
    feature_mean: np.ndarray
    bank: ClusterBank
    n_neighbors: int
    align_shoulders: bool
    window_frames: int
    embedding_dim: int
    checksums: dict
    action_ids: tuple = None

    @property
    def num_classes(self):
        """Give the number of classes."""
        return len(self.classes)


def _error(path, name, message):
    return ValueError(f'{os.path.join(path, name)}: {message}')


def _read_metadata(path):
    if not os.path.isdir(path):
        raise ValueError(f'{path}: not a directory; expected a model directory written by '
                         'python -m training.export')
    meta_path = os.path.join(path, METADATA_FILE)
    if not os.path.isfile(meta_path):
        raise _error(path, METADATA_FILE, 'missing; expected a model directory written by '
                     'python -m training.export')
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _error(path, METADATA_FILE, f'unreadable JSON ({error})') from error
    if not isinstance(meta, dict):
        raise _error(path, METADATA_FILE, f'expected a JSON object, got {type(meta).__name__}')
    if meta.get('format') != MODEL_FORMAT:
        raise _error(path, METADATA_FILE, f'expected format {MODEL_FORMAT!r}, got '
                     f'{meta.get("format")!r}')
    if meta.get('format_version') != MODEL_FORMAT_VERSION:
        raise _error(path, METADATA_FILE, f'unknown format version '
                     f'{meta.get("format_version")!r} of {MODEL_FORMAT}; this code reads '
                     f'version {MODEL_FORMAT_VERSION} (export the model again with this code)')
    return meta


def _lookup(path, meta, *keys):
    value = meta
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise _error(path, METADATA_FILE,
                         f'missing key {".".join(keys[:depth + 1])!r}')
        value = value[key]
    return value


def _positive_int(path, value, what):
    if not is_int(value) or value < 1:
        raise _error(path, METADATA_FILE, f'expected {what} as an int >= 1, got {value!r}')
    return value


def _check_layout(path, meta):
    expected = layout_metadata()
    for key in ('joint_names', 'center_joint', 'edges'):
        got = _lookup(path, meta, 'layout', key)
        if got != expected[key]:
            raise _error(path, METADATA_FILE, f'layout.{key} differs from the joint layout of '
                         f'iospstl_ros.layout (expected {expected[key]!r}, got {got!r})')
    window = _lookup(path, meta, 'window_frames')
    if window != WINDOW_FRAMES:
        raise _error(path, METADATA_FILE, f'expected window_frames {WINDOW_FRAMES}, got '
                     f'{window!r}')


def _check_files(path, meta, verify_checksums):
    files = _lookup(path, meta, 'files')
    if not isinstance(files, dict):
        raise _error(path, METADATA_FILE, 'expected "files" as an object of path: '
                     '{sha256, bytes}')
    bank_files = [os.path.relpath(os.path.join(folder, name), path).replace(os.sep, '/')
                  for folder, _, names in os.walk(os.path.join(path, BANK_DIR)) for name in names]
    for name in list(REQUIRED_FILES) + sorted(bank_files):
        if name not in files:
            raise _error(path, METADATA_FILE, f'"files" does not list {name}')
    checksums = {}
    for name, entry in sorted(files.items()):
        parts = name.split('/')
        if os.path.isabs(name) or '..' in parts or name == METADATA_FILE:
            raise _error(path, METADATA_FILE, f'"files" lists {name!r}, expected a path inside '
                         'the directory other than metadata.json')
        if not isinstance(entry, dict) or not isinstance(entry.get('sha256'), str) \
                or not isinstance(entry.get('bytes'), int):
            raise _error(path, METADATA_FILE, f'"files"[{name!r}]: expected '
                         f'{{"sha256": hex, "bytes": int}}, got {entry!r}')
        file_path = os.path.join(path, *parts)
        if not os.path.isfile(file_path):
            raise _error(path, name, 'missing (listed in metadata.json)')
        size = os.path.getsize(file_path)
        if size != entry['bytes']:
            raise _error(path, name, f'{size} bytes, expected {entry["bytes"]} (the file was '
                         'changed or truncated after export)')
        if verify_checksums:
            digest = sha256_file(file_path)
            if digest != entry['sha256']:
                raise _error(path, name, f'sha256 mismatch: expected {entry["sha256"]}, got '
                             f'{digest} (the file was changed after export)')
        checksums[name] = entry['sha256']
    return checksums


def _load_array(path, name, dtype, shape):
    """Load a .npy file and check its dtype and shape (None = any size on that axis)."""
    try:
        array = np.load(os.path.join(path, name), allow_pickle=False)
    except (OSError, ValueError) as error:
        raise _error(path, name, f'not a readable .npy file ({error})') from error
    got = tuple(s if e is not None else None for s, e in zip(array.shape, shape))
    if array.dtype != np.dtype(dtype) or array.ndim != len(shape) or got != tuple(shape):
        wanted = tuple('any' if s is None else s for s in shape)
        raise _error(path, name, f'expected {np.dtype(dtype).name} of shape {wanted}, got '
                     f'{array.dtype.name} of shape {array.shape}')
    return array


def load_model_dir(path, verify_checksums=True, mmap=True, max_cached_clusters=4):
    """Open and validate a model directory written by ``python -m training.export``.

    Checks, in this order: ``metadata.json`` (readable, format name, known format version, required
    keys, joint layout and window length equal to this code's, one NTU action id per class when
    ``action_ids`` is given), every file it lists (present, size, sha256) and every file under
    ``bank/`` listed, the arrays (dtype and shape of the centroids and the feature means, the
    bank's files), that the bank and the centroids agree (cluster count, embedding size, values,
    7500 features per row) and that the class names match the classifier's declared output size.
    The ONNX graphs themselves are opened and checked against this metadata by
    :mod:`iospstl_ros.runtime`.

    Parameters
    ----------
    path : str
        The model directory.
    verify_checksums : bool
        Hash every file (about 0.4 s per GB); sizes are always checked.
    mmap : bool
        Memory-map the bank's donors instead of reading them into memory.
    max_cached_clusters : int
        Clusters whose prepared donors the bank keeps (see
        :class:`~iospstl_ros.imputation.ClusterBank`).

    Returns
    -------
    ModelDir

    Raises
    ------
    ValueError
        One error that names the file and what is wrong with it.
    """
    path = os.path.abspath(os.fspath(path))
    meta = _read_metadata(path)
    _check_layout(path, meta)
    classes = _lookup(path, meta, 'classes')
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise _error(path, METADATA_FILE, f'expected "classes" as a list of names, got '
                     f'{classes!r}')
    num_classes = _positive_int(path, _lookup(path, meta, 'models', 'classifier',
                                              'num_classes'), 'models.classifier.num_classes')
    if len(classes) != num_classes:
        raise _error(path, METADATA_FILE, f'{len(classes)} class names for a classifier with '
                     f'{num_classes} outputs')
    action_ids = meta.get('action_ids')
    if action_ids is not None:
        try:
            action_ids = check_action_ids(action_ids, num_classes)
        except ValueError as error:
            raise _error(path, METADATA_FILE, f'"action_ids": {error}') from None
    embedding_dim = _positive_int(path, _lookup(path, meta, 'models', 'stage1_encoder',
                                                'output_dim'), 'models.stage1_encoder.output_dim')
    n_clusters = _positive_int(path, _lookup(path, meta, 'imputation', 'n_clusters'),
                               'imputation.n_clusters')
    n_neighbors = _positive_int(path, _lookup(path, meta, 'imputation', 'n_neighbors'),
                                'imputation.n_neighbors')
    align_shoulders = _lookup(path, meta, 'preprocessing', 'align_shoulders')
    if not isinstance(align_shoulders, bool):
        raise _error(path, METADATA_FILE, 'expected preprocessing.align_shoulders as true or '
                     f'false, got {align_shoulders!r}')
    checksums = _check_files(path, meta, verify_checksums)
    centroids = _load_array(path, CENTROIDS_FILE, np.float32, (n_clusters, embedding_dim))
    if not np.isfinite(centroids).all():
        raise _error(path, CENTROIDS_FILE, 'expected finite values')
    feature_mean = _load_array(path, FEATURE_MEAN_FILE, np.float32, (NUM_FEATURES,))
    bank_path = os.path.join(path, BANK_DIR)
    try:
        bank = ClusterBank.load(bank_path, mmap=mmap, max_cached_clusters=max_cached_clusters)
    except (KeyError, OSError) as error:
        raise _error(path, BANK_DIR, f'unreadable cluster bank ({error!r})') from error
    if bank.n_features_in_ != NUM_FEATURES:
        raise _error(path, BANK_DIR, f'expected {NUM_FEATURES} features per donor row (3 x '
                     f'{WINDOW_FRAMES} x {NUM_JOINTS} x {MAX_BODIES}), got '
                     f'{bank.n_features_in_}')
    if bank.centroids_.shape != centroids.shape or not np.array_equal(bank.centroids_,
                                                                      centroids):
        raise _error(path, f'{BANK_DIR}/centroids.npy', 'the bank and centroids.npy disagree: '
                     f'bank centroids {bank.centroids_.shape}, centroids.npy '
                     f'{centroids.shape}' + ('' if bank.centroids_.shape != centroids.shape
                                             else ' with different values'))
    groups = coordinate_groups(WINDOW_FRAMES, NUM_JOINTS, MAX_BODIES)
    if bank.groups is not None and not np.array_equal(bank.groups, groups):
        raise _error(path, f'{BANK_DIR}/groups.npy', 'expected the joint groups of a '
                     f'(3, {WINDOW_FRAMES}, {NUM_JOINTS}, {MAX_BODIES}) window')
    # An absent second body then costs one window's imputation no donor products.
    bank.set_blocks(coordinate_blocks(WINDOW_FRAMES, NUM_JOINTS, MAX_BODIES))
    return ModelDir(
        path=path, metadata=meta, classes=tuple(classes),
        stage1_path=os.path.join(path, STAGE1_FILE),
        classifier_path=os.path.join(path, CLASSIFIER_FILE), centroids=centroids,
        feature_mean=feature_mean, bank=bank, n_neighbors=n_neighbors,
        align_shoulders=align_shoulders, window_frames=WINDOW_FRAMES,
        embedding_dim=embedding_dim, checksums=checksums, action_ids=action_ids)


def default_model_dir():
    """``<share>/iospstl_ros/models/default`` when ament knows the package, else the source tree.

    Returns
    -------
    str
    """
    if os.environ.get('AMENT_PREFIX_PATH'):
        from ament_index_python.packages import (
            get_package_share_directory, PackageNotFoundError)
        try:
            return os.path.join(get_package_share_directory(PACKAGE), DEFAULT_MODEL_SUBDIR)
        except PackageNotFoundError:
            pass
    import iospstl_ros
    source = os.path.dirname(os.path.dirname(os.path.abspath(iospstl_ros.__file__)))
    return os.path.join(source, DEFAULT_MODEL_SUBDIR)
