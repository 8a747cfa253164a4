"""The comparison report in a real browser: headless Chromium renders it offline.

Chromium logs every console message (including Content-Security-Policy refusals, which is
what any attempt to load something from outside the page becomes) to stderr as
``...:CONSOLE...`` lines; the page has no script, so any such line is a failure. A negative
control page checks that this detection works on the installed Chromium.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from estimator.claims.report import HTML_NAME, write_comparison_reports
from estimator.report.document import CSP
from estimator.synthetic import SYNTHETIC_BANNER

from .test_comparison_report import comparison_for

pytestmark = pytest.mark.integration

_CONSOLE = re.compile(r":CONSOLE[:(\]]")


def _chromium() -> str:
    found = shutil.which("chromium") or next((p for p in ("/usr/bin/chromium",) if Path(p).is_file()), None)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; CI must install it (Debian package `chromium`, see .ci/run)")
    pytest.skip("chromium not installed (Debian: apt-get install chromium); required in CI")


def _chrome(page: Path, tmp: Path, *args: str) -> tuple[str, list[str]]:
    """Run headless Chromium on ``page``; its stdout and the console lines from its log."""
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr", "--v=0", *args, page.as_uri(),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout, [ln for ln in p.stderr.splitlines() if _CONSOLE.search(ln)]


def test_console_detection_catches_an_external_load(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head>'
                    '<body><img src="http://127.0.0.1:9/x.png"></body></html>')
    _, console = _chrome(page, tmp_path, "--dump-dom")
    assert any("127.0.0.1:9" in ln for ln in console), console


def test_report_renders_offline_in_chromium(run_copy, tmp_path):
    out = tmp_path / "cmp"
    write_comparison_reports(comparison_for(run_copy), out)
    page = out / HTML_NAME
    shot = tmp_path / "r.png"
    _, console_shot = _chrome(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000")
    dom, console_dom = _chrome(page, tmp_path, "--dump-dom")
    assert console_shot == [] and console_dom == [], console_shot + console_dom

    import matplotlib.image

    img = matplotlib.image.imread(shot)
    assert img.shape[:2] == (4000, 1280)
    grey = img[..., :3].mean(axis=2)
    assert grey.std() > 0.05 and (grey < 0.9).mean() > 0.05, "screenshot is (nearly) blank"
    # the red banner is drawn at the top of the page
    top = img[:200, :, :3].reshape(-1, 3)
    assert ((top[:, 0] > 0.6) & (top[:, 1] < 0.2) & (top[:, 2] < 0.2)).mean() > 0.01

    assert dom.count(SYNTHETIC_BANNER) >= 3
    for img_id in ("claims", "map_run0"):
        assert re.search(rf'<img id="{img_id}"[^>]* src="data:image/png;base64,', dom), img_id
    for table in ("verdicts", "coverage", "accuracy"):
        assert f'<table class="{table} stack">' in dom
    assert "demo-point-high" in dom and "contradicted" in dom and "The classifier maps" in dom


# ---------------------------------------------------------------- the report at the registry's scale

# Headless Chromium will not make a window narrower than 500 px, so each width is measured
# inside an iframe of that width (its own viewport: media queries apply to it). The probe
# page is a copy built for the test, the only page with a script; the report keeps its CSP.
_PROBE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="f" style="width:{w}px;height:2400px;border:0" srcdoc="{doc}"></iframe>
<script>document.getElementById('f').addEventListener('load', () => {{
  const d = document.getElementById('f').contentDocument, w = document.getElementById('f').contentWindow;
  const out = [];
  for (const open of [false, true]) {{
    d.querySelectorAll('details').forEach(x => {{ x.open = open; }});
    const wide = [...d.querySelectorAll('table, figure img, pre, .headline')]
      .filter(e => e.getBoundingClientRect().right > w.innerWidth + 0.5)
      .map(e => e.tagName + '.' + e.className);
    const scrolled = [...d.querySelectorAll('.scroll')].filter(e => e.scrollWidth > e.clientWidth + 0.5).length;
    out.push({{open, scrollWidth: d.documentElement.scrollWidth, innerWidth: w.innerWidth, wide, scrolled}});
  }}
  d.querySelectorAll('details').forEach(x => {{ x.open = false; }});
  const p = document.createElement('pre'); p.id = 'measure'; p.textContent = JSON.stringify(out);
  document.body.appendChild(p);
}});</script></body></html>"""


def _measure(page: Path, width: int, tmp: Path) -> list[dict]:
    import html as html_lib
    import json

    probe = tmp / f"probe{width}.html"
    probe.write_text(_PROBE.format(w=width, doc=html_lib.escape(page.read_text(), quote=True)))
    dom, _ = _chrome(probe, tmp, "--window-size=1280,2400", "--dump-dom")
    m = re.search(r'<pre id="measure">(.*?)</pre>', dom, flags=re.S)
    assert m, "the probe page did not report (script blocked or page not loaded)"
    return json.loads(m.group(1).replace("&quot;", '"'))


def _keep(shot: Path) -> None:
    """Screenshots are test artifacts: copied to $TEST_ARTIFACTS when it is set."""
    dest = os.environ.get("TEST_ARTIFACTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(dest) / shot.name)


def test_real_scale_report_fits_1280_and_390_px(tmp_path):
    from .report_fixture import build

    comparison, _ = build(tmp_path / "runs", (2010, 2011, 2021, 2022))
    page = tmp_path / "runs" / "report" / HTML_NAME
    dom, console = _chrome(page, tmp_path, "--dump-dom")
    assert console == [], console
    assert "Col. PNP Jorge Angulo (DIRANDRO-Loreto) said at least 25,000 ha" in dom
    assert re.search(r"<h4>Loreto, 2011</h4><p>Imagery supports [\d,]+ to [\d,]+ ha of coca \(95 % CI", dom)
    assert dom.count(SYNTHETIC_BANNER) >= 2 + len(comparison["runs"])
    for width in (1280, 390):
        for state in _measure(page, width, tmp_path):
            assert state["innerWidth"] == width, state
            assert state["scrollWidth"] <= state["innerWidth"], state  # no horizontal overflow
            assert state["wide"] == [] and state["scrolled"] == 0, state  # nothing runs off, no table scrolls
    shot = tmp_path / "report_1280.png"
    _chrome(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars")
    probe = tmp_path / "probe390.html"
    narrow = tmp_path / "report_390.png"
    _chrome(probe, tmp_path, f"--screenshot={narrow}", "--window-size=500,2400", "--hide-scrollbars")
    import matplotlib.image

    for s in (shot, narrow):
        img = matplotlib.image.imread(s)
        assert img[..., :3].mean(axis=2).std() > 0.05, f"{s.name} is (nearly) blank"
        _keep(s)
