"""Stage boundaries (docs/ARCHITECTURE.md) and packaging."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_FREE = ["export.intmath", "export.bundle", "export.simulator", "export.frontend_fixed",
              "nanomamba.audio", "nanomamba.config"]


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module.split(".")[0])
    return mods


def test_nanomamba_imports_nothing_from_export():
    bad = [str(p.relative_to(ROOT)) for p in (ROOT / "nanomamba").rglob("*.py")
           if "export" in _imports(p)]
    assert not bad, f"nanomamba/ must not import export/: {bad}"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free_modules(module):
    if not (ROOT / (module.replace(".", "/") + ".py")).exists():
        pytest.skip(f"{module} does not exist yet")
    code = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0, \
        f"importing {module} imports torch"


def test_wheel_ships_templates_and_stubs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in ("firmware_templates/kernels/kws_intmath.h", "cmsis_stub/cmsis_compiler.h",
                 "export/intmath.py", "nanomamba/model.py"):
        assert need in names, f"{need} missing from the wheel"
