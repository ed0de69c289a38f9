"""The package's layering holds: .ci/check_layers.py finds no import cycle and no upward import."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / ".ci" / "check_layers.py"


def _run(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK)], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_package_has_no_cycle_and_no_upward_import():
    result = _run(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no cycle, no upward import" in result.stdout


def test_the_check_fails_on_an_upward_import_and_on_a_cycle(tmp_path):
    for folder in ("augpaint_fast/core", "augpaint_fast/cli", "export", "kernels"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "augpaint_fast/core/a.py").write_text("from . import b\nfrom ..cli import main\n")
    (tmp_path / "augpaint_fast/core/b.py").write_text("from .a import x\n")
    (tmp_path / "augpaint_fast/cli/main.py").write_text("def main():\n    from ..core import a\n")
    result = _run(tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any("augpaint_fast.core.a (layer 1) imports augpaint_fast.cli.main" in line for line in lines), lines
    assert "import cycle: augpaint_fast.core.a -> augpaint_fast.core.b" in lines
    assert len(lines) == 2  # the CLI's deferred import of core is neither a cycle nor upward
