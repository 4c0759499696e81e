"""Build backend of ``auth-service-verifier``: setuptools, fed the one copy of the source.

In the repository the verifier's source lives in ``auth_service/verifier/`` (the
service imports it from there) and the version in the service's
``pyproject.toml``. Each build hook copies this folder, that source (as
``src/auth_service/verifier/``) and that version (as ``VERSION``) into a temporary
directory and runs setuptools there, so nothing is duplicated in the repository
and the two distributions always carry the same version.

An sdist built this way already holds ``src/`` and ``VERSION``; building a wheel
from it uses them as they are (no repository around it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
SOURCE = REPOSITORY / "auth_service" / "verifier"
SERVICE_PYPROJECT = REPOSITORY / "pyproject.toml"
_OWN_FILES = ("pyproject.toml", "build_backend.py", "README.md")
_EXAMPLES = "examples"


def service_version() -> str:
    """The version of ``auth-service`` (``[project].version`` of its ``pyproject.toml``)."""
    with SERVICE_PYPROJECT.open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def _stage(into: Path) -> None:
    for name in _OWN_FILES:
        shutil.copy2(HERE / name, into / name)
    (into / _EXAMPLES).mkdir()
    for example in (HERE / _EXAMPLES).glob("*.py"):
        shutil.copy2(example, into / _EXAMPLES / example.name)
    shutil.copytree(
        SOURCE,
        into / "src" / "auth_service" / "verifier",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"),
    )
    (into / "VERSION").write_text(service_version() + "\n")
    # The sdist carries what a wheel build needs, and the examples (documentation).
    (into / "MANIFEST.in").write_text("include VERSION build_backend.py\ngraft examples\n")


@contextlib.contextmanager
def _project() -> Iterator[None]:
    """Run the body inside a staged copy of the project (or in place, from an sdist)."""
    if (HERE / "src").is_dir() and not SOURCE.is_dir():
        yield  # an unpacked sdist: already staged
        return
    with tempfile.TemporaryDirectory(prefix="auth-service-verifier-") as tmp:
        _stage(Path(tmp))
        with contextlib.chdir(tmp):
            yield


def _absolute(directory: str) -> str:
    return os.path.abspath(directory)


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    """PEP 517 hook."""
    with _project():
        return list(_setuptools.get_requires_for_build_wheel(config_settings))


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    """PEP 517 hook."""
    with _project():
        return list(_setuptools.get_requires_for_build_sdist(config_settings))


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: dict[str, Any] | None = None
) -> str:
    """PEP 517 hook."""
    target = _absolute(metadata_directory)
    with _project():
        return str(_setuptools.prepare_metadata_for_build_wheel(target, config_settings))


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """PEP 517 hook."""
    target = _absolute(wheel_directory)
    metadata = None if metadata_directory is None else _absolute(metadata_directory)
    with _project():
        return str(_setuptools.build_wheel(target, config_settings, metadata))


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    """PEP 517 hook."""
    target = _absolute(sdist_directory)
    with _project():
        return str(_setuptools.build_sdist(target, config_settings))
