import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from harness.metrics.classification import accuracy, f1, matthews_corr, pearson, spearman
from harness.tasks import get_task


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
