"""harness.nlg_metrics against the official E2E and WebNLG/DART scorers.

tests/fixtures/nlg/expected.json holds what tuetschek/e2e-metrics (measure_scores.py -p) and
GenerationEval's eval.py (-nr 6 -m bleu,meteor,ter) printed on the fixtures; its "_how" says how.
Tolerance: equal at the official script's printed precision, and within 1e-9 of its full-precision
value (1e-8 for WebNLG BLEU, which the Perl script was made to print with 10 decimals).
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.metrics import nlg as nlg_metrics
from harness.errors import HarnessError
from harness.metrics.nlg import E2E_METRICS, WEBNLG_METRICS, score_e2e, score_webnlg, webnlg_normalize

FIXTURES = Path(__file__).parent / "fixtures" / "nlg"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
E2E = json.loads((FIXTURES / "e2e.json").read_text(encoding="utf-8"))["items"]
WEBNLG = json.loads((FIXTURES / "webnlg.json").read_text(encoding="utf-8"))["items"]

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="the jar-based metrics need Java")

# our key -> (measure_scores.py's name, factor from its scale to the paper's)
E2E_OFFICIAL = {"bleu": ("BLEU", 100), "nist": ("NIST", 1), "meteor": ("METEOR", 100), "rouge_l": ("ROUGE_L", 100),
                "cider": ("CIDEr", 1)}


def hyps_refs(items):
    return [item["hypothesis"] for item in items], [item["references"] for item in items]


@pytest.fixture(scope="module")
def e2e_scores():
    return score_e2e(*hyps_refs(E2E))  # one tokenizer + Meteor run shared by the tests below


@pytest.fixture(scope="module")
def webnlg_scores():
    return score_webnlg(*hyps_refs(WEBNLG))


def java_children() -> list[str]:
    """Java processes started by this test process and still alive."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            name = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and "java" in name:
            found.append(stat.parent.name)
    return found


@needs_java
def test_e2e_matches_measure_scores(e2e_scores):
    assert list(e2e_scores) == list(E2E_METRICS)
    for key, (name, factor) in E2E_OFFICIAL.items():
        ours = e2e_scores[key] / factor  # back on measure_scores.py's scale
        assert f"{ours:.4f}" == EXPECTED["e2e"]["printed"][name], key
        assert ours == pytest.approx(EXPECTED["e2e"]["full"][name], rel=1e-9, abs=1e-12), key
    assert not java_children()


@needs_java
def test_webnlg_matches_generation_eval(webnlg_scores):
    official = EXPECTED["webnlg"]
    assert list(webnlg_scores) == list(WEBNLG_METRICS)
    assert f"{webnlg_scores['bleu']:.2f}" == official["printed"]["BLEU"] == f"{official['full']['bleu']:.2f}"
    assert webnlg_scores["bleu"] == pytest.approx(official["bleu_10_decimals"], abs=1e-8)
    for key in ("meteor", "ter"):
        assert f"{webnlg_scores[key]:.2f}" == official["printed"][key.upper()]
        assert webnlg_scores[key] == pytest.approx(official["full"][key], rel=1e-9, abs=1e-12)
    assert not java_children()


def test_webnlg_decoder_files_artifact_is_documented():
    # The official eval.py on files that end with a newline (as LoRA's decoder writes them) scores
    # one extra empty sentence: TER 1 for it, and Meteor refuses to run (-1). We report the clean value.
    clean, verbatim, n = EXPECTED["webnlg"]["full"], EXPECTED["webnlg_decoder_files"]["full"], len(WEBNLG)
    assert verbatim["ter"] == pytest.approx((n * clean["ter"] + 1) / (n + 1), abs=1e-12)
    assert verbatim["meteor"] == -1 and verbatim["bleu"] == clean["bleu"]


def test_ter_is_best_reference_per_sentence_then_mean():
    hyps = ["b", "one two three four five six seven eight nine ten", "x y"]
    refs = [["a"], ["one two three four five six seven eight nine ten"], ["p q r s", "x z"]]
    # sentence TERs: 1/1, 0/10, min(4/4, 1/2) -> mean 0.5. Corpus TER over the best references
    # would be (1 + 0 + 1) / (1 + 10 + 2) = 0.154; the mean over all (sentence, reference) pairs 0.625.
    assert score_webnlg(hyps, refs, ["ter"])["ter"] == pytest.approx(0.5)


def test_webnlg_uses_only_the_first_num_refs_references():
    hyp, refs = "a b c d", ["x y z w"] * 6 + ["a b c d"]  # the exact match is the 7th reference
    assert score_webnlg([hyp], [refs], ["ter"])["ter"] == 1.0
    assert score_webnlg([hyp], [refs], ["ter"], num_refs=7)["ter"] == 0.0


@needs_java
def test_cider_idf_comes_from_the_evaluated_reference_set(e2e_scores):
    first, last = (score_e2e(*hyps_refs(part), ["cider"])["cider"] for part in (E2E[:6], E2E[6:]))
    assert first == pytest.approx(EXPECTED["e2e_first6"]["full"]["CIDEr"], rel=1e-9)
    assert last == pytest.approx(EXPECTED["e2e_last6"]["full"]["CIDEr"], rel=1e-9)
    # Scoring in batches and averaging is not the corpus CIDEr: the IDF differs per batch.
    assert abs((first + last) / 2 - e2e_scores["cider"]) > 0.01


def test_bleu_and_nist_need_no_java(monkeypatch):
    monkeypatch.setattr(nlg_metrics.shutil, "which", lambda name: None)
    hyps, refs = hyps_refs(E2E)
    scores = score_e2e(hyps, refs, ["bleu", "nist"])
    assert scores["bleu"] / 100 == pytest.approx(EXPECTED["e2e"]["full"]["BLEU"], rel=1e-9)
    assert scores["nist"] == pytest.approx(EXPECTED["e2e"]["full"]["NIST"], rel=1e-9)
    scores = score_webnlg(*hyps_refs(WEBNLG), ["bleu", "ter"])
    assert scores["bleu"] == pytest.approx(EXPECTED["webnlg"]["bleu_10_decimals"], abs=1e-8)
    assert scores["ter"] == pytest.approx(EXPECTED["webnlg"]["full"]["ter"], abs=1e-12)


@pytest.mark.parametrize("scorer,metric", [(score_e2e, "meteor"), (score_e2e, "rouge_l"), (score_e2e, "cider"),
                                           (score_webnlg, "meteor")])
def test_missing_java_is_one_clear_line(monkeypatch, scorer, metric):
    monkeypatch.setattr(nlg_metrics.shutil, "which", lambda name: None)
    with pytest.raises(HarnessError) as err:
        scorer(["a b"], [["a b"]], [metric])
    message = str(err.value)
    assert "\n" not in message
    assert "Java" in message and "apt install default-jre" in message and "--metrics" in message


def test_missing_packages_name_the_pip_package(monkeypatch):
    real_find_spec = nlg_metrics.importlib.util.find_spec
    monkeypatch.setattr(nlg_metrics.shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(nlg_metrics.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pycocoevalcap" else real_find_spec(name, *a))
    with pytest.raises(HarnessError, match="pip install pycocoevalcap"):
        score_e2e(["a b"], [["a b"]], ["rouge_l"])
    monkeypatch.setitem(sys.modules, "pyter", None)  # makes `import pyter` fail
    with pytest.raises(HarnessError, match="pip install pyter3"):
        score_webnlg(["a b"], [["a b"]], ["ter"])


def test_empty_hypotheses_score_without_errors():
    e2e = score_e2e(["", "   "], [["The Mill is a pub."], ["Zizzi is cheap."]], ["bleu", "nist"])
    assert all(math.isfinite(v) and v < 1e-3 for v in e2e.values())
    web = score_webnlg(["", ""], [["a b"], ["c"]], ["bleu", "ter"])
    assert web == {"bleu": 0.0, "ter": 1.0}


def test_meteor_files_keep_an_empty_last_output(monkeypatch):
    # eval.py's Meteor run stops (-1) when the last output is empty: "\n".join drops its line. Ours
    # ends every line with "\n", so Meteor sees 3 outputs and 3 x 6 references (checked without Java).
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["hyp"], seen["ref"] = (Path(cmd[i]).read_text(encoding="utf-8").split("\n") for i in (4, 5))
        seen["r"] = cmd[cmd.index("-r") + 1]
        return subprocess.CompletedProcess(cmd, 0, b"Final score:            0.25\n", b"")

    monkeypatch.setattr(nlg_metrics.shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(nlg_metrics.subprocess, "run", fake_run)
    hyps, refs = hyps_refs(WEBNLG[:3])
    assert score_webnlg(hyps[:2] + [""], refs, ["meteor"]) == {"meteor": 0.25}
    assert seen["r"] == "6" and len(seen["hyp"]) == 3 + 1 and len(seen["ref"]) == 3 * 6 + 1  # + the final ""
    assert seen["hyp"][2] == "" and seen["ref"][:2] == [webnlg_normalize(refs[0][0]), webnlg_normalize(refs[0][1])]


def test_webnlg_normalize_follows_loras_decoder():
    assert webnlg_normalize('Alan Bean\'s "Apollo 12" (1969), São Paulo: 2,776.0 m!') == \
        'alan bean \' s " apollo 12 " ( 1969 ) , são paulo : 2 , 776 . 0 m !'
    assert webnlg_normalize("  Route_9\t(Delaware)\n") == "route_9 ( delaware )"
    once = webnlg_normalize(WEBNLG[3]["references"][0])
    assert webnlg_normalize(once) == once  # idempotent: normalized input is scored unchanged


def test_bad_inputs_are_harness_errors():
    with pytest.raises(HarnessError, match="Did you mean 'rouge_l'"):
        score_e2e(["a"], [["a"]], ["rouge"])
    with pytest.raises(HarnessError, match="2 hypotheses but 1 reference lists"):
        score_webnlg(["a", "b"], [["a"]], ["bleu"])
    with pytest.raises(HarnessError, match="no reference"):
        score_e2e(["a"], [[]], ["bleu"])
    with pytest.raises(HarnessError, match="no hypotheses"):
        score_e2e([], [], ["bleu"])
    assert nlg_metrics._check_metrics(None, E2E_METRICS, "E2E") == E2E_METRICS  # None: all of them
