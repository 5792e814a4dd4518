"""A finished quickstart (the session's, tests/conftest.py) run again skips what finished, and its report renders in a
browser. Apart from tests/test_jobs.py, which checks it first: each xdist worker reads the one job."""
import shutil

from .conftest import QUICK_FAMILIES, run_cli


def test_a_rerun_skips_what_finished(quickstart_job, tmp_path):
    made, args, first = quickstart_job
    assert first.returncode == 0, first.stderr
    out = tmp_path / "qs"  # a copy (times kept): the other tests read the shared one
    shutil.copytree(made, out)
    args = [*args[:args.index("--out") + 1], str(out), *args[args.index("--out") + 2:]]
    before = {n: (out / n / "model.safetensors").stat().st_mtime_ns for n in QUICK_FAMILIES}
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "[1/3]" not in again.stderr  # nothing trained: every family is done; the report is written again
    assert before == {n: (out / n / "model.safetensors").stat().st_mtime_ns for n in QUICK_FAMILIES}


def test_the_report_renders_in_a_browser_with_every_figure(quickstart_job, browser, tmp_path):
    out, _, r = quickstart_job
    assert r.returncode == 0, r.stderr
    browser.get((out / "report.html").as_uri())
    figures = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
    assert len(figures) >= 4
    broken = [alt for alt, complete, w, h in figures if not (complete and w > 0 and h > 0)]
    assert not broken, f"figures that did not load: {broken}"
    assert browser.execute_script("return document.querySelectorAll('h2[id]').length") == len(QUICK_FAMILIES)
    browser.save_screenshot(str(tmp_path / "report.png"))
