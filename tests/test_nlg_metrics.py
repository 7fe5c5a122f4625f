"""harness.nlg_metrics against the official E2E and WebNLG/DART scorers.

tests/fixtures/nlg/expected.json holds what tuetschek/e2e-metrics (measure_scores.py -p) and
GenerationEval's eval.py (-nr 6 -m bleu,meteor,ter) printed on the fixtures; its "_how" says how.
Tolerance: equal at the official script's printed precision, and within 1e-9 of its full-precision
value (1e-8 for WebNLG BLEU, which the Perl script was made to print with 10 decimals).
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
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
    nlg_metrics.close_meteor()
    assert not java_children()  # the tokenizer's runs ended; the kept Meteor process stops when asked


@needs_java
def test_webnlg_matches_generation_eval(webnlg_scores):
    official = EXPECTED["webnlg"]
    assert list(webnlg_scores) == list(WEBNLG_METRICS)
    assert f"{webnlg_scores['bleu']:.2f}" == official["printed"]["BLEU"] == f"{official['full']['bleu']:.2f}"
    assert webnlg_scores["bleu"] == pytest.approx(official["bleu_10_decimals"], abs=1e-8)
    for key in ("meteor", "ter"):
        assert f"{webnlg_scores[key]:.2f}" == official["printed"][key.upper()]
        assert webnlg_scores[key] == pytest.approx(official["full"][key], rel=1e-9, abs=1e-12)
    nlg_metrics.close_meteor()
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


def meteor_file_mode(hyps: list[str], refs: list[list[str]]) -> float:
    """Meteor 1.5 on a hypothesis file and a reference file, as GenerationEval's eval.py runs it (each
    line ended with a newline, so that an empty last output is kept)."""
    jar = nlg_metrics._jars()["meteor"]
    with tempfile.TemporaryDirectory() as tmp:
        hyp_file, ref_file = Path(tmp) / "hypothesis", Path(tmp) / "reference"
        hyp_file.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
        ref_file.write_text("".join(r + "\n" for rs in refs for r in rs), encoding="utf-8")
        out = subprocess.run(["java", "-Xmx2G", "-jar", str(jar), str(hyp_file), str(ref_file), "-l", "en", "-norm",
                              "-r", str(len(refs[0]))], capture_output=True, cwd=jar.parent, check=True).stdout
    return float(re.search(rb"^Final score:\s*(\S+)", out, re.M).group(1))


@needs_java
def test_kept_meteor_process_scores_as_the_file_mode_is_reused_restarted_and_closed():
    # WebNLG's METEOR comes from one Meteor process in -stdio mode, kept between calls; eval.py runs
    # Meteor on files. Same numbers, an empty last output included (eval.py itself drops it: see above).
    hyps, refs = hyps_refs(WEBNLG[:6])
    hyps = [nlg_metrics._nltk_word_tokenize(webnlg_normalize(h)) for h in hyps[:5]] + [""]
    refs = [[nlg_metrics._nltk_word_tokenize(webnlg_normalize(r)) for r in (rs * 6)[:6]] for rs in refs]
    jar = nlg_metrics._jars()["meteor"]
    nlg_metrics.close_meteor()
    kept = nlg_metrics.meteor_corpus(hyps, refs, jar)
    assert kept == pytest.approx(meteor_file_mode(hyps, refs), rel=1e-12)
    first = java_children()
    assert len(first) == 1  # the kept process, and only it
    assert nlg_metrics.meteor_corpus(hyps, refs, jar) == kept and java_children() == first  # reused
    nlg_metrics._METEOR[jar].proc.kill()  # it died since (killed, out of memory): started again, once
    nlg_metrics._METEOR[jar].proc.wait()
    assert nlg_metrics.meteor_corpus(hyps, refs, jar) == kept and java_children() != first
    nlg_metrics.close_meteor()
    assert not java_children()


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


# ---------------------------------------------------------------------------------------------
# Where sacrebleu computes a column and where the hand-written scorer stays (README: metric table)


def _streams(refs):
    return [[rs[j] if j < len(rs) else None for rs in refs] for j in range(max(map(len, refs)))]


def test_webnlg_bleu_is_sacrebleu_and_reproduces_multi_bleu_detok_line():
    # multi-bleu-detok.perl = sacrebleu's corpus BLEU with 13a tokens and no smoothing: every field
    # of the line the Perl script printed on the fixture (n-gram precisions, BP, lengths) matches.
    import sacrebleu

    hyps, refs = hyps_refs(WEBNLG)
    hyps = [webnlg_normalize(h) for h in hyps]
    refs = [[webnlg_normalize(r) for r in rs[:6]] + [webnlg_normalize(rs[0])] * (6 - len(rs[:6])) for rs in refs]
    found = sacrebleu.BLEU(tokenize="13a", smooth_method="none", force=True).corpus_score(hyps, _streams(refs))
    line = (f"BLEU = {found.score:.10f}, {'/'.join(f'{p:.1f}' for p in found.precisions)} (BP={found.bp:.3f}, "
            f"ratio={found.sys_len / found.ref_len:.3f}, hyp_len={found.sys_len}, ref_len={found.ref_len})")
    assert line == EXPECTED["webnlg"]["bleu_line"]
    assert score_webnlg(*hyps_refs(WEBNLG), ["bleu"])["bleu"] == found.score


def test_e2e_bleu_stays_pymteval_because_sacrebleu_counts_short_outputs_differently():
    # pymteval adds len(output) - n + 1 n-grams per output, negative when the output is shorter
    # than n-1 tokens: "Zizzi" adds 1, 0, -1, -2 one- to four-grams, sacrebleu (and the Perl
    # script) 1, 0, 0, 0. The 3- and 4-gram totals become 10 and 7 instead of 11 and 9.
    import sacrebleu

    hyps = ["The Mill is a pub.", "Zizzi", "Aromi is a coffee shop near the river."]
    refs = [["The Mill is a pub near the river."], ["Zizzi is a cheap pub."], ["Aromi is a coffee shop by the river."]]
    bp = math.exp(1 - 24 / 16)  # 16 output tokens, 24 reference tokens
    pymteval = 100 * bp * (15 / 16 * 10 / 13 * 7 / 10 * 4 / 7) ** 0.25
    found = sacrebleu.BLEU(tokenize="13a", lowercase=True, smooth_method="none").corpus_score(hyps, _streams(refs))
    assert (found.counts, found.totals) == ([15, 10, 7, 4], [16, 13, 11, 9])
    assert found.score == pytest.approx(100 * bp * (15 / 16 * 10 / 13 * 7 / 11 * 4 / 9) ** 0.25)
    assert score_e2e(hyps, refs, ["bleu"])["bleu"] == pytest.approx(pymteval)  # 44.45, sacrebleu 40.76


def test_e2e_bleu_on_the_committed_untrained_run_differs_from_sacrebleu_at_the_printed_decimals():
    # 24 of its 100 outputs are two tokens ("#123456789"): measure_scores.py prints 0.0463, sacrebleu 0.0461.
    import sacrebleu

    run = Path(__file__).parents[1] / "results/generation/runs/e2e-untrained-smollm2-beam10-first100"
    rows = [json.loads(line) for line in (run / "generations.jsonl").open(encoding="utf-8")]
    hyps, refs = [r["hypothesis"].strip() for r in rows], [[x.strip() for x in r["references"]] for r in rows]
    ours = score_e2e(hyps, refs, ["bleu"])["bleu"]
    assert ours == pytest.approx(json.loads((run / "metrics.json").read_text())["best"]["bleu"], rel=1e-12)
    theirs = sacrebleu.BLEU(tokenize="13a", lowercase=True, smooth_method="none").corpus_score(hyps, _streams(refs))
    assert (f"{ours / 100:.4f}", f"{theirs.score / 100:.4f}") == ("0.0463", "0.0461")


def test_webnlg_ter_stays_pyter_because_sacrebleus_tercom_shifts_differently():
    # The fixture's last output against each of its references alone: tercom (sacrebleu) finds a
    # cheaper shift sequence for the first reference, pyter's greedy search for the second. So even per
    # sentence on the same tokens the TERs differ, and sacrebleu's corpus TER (summed edits / summed
    # reference lengths) is another quantity again.
    from sacrebleu.metrics import TER

    item = WEBNLG[9]
    tokens = nlg_metrics._nltk_word_tokenize  # the tokens eval.py gives pyter
    hyp = tokens(webnlg_normalize(item["hypothesis"]))
    official = [score_webnlg([item["hypothesis"]], [[r]], ["ter"])["ter"] for r in item["references"]]
    tercom = [TER().sentence_score(hyp, [tokens(webnlg_normalize(r))]).score / 100 for r in item["references"]]
    assert official == pytest.approx([9 / 17, 16 / 19]) and tercom == pytest.approx([11 / 17, 13 / 19])
    hyps, refs = hyps_refs(WEBNLG)
    hyps = [tokens(webnlg_normalize(h)) for h in hyps]
    refs = [[tokens(webnlg_normalize(r)) for r in (rs[:6] + [rs[0]] * 6)[:6]] for rs in refs]  # eval.py's 6 files
    corpus = TER().corpus_score(hyps, _streams(refs)).score / 100
    # Both print 0.48 on this fixture; on WebNLG's test set they differ at the printed decimals (README).
    assert (round(corpus, 4), round(EXPECTED["webnlg"]["full"]["ter"], 4)) == (0.4844, 0.4765)


def test_chrf_is_sacrebleus_chrf2_on_the_strings_bleu_scores():
    import sacrebleu

    hyps, refs = hyps_refs(E2E)
    assert score_e2e([f" {h} " for h in hyps], refs, ["chrf"])["chrf"] == \
        sacrebleu.CHRF().corpus_score(hyps, _streams(refs)).score
    hyps, refs = hyps_refs(WEBNLG)
    norm = [[webnlg_normalize(r) for r in rs[:6]] for rs in refs]
    assert score_webnlg(hyps, refs, ["chrf"])["chrf"] == pytest.approx(
        sacrebleu.CHRF().corpus_score([webnlg_normalize(h) for h in hyps], _streams(norm)).score, abs=1e-12)


@needs_java
def test_a_meteor_that_keeps_dying_is_one_clear_error(monkeypatch):
    started = nlg_metrics._MeteorServer.__init__

    def dies_at_once(self, jar):
        started(self, jar)
        self.proc.kill()
        self.proc.wait()

    nlg_metrics.close_meteor()
    monkeypatch.setattr(nlg_metrics._MeteorServer, "__init__", dies_at_once)
    with pytest.raises(HarnessError, match=r"^Meteor 1\.5 \(java\) failed: ") as err:
        nlg_metrics.meteor_corpus(["a b"], [["a b"]], nlg_metrics._jars()["meteor"])
    assert "\n" not in str(err.value)
    assert not nlg_metrics._METEOR and not java_children()
