"""Print archbench's EfficientDet D0..D3 costs beside the reference implementation's and the paper's.

    python scripts/efficientdet_fidelity.py

Reference: effdet 0.4.1 (efficientdet-pytorch) tf_efficientdet_d0..d3 counted with fvcore at 90
classes; paper: Tan, Pang, Le, EfficientDet (arXiv 1911.09070 v7), Table 2. GFLOPs follow fvcore's
convention (one multiply-add = one flop), which is also the paper's.
"""

from __future__ import annotations

from archbench.costs.profile import profile

REFERENCE = {0: (3.880, 2.571), 1: (6.626, 6.176), 2: (8.097, 11.105), 3: (12.032, 25.087)}
PAPER = {0: ("3.9M", "2.5B"), 1: ("6.6M", "6.1B"), 2: ("8.1M", "11B"), 3: ("12M", "25B")}


def main() -> None:
    rows = profile(["bifpn"], list(REFERENCE), "efficientdet", num_classes=90)
    print(
        f"{'model':6} {'res':>5} | {'params M':>9} {'ref M':>7} {'diff':>7} {'paper':>6} | "
        f"{'GFLOPs':>7} {'ref':>7} {'diff':>7} {'paper':>6}"
    )
    worst_p = worst_f = 0.0
    for r in rows:
        ref_p, ref_f = REFERENCE[r["phi"]]
        dp = r["params_total"] / 1e6 / ref_p - 1
        df = r["gflops"] / ref_f - 1
        worst_p, worst_f = max(worst_p, abs(dp)), max(worst_f, abs(df))
        paper_p, paper_f = PAPER[r["phi"]]
        print(
            f"D{r['phi']:<5} {r['resolution']:>5} | {r['params_total'] / 1e6:9.3f} {ref_p:7.3f} {dp:+7.2%} "
            f"{paper_p:>6} | {r['gflops']:7.3f} {ref_f:7.3f} {df:+7.2%} {paper_f:>6}"
        )
    print(f"worst |diff|: params {worst_p:.3%} (limit 0.5%), GFLOPs {worst_f:.3%} (limit 2%)")


if __name__ == "__main__":
    main()
