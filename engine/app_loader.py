"""Finding a user's services: APP is a file path or `module[:attr]`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from headway.sdk.definitions import Service, ServiceDefinition, VirtualObject, Workflow


class AppLoadError(Exception):
    """APP could not be loaded; the message says why in one line."""


def _import(spec: str) -> ModuleType:
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise AppLoadError(f"no such file: {spec}")
        name = f"headway_app_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise AppLoadError(f"cannot load {spec} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.resolve().parent))
        module_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as e:
        raise AppLoadError(f"cannot import {spec}: {e}") from None


def load_services(app: str) -> list[ServiceDefinition]:
    """The services APP defines: its `app` attribute (a list) or its module-level definitions."""
    module_name, _, attr = app.partition(":")
    try:
        module = _import(module_name)
    except AppLoadError:
        raise
    except Exception as e:
        raise AppLoadError(f"{app} failed to import: {type(e).__name__}: {e}") from e
    kinds = (Service, VirtualObject, Workflow)
    if attr:
        value = getattr(module, attr, None)
        if value is None:
            raise AppLoadError(f"{module_name} has no attribute {attr!r}")
    else:
        value = getattr(module, "app", None)
    if value is None:
        found = [v for v in vars(module).values() if isinstance(v, kinds)]
    elif isinstance(value, kinds):
        found = [value]
    else:
        found = list(value)
    if not found or not all(isinstance(v, kinds) for v in found):
        raise AppLoadError(f"{app} defines no Service, VirtualObject or Workflow")
    return found
