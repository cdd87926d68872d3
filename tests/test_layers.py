"""The layering rules of DESIGN.md: import contracts, and the model packages importing without Ray."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_import_contracts_hold():
    result = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("package", ["model", "tokenizers3d"])
def test_model_packages_import_without_ray(package):
    # Make `import ray` fail, as on a machine without Ray; the model packages must not care.
    code = f"import sys; sys.modules['ray'] = None; import {package}; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
