"""E2E, WebNLG and DART metrics, computed the way the LoRA paper's pipeline computes them.

microsoft/LoRA scores E2E with tuetschek/e2e-metrics (``measure_scores.py ref pred -p``) and WebNLG/DART
with WebNLG/GenerationEval's ``eval.py -nr 6 -m bleu,meteor,ter``. This module reproduces both; the
tests compare it with those scripts' outputs on fixtures (tests/fixtures/nlg/expected.json).

Scales (the paper's: Table 3 for E2E, the WebNLG and DART tables):

* ``score_e2e``: ``bleu``, ``meteor`` and ``rouge_l`` x100 (e.g. 70.4, 46.8, 71.8); ``nist`` and
  ``cider`` raw (8.85, 2.53). measure_scores.py prints all five raw (0.7040, 8.8500, ...).
* ``score_webnlg`` (WebNLG and DART): ``bleu`` x100 (as multi-bleu-detok.perl prints it, e.g. 55.3),
  ``meteor`` and ``ter`` as fractions (0.41, 0.39). Lower TER is better.
* Both: ``chrf``, sacrebleu's chrF2 (0-100), a column the paper does not print (no official script
  computes it in LoRA's pipeline), on the strings BLEU scores.

How each number is made (sacrebleu wherever it reproduces the official script; see the README's
metric table for what was measured):

* E2E BLEU / NIST: e2e-metrics' Python port of mteval-v13a (``-p``): mteval-13a tokenization
  (sacrebleu's ``13a`` tokenizer gives the same tokens), case-insensitive, corpus level, all
  references of an MR at once; BLEU 4-gram, NIST 5-gram with information weights from all references
  of the evaluated set. Hand-written, not sacrebleu: sacrebleu has no NIST, and its BLEU differs once
  an output is shorter than 4 tokens (pymteval's n-gram totals go negative, and "" is one token), e.g.
  0.0461 instead of measure_scores.py's 0.0463 on the committed untrained E2E run.
* E2E METEOR / ROUGE-L / CIDEr: the MS-COCO caption code that e2e-metrics bundles. pycocoevalcap 1.2
  ships byte-identical jars and the same Python code: the Stanford PTBTokenizer (Java, lower-cased,
  punctuation dropped) first, then Meteor 1.5 (``-l en -norm``, one corpus score from the summed
  statistics), ROUGE-L (beta=1.2, max precision and max recall over references) and CIDEr-D (IDF from
  the evaluated reference set, so never score a subset on its own and average).
* WebNLG / DART: both sides first go through ``webnlg_normalize`` (LoRA's decoder, ``--tokenize
  --lower``); at most ``num_refs`` (6) references per input, padded with the first one, as the
  decoder writes them. BLEU = multi-bleu-detok.perl, which sacrebleu's corpus BLEU (``13a``, no
  smoothing) reproduces to 1e-10; METEOR = Meteor 1.5 ``-l en -norm -r 6`` on nltk.word_tokenize'd
  text (in Meteor's ``-stdio`` mode, one process kept for the Python process: the score eval.py's
  file mode gives, tested); TER = pyter per sentence, min over references, mean over sentences
  (pyter, not sacrebleu's TER: sacrebleu's is tercom's, whose shift search finds other edits).

METEOR, and for E2E also ROUGE-L and CIDEr (through the PTB tokenizer), need Java and pycocoevalcap;
TER needs pyter3. BLEU, NIST and chrF are pure Python.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harness.errors import HarnessError, unknown_choice

E2E_METRICS = ("bleu", "nist", "meteor", "rouge_l", "cider", "chrf")
WEBNLG_METRICS = ("bleu", "meteor", "ter", "chrf")
WEBNLG_NUM_REFS = 6  # gpt2_decode.py --ref_num 6 / eval.py -nr 6

_E2E_JAVA = ("meteor", "rouge_l", "cider")  # all three read the Java PTB tokenizer's output


# ---------------------------------------------------------------------------------------------
# Public API


def score_e2e(hypotheses: list[str], references: list[list[str]], metrics=E2E_METRICS) -> dict[str, float]:
    """E2E scores as ``measure_scores.py -p`` computes them, on the paper's scale (see module doc).

    ``references[i]`` are all references of hypothesis i's MR. Strings are stripped like the
    script's line reader does.
    """
    metrics = _check_metrics(metrics, E2E_METRICS, "E2E")
    hyps = [h.strip() for h in hypotheses]
    refs = [[r.strip() for r in rs] for rs in _check_refs(hyps, references)]
    scores: dict[str, float] = {}
    if "bleu" in metrics or "nist" in metrics:
        hyp_toks = [_lower(_mteval_tokens(h)) for h in hyps]
        ref_toks = [[_lower(_mteval_tokens(r)) for r in rs] for rs in refs]
        if "bleu" in metrics:
            scores["bleu"] = 100 * _pymteval_bleu(hyp_toks, ref_toks)
        if "nist" in metrics:
            scores["nist"] = _pymteval_nist(hyp_toks, ref_toks)
    if any(m in metrics for m in _E2E_JAVA):
        _need_java("E2E METEOR, ROUGE-L and CIDEr need Java 8+ (they first run the Stanford PTBTokenizer jar; "
                   "METEOR is the Meteor 1.5 jar)", "bleu nist")
        jars = _jars()
        # Two tokenizer runs, references then outputs, as COCOEvalCap.evaluate does.
        flat = _ptb_tokenize([r for rs in refs for r in rs], jars["ptb"])
        gts, start = [], 0
        for rs in refs:
            gts.append(flat[start:start + len(rs)])
            start += len(rs)
        res = _ptb_tokenize(hyps, jars["ptb"])
        if "meteor" in metrics:
            scores["meteor"] = 100 * _meteor_stdio(res, gts, jars["meteor"])
        if "rouge_l" in metrics or "cider" in metrics:
            from pycocoevalcap.cider.cider import Cider
            from pycocoevalcap.rouge.rouge import Rouge

            gts_d = {i: g for i, g in enumerate(gts)}
            res_d = {i: [r] for i, r in enumerate(res)}
            if "rouge_l" in metrics:
                scores["rouge_l"] = 100 * float(Rouge().compute_score(gts_d, res_d)[0])
            if "cider" in metrics:
                scores["cider"] = float(Cider().compute_score(gts_d, res_d)[0])
    if "chrf" in metrics:
        scores["chrf"] = _sacrebleu_corpus("chrf", hyps, refs)
    return {m: scores[m] for m in metrics}


def score_webnlg(hypotheses: list[str], references: list[list[str]], metrics=WEBNLG_METRICS,
                 num_refs: int = WEBNLG_NUM_REFS) -> dict[str, float]:
    """WebNLG/DART scores as GenerationEval's ``eval.py -nr 6 -m bleu,meteor,ter`` computes them.

    Raw or already-normalized text both work: ``webnlg_normalize`` is applied (it is idempotent).
    Only the first ``num_refs`` references of an input count, as LoRA's decoder writes only those.
    """
    metrics = _check_metrics(metrics, WEBNLG_METRICS, "WebNLG/DART")
    hyps = [webnlg_normalize(h) for h in hypotheses]
    refs = []
    for rs in _check_refs(hyps, references):
        rs = [webnlg_normalize(r) for r in rs[:num_refs]]
        refs.append(rs + [rs[0]] * (num_refs - len(rs)))  # the decoder pads with the first reference
    scores: dict[str, float] = {}
    if "bleu" in metrics:
        # = multi-bleu-detok.perl: 13a tokens, closest reference length (the shorter on a tie), no
        # smoothing (a zero n-gram precision gives 0). Case is moot: both sides are lower-cased.
        scores["bleu"] = _sacrebleu_corpus("bleu", hyps, refs, tokenize="13a", smooth_method="none", force=True)
    if "chrf" in metrics:
        scores["chrf"] = _sacrebleu_corpus("chrf", hyps, refs)
    if "meteor" in metrics or "ter" in metrics:
        hyp_tok = [_nltk_word_tokenize(h) for h in hyps]
        ref_tok = [[_nltk_word_tokenize(r) for r in rs] for rs in refs]
        if "meteor" in metrics:
            _need_java("METEOR needs Java 8+ (the Meteor 1.5 jar)", "bleu ter")
            scores["meteor"] = meteor_corpus(hyp_tok, ref_tok, _jars()["meteor"])
        if "ter" in metrics:
            scores["ter"] = _sentence_ter(hyp_tok, ref_tok)
    return {m: scores[m] for m in metrics}


def webnlg_normalize(text: str) -> str:
    """LoRA's ``gpt2_decode.py --tokenize --lower``: lowercase, split on \\W, drop whitespace.

    Every run of word characters and every other non-space character becomes a token, so
    punctuation stays: "Alan Bean's (1932)" -> "alan bean ' s ( 1932 )".
    """
    return " ".join(re.findall(r"\w+|[^\w\s]", text.lower()))


# ---------------------------------------------------------------------------------------------
# Input checks and external tools


def _check_metrics(metrics, valid: tuple[str, ...], dataset: str) -> tuple[str, ...]:
    if metrics is None:
        return valid
    names = tuple(dict.fromkeys(m.lower() for m in ([metrics] if isinstance(metrics, str) else metrics)))
    for name in names:
        if name not in valid:
            raise unknown_choice(f"{dataset} metric", name, valid)
    return names


def _check_refs(hyps: list[str], references: Sequence[Sequence[str]]) -> list[list[str]]:
    if not hyps:
        raise HarnessError("no hypotheses to score.")
    if len(hyps) != len(references):
        raise HarnessError(f"{len(hyps)} hypotheses but {len(references)} reference lists; "
                           f"give one list of references per hypothesis.")
    refs = [[references[i]] if isinstance(references[i], str) else list(references[i]) for i in range(len(hyps))]
    missing = [i for i, rs in enumerate(refs) if not rs]
    if missing:
        raise HarnessError(f"hypothesis {missing[0]} has no reference; every hypothesis needs at least one.")
    return refs


def _need_java(what: str, without: str) -> None:
    if shutil.which("java") is None:
        raise HarnessError(f"{what}, but no `java` is on PATH; install a JRE (e.g. `apt install default-jre`) "
                           f"or leave these metrics out (e.g. --metrics {without}).")


def _jars() -> dict[str, Path]:
    # pycocoevalcap 1.2's jars are byte-identical to the ones e2e-metrics bundles (same git blobs),
    # and its Meteor jar scores files with the same code as the CMU release GenerationEval downloads.
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError("METEOR (and E2E ROUGE-L/CIDEr) need the pycocoevalcap package, which ships the Meteor 1.5 "
                           "and Stanford PTBTokenizer jars: pip install pycocoevalcap")
    base = Path(list(spec.submodule_search_locations)[0])
    jars = {"meteor": base / "meteor" / "meteor-1.5.jar", "ptb": base / "tokenizer" / "stanford-corenlp-3.4.1.jar"}
    for path in jars.values():
        if not path.is_file():
            raise HarnessError(f"{path} is missing; reinstall it: pip install --force-reinstall pycocoevalcap")
    return jars


def _java_failed(what: str, detail: str) -> HarnessError:
    lines = [line.strip() for line in detail.splitlines() if line.strip()] or ["no output"]
    errors = [line for line in lines if "Error" in line or "Exception" in line]  # not the stack trace
    return HarnessError(f"{what} failed: {(errors or lines[-1:])[0]}")


# ---------------------------------------------------------------------------------------------
# mteval-v13a tokenization, as e2e-metrics' pymteval applies it


def _mteval_tokens(text: str) -> list[str]:
    """mteval-v13a's "international=off" tokens (sacrebleu's ``13a`` tokenizer: the same regular
    expressions, and str.split() splits where pymteval's \\s+ does). pymteval splits "" into [""]:
    an empty E2E output counts as one (empty) token."""
    return _tokenizer_13a()(text).split() or [""]


@functools.cache
def _tokenizer_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def _lower(tokens: list[str]) -> list[str]:
    return [t.lower() for t in tokens]  # pymteval lowercases token by token (case_sensitive=False)


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _max_ref_counts(refs: list[list[str]], n: int) -> Counter:
    merged = Counter()
    for ref in refs:
        merged |= _ngrams(ref, n)  # per n-gram: its largest count in any one reference
    return merged


# ---------------------------------------------------------------------------------------------
# E2E BLEU and NIST (e2e-metrics -p)


def _pymteval_bleu(hyps: list[list[str]], refs: list[list[list[str]]], max_n: int = 4) -> float:
    hits, totals, ref_len = [0] * max_n, [0] * max_n, 0
    for hyp, rs in zip(hyps, refs):
        for n in range(1, max_n + 1):
            ref_counts = _max_ref_counts(rs, n)
            hits[n - 1] += sum(min(c, ref_counts[g]) for g, c in _ngrams(hyp, n).items())
            totals[n - 1] += len(hyp) - n + 1  # as pymteval: negative for outputs shorter than n-1
        # the reference closest in length; on a tie the shorter one
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in rs)[1]
    bp = 1.0 if totals[0] > ref_len else math.exp(1.0 - ref_len / (totals[0] or 1e-5))
    # zero counts are floored (1e-15 hits, 1e-9 n-grams) so that BLEU stays defined
    log_precision = sum(math.log(max(h, 1e-15) / max(t, 1e-9)) for h, t in zip(hits, totals))
    return bp * math.exp(log_precision / max_n)


def _pymteval_nist(hyps: list[list[str]], refs: list[list[list[str]]], max_n: int = 5) -> float:
    ref_counts: Counter = Counter()  # every n-gram of every reference; () counts reference words
    seg_hits = []  # per output, per n: clipped hit counts
    totals, avg_ref_len = [0] * max_n, 0.0
    for hyp, rs in zip(hyps, refs):
        per_n = []
        for n in range(1, max_n + 1):
            merged = _max_ref_counts(rs, n)
            per_n.append({g: min(c, merged[g]) for g, c in _ngrams(hyp, n).items() if merged[g]})
            totals[n - 1] += len(hyp) - n + 1
            for r in rs:
                ref_counts.update(_ngrams(r, n))
        seg_hits.append(per_n)
        ref_counts[()] += sum(len(r) for r in rs)
        # pymteval's variable-reference-count NIST: average reference length per segment
        avg_ref_len += sum(len(r) for r in rs) / len(rs)

    def info(gram: tuple) -> float:  # NIST information weight, from the whole reference set
        return math.log(ref_counts[gram[:-1]] / ref_counts[gram], 2)

    score = 0.0
    for n in range(max_n):
        gained = sum(sum(info(g) * c for g, c in per_n[n].items()) for per_n in seg_hits)
        score += gained / totals[n] if totals[n] else 0.0
    ratio = totals[0] / avg_ref_len
    beta = -math.log(0.5) / math.log(1.5) ** 2  # penalty 0.5 at 2/3 of the reference length
    penalty = 1.0 if ratio >= 1 else 0.0 if ratio <= 0 else math.exp(-beta * math.log(ratio) ** 2)
    return penalty * score


# ---------------------------------------------------------------------------------------------
# E2E: Stanford PTB tokenizer and Meteor, as the COCO caption code calls them

# Tokens the COCO code drops after PTB tokenization (its -lowerCase output keeps "-lrb-" etc.).
_COCO_PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
                     "...", ";"}
# The COCO code replaces only "\n"; the tokenizer also breaks lines at these, which would shift every
# later caption onto the wrong output, so they become spaces too.
_LINE_BREAKS = re.compile(r"[\n\r\v\f\u2028\u2029]")


def _ptb_tokenize(texts: list[str], jar: Path) -> list[str]:
    if not texts:
        return []
    with tempfile.TemporaryDirectory(prefix="harness-ptb-") as tmp:
        path = Path(tmp) / "captions.txt"
        path.write_text("\n".join(_LINE_BREAKS.sub(" ", t) for t in texts), encoding="utf-8")
        cmd = ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase",
               str(path)]
        proc = subprocess.run(cmd, capture_output=True, cwd=jar.parent)
    if proc.returncode:
        raise _java_failed("the Stanford PTBTokenizer (java)", proc.stderr.decode("utf-8", "replace"))
    lines = proc.stdout.decode("utf-8").split("\n")
    if len(lines) > len(texts) and any(line.strip() for line in lines[len(texts):]):
        raise HarnessError(f"the PTB tokenizer returned {len(lines)} lines for {len(texts)} texts.")
    lines += [""] * (len(texts) - len(lines))  # it drops a trailing empty line
    return [" ".join(w for w in line.rstrip().split(" ") if w not in _COCO_PUNCTUATION) for line in lines[:len(texts)]]


def _meteor_stdio(hyps: list[str], refs: list[list[str]], jar: Path) -> float:
    """The COCO caption code's Meteor call: its clean-up of each hypothesis, then the corpus score."""
    return meteor_corpus([hyp.replace("|||", "").replace("  ", " ") for hyp in hyps], refs, jar)


def meteor_corpus(hyps: list[str], refs: list[list[str]], jar: Path) -> float:
    """Corpus Meteor 1.5 (``-l en -norm``): each segment's statistics (SCORE), then the score of their sum
    (EVAL), as Meteor computes its "Final score" on files, from the process this Python process keeps."""
    for attempt in (1, 2):
        server = _meteor_server(jar)
        try:
            return server.corpus_score(hyps, refs)
        except (OSError, ValueError, IndexError) as err:
            detail = server.error_output()  # before close_meteor closes its file
            close_meteor()
            # A kept process that has since died (killed, out of memory) is started anew, once; an error
            # answer (or a second death) is Meteor's own failure.
            if not isinstance(err, BrokenPipeError) or attempt == 2:
                raise _java_failed("Meteor 1.5 (java)", detail) from None
    raise AssertionError("unreachable")


class _MeteorServer:
    """Meteor 1.5 in ``-stdio`` mode, kept running for the life of this Python process: starting it (a
    JVM, then the paraphrase table) takes about 10 s, and a WebNLG evaluation scores three category
    sets at every epoch; the SCORE/EVAL protocol is stateless between corpora. ``close_meteor`` (also at
    exit) stops it."""

    def __init__(self, jar: Path):
        import threading

        self.jar, self.pid, self.lock = jar, os.getpid(), threading.Lock()
        self.err = tempfile.TemporaryFile()
        cmd = ["java", "-Xmx2G", "-jar", str(jar), "-", "-", "-stdio", "-l", "en", "-norm"]
        self.proc = subprocess.Popen(cmd, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err)

    def _ask(self, line: str) -> str:
        self.proc.stdin.write((line + "\n").encode("utf-8"))
        self.proc.stdin.flush()
        return self._answer()

    def _answer(self) -> str:
        answer = self.proc.stdout.readline()
        if not answer:
            raise BrokenPipeError("Meteor closed its output")
        return answer.decode("utf-8").strip()

    def corpus_score(self, hyps: list[str], refs: list[list[str]]) -> float:
        with self.lock:
            stats = [self._ask(" ||| ".join(("SCORE", " ||| ".join(rs), hyp))) for hyp, rs in zip(hyps, refs)]
            self._ask(" ||| ".join(["EVAL", *stats]))  # the first answer is segment 1's score
            answers = [self._answer() for _ in range(len(stats))]
            return float(answers[-1])  # after the segment scores: the corpus score

    def error_output(self) -> str:
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # Meteor exits at the end of its input
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.err.close()


_METEOR: dict[Path, _MeteorServer] = {}


def _meteor_server(jar: Path) -> _MeteorServer:
    server = _METEOR.get(jar)
    if server is None or server.pid != os.getpid():  # a forked child must not share its parent's pipes
        server = _METEOR[jar] = _MeteorServer(jar)
    return server


def close_meteor() -> None:
    """Stop the Meteor process this Python process keeps (the next score starts another)."""
    while _METEOR:
        _, server = _METEOR.popitem()
        if server.pid == os.getpid():
            server.close()


atexit.register(close_meteor)


# ---------------------------------------------------------------------------------------------
# WebNLG / DART (GenerationEval eval.py)

# nltk.word_tokenize on webnlg_normalize'd text, where every token is a \w run or one symbol: its
# only changes there are '"' -> '``' (a quote after a space opens) and these contractions.
_NLTK_SPLITS = {"cannot": "can not", "gimme": "gim me", "gonna": "gon na", "gotta": "got ta", "lemme": "lem me",
                "wanna": "wan na"}


def _nltk_word_tokenize(normalized: str) -> str:
    return " ".join("``" if t == '"' else _NLTK_SPLITS.get(t, t) for t in normalized.split())


def _sentence_ter(hyps: list[str], refs: list[list[str]]) -> float:
    """TER per sentence (pyter), the best reference's, averaged over sentences: not corpus TER.

    Not sacrebleu's TER: its corpus score divides summed edits by summed reference lengths, and even
    per sentence its tercom shift search finds other edits than pyter's greedy one (either may be
    lower; tests/test_nlg_metrics.py shows both on a fixture sentence)."""
    try:
        import pyter
    except ImportError:
        raise HarnessError("TER needs the pyter3 package (module pyter): pip install pyter3") from None
    best = []
    for hyp, rs in zip(hyps, refs):
        # eval.py scores an empty reference (or a pyter failure) as 1
        best.append(min(pyter.ter(hyp.split(), r.split()) if r.split() else 1.0 for r in rs))
    return sum(best) / len(best) if best else 0.0


# ---------------------------------------------------------------------------------------------
# sacrebleu's BLEU / chrF as per-sentence sufficient statistics, for `harness check`'s bootstrap
#
# sacrebleu's own paired bootstrap (sacrebleu.significance) sums per-sentence statistics over
# resampled indices and rescores the sums; harness.report.stats does the same with count weights.
# These helpers give the statistics and the vectorised score so a MetricSpec can carry them.

def sacrebleu_metric(name: str = "bleu", **kwargs):
    """A sacrebleu metric object (``BLEU``, ``CHRF`` or ``TER``) built with ``kwargs``."""
    try:
        import sacrebleu
    except ImportError:
        raise HarnessError("sacrebleu BLEU/chrF needs the sacrebleu package: pip install sacrebleu") from None
    classes = {"bleu": sacrebleu.BLEU, "chrf": sacrebleu.CHRF, "ter": sacrebleu.TER}
    if name.lower() not in classes:
        raise unknown_choice("sacrebleu metric", name, classes)
    return classes[name.lower()](**kwargs)


def _streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's reference streams (stream j = every hypothesis' j-th reference) from per-hypothesis
    lists of any length, padded with None (sacrebleu's "no reference here")."""
    return [[rs[j] if j < len(rs) else None for rs in refs] for j in range(max(map(len, refs)))]


def _sacrebleu_corpus(name: str, hyps: list[str], refs: list[list[str]], **kwargs) -> float:
    """sacrebleu's corpus score (BLEU and chrF on sacrebleu's 0-100 scale)."""
    return float(sacrebleu_metric(name, **kwargs).corpus_score(hyps, _streams(refs)).score)


def sacrebleu_stats(hypotheses: Sequence[str], references: Sequence[Sequence[str]], metric=None) -> np.ndarray:
    """Per-sentence sacrebleu statistics, (n_hypotheses, k) floats (BLEU: sys_len, ref_len, correct_1..4,
    total_1..4).

    ``references[i]`` are hypothesis i's references (any number, as in ``score_e2e``); sacrebleu's
    reference streams are built from them, padded with None (sacrebleu's "no reference here").
    """
    metric = sacrebleu_metric() if metric is None else metric
    hyps = list(hypotheses)
    if not hyps:
        raise HarnessError("no hypotheses to score.")
    refs = _check_refs(hyps, references)
    return np.asarray(metric._extract_corpus_statistics(hyps, _streams(refs)), dtype=np.float64)


def sacrebleu_from_stats(metric=None) -> Callable[[np.ndarray], np.ndarray]:
    """Scores from summed statistics (..., k) -> (...), as ``metric._compute_score_from_stats``.

    BLEU with 'exp' (sacrebleu's default) or 'none' smoothing is vectorised; any other metric or
    setting calls sacrebleu on each row (slower, same numbers).
    """
    metric = sacrebleu_metric() if metric is None else metric
    if type(metric).__name__ == "BLEU" and metric.smooth_method in ("exp", "none") and not metric.effective_order:
        return functools.partial(_bleu_from_stats, order=metric.max_ngram_order, smooth=metric.smooth_method)

    def rowwise(stats: np.ndarray) -> np.ndarray:
        stats = np.asarray(stats, dtype=np.float64)
        flat = stats.reshape(-1, stats.shape[-1])
        scores = [metric._compute_score_from_stats(list(row)).score for row in flat]
        return np.asarray(scores, dtype=np.float64).reshape(stats.shape[:-1])

    return rowwise


def _bleu_from_stats(stats, order: int = 4, smooth: str = "exp") -> np.ndarray:
    """sacrebleu's ``BLEU.compute_bleu`` (corpus: no effective order), vectorised over leading axes."""
    stats = np.asarray(stats, dtype=np.float64)
    sys_len, ref_len = stats[..., 0], stats[..., 1]
    correct, total = stats[..., 2:2 + order], stats[..., 2 + order:2 + 2 * order]
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(sys_len < ref_len, np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0), 1.0)
        # sacrebleu stops at the first order with no n-grams (precision 0 from there on), and 'exp'
        # smoothing halves the credit of each zero-match order: precision 100 / (2^j * total).
        counted = np.cumprod(total > 0, axis=-1).astype(bool)
        zero = counted & (correct == 0)
        halvings = np.cumsum(zero, axis=-1)
        smoothed = 100.0 / (2.0**halvings * total) if smooth == "exp" else np.zeros_like(total)
        precision = np.where(counted, np.where(correct > 0, 100.0 * correct / total, smoothed), 0.0)
        logs = np.where(precision > 0, np.log(precision), -9999999999.0)  # sacrebleu's my_log
    score = bp * np.exp(logs.sum(-1) / order)
    return np.where(correct.any(-1), score, 0.0)


def sacrebleu_spec(name: str = "bleu", **kwargs):
    """A MetricSpec for sacrebleu's ``name`` with per-sentence statistics: predictions are hypothesis
    strings, labels are each hypothesis' list of references. Built per call, not registered: the
    paper's BLEU (``score_e2e``: pymteval; ``score_webnlg``: sacrebleu without smoothing on
    normalized text) is the "bleu" metric.
    """
    from harness.metrics import MetricSpec  # here, not at the top: harness.metrics may import this module

    metric = sacrebleu_metric(name, **kwargs)
    key = name.lower()
    label = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}[key] + " (sacrebleu)"
    return MetricSpec(f"sacrebleu_{key}", label, higher_is_better=key != "ter", scale=1.0, decimals=2,
                      aggregate="mean", margin=0.5, stats=functools.partial(sacrebleu_stats, metric=metric),
                      from_stats=sacrebleu_from_stats(metric), bounds=(0.0, None if key == "ter" else 100.0))


SCORERS = {"e2e": score_e2e, "webnlg": score_webnlg}  # a generation task's `scorer:`


def get_scorer(name: str):
    """A generation task's scorer: 'e2e' (e2e-metrics), 'webnlg' (the WebNLG challenge script), or
    ``pkg.module:fn`` / ``file.py:fn`` taking (hypotheses, references, metrics=...) -> {metric: value}."""
    from harness.errors import unknown_choice
    from harness.registry import is_import_ref, load_object

    if name in SCORERS:
        return SCORERS[name]
    if is_import_ref(name):
        return load_object(name, "scorer")
    raise unknown_choice("scorer", name, SCORERS, "Or name your own as pkg.module:fn.")
