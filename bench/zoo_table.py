"""The computed columns of the model-zoo table in docs/hardware.md.

For every zoo model: MACs (G), int8 weights (M), cycles on one 16x16 PEA in millions for the
os, ws and is dataflows, and the os utilisation (MACs / (256 x os cycles)). The published
figures beside them in the docs are citations, not outputs. Each cycle count is also what
``octosim model-cycles MODEL --pea 16x16 --dataflow DF --json`` reports as ``total_cycles``.

Usage::

    python bench/zoo_table.py
"""

from __future__ import annotations

from octosim.hardware.zoo import get_model, list_models


def main() -> None:
    print("| model | GMACs | weights M | os | ws | is | os util |")
    print("|---|---|---|---|---|---|---|")
    for name in list_models():
        m = get_model(name)
        cyc = {df: m.cycles_on(16, 16, df) for df in ("os", "ws", "is")}
        macs = m.macs()
        util = macs / (256 * cyc["os"])
        print(f"| `{name}` | {macs / 1e9:.3f} | {m.weight_bytes() / 1e6:.2f} | "
              f"{cyc['os'] / 1e6:.2f} | {cyc['ws'] / 1e6:.2f} | {cyc['is'] / 1e6:.2f} | "
              f"{util:.0%} |")


if __name__ == "__main__":
    main()
