from collections import Counter

import pytest

from harness.errors import HarnessError
from harness.tasks import TASKS, file_task, get_task, include_task_dirs

from conftest import write_csv

# Row counts and label counts of the GLUE files (GLUE's published sizes; SOURCES.md of the data).
GLUE_COUNTS = {
    ("glue/sst2", "train"): (67349, {1: 37569, 0: 29780}),
    ("glue/sst2", "dev"): (872, {1: 444, 0: 428}),
    ("glue/cola", "train"): (8551, {1: 6023, 0: 2528}),
    ("glue/cola", "dev"): (1043, {1: 721, 0: 322}),
    ("glue/mrpc", "train"): (3668, {1: 2474, 0: 1194}),
    ("glue/mrpc", "dev"): (408, {1: 279, 0: 129}),
    ("glue/rte", "train"): (2490, {0: 1249, 1: 1241}),
    ("glue/rte", "dev"): (277, {0: 146, 1: 131}),
    ("glue/qnli", "dev"): (5463, {1: 2761, 0: 2702}),
}


def test_all_eight_glue_tasks_are_registered():
    include_task_dirs()
    assert {f"glue/{t}" for t in ["mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb"]} <= set(TASKS)


@pytest.mark.parametrize("name,split", list(GLUE_COUNTS))
def test_glue_loads_from_data_dir_with_right_counts_and_labels(data_dir, name, split):
    rows, labels = GLUE_COUNTS[(name, split)]
    loaded = get_task(name).load(split, data_dir)
    assert len(loaded.examples) == rows
    assert Counter(e.label for e in loaded.examples) == labels
    assert all(e.text for e in loaded.examples)


def test_sentence_pair_tasks_keep_both_texts(data_dir):
    first = get_task("glue/mrpc").load("dev", data_dir).examples[0]
    assert first.text.startswith("He said the foodservice pie business")  # the BOM is stripped
    assert first.text_pair.startswith('" The foodservice pie business')


def test_stsb_is_regression_with_scores_in_range(data_dir):
    task = get_task("glue/stsb")
    for split, rows in [("train", 5749), ("dev", 1500)]:
        scores = [e.label for e in task.load(split, data_dir).examples]
        assert len(scores) == rows and min(scores) == 0.0 and max(scores) == 5.0
        assert all(isinstance(s, float) for s in scores)


def test_missing_split_names_the_file_and_the_fix(data_dir):
    with pytest.raises(HarnessError, match=r"QNLI/train\.tsv.*download_glue_data\.py"):
        get_task("glue/qnli").load("train", data_dir)


MNLI_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
               "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]


def test_mnli_reads_matched_and_mismatched_dev_sets(tmp_path):
    folder = tmp_path / "glue" / "MNLI"
    folder.mkdir(parents=True)
    for split, labels in [("dev_matched", ["entailment", "neutral"]), ("dev_mismatched", ["contradiction"] * 3)]:
        lines = ["\t".join(MNLI_HEADER)]
        for i, label in enumerate(labels):
            lines.append("\t".join([str(i), "1", "1", "fiction", "(x)", "(y)", "(x)", "(y)",
                                    f'premise "{i}', f"hypothesis {i}", label, label]))
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = get_task("glue/mnli")
    matched = task.load("dev_matched", tmp_path).examples
    mismatched = task.load("dev_mismatched", tmp_path).examples
    assert [e.label for e in matched] == [0, 1] and [e.label for e in mismatched] == [2, 2, 2]
    assert matched[0].text == 'premise "0'  # quotes are text, not CSV quoting


def write_rte_dev(root, *rows):
    folder = root / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "dev.tsv").write_text("\n".join(["index\tsentence1\tsentence2\tlabel", *rows]) + "\n")


def test_malformed_tsv_row_reports_file_and_line(tmp_path):
    write_rte_dev(tmp_path, "0\ta\tb\tentailment", "1\tonly two")
    with pytest.raises(HarnessError, match=r"RTE/dev\.tsv:3: malformed row"):
        get_task("glue/rte").load("dev", tmp_path)


def test_unknown_label_is_an_error(tmp_path):
    write_rte_dev(tmp_path, "0\ta\tb\tmaybe")
    with pytest.raises(HarnessError, match=r"dev\.tsv:2: label 'maybe' is not one of"):
        get_task("glue/rte").load("dev", tmp_path)


def test_unknown_task_suggests_the_closest():
    with pytest.raises(HarnessError, match=r"unknown task 'glue/sst'.*Did you mean 'glue/sst2'"):
        get_task("glue/sst")


def test_csv_task_infers_labels_from_train_file(sentiment_files):
    train, dev = sentiment_files
    task = file_task(train, dev)
    examples = task.load("train")
    assert task.label_names == ["neg", "pos"] and len(examples.examples) == 512
    assert {e.label for e in task.load("dev").examples} == {0, 1}


def test_csv_task_rejects_eval_labels_outside_the_train_labels(tmp_path):
    train = write_csv(tmp_path / "t.csv", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    dev = write_csv(tmp_path / "d.csv", [{"text": "c", "label": "z"}])
    with pytest.raises(HarnessError, match=r"d\.csv:2: label 'z'"):
        file_task(train, dev).load("dev")


def test_jsonl_pair_regression_task(tmp_path):
    rows = ['{"s1": "a cat", "s2": "a dog", "score": 2.5}', '{"s1": "x", "s2": "y", "score": 0}']
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    task = file_task(tmp_path / "train.jsonl", tmp_path / "train.jsonl", text_column="s1", text_pair_column="s2",
                     label_column="score", kind="regression")
    examples = task.load("train").examples
    assert [(e.text, e.text_pair, e.label) for e in examples] == [("a cat", "a dog", 2.5), ("x", "y", 0.0)]
    assert task.metrics == ["pearson", "spearman"]


def test_missing_column_lists_the_columns(sentiment_files):
    train, dev = sentiment_files
    with pytest.raises(HarnessError, match=r"no column 'sentence' \(columns: text, label\)"):
        file_task(train, dev, text_column="sentence").load("train")


def test_yaml_task_file_is_picked_up_from_an_include_folder(tmp_path, sentiment_files):
    train, dev = sentiment_files
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mine.yaml").write_text(
        f"task: my-sentiment\nfiles: {{train: {train.name}, dev: {dev.name}}}\nlabels: [neg, pos]\n")
    (tmp_path / "tasks" / train.name).write_bytes(train.read_bytes())
    (tmp_path / "tasks" / dev.name).write_bytes(dev.read_bytes())
    task = get_task("my-sentiment", [tmp_path / "tasks"])
    assert task.main_metric == "accuracy" and len(task.load("dev").examples) == 64


def test_yaml_unknown_key_is_an_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("task: x\ndataset: a/b\ntext_colum: sentence\n")
    with pytest.raises(HarnessError, match=r"bad\.yaml: unknown key 'text_colum'. Did you mean 'text_column'"):
        get_task(str(tmp_path / "bad.yaml"))


def test_imdb_is_a_builtin_hub_task():
    task = get_task("imdb")
    assert task.source.dataset == "stanfordnlp/imdb" and task.eval_splits == {"": "test"}


def test_hub_task_offline_gives_a_one_line_error():
    with pytest.raises(HarnessError, match=r"could not load hub:nyu-mll/glue/sst2\[validation\].*--data-dir") as err:
        get_task("glue/sst2").load("dev", None)
    assert "\n" not in str(err.value)


def test_held_out_slice_is_fixed_disjoint_and_leaves_the_rest_to_train():
    from harness.tasks.base import Example, Split, hold_out

    split = Split([Example(str(i), None, i % 2) for i in range(100)], "train.tsv")
    rest, held = hold_out(split, 20, seed=0)
    again, held_again = hold_out(split, 20, seed=0)
    assert len(held.examples) == 20 and len(rest.examples) == 80 and held.examples == held_again.examples
    assert not {e.text for e in held.examples} & {e.text for e in rest.examples}
    assert hold_out(split, 20, seed=1)[1].examples != held.examples
    assert hold_out(split, None, seed=0) == (split, None)
    with pytest.raises(HarnessError, match="leaves nothing to train on"):
        hold_out(split, 100, seed=0)


def test_generation_holds_out_whole_inputs_with_their_references(tmp_path):
    from harness.config import RunConfig
    from harness.tasks.generation import GENERATION

    rows = [{"mr": f"name[{i % 30}]", "ref": f"text {i}"} for i in range(90)]  # 30 inputs, 3 references each
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "test.csv", rows[:6])
    (tmp_path / "gen.yaml").write_text(
        "task: gen\ntype: generation\nfiles: {train: train.csv, dev: train.csv, test: test.csv}\n"
        "source_column: mr\ntarget_column: ref\nscorer: e2e\nmetrics: [bleu]\n")
    task = get_task(str(tmp_path / "gen.yaml"))
    data = GENERATION.load_data(task, RunConfig(task=str(tmp_path / "gen.yaml"), heldout_samples=5, epochs=1))
    held_inputs = {e.source for e in data.evals["loss"].examples}
    assert len(held_inputs) == 5 and len(data.evals["loss"].examples) == 15  # all references of each input
    assert not held_inputs & {e.source for e in data.train.examples}
    assert len(data.train.examples) == 75
    tests = [split for name, split in data.evals.items() if name != "loss"]
    assert len(tests) == 1 and {e.source for e in tests[0].examples} == held_inputs


def test_task_yaml_files_resolve_against_the_data_dir_and_quotes_can_be_text(tmp_path):
    """A committed task YAML can name a file of the shared data (glue/QNLI/dev.tsv) relative to
    --data-dir; `quoting: none` reads GLUE-style TSVs whose sentences contain unbalanced quotes."""
    from harness.errors import HarnessError
    from harness.tasks import task_from_yaml

    data = tmp_path / "data" / "pairs"
    data.mkdir(parents=True)
    (data / "dev.tsv").write_text('q\ts\tlabel\n"What is it?\tA thing.\tyes\nWho?\tNobody "knows.\tno\n')
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "pairs.yaml").write_text("task: pairs\nfiles: {train: pairs/dev.tsv, dev: pairs/dev.tsv}\n"
                                       "text_column: q\ntext_pair_column: s\nquoting: none\n")
    task = task_from_yaml(folder / "pairs.yaml")
    split = task.load("train", tmp_path / "data")
    assert [(e.text, e.text_pair) for e in split.examples] == [('"What is it?', "A thing."), ("Who?", 'Nobody "knows.')]
    assert task.label_names == ["no", "yes"]
    (folder / "quoted.yaml").write_text((folder / "pairs.yaml").read_text().replace("quoting: none", "quoting: csv"))
    with pytest.raises(HarnessError):  # quotes taken as delimiters swallow the rows
        task_from_yaml(folder / "quoted.yaml").load("train", tmp_path / "data")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(HarnessError, match="missing train file pairs/dev.tsv"):
        task_from_yaml(folder / "pairs.yaml").load("train", tmp_path / "elsewhere")
    (folder / "bad.yaml").write_text((folder / "pairs.yaml").read_text().replace("quoting: none", "quoting: tsv"))
    with pytest.raises(HarnessError, match="quoting must be 'csv'"):
        task_from_yaml(folder / "bad.yaml")
