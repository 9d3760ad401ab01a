"""ruff and mypy (strict) stay clean: the code's own checks run with the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*cmd: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_ruff_lint_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def _installed_layout(tmp_path: Path) -> Path:
    """The package as it installs: engine/, sdk/, connectors/ under headway/."""
    package = tmp_path / "headway"
    shutil.copytree(ROOT / "headway", package)
    for folder in ("engine", "sdk", "connectors"):
        (package / folder).symlink_to(ROOT / folder, target_is_directory=True)
    return package


def _mypy(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(tmp_path / ".mypy_cache"), "-p", "headway", cwd=tmp_path,
    )  # fmt: skip


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    _installed_layout(tmp_path)
    result = _mypy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_rejects_changing_a_frozen_record(tmp_path: Path) -> None:
    """Journal commands and log entries are frozen to the type checker only (sdk/frozen.py):
    an assignment to one of their fields must fail the check."""
    package = _installed_layout(tmp_path)
    (package / "mutates.py").write_text(
        "from headway.engine.entries import Invoke\n"
        "from headway.sdk.journal import Target\n"
        "target = Target('Counter', 'add', 'k')\n"
        "target.key = 'other'\n"
        "Invoke('', target, b'', {}).input = b'changed'\n"
    )
    result = _mypy(tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, result.stdout
    assert 'mutates.py:4: error: Property "key" defined in "Target" is read-only' in errors[0]
    assert 'mutates.py:5: error: Property "input" defined in "Invoke" is read-only' in errors[1]
