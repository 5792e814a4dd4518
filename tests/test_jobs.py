"""`tetragen quickstart` and `tetragen bench`: every family trained for its share of one budget, evaluated, shown
in one self-contained report; a re-run skips what finished; bad input is one line and loses nothing."""
import errno
import json

import pytest

from tetragen import files
from tetragen.jobs import showcase
from tetragen.jobs.showcase import Job, choose_families
from tetragen.registry import get_family, get_showcase, list_families, list_modalities, showcase_family
from tetragen.train import checkpoint as ck

from .conftest import QUICK_FAMILIES, job_args, one_line_error, run_cli

def run_kind(name: str) -> str:
    return get_showcase(name).kind or get_family(showcase_family(name)).makes


def test_every_family_has_a_showcase_and_components_come_first():
    default = choose_families(None, default_only=True)
    assert {"gpt", "bert", "dcgan", "cgan", "vae", "t2i"} <= set(default)  # one of each family, the hybrid too
    everything = choose_families(None, default_only=False)
    # every kind of content has a showcase, and every kind is in the default set but video, which is opt-in
    # (`--families cgan-clips`) until it shows something worth its share of the budget (docs/video.md)
    assert {run_kind(n) for n in everything} == set(list_modalities())
    assert set(list_modalities()) - {run_kind(n) for n in default} == {"video"}
    assert {showcase_family(n) for n in everything} == set(list_families())
    for name in everything:  # a run built from another run's components is trained after them
        for component in get_showcase(name).components.values():
            assert everything.index(component) < everything.index(name)
    assert choose_families(["t2i"], default_only=True) == ["vqvae", "t2i"]
    assert choose_families(["ldm"], default_only=True) == ["vqvae-latents", "ldm"]  # its own kind of vqvae


def test_a_family_keeps_for_its_evaluation_by_its_weight_what_those_before_took():
    # before any is done: a fifth of the budget spread over the job's weight (10 of 600 s -> 12 s a unit)
    assert showcase.reserve_s(2.0, [], 10.0, 600.0) == pytest.approx(24.0)
    # after: the seconds past training of those done, per unit of weight, beside that prior counted as the job's
    # weight: (120 + 2 + 60) s over (10 + 2 + 3) units; one long evaluation raises every later reserve a little
    # rather than taking its whole length from each
    past = [(2.0, 2.0), (3.0, 60.0)]
    assert showcase.reserve_s(2.0, past, 10.0, 600.0) == pytest.approx(2.0 * 182.0 / 15.0)


def test_quickstart_trains_evaluates_and_reports(quickstart_job):
    out, _, r = quickstart_job
    assert r.returncode == 0, r.stderr
    assert "[1/3] gpt" in r.stderr and "ETA of the job" in r.stderr
    assert f"report: {out / 'report.html'}" in r.stdout and "tetragen serve" in r.stdout
    state = json.loads((out / "job.json").read_text())
    assert tuple(state["results"]) == QUICK_FAMILIES
    for name, res in state["results"].items():
        records = [json.loads(ln) for ln in (out / name / "metrics.jsonl").read_text().splitlines()]
        plan = [x for x in records if x["split"] == "budget" and x["event"] != "end"]
        assert plan and plan[0]["event"] == "plan", name  # then any re-plans
        # trained to its last planned schedule, unless the machine slowed down so much that the budget's hard stop
        # came first (which the run says)
        assert res["steps"] == plan[-1]["max_steps"] or (
            res["steps"] < plan[-1]["max_steps"] and f"train.budget_minutes={res['budget_minutes']:g} (overrun" in
            r.stderr), (name, r.stderr)
        assert 0 < res["budget_used"] <= 1.2, name  # the share of its budget the run used, as its report shows
        assert res["metrics"] and res["eval_lines"], name
    assert "val_bpc" in state["results"]["gpt"]["metrics"] and state["results"]["gpt"]["shown"][0]["text"]
    assert state["results"]["bert"]["shown"][0]["candidates"]  # fill-mask answers
    assert "fid" in state["results"]["cgan"]["metrics"] and state["results"]["cgan"]["shown"]
    html = (out / "report.html").read_text()
    assert html.count("<img") == html.count("src='data:image/png;base64,")  # self-contained: every image inlined
    assert html.count("<img") >= 1 + 3  # the cgan grid and a curve per family
    for name in QUICK_FAMILIES:
        assert f"id='{name}'" in html and f"tetragen serve {out / name}" in html


def test_bench_ranks_image_and_text_families_with_the_same_budget(corpus, images, tmp_path):
    out = tmp_path / "bench"
    r = run_cli("bench", "--budget-minutes", "0.1", "--families", "gpt,t2i", *job_args(corpus, images, out))
    assert r.returncode == 0, r.stderr
    assert "ETA of the job 0:18" in r.stderr  # three families of 0.1 minutes each ahead
    doc = json.loads((out / "bench.json").read_text())
    assert doc["families"] == ["gpt", "vqvae", "t2i"] and doc["budget_minutes"] == 0.1
    assert doc["machine"]["cpu"] and doc["seed"] == 1337 and set(doc["precision"]) == {"gpt", "vqvae", "t2i"}
    for res in doc["results"]:  # each family got the whole budget: its plan was made for 0.1 minutes
        assert 0.05 < res["budget_minutes"] <= 0.1
    md = (out / "bench.md").read_text()
    assert "## image families" in md and "## text families" in md
    t2i_row = next(ln for ln in md.splitlines() if ln.startswith("| t2i |"))
    assert t2i_row.split("|")[2].strip() != "—"  # the prior has a FID
    assert (out / "bench.html").is_file() and (out / "report.html").is_file()
    t2i = next(res for res in doc["results"] if res["family"] == "t2i")
    assert len(t2i["shown"]) == len(get_showcase("t2i").prompts)  # a grid per prompt


@pytest.mark.parametrize("args,needles", [
    (["--budget-minutes", "0"], ["--budget-minutes 0", "between"]),
    (["--budget-minutes", "-3"], ["--budget-minutes -3"]),
    (["--budget-minutes", "1e9"], ["--budget-minutes 1e+09", "1440"]),
    (["--budget-minutes", "nan"], ["--budget-minutes nan"]),
    (["--families", "gpt,nosuch"], ["--families", "unknown family 'nosuch'"]),
    (["--data", "smell=x"], ["--data smell=x", "KIND=SOURCE"]),
    (["--eval-n", "1"], ["--eval-n"]),
])
def test_bad_job_arguments_are_one_line(tmp_path, args, needles):
    out = tmp_path / "qs"
    one_line_error(run_cli("quickstart", "--out", str(out), *args), *needles)
    assert not out.exists()  # nothing was created


def test_a_folder_that_is_not_a_job_is_refused_and_left_alone(tmp_path, corpus, images):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    one_line_error(run_cli("quickstart", "--families", "gpt", *job_args(corpus, images, foreign)),
                   f"--out {foreign}", "something other than an earlier tetragen quickstart")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    bench = tmp_path / "b"
    bench.mkdir()
    (bench / "job.json").write_text(json.dumps({"job": "bench", "seed": 1337, "results": {}, "spent_s": {}}))
    one_line_error(run_cli("quickstart", "--families", "gpt", *job_args(corpus, images, bench)),
                   "holds a tetragen bench, not a quickstart")


def test_disk_full_during_a_family_keeps_the_finished_ones(corpus, images, tmp_path, monkeypatch):
    out = tmp_path / "qs"
    data = {"text": str(corpus), "image": str(images)}
    Job("quickstart", out, budget_minutes=0.2, families=["gpt"], data=data, preset="tiny", eval_n=20,
        progress=False).run()
    done = (out / "gpt" / "model.safetensors").read_bytes()
    real = files.write_folder_atomically

    def no_space(folder, write):
        if "cgan" in str(folder):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(folder, write)
    monkeypatch.setattr(files, "write_folder_atomically", no_space)
    monkeypatch.setattr(ck, "write_folder_atomically", no_space)
    job = Job("quickstart", out, budget_minutes=0.4, families=["gpt", "cgan"], data=data, preset="tiny", eval_n=20,
              progress=False)
    with pytest.raises(showcase.UserError, match=r"cgan.*No space left on device"):
        job.run()
    state = json.loads((out / "job.json").read_text())
    assert list(state["results"]) == ["gpt"]  # the finished family is kept, with its run untouched
    assert (out / "gpt" / "model.safetensors").read_bytes() == done
