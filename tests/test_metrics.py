import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from harness.metrics.classification import accuracy, f1, matthews_corr, pearson, spearman
from harness.tasks import get_task

from conftest import write_csv


@pytest.fixture(params=[0, 1, 2])
def rng(request):
    return np.random.default_rng(request.param)


def test_classification_metrics_match_sklearn(rng):
    labels = rng.integers(0, 2, 500)
    preds = np.where(rng.random(500) < 0.8, labels, 1 - labels)
    assert accuracy(preds, labels) == pytest.approx(sk.accuracy_score(labels, preds))
    assert f1(preds, labels) == pytest.approx(sk.f1_score(labels, preds))
    assert matthews_corr(preds, labels) == pytest.approx(sk.matthews_corrcoef(labels, preds))


def test_multiclass_matthews_matches_sklearn(rng):
    labels = rng.integers(0, 3, 300)
    preds = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 3, 300))
    assert matthews_corr(preds, labels) == pytest.approx(sk.matthews_corrcoef(labels, preds))


def test_degenerate_cases_match_sklearn():
    labels = np.array([0, 1, 1, 0])
    constant = np.ones(4, dtype=int)
    assert matthews_corr(constant, labels) == sk.matthews_corrcoef(labels, constant) == 0.0
    assert f1(np.zeros(4, dtype=int), np.zeros(4, dtype=int)) == 0.0


def test_regression_metrics_match_scipy(rng):
    labels = rng.uniform(0, 5, 400).round(1)  # rounding creates ties, as in STS-B's gold scores
    preds = labels + rng.normal(0, 1, 400)
    preds[:50] = preds[50:100]  # ties in the predictions too
    assert pearson(preds, labels) == pytest.approx(stats.pearsonr(preds, labels)[0])
    assert spearman(preds, labels) == pytest.approx(stats.spearmanr(preds, labels)[0])


def test_task_metrics_use_official_names_and_suffixes(rng):
    mnli = get_task("glue/mnli")
    assert mnli.metric_names() == ["accuracy_m", "accuracy_mm"]
    labels_m, labels_mm = rng.integers(0, 3, 100), rng.integers(0, 3, 80)
    preds_m, preds_mm = labels_m.copy(), rng.integers(0, 3, 80)
    result = {**mnli.compute_metrics(preds_m, labels_m, "m"), **mnli.compute_metrics(preds_mm, labels_mm, "mm")}
    assert result["accuracy_m"] == 1.0
    assert result["accuracy_mm"] == pytest.approx(sk.accuracy_score(labels_mm, preds_mm))

    stsb = get_task("glue/stsb")
    assert (stsb.kind, stsb.num_labels, stsb.main_metric) == ("regression", 1, "pearson")
    labels = rng.uniform(0, 5, 50)
    preds = labels + rng.normal(0, 0.5, 50)
    assert stsb.compute_metrics(preds, labels) == pytest.approx(
        {"pearson": stats.pearsonr(preds, labels)[0], "spearman": stats.spearmanr(preds, labels)[0]})

    assert get_task("glue/mrpc").metric_names() == ["accuracy", "f1"]
    assert get_task("glue/qqp").metric_names() == ["accuracy", "f1"]
    assert get_task("glue/cola").metric_names() == ["matthews_corr"]


# ---------------------------------------------------------------------------------------------
# `evaluate:NAME` metrics in a task YAML (harness.metrics.hf_evaluate)

METRIC_SCRIPT = '''
import datasets
import evaluate


class {cls}(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="share of equal pairs", citation="", inputs_description="",
                                   features=datasets.Features({features}))

    def _compute(self, predictions, references):
        same = [p in r if isinstance(r, list) else p == r for p, r in zip(predictions, references)]
        return {{"{name}": sum(same) / len(same), "n": "not a number"}}
'''
INT_FEATURES = '{"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}'
TEXT_FEATURES = '{"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}'


def metric_folder(tmp_path, name, features):
    """A metric script the way evaluate stores one: <folder>/<name>/<name>.py (no hub needed)."""
    folder = tmp_path / name
    folder.mkdir()
    cls = "".join(part.title() for part in name.split("_"))
    (folder / f"{name}.py").write_text(METRIC_SCRIPT.format(cls=cls, name=name, features=features))
    return folder


def test_an_evaluate_metric_in_a_task_yaml_is_loaded_on_first_use(tmp_path, monkeypatch):
    pytest.importorskip("evaluate")
    from harness.metrics import fallback_spec, get_metric
    from harness.metrics import hf_evaluate

    folder = metric_folder(tmp_path, "same_label", INT_FEATURES)
    (tmp_path / "t.yaml").write_text(f"task: t\ndataset: a/b\nlabels: [neg, pos]\nmetrics: [evaluate:{folder}]\n")
    loads = []
    real_load = hf_evaluate.load
    monkeypatch.setattr(hf_evaluate, "load", lambda name: loads.append(name) or real_load(name))
    task = get_task(str(tmp_path / "t.yaml"))  # declaring the task loads nothing
    assert loads == [] and task.main_metric == f"evaluate:{folder}"
    spec = task.main_spec
    assert (spec.label, spec.scale, spec.higher_is_better) == ("same_label", 1.0, True)
    assert fallback_spec(f"evaluate:{folder}") is spec is get_metric(f"evaluate:{folder}")  # reports: same spec
    preds, labels = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    assert task.compute_metrics(preds, labels) == {f"evaluate:{folder}": 0.75}
    assert task.compute_metrics(preds, preds) == {f"evaluate:{folder}": 1.0}
    assert loads == [str(folder)]  # once


def test_an_evaluate_metric_scores_generated_text_beside_the_scorer(tmp_path):
    pytest.importorskip("evaluate")
    from harness.tasks.base import GenerationExample

    folder = metric_folder(tmp_path, "in_refs", TEXT_FEATURES)
    write_csv(tmp_path / "d.csv", [{"mr": "a", "ref": "x"}])
    (tmp_path / "g.yaml").write_text(
        "task: g\ntype: generation\nfiles: {train: d.csv, dev: d.csv, test: d.csv}\nsource_column: mr\n"
        f"target_column: ref\nscorer: e2e\nmetrics: [bleu, evaluate:{folder}]\n")
    task = get_task(str(tmp_path / "g.yaml"))
    examples = [GenerationExample("a", ("The Mill is a pub.", "A pub: The Mill.")), GenerationExample("b", ("Zizzi.",))]
    scores = task.score(["The Mill is a pub.", "Aromi."], examples)
    assert list(scores) == ["bleu", f"evaluate:{folder}"] and scores[f"evaluate:{folder}"] == 0.5


def test_evaluate_metric_errors_are_one_line(tmp_path, monkeypatch):
    from harness.errors import HarnessError
    from harness.metrics import evaluate_spec

    pytest.importorskip("evaluate")
    from evaluate import config

    monkeypatch.setattr(config, "HF_EVALUATE_OFFLINE", True)  # never wait for the hub
    monkeypatch.chdir(tmp_path)  # evaluate first looks for ./<name>/<name>.py
    with pytest.raises(HarnessError) as err:
        evaluate_spec("evaluate:no_such_metric_anywhere").fn([1], [1])
    message = str(err.value)
    assert "\n" not in message and "is not in the local evaluate cache" in message and "hub reachable" in message
    folder = metric_folder(tmp_path, "two_values", INT_FEATURES)
    script = (folder / "two_values.py").read_text()
    (folder / "two_values.py").write_text(script.replace('"two_values": sum', '"share": sum').replace(
        '"not a number"', "len(same)"))  # two numbers, neither named like the metric
    with pytest.raises(HarnessError, match=r"returned \['n', 'share'\], not one number"):
        evaluate_spec(f"evaluate:{folder}").fn([1], [1])


def test_evaluate_not_installed_is_one_line(monkeypatch):
    import sys

    from harness.errors import HarnessError
    from harness.metrics import evaluate_spec

    monkeypatch.setitem(sys.modules, "evaluate", None)  # `import evaluate` fails: not installed
    with pytest.raises(HarnessError, match=r"needs the evaluate package: pip install 'lora-harness\[evaluate\]'"):
        evaluate_spec("evaluate:exact_match_missing").fn([1], [1])


def test_a_metric_spec_named_by_import_path(tmp_path, monkeypatch):
    from harness.metrics import MetricSpec, get_metric

    (tmp_path / "my_metrics.py").write_text(
        "from harness.metrics import MetricSpec\n"
        "error_rate = MetricSpec('error_rate', 'error', lambda p, l: float((p != l).mean()), higher_is_better=False)\n")
    spec = get_metric(f"{tmp_path / 'my_metrics.py'}:error_rate")
    assert isinstance(spec, MetricSpec) and spec.fn(np.array([0, 1]), np.array([1, 1])) == 0.5
