"""Candidates for the gate: the reference, a user's PythonModel file, or a logged model.

A file candidate is logged the way it would be deployed (the file as code, the
snapshot as artifact ``repository``, the signature) and loaded back with
``mlflow.pyfunc.load_model``: the gate never calls the class directly.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import mlflow

from harness.model.signature import SignatureKind


class CandidateKind(str, Enum):
    REFERENCE = "reference"
    FILE = "file"
    URI = "uri"


class CandidateSpecError(ValueError):
    """A candidate that cannot even be named: bad file, class or option (a usage error)."""


@dataclass(frozen=True)
class CandidateSpec:
    kind: CandidateKind = CandidateKind.REFERENCE
    ref: str = "harness.model.wrapper:MPTInstruct"
    signature: SignatureKind = SignatureKind.GATEWAY

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CandidateKind(self.kind))
        object.__setattr__(self, "signature", SignatureKind(self.signature))

    @classmethod
    def from_file(cls, value: str, signature: str = "gateway") -> CandidateSpec:
        path, sep, name = value.rpartition(":")
        if not sep or not path or not name.isidentifier():
            raise CandidateSpecError(f"--python-model={value!r} is invalid: expected FILE.py:CLASS")
        spec = cls(CandidateKind.FILE, value, SignatureKind(signature))
        spec.check_file()  # fail early, as a usage error, without running the user's code
        return spec

    def check_file(self) -> None:
        """The file exists, parses and defines the class: read, never imported here (the
        candidate's code runs in the gate's worker process only)."""
        path, name = self.file, self.ref.rpartition(":")[2]
        if not path.is_file():
            raise CandidateSpecError(f"--python-model file not found: {path}")
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except (SyntaxError, UnicodeDecodeError) as error:
            raise CandidateSpecError(f"--python-model {path} does not parse: {error}") from None
        nodes = list(ast.walk(tree))
        if any(isinstance(node, ast.ClassDef) and node.name == name for node in nodes):
            return
        if any(isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store) for node in nodes):
            raise CandidateSpecError(
                f"--python-model: {name!r} in {path} is not a class: expected a mlflow.pyfunc.PythonModel subclass"
            )
        raise CandidateSpecError(f"--python-model: class {name!r} not found in {path}")

    @classmethod
    def from_uri(cls, uri: str) -> CandidateSpec:
        if not uri.strip():
            raise CandidateSpecError("--model-uri is empty: expected models:/NAME/VERSION or runs:/ID/PATH")
        return cls(CandidateKind.URI, uri, SignatureKind.GATEWAY)

    @property
    def file(self) -> Path:
        return Path(self.ref.rpartition(":")[0]).absolute()

    def python_model_class(self) -> type:
        """Import the class from the user's file (registered under the file's stem)."""
        if self.kind is CandidateKind.REFERENCE:
            from harness.model.wrapper import MPTInstruct

            return MPTInstruct
        path, name = self.file, self.ref.rpartition(":")[2]
        if not path.is_file():
            raise CandidateSpecError(f"--python-model file not found: {path}")
        module_name = path.stem
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise CandidateSpecError(f"--python-model {path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        # Registered so cloudpickle stores a reference that code_paths resolves at load time.
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[module_name]
            raise CandidateSpecError(
                f"--python-model {path} failed to import: {type(error).__name__}: {error}"
            ) from error
        cls_ = getattr(module, name, None)
        if cls_ is None:
            raise CandidateSpecError(f"--python-model: class {name!r} not found in {path}")
        if not (isinstance(cls_, type) and issubclass(cls_, mlflow.pyfunc.PythonModel)):
            raise CandidateSpecError(f"--python-model: {name!r} in {path} is not a mlflow.pyfunc.PythonModel subclass")
        return cls_

    def code_key(self) -> str:
        """What names this candidate's code in hypothesis' example database: the file's
        contents (an edit is another candidate), the reference's wrapper module, or the URI."""
        import hashlib

        if self.kind is CandidateKind.URI:
            return self.ref
        if self.kind is CandidateKind.REFERENCE:
            import harness.model.wrapper as wrapper

            source = Path(wrapper.__file__).read_bytes()
        else:
            source = self.file.read_bytes() if self.file.is_file() else b""
        return f"{self.ref}#{hashlib.sha256(source).hexdigest()[:16]}|{self.signature.value}"

    def describe(self, model_uri: str | None = None) -> dict[str, Any]:
        signature = None if self.kind is CandidateKind.URI else self.signature.value
        return {"kind": self.kind.value, "ref": self.ref, "signature": signature, "model_uri": model_uri}


def log_candidate(spec: CandidateSpec, snapshot: Path, model_config: dict | None = None) -> str:
    """Log a reference or file candidate into the active store; return its runs:/ URI.
    ``model_config`` is logged with it: MLflow hands a PythonModel only the keys it was
    logged with, at load time as at log time."""
    from harness.store import harness_code_path, log_model

    if spec.kind is CandidateKind.URI:
        return spec.ref
    code = [harness_code_path()] if spec.kind is CandidateKind.REFERENCE else [str(spec.file)]
    # No input example on purpose (a candidate that cannot load must fail at `load`): MLflow's
    # warning about it is silenced here, and only that warning.
    with warnings.catch_warnings(), mlflow.start_run(nested=mlflow.active_run() is not None):
        warnings.filterwarnings("ignore", ".*An input example was not provided", UserWarning)
        info = log_model(
            snapshot,
            spec.signature,
            python_model=spec.python_model_class()(),
            code_paths=code,
            input_example=None,
            model_config=model_config,
        )
    return info.model_uri
