"""The eight GLUE tasks with their official metrics (Wang et al. 2019; the LoRA paper's Table 2)."""

from __future__ import annotations

from harness.tasks.base import ColumnSpec, Task
from harness.tasks.sources import GlueSource

BINARY = ["0", "1"]
ENTAILMENT = ["entailment", "not_entailment"]
# Label order of nyu-mll/glue's ClassLabel, so hub and TSV class ids agree.
NLI3 = ["entailment", "neutral", "contradiction"]


def _pair(text, pair, label, hub_text, hub_pair, hub_label="label"):
    return ColumnSpec(text, label, pair), ColumnSpec(hub_text, hub_label, hub_pair)


MNLI_DEV_SIZES = {"accuracy_m": 9815, "accuracy_mm": 9832}  # the paper's MNLI number: accuracy over both


def glue_tasks() -> list[Task]:
    def task(name, folder, columns, kind="classification", labels=BINARY, metrics=("accuracy",), main="accuracy",
             header=True, eval_splits=None, hub_splits=None, description="", weights=None):
        tsv_columns, hub_columns = columns
        source = GlueSource(folder, name, tsv_columns, hub_columns, header=header)
        if hub_splits:
            source.hub_splits = hub_splits
        return Task(
            name=f"glue/{name}", kind=kind, metrics=list(metrics), main_metric=main, source=source,
            label_names=None if kind == "regression" else list(labels),
            eval_splits=eval_splits or {"": "dev"}, description=description, label=folder,
            main_score_weights=weights,
        )

    return [
        task("cola", "CoLA", (ColumnSpec(3, 1), ColumnSpec("sentence", "label")), header=False,
             metrics=("matthews_corr",), main="matthews_corr", description="grammatical acceptability, Matthews corr."),
        task("sst2", "SST-2", (ColumnSpec("sentence", "label"), ColumnSpec("sentence", "label")),
             description="movie-review sentiment, accuracy"),
        task("mrpc", "MRPC", _pair("#1 String", "#2 String", "Quality", "sentence1", "sentence2"),
             metrics=("accuracy", "f1"), description="paraphrase, accuracy and F1"),
        task("qqp", "QQP", _pair("question1", "question2", "is_duplicate", "question1", "question2"),
             metrics=("accuracy", "f1"), description="duplicate questions, accuracy and F1"),
        task("stsb", "STS-B", _pair("sentence1", "sentence2", "score", "sentence1", "sentence2"), kind="regression",
             metrics=("pearson", "spearman"), main="pearson", description="similarity 0-5, Pearson and Spearman"),
        task("mnli", "MNLI", _pair("sentence1", "sentence2", "gold_label", "premise", "hypothesis"), labels=NLI3,
             main="accuracy_m", eval_splits={"m": "dev_matched", "mm": "dev_mismatched"},
             hub_splits={"train": "train", "dev_matched": "validation_matched",
                         "dev_mismatched": "validation_mismatched"}, weights=MNLI_DEV_SIZES,
             description="3-way NLI, matched and mismatched accuracy"),
        task("qnli", "QNLI", _pair("question", "sentence", "label", "question", "sentence"), labels=ENTAILMENT,
             description="question-answer entailment, accuracy"),
        task("rte", "RTE", _pair("sentence1", "sentence2", "label", "sentence1", "sentence2"), labels=ENTAILMENT,
             description="textual entailment, accuracy"),
    ]
