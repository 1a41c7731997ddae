"""Render an effbench page in headless Chromium: a screenshot to look at, and what the browser built.

Usage: python docs/validation/html-page/render_page.py PAGE.html SCREENSHOT.png [--width 1280 --height 2000]

Needs Chromium (Debian: `apt-get install -y chromium`). It prints, from the DOM that Chromium built after the
page's own script ran, the tables and images it holds and how many images decoded (`img.complete` with a
natural width), and it clicks the header of a numeric column of every table twice to check that the rows sort
ascending, then descending. The tests check the page without a browser (tests/page_check.py); this is the look.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# Runs after the page's own script: records what the browser holds into the DOM that --dump-dom prints.
_PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var decoded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var sorted = 0, sortable = 0;
  document.querySelectorAll("table").forEach(function (t) {
    var cells = t.tHead.rows[0].cells, body = t.tBodies[0];
    for (var c = 0; c < cells.length; c++) {
      var nums = Array.prototype.map.call(body.rows, function (r) { return parseFloat(r.cells[c].textContent); });
      if (nums.length < 2 || nums.some(isNaN)) continue;
      sortable++;
      var col = function () { return Array.prototype.map.call(body.rows, function (r) {
        return parseFloat(r.cells[c].textContent); }); };
      cells[c].click(); var up = col(); cells[c].click(); var down = col();
      var ok = up.every(function (v, i) { return i === 0 || up[i - 1] <= v; }) &&
               down.every(function (v, i) { return i === 0 || down[i - 1] >= v; });
      sorted += ok ? 1 : 0;
      break;
    }
  });
  var p = document.createElement("pre"); p.id = "probe";
  p.textContent = "tables=" + document.querySelectorAll("table").length + " images=" + imgs.length +
    " decoded=" + decoded + " sortable_tables=" + sortable + " sorted_both_ways=" + sorted;
  document.body.appendChild(p);
});
</script>"""


def chromium(*args: str) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        raise SystemExit("no Chromium on PATH (Debian: apt-get install -y chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, check=True, timeout=120).stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("page", type=Path)
    p.add_argument("screenshot", type=Path)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=2000)
    args = p.parse_args()
    page = args.page.resolve()
    chromium(f"--screenshot={args.screenshot.resolve()}", f"--window-size={args.width},{args.height}", page.as_uri())
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / page.name
        probed.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
        dom = chromium("--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="probe">([^<]*)</pre>', dom)
    print(f"{page.name}: {found.group(1) if found else 'the probe did not run'}; screenshot {args.screenshot}")


if __name__ == "__main__":
    main()
