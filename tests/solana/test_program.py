"""The pool program's build: the committed .so is what its source compiles to (Debian's
clang-14 + hack/sbf_link.py), and the linker refuses what it cannot link correctly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
import sbf_link  # noqa: E402  (hack/ is not a package)

needs_clang = pytest.mark.skipif(
    shutil.which("clang-14") is None, reason="clang-14 (hack/bootstrap installs it) is missing"
)


@needs_clang
def test_committed_program_matches_its_source() -> None:
    result = subprocess.run(
        [str(ROOT / "hack" / "compile-solana-program"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@needs_clang
def test_the_linker_refuses_static_data(tmp_path: Path) -> None:
    source = tmp_path / "strings.c"
    source.write_text(
        "extern void sol_log_(const char *, unsigned long);\n"
        'unsigned long entrypoint(void *in) { sol_log_("hello", 5); return 0; }\n'
    )
    obj = tmp_path / "strings.o"
    subprocess.run(
        ["clang-14", "-target", "bpf", "-O2", "-c", str(source), "-o", str(obj)], check=True
    )
    with pytest.raises(sbf_link.LinkError, match="static data"):
        sbf_link.link(obj.read_bytes())


def test_the_linker_refuses_what_is_not_bpf() -> None:
    with pytest.raises(sbf_link.LinkError, match="not a 64-bit BPF ELF"):
        sbf_link.link(Path(sys.executable).read_bytes()[:4096])
