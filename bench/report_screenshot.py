"""Make docs/report.png: a compare report rendered by headless Chromium.

    python bench/report_screenshot.py [--out docs/report.png] [--chromium /usr/bin/chromium]

Runs a small ``compare --out`` in a temporary directory, writes its ``report.html`` with
``octosim report``, opens it in Debian's chromium (``apt-get install chromium``) through
playwright-python (``pip install -e '.[test]'``; no browser download: ``executable_path``),
and saves the top of the page as a PNG, quantised to stay small.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from octosim.cli import main as octosim


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs"
                                         / "report.png"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "cmp"
        rc = octosim(["compare", "street-camera", "document-ocr", "--workers", "2",
                      "--set", "workflow.arrivals.count=100", "--set", "workflow.phases=[]",
                      "--out", str(d)])
        if rc or octosim(["report", str(d)]):
            return 1
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium,
                                         args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 1300})
            page.goto((d / "report.html").as_uri())
            png = page.screenshot(full_page=False)
            browser.close()
    img = Image.open(io.BytesIO(png)).convert("RGB").resize((880, 1040), Image.LANCZOS)
    img = img.quantize(colors=96, method=Image.Quantize.MEDIANCUT)
    img.save(args.out, optimize=True)
    print(f"{args.out}: {Path(args.out).stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
