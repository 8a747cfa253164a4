"""The interpretation page in real headless Chromium, driven by real clicks and key presses.

Two interpreters label the same sample through two real servers (``estimator interpret``
processes) on the small demo run; one server is killed and restarted mid-way; a
disagreement is resolved in the review view; the sample file is checked after each step.
The page passes an accessibility check written here (no checker is vendored: nothing may
load from the internet at test time): every form control has a label, every image an alt
text, Tab visits the controls in reading order, and text contrast meets WCAG AA.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from estimator.location import write_json
from estimator.run.rundir import open_run
from estimator.stats.sample import draw_sample

pytestmark = pytest.mark.integration
playwright = pytest.importorskip("playwright.sync_api", reason="the [test] extra brings playwright")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    found = shutil.which("chromium") or next((p for p in ("/usr/bin/chromium",) if Path(p).is_file()), None)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; CI must install it (Debian package `chromium`, see .ci/run)")
    pytest.skip("chromium not installed (Debian: apt-get install chromium); required in CI")


class Server:
    """``python -m estimator interpret`` in its own process, on a free port."""

    started: ClassVar[list[subprocess.Popen[str]]] = []

    def __init__(self, sample: Path, run: Path, *args: str) -> None:
        cmd = [sys.executable, "-m", "estimator", "interpret", str(sample), "--run", str(run), "--port", "0", "--quiet", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        Server.started.append(self.proc)
        lines = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            lines.append(line)
            if "open http://" in line:
                self.url = line.split("open ", 1)[1].split()[0]
                return
        raise AssertionError("server did not start:\n" + "".join(lines))

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no clean shutdown, as when a laptop dies
        self.proc.wait(10)


def _props(path: Path) -> list[dict]:
    return [f["properties"] for f in json.loads(path.read_text())["features"]]


def _saved(page, text: str) -> None:
    playwright.expect(page.locator("#status")).to_contain_text(text, timeout=60_000)


def _unit_shown(page, sample_id: str) -> None:
    playwright.expect(page.locator("#unit-title")).to_contain_text(f"Unit {sample_id} ", timeout=60_000)
    playwright.expect(page.locator("#chips img").first).to_be_visible(timeout=60_000)


# Relative luminance and contrast ratio (WCAG 2.1), computed in the page for every visible
# text node's element against the first opaque background behind it.
_CONTRAST_JS = """() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const bg = (e) => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const e = n.parentElement;
    if (!n.textContent.trim() || !e.offsetParent && getComputedStyle(e).position !== 'fixed') continue;
    if (e.closest('svg')) continue;
    const s = getComputedStyle(e);
    const fg = rgb(s.color).slice(0, 3), b = bg(e);
    const [l1, l2] = [lum(fg), lum(b)].sort((a, c) => c - a);
    const large = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.66 && Number(s.fontWeight) >= 700);
    out.push({text: n.textContent.trim().slice(0, 40), ratio: (l1 + 0.05) / (l2 + 0.05), need: large ? 3 : 4.5});
  }
  return out;
}"""

_LABELS_JS = """() => {
  const bad = [];
  for (const e of document.querySelectorAll('input, textarea, select, progress')) {
    const named = e.getAttribute('aria-label') || (e.id && document.querySelector(`label[for="${e.id}"]`)) || e.closest('label');
    if (!named) bad.push(e.outerHTML.slice(0, 80));
  }
  for (const e of document.querySelectorAll('button')) if (!e.textContent.trim() && !e.getAttribute('aria-label')) bad.push(e.outerHTML.slice(0, 80));
  for (const e of document.querySelectorAll('img')) if (!e.getAttribute('alt')) bad.push(e.outerHTML.slice(0, 80));
  for (const e of document.querySelectorAll('[tabindex]')) if (Number(e.getAttribute('tabindex')) > 0) bad.push('positive tabindex: ' + e.id);
  for (const e of document.querySelectorAll('fieldset')) if (!e.querySelector('legend')) bad.push('fieldset without legend');
  return bad;
}"""

_FOCUSABLE_JS = """() => [...document.querySelectorAll('button, input, textarea, select, a[href], [tabindex="0"]')]
  .filter((e) => !e.disabled && e.offsetParent !== null)
  .filter((e) => e.type !== 'radio' || e.checked
    || (!document.querySelector(`input[name="${e.name}"]:checked`) && document.querySelector(`input[name="${e.name}"]`) === e))
  .map((e) => e.id || e.dataset.class || e.textContent.trim())"""


def _check_accessibility(page) -> None:
    assert page.evaluate(_LABELS_JS) == []
    low = [c for c in page.evaluate(_CONTRAST_JS) if c["ratio"] < c["need"]]
    assert low == [], low
    # Tab order = reading order of the visible controls (a radio group is one stop).
    expected = page.evaluate(_FOCUSABLE_JS)
    page.locator("#tab-label").focus()
    seen = []
    for _ in range(len(expected) - 1):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("() => { const e = document.activeElement; return e.id || e.dataset.class || e.textContent.trim(); }"))
    assert seen == expected[1:], (seen, expected)


@pytest.fixture
def servers():
    """Kills every server the test started, also when it fails midway."""
    yield Server
    for p in Server.started:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    Server.started.clear()


def test_two_interpreters_label_resume_and_review(run_copy, tmp_path, servers):
    run = open_run(run_copy)
    sample = tmp_path / "sample.geojson"
    write_json(sample, draw_sample(run, n=16, min_per_stratum=2, by_region=False, seed=5))
    units = [p["sample_id"] for p in _props(sample)]
    classes = list(run.classes)
    console: list[str] = []

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: console.append(f"{m.type}: {m.text} @ {m.location.get('url', '')}"))
        page.on("pageerror", lambda e: console.append(f"error: {e}"))

        ana = Server(sample, run_copy, "--interpreter", "ana")
        page.goto(ana.url)
        _unit_shown(page, units[0])
        # blind by default: neither the page nor its data carries the map's class or probability
        state = page.evaluate("() => fetch('/api/state').then((r) => r.json())")
        assert state["blind"] and all("map_class" not in u and "probability" not in u for u in state["units"])
        assert "probability" not in page.locator("#unit-where").inner_text()
        _check_accessibility(page)

        # unit 1 by keyboard (confidence H, class key 2), unit 2 by mouse with a note
        page.locator("body").press("h")
        page.keyboard.press("2")
        _saved(page, f"Saved {classes[1]} for unit {units[0]} (high confidence)")
        _unit_shown(page, units[1])
        page.locator("#conf-low").check()
        page.locator("#note").fill("edge of a clearing")
        page.locator(f'#class-buttons button[data-class="{classes[2]}"]').click()
        _saved(page, f"Saved {classes[2]} for unit {units[1]} (low confidence)")
        _unit_shown(page, units[2])
        page.locator("body").press("2")
        _saved(page, f"for unit {units[2]}")
        playwright.expect(page.locator("#progress-label")).to_have_text(f"3 of {len(units)} units answered")
        props = _props(sample)
        assert [p["interpreter_1"] for p in props[:4]] == [classes[1], classes[2], classes[1], None]
        assert props[1]["interpretation"]["interpreter_1"] == {**props[1]["interpretation"]["interpreter_1"],
                                                                "name": "ana", "confidence": "low", "note": "edge of a clearing"}

        # reload resumes at the first unanswered unit; a killed server loses nothing
        page.reload()
        _unit_shown(page, units[3])
        ana.kill()
        killed = ana.url.rstrip("/")
        assert [p["interpreter_1"] for p in _props(sample)[:3]] == [classes[1], classes[2], classes[1]]
        ana = Server(sample, run_copy, "--interpreter", "ana")
        page.goto(ana.url)
        _unit_shown(page, units[3])

        # a second interpreter at the same time, in a second page: independent answers
        luis = Server(sample, run_copy, "--interpreter", "luis")
        page2 = browser.new_page(viewport={"width": 1400, "height": 1000})
        page2.on("console", lambda m: console.append(f"{m.type}: {m.text} @ {m.location.get('url', '')}"))
        page2.goto(luis.url)
        _unit_shown(page2, units[0])
        assert page2.locator('#class-buttons button[aria-pressed="true"]').count() == 0  # ana's answers unseen
        page2.locator("body").press("2")  # agrees on unit 1
        _saved(page2, f"for unit {units[0]}")
        page.locator("body").press("3")  # ana goes on with unit 4 meanwhile
        _saved(page, f"for unit {units[3]}")
        _unit_shown(page2, units[1])
        page2.locator("body").press("4")  # disagrees on unit 2
        _saved(page2, f"Saved {classes[3]} for unit {units[1]}")
        props = _props(sample)
        assert props[0]["interpreter_1"] == props[0]["interpreter_2"] == classes[1]
        assert (props[1]["interpreter_1"], props[1]["interpreter_2"]) == (classes[2], classes[3])
        assert props[3]["interpreter_1"] == classes[2] and props[3]["interpreter_2"] is None

        # review: the one disagreement, both answers shown, consensus by mouse
        page2.reload()
        _unit_shown(page2, units[2])
        page2.locator("#tab-review").click()
        playwright.expect(page2.locator("#tab-review")).to_have_text("Review disagreements (1)")
        _unit_shown(page2, units[1])
        playwright.expect(page2.locator("#others")).to_contain_text("edge of a clearing")
        page2.locator("#note").fill("March image shows the clearing")
        page2.locator(f'#class-buttons button[data-class="{classes[2]}"]').click()
        _saved(page2, f"Saved {classes[2]} for unit {units[1]} as consensus")
        playwright.expect(page2.locator("#progress-label")).to_have_text("1 of 1 disagreements resolved")
        _check_accessibility(page2)

        shot = tmp_path / "interpret.png"
        page.screenshot(path=str(shot))
        browser.close()
        ana.kill()
        luis.kill()

    props = _props(sample)
    assert props[1]["consensus"] == classes[2]
    assert props[1]["interpretation"]["consensus"]["note"] == "March image shows the clearing"
    data = json.loads(sample.read_text())
    assert data["sampling"]["interpreters"] == {"interpreter_1": "ana", "interpreter_2": "luis"}
    assert data["sampling"]["imagery"]["scenes"] > 0
    # Requests the open page sent to the killed server fail, as they should (Chromium may log
    # them late, under load); every other message is an error of the page.
    errors = [c for c in console if not c.startswith(("log:", "debug:"))
              and not ("Failed to load resource: net::ERR_" in c and f"@ {killed}/" in c)]
    assert errors == [], console
    if os.environ.get("INTERPRET_SCREENSHOT"):  # refresh docs/img/interpret.png
        shutil.copy(shot, os.environ["INTERPRET_SCREENSHOT"])
