"""scripts/efficientdet_table5.py: its last line's format, and EfficientDet's Table 5 ratios within 0.05."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "efficientdet_table5.py"
LAST_LINE = re.compile(r"table5 panet=(\S+)/(\S+) nasfpn=(\S+)/(\S+) fc_fpn=(\S+)/(\S+) bifpn=(\S+)/(\S+)")


def test_table5_last_line_and_ratios():
    spec = importlib.util.spec_from_file_location("efficientdet_table5", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    costs = script.neck_costs()
    match = LAST_LINE.fullmatch(script.table(costs)[-1])
    assert match, script.table(costs)[-1]
    assert all(re.fullmatch(r"\d+\.\d\d", v) for v in match.groups())
    ours = script.ratios(costs)
    for label, neck, paper_params, paper_flops, _ in script.PAPER:
        params, flops = ours[neck]
        assert abs(params - paper_params) <= 0.05 and abs(flops - paper_flops) <= 0.05, (label, params, flops)
