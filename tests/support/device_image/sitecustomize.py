"""The lent GPU machine's Python, imposed on this one: on PYTHONPATH, this makes every third-party import
that the lent machines' image does not hold fail as it would there, so benchmarks/gpu_session.sh can be
run here first (tests/test_benchmarks.py) instead of finding a missing module in device time.

The image's packages as its documentation listed them (2026-11-17), as import names; transitive
dependencies that list leaves out but its packages need (pandas's pytz, pytest's py) are allowed too.
DEVICE_IMAGE_CARRIED names further import names (comma-separated): the wheels a run carries.
Only packages installed in site-packages are blocked: the project's own code (src/, benchmarks/, tests/)
and the standard library import as usual, and a module installed nowhere gives the usual error.
"""

import importlib.abc
import importlib.machinery
import os
import sys

IMAGE = set(
    """absl accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated_doc anyio attr attrs botorch build certifi
    charset_normalizer chex click cloudpickle cmake colorama contourpy coverage cuda cupy cupy_backends cycler cython
    Cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fontTools formulaic frozenlist fsspec
    gpytorch grpc h11 h5py hf_xet httpcore httpx huggingface_hub humanize hypothesis idna imageio iniconfig
    interface_meta jax jaxlib jax_plugins jaxtyping jinja2 joblib kiwisolver lazy_loader lightning lightning_utilities
    linear_operator lineax llvmlite lxml markdown markdown_it markupsafe matplotlib mdurl mesonbuild ml_dtypes mpi4py
    mpmath msgpack multidict multipledispatch mypy_extensions nanobind narwhals networkx ninja numba numba_cuda numpy
    numpyro nvidia onnx onnx_ir onnxruntime onnxscript cv2 optax opt_einsum opt_einsum_fx optimistix orbax packaging
    pandas pathspec patsy peft PIL pip pluggy portalocker prometheus_client propcache google psutil pyarrow pybind11
    cpuinfo pygments pyparsing pyproject_hooks pyre_extensions pytest _pytest pytest_benchmark pytest_cov pytest_mock
    pytest_timeout xdist dateutil pytorch_lightning yaml regex requests rich sacrebleu safetensors scikit_build_core
    skimage sklearn scipy seaborn sentencepiece sentence_transformers setuptools pkg_resources _distutils_hack
    shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard_data_server
    tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch functorch torchgen torchaudio torchdiffeq
    torch_geometric torchmetrics torchvision tqdm transformers treescope triton typer typing_extensions typing_inspect
    urllib3 uvloop wadler_lindig werkzeug wheel wrapt xarray xxhash yarl zipp
    pytz tzdata py""".split()
)
CARRIED = {name.strip() for name in os.environ.get("DEVICE_IMAGE_CARRIED", "").split(",") if name.strip()}


class NotOnTheDeviceImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if path is not None or top in sys.stdlib_module_names or top in IMAGE or top in CARRIED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(top)
        if spec is None:
            return None
        where = spec.origin or next(iter(spec.submodule_search_locations or []), "")
        if "site-packages" not in where:
            return None
        raise ModuleNotFoundError(f"No module named {top!r} (not on the lent GPU machine's image)", name=top)


sys.meta_path.insert(0, NotOnTheDeviceImage())
