"""Compile and run C on the host (gcc) with the project's strict flags and UBSan.

Used by the bit-exactness tests, ``kws-export verify`` and benchmarks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from nanomamba.errors import KwsError

#: Flags every generated or shipped C file must compile warning-free with.
STRICT_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-Wconversion")
#: Undefined-behaviour sanitizer: any UB aborts the run with a report.
UBSAN_FLAGS = ("-fsanitize=undefined", "-fno-sanitize-recover=all")


class ToolError(KwsError):
    """A required external tool (compiler, emulator) is missing or failed."""


def host_compiler() -> str:
    """Path of the host C compiler ($CC, else gcc, else cc).

    Raises:
        ToolError: none found (names the package to install).
    """
    for cand in (os.environ.get("CC"), "gcc", "cc"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    raise ToolError("no host C compiler found (gcc): install it with 'apt-get install gcc' "
                    "or set CC")


def compile_host(sources: Sequence[os.PathLike | str], out: os.PathLike | str, *,
                 include_dirs: Sequence[os.PathLike | str] = (), defines: Sequence[str] = (),
                 sanitize: bool = True, opt: str = "-O2", extra: Sequence[str] = ()) -> Path:
    """Compile C sources into a host executable with :data:`STRICT_CFLAGS`.

    Args:
        sources: .c files.
        out: executable path.
        include_dirs: -I folders.
        defines: -D macros ("NAME" or "NAME=VALUE").
        sanitize: add :data:`UBSAN_FLAGS`.
        opt: optimisation flag.
        extra: more compiler flags.
    Returns:
        the executable's path.
    Raises:
        ToolError: no compiler, or compilation failed (first error line in the message).
    """
    cc = host_compiler()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [cc, *STRICT_CFLAGS, opt, *(UBSAN_FLAGS if sanitize else ()), *extra,
           *(f"-I{d}" for d in include_dirs), *(f"-D{d}" for d in defines),
           *(str(s) for s in sources), "-o", str(out), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "error" in ln] or proc.stderr.splitlines()
        raise ToolError(f"host C compilation failed: {lines[0] if lines else 'unknown error'}")
    return out
