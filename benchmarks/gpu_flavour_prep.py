"""Prepare `benchmarks/gpu_flavour.sh` for a GPU machine that has no MLflow and no network:
the two ways the tiny snapshot enters MLflow as plain model folders (loadable by path with
mlflow-skinny, no tracking store), the snapshot, and a wheelhouse of what the machine lacks.

    python benchmarks/gpu_flavour_prep.py [DEST]     # default .harness/gpu (ignored by git)

Then, on the GPU machine, from the repository root:
    benchmarks/gpu_flavour.sh OUT_DIR [DEST]
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow

from harness.model.snapshot import cached_tiny
from harness.store import RegisterConfig, StoreConfig, register

# What the GPU machine's Python 3.12 lacks to load both models and run `harness bench run`.
# pydantic: harness' settings (harness/_validation.py) import it, MLflow or not.
WHEELS = ("mlflow-skinny==3.17.2", "pydantic", "pandas", "psutil", "click", "tqdm", "pyyaml", "requests", "filelock")


def _models(dest: Path) -> None:
    store = StoreConfig(home=tempfile.mkdtemp(prefix="harness-gpu-prep-"))
    for flavour, name in (("pyfunc", "reference"), ("transformers", "flavour")):
        uri = register(
            RegisterConfig(snapshot=cached_tiny(), store=store, flavour=flavour, name=f"tiny-{name}"), progress=print
        ).model_uri
        shutil.rmtree(dest / "models" / name, ignore_errors=True)
        with store.activated():
            mlflow.artifacts.download_artifacts(uri, dst_path=str(dest / "models" / name))


def _wheels(dest: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "any",
            *WHEELS,
            "-d",
            str(dest / "wheels"),
        ],
        check=True,
    )
    for numpy in (dest / "wheels").glob("numpy-*.whl"):  # the machine has its own (torch's)
        numpy.unlink()


def main() -> None:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else ".harness/gpu").absolute()
    dest.mkdir(parents=True, exist_ok=True)
    _models(dest)
    shutil.copytree(cached_tiny(), dest / "tiny", dirs_exist_ok=True)
    _wheels(dest)
    print(f"prepared {dest}")


if __name__ == "__main__":
    main()
