"""`archbench specs ...` end to end through the real console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from archbench.neck.compiler import compile_neck
from archbench.spec import resolve_spec

from helpers import pyramid, run_cli


def test_list_names_every_builtin():
    res = run_cli("specs", "list")
    assert res.returncode == 0
    for name in ("fpn", "panet", "nasfpn", "bifpn", "ida", "hda"):
        assert name in res.stdout


def test_show_edit_load_compile(tmp_path: Path):
    res = run_cli("specs", "show", "bifpn", "--levels", "3-6")
    assert res.returncode == 0
    text = res.stdout.replace("name: bifpn", "name: my_bifpn", 1).replace("fuse: weighted", "fuse: softmax", 1)
    path = tmp_path / "my_bifpn.yaml"
    path.write_text(text)
    assert run_cli("specs", "validate", str(path)).returncode == 0
    spec = resolve_spec(str(path))
    assert spec.name == "my_bifpn" and spec.fuse == "softmax" and spec.levels == (3, 4, 5, 6)
    neck = compile_neck(spec, [40, 112, 320], 16, 2)
    assert len(neck(pyramid(96, 160))) == 4


def test_validate_bad_spec_exits_2_with_every_problem_and_no_traceback(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "levels: [3, 4]\nnodes:\n  - {id: a, level: 3, inputs: [in3, ghost], fuse: blend}\noutputs: {3: a}\n"
    )
    res = run_cli("specs", "validate", str(bad))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr + res.stdout
    assert "node 'a'" in res.stderr and "ghost" in res.stderr and "blend" in res.stderr and "level 4" in res.stderr


def test_malformed_yaml_and_missing_file_are_user_errors(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("levels: [3, 4\n")
    res = run_cli("specs", "validate", str(broken), str(tmp_path / "nope.yaml"))
    assert res.returncode == 2 and "malformed-yaml" in res.stderr and "unreadable" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("specs", "draw", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "x.png"))
    assert res.returncode == 2 and "no such spec file" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("neck", ["bifpn", "hda"])
def test_draw_writes_a_png(tmp_path: Path, neck: str):
    out = tmp_path / f"{neck}.png"
    res = run_cli("specs", "draw", neck, "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_unknown_neck_is_a_clear_error():
    res = run_cli("specs", "show", "bifnp")
    assert res.returncode == 2 and "unknown neck 'bifnp'" in res.stderr and "Traceback" not in res.stderr


def test_traced_module_is_usable_by_fvcore():
    from fvcore.nn import FlopCountAnalysis

    neck = compile_neck(resolve_spec("bifpn"), [40, 112, 320], 64, 3).eval()
    flops = FlopCountAnalysis(neck, (pyramid(512, 512, batch=1),))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    assert abs(flops.total() / 0.141e9 - 1) < 0.02  # effdet's D0 BiFPN: 0.141 GFLOPs


def test_console_script_prints_no_traceback_for_user_errors(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("levels: [3, 4]\nnodes: []\noutputs: {3: a}\n")
    res = subprocess.run(
        [sys.executable, "-m", "archbench", "specs", "validate", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2 and "output-not-produced" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run(
        [sys.executable, "-m", "archbench", "profile", "--preset", "huge"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2 and "unknown preset" in res.stderr and "Traceback" not in res.stderr
