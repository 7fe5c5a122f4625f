"""`harness params`: every parameter-count cell of the paper's tables, exact and as printed."""

import pytest

from harness.report.paper_params import paper_param_table, rounded_like
from harness.report.render import render

ROWS = paper_param_table()


def cell(table, model, method, setting=""):
    matches = [r for r in ROWS if r["table"] == table and r["model"] == model and r["method"] == method
               and setting in r["harness method"]]
    assert len(matches) == 1, (table, model, method, setting, matches)
    return matches[0]


@pytest.mark.parametrize("table,model,method,setting,exact,printed", [
    ("2", "roberta-base", "LoRA", "", "294,912", "0.3M"),
    ("2", "roberta-base", "BitFit*", "", "102,144", "0.1M"),
    ("2", "roberta-large", "LoRA", "", "786,432", "0.8M"),
    ("2", "roberta-large", "AdptP†", "r=16", "811,392", "0.8M"),
    ("2", "roberta-large", "AdptH†", "r=8", "835,968", "0.8M"),
    ("2", "deberta-v2-xxlarge", "LoRA", "", "4,718,592", "4.7M"),
    ("3", "gpt2-medium", "AdapterL*", "r=6", "368,784", "0.37M"),
    ("3", "gpt2-medium", "AdapterL*", "r=224", "11,089,152", "11.09M"),
    ("3", "gpt2-medium", "FTTop2*", "", "25,192,448", "25.19M"),
    ("3", "gpt2-large", "FT*", "", "774,030,080", "774.03M"),
    ("3", "gpt2-large", "AdapterL", "r=8", "875,808", "0.88M"),
    ("3", "gpt2-large", "AdapterL", "r=248", "23,002,848", "23.00M"),
])
def test_cells_that_agree_at_the_papers_precision(table, model, method, setting, exact, printed):
    row = cell(table, model, method, setting)
    assert (row["exact"], row["paper"], row["agrees"]) == (exact, printed, "yes")


@pytest.mark.parametrize("table,model,method,setting,exact,printed,reason", [
    ("2", "roberta-large", "AdptP†", "r=64", "3,171,840", "3.0M", "rounded down"),
    ("2", "roberta-large", "AdptH†", "r=64", "6,343,680", "6.0M", "rounded down"),
    ("3", "gpt2-medium", "AdapterH", "r=112", "11,064,576", "11.09M", "no whole r"),
    ("3", "gpt2-medium", "FT*", "", "354,823,168", "354.92M", "Li & Liang"),
    ("3", "gpt2-medium", "LoRA", "", "393,216", "0.35M", "0.1% of the model"),
    ("3", "gpt2-large", "LoRA", "", "737,280", "0.77M", "0.1% of the model"),
    ("3", "gpt2-medium", "PreLayer*", "", "344,064", "0.35M", "no whole n"),
    ("2", "roberta-base", "FT*", "", "124,055,040", "125.0M", "quoted from prior work"),
    ("2", "deberta-v2-xxlarge", "FT*", "", "1,557,467,136", "1500.0M", "quoted from prior work"),
])
def test_disagreements_are_flagged_and_explained(table, model, method, setting, exact, printed, reason):
    row = cell(table, model, method, setting)
    assert (row["exact"], row["paper"], row["agrees"]) == (exact, printed, "NO")
    assert reason in row["note"]


def test_every_table_is_covered():
    assert {r["table"] for r in ROWS} == {"2", "3", "13", "14"}
    assert len([r for r in ROWS if r["table"] == "2"]) == 14  # every Table 2 row
    assert len([r for r in ROWS if r["table"] == "3"]) == 12  # every Table 3 row


def test_rounding_follows_the_printed_precision():
    assert rounded_like(393_216, "0.35M") == "0.39M"
    assert rounded_like(294_912, "0.3M") == "0.3M"
    assert rounded_like(354_823_168, "354M") == "355M"


@pytest.mark.parametrize("fmt,marker", [("markdown", "| table |"), ("latex", r"\begin{tabular}"),
                                        ("csv", "table,model,method"), ("text", "-----")])
def test_formats(fmt, marker):
    text = render(ROWS[:3], ["table", "model", "method", "exact"], fmt)
    assert marker in text and "124,055,040" in text  # the first row: RoBERTa-base FT
