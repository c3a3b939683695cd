"""Run the exported ONNX graphs: ONNX Runtime on CPU, CUDA or TensorRT, or a native engine.

Back-ends, chosen at run time by name:

=================== ========================================================================
``cpu``             ONNX Runtime, ``CPUExecutionProvider``, ``threads`` intra-op threads
``cuda``            ONNX Runtime, ``CUDAExecutionProvider`` (CPU for unsupported nodes)
``tensorrt``        ONNX Runtime, ``TensorrtExecutionProvider`` then CUDA then CPU, with
                    TensorRT's engine and timing caches in a writable directory keyed by the
                    model's sha256, the GPU's name and the ONNX Runtime version
``tensorrt-native`` an engine built from the ONNX file with the ``tensorrt`` Python API
                    (``trt.Builder``, ``OnnxParser``, one optimisation profile for batch
                    1..``max_batch``), serialised into the same kind of cache directory and
                    run by :class:`TensorRTRunner` (CUDA runtime through ctypes)
``auto``            the first of TensorRT, CUDA, CPU that ONNX Runtime offers
=================== ========================================================================

ONNX Runtime silently falls back to the next provider when one cannot start (missing CUDA or
TensorRT libraries, an unsupported GPU): every runner reports the provider actually serving in
``provider`` (``session.get_providers()[0]``). An explicitly named back-end that does not end up
serving raises ``ValueError`` at start-up; ``auto`` accepts the fallback and reports it.

TensorRT engines take minutes to build for large models: they are built once and cached, never
shipped. ``onnxruntime`` and ``tensorrt`` are imported only when a runner is created, so this
module imports with numpy alone. Inputs are checked to be finite: no NaN reaches a network.

Graphs whose last input axis is the symbolic ``bodies`` (exports since the one-body shortcut)
take M = 1 as well as M = 2 on ONNX Runtime CPU and CUDA (``single_body`` is True). The
TensorRT profiles fix M = 2 (``single_body`` False): the shortcut then is not taken.
"""

import ctypes
import os
import re
import tempfile

from iospstl_ros.layout import MAX_BODIES
from iospstl_ros.validation import check_int
import numpy as np

BACKENDS = ('auto', 'cpu', 'cuda', 'tensorrt', 'tensorrt-native')
CPU_PROVIDER = 'CPUExecutionProvider'
CUDA_PROVIDER = 'CUDAExecutionProvider'
TENSORRT_PROVIDER = 'TensorrtExecutionProvider'
#: Provider that must serve each explicitly named ONNX Runtime back-end.
BACKEND_PROVIDERS = {'cpu': CPU_PROVIDER, 'cuda': CUDA_PROVIDER,
                     'tensorrt': TENSORRT_PROVIDER}
#: What a native engine reports as its provider.
NATIVE_PROVIDER = 'TensorRT (native engine)'
#: Reason given where a GPU back-end cannot be tried.
GPU_UNAVAILABLE = 'no CUDA GPU / tensorrt not installed on this machine'
#: Largest batch of the TensorRT optimisation profiles, and the batch they are tuned for.
MAX_BATCH = 32
OPT_BATCH = 8
#: Environment variable that overrides the default cache directory.
CACHE_ENV = 'IOSPSTL_CACHE_DIR'


def default_cache_dir():
    """Return the root of the TensorRT engine caches.

    ``$IOSPSTL_CACHE_DIR``, else ``$XDG_CACHE_HOME/iospstl_ros``, else
    ``~/.cache/iospstl_ros``.

    Returns
    -------
    str
    """
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'iospstl_ros')


def gpu_name(device_id=0):
    """Name of a CUDA GPU from the driver API (``libcuda``), or None without one.

    Parameters
    ----------
    device_id : int

    Returns
    -------
    str or None
    """
    for library in ('libcuda.so.1', 'libcuda.so', 'nvcuda.dll'):
        try:
            cuda = ctypes.CDLL(library)
            break
        except OSError:
            continue
    else:
        return None
    device = ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(device), int(device_id)) != 0:
        return None
    if cuda.cuDeviceGetName(name, len(name), device) != 0:
        return None
    return name.value.decode(errors='replace')


def engine_cache_dir(model_checksum, device_id=0, cache_root=None, tag=''):
    """Writable directory for the engines of one model on one GPU with one TensorRT.

    Parameters
    ----------
    model_checksum : str
        sha256 of the ONNX file.
    device_id : int
    cache_root : str, optional
        Default :func:`default_cache_dir`.
    tag : str
        Version of the software that builds the engines (ONNX Runtime or TensorRT).

    Returns
    -------
    str
        ``<root>/tensorrt/<checksum[:16]>_<gpu>_<tag>``, created.

    Raises
    ------
    ValueError
        If the directory cannot be created or written.
    """
    if not re.fullmatch(r'[0-9a-f]{16,}', str(model_checksum)):
        raise ValueError(f'model_checksum: expected a hex sha256, got {model_checksum!r}')
    gpu = re.sub(r'[^A-Za-z0-9.-]+', '-', gpu_name(device_id) or 'unknown-gpu').strip('-')
    key = '_'.join(part for part in (model_checksum[:16], gpu, tag) if part)
    path = os.path.join(cache_root or default_cache_dir(), 'tensorrt', key)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise ValueError(f'{path}: cannot create the TensorRT cache directory ({error}); set '
                         f'cache_dir or ${CACHE_ENV} to a writable directory') from error
    if not os.access(path, os.W_OK):
        raise ValueError(f'{path}: TensorRT cache directory is not writable; set cache_dir or '
                         f'${CACHE_ENV} to a writable directory')
    return path


def _open_session(ort, path, options, providers):
    """Open an ``InferenceSession``; ONNX Runtime's load errors become a ValueError.

    ONNX Runtime raises its own exception types (``InvalidProtobuf``, ``Fail``, ...), which
    derive from ``Exception`` only; callers that catch the usual load errors would let them
    escape, so they are turned into a ValueError naming the file.
    """
    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as error:
        if not type(error).__module__.startswith('onnxruntime'):
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ValueError(f'{path}: ONNX Runtime cannot load it ({type(error).__name__}: '
                         f'{reason})') from error


#: Name of the dynamic body axis (the last input axis) in the exported graphs.
BODIES_AXIS = 'bodies'


def _fixed_sample_shape(shape, path):
    """Input shape without the batch axis, the symbolic body axis read as 2 slots.

    Returns
    -------
    sample_shape : tuple of int
    single_body : bool
        Whether the graph also takes one body slot.
    """
    tail = list(shape[1:])
    single_body = bool(tail) and tail[-1] == BODIES_AXIS
    if single_body:
        tail[-1] = MAX_BODIES
    if not all(isinstance(s, int) and s > 0 for s in tail):
        raise ValueError(f'{path}: expected an input with a fixed shape after the batch axis '
                         f'(or a last axis named {BODIES_AXIS!r}), got {list(shape)}')
    return tuple(tail), single_body


def check_input(x, sample_shape, what='input', single_body=False):
    """Validate a network input: float32, (N, *sample_shape), N >= 1, finite.

    Parameters
    ----------
    x : array_like
    sample_shape : tuple of int
    what : str
        Name used in the error.
    single_body : bool
        Also accept a last axis of 1 (one body slot).

    Returns
    -------
    x : ndarray, float32, C-contiguous

    Raises
    ------
    ValueError
        On a wrong shape or a non-finite value (NaN must never reach a network).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    shapes = [tuple(sample_shape)]
    if single_body:
        shapes.append(tuple(sample_shape[:-1]) + (1,))
    if x.ndim != len(sample_shape) + 1 or tuple(x.shape[1:]) not in shapes or x.shape[0] < 1:
        last = ' or 1' if single_body else ''
        raise ValueError(f'{what}: expected float32 of shape (N >= 1, '
                         f'{", ".join(map(str, sample_shape))}{last}), got {x.shape}')
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(f'{what}: {bad} NaN or infinite values would reach the network; '
                         'occluded joints must be filled first')
    return x


class OnnxRunner:
    """One ONNX graph in an ONNX Runtime session on the chosen back-end.

    Parameters
    ----------
    path : str
        ONNX file with one float32 input (batch axis dynamic) and one output.
    backend : {'auto', 'cpu', 'cuda', 'tensorrt'}
    threads : int
        ``intra_op_num_threads`` of the session (CPU work); ``inter_op_num_threads`` is 1.
    model_checksum : str, optional
        sha256 of ``path`` (computed when omitted and needed): keys the TensorRT cache.
    cache_dir : str, optional
        Root of the TensorRT caches (default :func:`default_cache_dir`).
    device_id : int
        CUDA device.
    max_batch : int
        Largest batch of the TensorRT optimisation profile; larger batches are run in slices
        when TensorRT serves.
    spin : bool
        Let idle intra-op threads spin-wait for work (ONNX Runtime's default). Off by default:
        between the two graphs the pipeline runs numpy work that spinning threads slow down,
        and on a robot they burn cores that other nodes need.

    Attributes
    ----------
    session : onnxruntime.InferenceSession
    provider : str
        The provider that serves (``session.get_providers()[0]``).
    input_name, output_name : str
    sample_shape : tuple of int
        Input shape without the batch axis (two body slots).
    single_body : bool
        The graph also takes one body slot (M = 1); see the module docstring.
    output_shape : tuple
        Output shape from the graph (batch axis symbolic).
    cache_path : str or None
        TensorRT cache directory in use.

    Raises
    ------
    ValueError
        Unknown back-end, a GPU back-end this machine does not offer, or an explicitly named
        back-end that ONNX Runtime fell back from.
    """

    def __init__(self, path, backend='auto', threads=1, model_checksum=None, cache_dir=None,
                 device_id=0, max_batch=MAX_BATCH, spin=False):
        import onnxruntime as ort

        if backend not in BACKENDS or backend == 'tensorrt-native':
            raise ValueError(f'backend: expected one of {BACKENDS[:-1]} for ONNX Runtime, got '
                             f'{backend!r}')
        check_int('threads', threads)
        self.path = path
        self.backend = backend
        available = ort.get_available_providers()
        wanted = BACKEND_PROVIDERS.get(backend)
        if wanted is not None and wanted not in available:
            raise ValueError(f'backend {backend!r}: ONNX Runtime {ort.__version__} offers '
                             f'{available}, not {wanted} ({GPU_UNAVAILABLE}?)')
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.add_session_config_entry('session.intra_op.allow_spinning', '1' if spin else '0')
        self.cache_path = None
        self.max_batch = None
        providers = []
        if backend in ('auto', 'tensorrt') and TENSORRT_PROVIDER in available:
            if model_checksum is None:
                from iospstl_ros.model_dir import sha256_file
                model_checksum = sha256_file(path)
            self.cache_path = engine_cache_dir(model_checksum, device_id, cache_dir,
                                               tag=f'ort{ort.__version__}')
            probe = _open_session(ort, path, options, [CPU_PROVIDER]).get_inputs()[0]
            name = probe.name
            tail = 'x'.join(str(s) for s in _fixed_sample_shape(probe.shape, path)[0])
            providers.append((TENSORRT_PROVIDER, {
                'device_id': device_id,
                'trt_engine_cache_enable': True,
                'trt_engine_cache_path': self.cache_path,
                'trt_timing_cache_enable': True,
                'trt_timing_cache_path': self.cache_path,
                'trt_profile_min_shapes': f'{name}:1x{tail}',
                'trt_profile_opt_shapes': f'{name}:{min(OPT_BATCH, max_batch)}x{tail}',
                'trt_profile_max_shapes': f'{name}:{max_batch}x{tail}',
            }))
        if backend in ('auto', 'tensorrt', 'cuda') and CUDA_PROVIDER in available:
            providers.append((CUDA_PROVIDER, {'device_id': device_id}))
        providers.append((CPU_PROVIDER, {}))
        self.session = _open_session(ort, path, options, providers)
        self.provider = self.session.get_providers()[0]
        if self.provider == TENSORRT_PROVIDER:
            self.max_batch = int(max_batch)  # the optimisation profile's limit
        if wanted is not None and self.provider != wanted:
            raise ValueError(f'backend {backend!r}: ONNX Runtime fell back to {self.provider} '
                             f'({GPU_UNAVAILABLE}, or its libraries failed to load)')
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f'{path}: expected one input and one output, got '
                             f'{[i.name for i in inputs]} and {[o.name for o in outputs]}')
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.sample_shape, self.single_body = _fixed_sample_shape(inputs[0].shape, path)
        if self.provider == TENSORRT_PROVIDER:
            self.single_body = False        # its optimisation profile fixes M = 2
        self.output_shape = tuple(outputs[0].shape)
        if not all(isinstance(s, int) for s in self.output_shape[1:]):
            # a symbolic feature axis: one run tells its size
            probe = self.run(np.zeros((1,) + self.sample_shape, np.float32))
            self.output_shape = self.output_shape[:1] + probe.shape[1:]

    def run(self, x):
        """Run a batch.

        Parameters
        ----------
        x : ndarray of shape (N, *sample_shape), float32, finite

        Returns
        -------
        ndarray of shape (N, ...), float32
        """
        x = check_input(x, self.sample_shape, f'{os.path.basename(self.path)} input',
                        self.single_body)
        if self.max_batch is None or len(x) <= self.max_batch:
            return self.session.run([self.output_name], {self.input_name: x})[0]
        return np.concatenate([
            self.session.run([self.output_name], {self.input_name: x[i:i + self.max_batch]})[0]
            for i in range(0, len(x), self.max_batch)])

    def warm_up(self, batch_sizes=(1,), repeats=2):
        """Run zeros of each batch size (builds TensorRT engines, allocates, tunes kernels).

        Parameters
        ----------
        batch_sizes : sequence of int
        repeats : int
        """
        for n in batch_sizes:
            x = np.zeros((int(n),) + self.sample_shape, np.float32)
            for _ in range(repeats):
                self.run(x)


class _CudaRuntime:
    """The few CUDA runtime calls a TensorRT engine needs, through ctypes."""

    HOST_TO_DEVICE = 1
    DEVICE_TO_HOST = 2
    LIBRARIES = ('libcudart.so', 'libcudart.so.13', 'libcudart.so.12', 'libcudart.so.11.0')

    def __init__(self):
        self.lib = None
        errors = []
        for name in self._candidates():
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError as error:
                errors.append(str(error))
        if self.lib is None:
            raise ValueError(f'CUDA runtime library not found ({GPU_UNAVAILABLE}): '
                             + '; '.join(errors[-2:]))
        self.lib.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        self.lib.cudaFree.argtypes = [ctypes.c_void_p]
        self.lib.cudaMemcpyAsync.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                             ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
        self.lib.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.lib.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]
        self.lib.cudaStreamDestroy.argtypes = [ctypes.c_void_p]
        self.lib.cudaSetDevice.argtypes = [ctypes.c_int]

    @classmethod
    def _candidates(cls):
        names = list(cls.LIBRARIES)
        try:  # the nvidia-cuda-runtime wheel that the tensorrt wheel depends on
            import nvidia.cuda_runtime
            for root in nvidia.cuda_runtime.__path__:
                folder = os.path.join(root, 'lib')
                if os.path.isdir(folder):
                    names += sorted(os.path.join(folder, f) for f in os.listdir(folder)
                                    if f.startswith('libcudart.so'))
        except ImportError:
            pass
        return names

    def check(self, status, call):
        if status != 0:
            raise RuntimeError(f'{call} failed with CUDA error {status}')

    def set_device(self, device_id):
        self.check(self.lib.cudaSetDevice(int(device_id)), 'cudaSetDevice')

    def malloc(self, size):
        pointer = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(pointer), int(size)), 'cudaMalloc')
        return pointer.value

    def free(self, pointer):
        self.lib.cudaFree(ctypes.c_void_p(pointer))

    def stream(self):
        stream = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(stream)), 'cudaStreamCreate')
        return stream.value

    def copy(self, destination, source, size, kind, stream):
        self.check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(destination),
                                            ctypes.c_void_p(source), int(size), kind,
                                            ctypes.c_void_p(stream)), 'cudaMemcpyAsync')

    def synchronize(self, stream):
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)),
                   'cudaStreamSynchronize')


def build_engine(onnx_path, engine_path, max_batch=MAX_BATCH, opt_batch=OPT_BATCH, fp16=False,
                 workspace_bytes=1 << 30):
    """Build a TensorRT engine from an ONNX file and write it (serialised) atomically.

    Parameters
    ----------
    onnx_path : str
        ONNX graph with one input whose first axis is the dynamic batch.
    engine_path : str
        Where the serialised engine goes.
    max_batch, opt_batch : int
        The optimisation profile covers batches 1..max_batch, tuned for ``opt_batch``.
    fp16 : bool
        Allow half-precision kernels (faster; results then differ from ONNX Runtime's by
        about 1e-3).
    workspace_bytes : int
        Scratch memory TensorRT may use while building and running.

    Returns
    -------
    bytes
        The serialised engine.

    Raises
    ------
    ValueError
        If TensorRT is not installed, cannot parse the graph, or fails to build.
    """
    try:
        import tensorrt as trt
    except ImportError as error:
        raise ValueError(f'backend tensorrt-native: {GPU_UNAVAILABLE} ({error})') from error
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, 'EXPLICIT_BATCH'):  # TensorRT < 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, 'rb') as f:
        parsed = parser.parse(f.read())
    if not parsed:
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f'{onnx_path}: TensorRT {trt.__version__} cannot parse it: {errors}')
    if network.num_inputs != 1:
        raise ValueError(f'{onnx_path}: expected one input, got {network.num_inputs}')
    tensor = network.get_input(0)
    sample = tuple(tensor.shape)[1:]
    if sample and sample[-1] < 0:
        sample = sample[:-1] + (MAX_BODIES,)   # the dynamic body axis: the profile fixes M = 2
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, (1,) + sample, (min(opt_batch, max_batch),) + sample,
                      (max_batch,) + sample)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ValueError(f'{onnx_path}: TensorRT {trt.__version__} failed to build an engine')
    data = bytes(serialized)
    folder = os.path.dirname(os.path.abspath(engine_path))
    with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix='.partial') as f:
        f.write(data)
    os.replace(f.name, engine_path)
    return data


class TensorRTRunner:
    """A native TensorRT engine for one ONNX graph, built once and cached on disk.

    The engine file is ``<cache>/engine_b<max_batch>[_fp16].plan`` in
    :func:`engine_cache_dir` (model sha256, GPU name, TensorRT version); a missing one is built
    with :func:`build_engine` (minutes for large models). Device buffers for ``max_batch``
    samples are allocated once; larger batches are run in slices.

    Parameters
    ----------
    path : str
        ONNX file.
    model_checksum : str, optional
        sha256 of ``path`` (computed when omitted).
    cache_dir : str, optional
    device_id : int
    max_batch : int
    fp16 : bool

    Attributes
    ----------
    provider : str
        :data:`NATIVE_PROVIDER`.
    engine_path : str
    built : bool
        True when this instance built the engine (False: read from the cache).
    input_name, output_name : str
    sample_shape : tuple of int
    single_body : bool
        Always False: the engine's profile fixes M = 2.
    output_shape : tuple
    """

    def __init__(self, path, model_checksum=None, cache_dir=None, device_id=0,
                 max_batch=MAX_BATCH, fp16=False):
        try:
            import tensorrt as trt
        except ImportError as error:
            raise ValueError(f'backend tensorrt-native: {GPU_UNAVAILABLE} ({error})') from error
        if model_checksum is None:
            from iospstl_ros.model_dir import sha256_file
            model_checksum = sha256_file(path)
        self.path = path
        self.provider = NATIVE_PROVIDER
        self.max_batch = int(max_batch)
        self._cuda = _CudaRuntime()
        self._cuda.set_device(device_id)
        folder = engine_cache_dir(model_checksum, device_id, cache_dir,
                                  tag=f'trt{trt.__version__}')
        self.engine_path = os.path.join(
            folder, f'engine_b{self.max_batch}{"_fp16" if fp16 else ""}.plan')
        self.built = not os.path.exists(self.engine_path)
        if self.built:
            data = build_engine(path, self.engine_path, self.max_batch, fp16=fp16)
        else:
            with open(self.engine_path, 'rb') as f:
                data = f.read()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise ValueError(f'{self.engine_path}: TensorRT could not load the cached engine; '
                             'delete it to rebuild')
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names
                  if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f'{path}: expected one input and one output, got {inputs} and '
                             f'{outputs}')
        self.input_name, self.output_name = inputs[0], outputs[0]
        sample = tuple(self.engine.get_tensor_shape(self.input_name))[1:]
        if sample and sample[-1] < 0:
            sample = sample[:-1] + (MAX_BODIES,)   # built with M = 2 (see build_engine)
        self.sample_shape = sample
        self.single_body = False
        self.output_shape = tuple(self.engine.get_tensor_shape(self.output_name))
        self._output_sample = tuple(self.output_shape[1:])
        self._stream = self._cuda.stream()
        self._input_bytes = 4 * self.max_batch * int(np.prod(self.sample_shape))
        self._output_bytes = 4 * self.max_batch * int(np.prod(self._output_sample))
        self._input = self._cuda.malloc(self._input_bytes)
        self._output = self._cuda.malloc(self._output_bytes)
        self.context.set_tensor_address(self.input_name, self._input)
        self.context.set_tensor_address(self.output_name, self._output)

    def run(self, x):
        """Run a batch (any size; sliced by ``max_batch``).

        Parameters
        ----------
        x : ndarray of shape (N, *sample_shape), float32, finite

        Returns
        -------
        ndarray of shape (N, ...), float32
        """
        x = check_input(x, self.sample_shape, f'{os.path.basename(self.path)} input')
        out = np.empty((len(x),) + self._output_sample, np.float32)
        for start in range(0, len(x), self.max_batch):
            block = np.ascontiguousarray(x[start:start + self.max_batch])
            n = len(block)
            result = np.empty((n,) + self._output_sample, np.float32)
            self.context.set_input_shape(self.input_name, block.shape)
            self._cuda.copy(self._input, block.ctypes.data, block.nbytes,
                            _CudaRuntime.HOST_TO_DEVICE, self._stream)
            if not self.context.execute_async_v3(self._stream):
                raise RuntimeError(f'{self.engine_path}: TensorRT execution failed')
            self._cuda.copy(result.ctypes.data, self._output, result.nbytes,
                            _CudaRuntime.DEVICE_TO_HOST, self._stream)
            self._cuda.synchronize(self._stream)
            out[start:start + n] = result
        return out

    def warm_up(self, batch_sizes=(1,), repeats=2):
        """Run zeros of each batch size.

        Parameters
        ----------
        batch_sizes : sequence of int
        repeats : int
        """
        for n in batch_sizes:
            x = np.zeros((int(n),) + self.sample_shape, np.float32)
            for _ in range(repeats):
                self.run(x)

    def close(self):
        """Free the device buffers (also done when the runner is garbage-collected)."""
        cuda = getattr(self, '_cuda', None)
        for name in ('_input', '_output'):
            pointer = getattr(self, name, None)
            if cuda is not None and pointer:
                cuda.free(pointer)
                setattr(self, name, None)
        if cuda is not None and getattr(self, '_stream', None):
            cuda.lib.cudaStreamDestroy(ctypes.c_void_p(self._stream))
            self._stream = None

    def __del__(self):
        self.close()


def available_backends():
    """Back-ends this machine can try (the ONNX Runtime providers and ``tensorrt``).

    Returns
    -------
    list of str
        Always starts with ``'cpu'``.
    """
    import onnxruntime as ort

    backends = ['cpu']
    available = ort.get_available_providers()
    if CUDA_PROVIDER in available:
        backends.append('cuda')
    if TENSORRT_PROVIDER in available:
        backends.append('tensorrt')
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        if gpu_name() is not None:
            backends.append('tensorrt-native')
    return backends


def open_runner(path, backend='auto', threads=1, model_checksum=None, cache_dir=None,
                device_id=0, max_batch=MAX_BATCH, spin=False):
    """Open an ONNX graph on a back-end (see the module docstring).

    Parameters
    ----------
    path : str
    backend : {'auto', 'cpu', 'cuda', 'tensorrt', 'tensorrt-native'}
    threads : int
        ONNX Runtime intra-op threads.
    model_checksum : str, optional
        sha256 of ``path``; keys the TensorRT caches.
    cache_dir : str, optional
    device_id : int
    max_batch : int
    spin : bool
        ONNX Runtime threads spin-wait when idle (see :class:`OnnxRunner`).

    Returns
    -------
    OnnxRunner or TensorRTRunner
        Both have ``run(x)``, ``warm_up(batch_sizes)``, ``provider``, ``sample_shape`` and
        ``output_shape``.
    """
    if backend not in BACKENDS:
        raise ValueError(f'backend: expected one of {BACKENDS}, got {backend!r}')
    if backend == 'tensorrt-native':
        return TensorRTRunner(path, model_checksum, cache_dir, device_id, max_batch)
    return OnnxRunner(path, backend, threads, model_checksum, cache_dir, device_id, max_batch,
                      spin)
