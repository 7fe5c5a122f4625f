"""LoRA (Hu et al. 2021) through peft. Defaults are the paper's RoBERTa setting: r=8, alpha=8 on
the query and value projections; target modules default to peft's per-architecture choice
(q,v for BERT/RoBERTa/DeBERTa/Llama; the fused c_attn for GPT-2)."""

from harness.methods import METHODS, MethodSpec, Option, comma_list


def apply_lora(model, options, head_modules):
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=options["r"],
        lora_alpha=options["alpha"],
        lora_dropout=options["dropout"],
        target_modules=options["target_modules"],
        bias="none",
        # The head (and BERT's pooler) is new for the task: it trains and is saved with the adapter.
        modules_to_save=head_modules,
    )
    return get_peft_model(model, config)


METHODS.add("lora", MethodSpec(
    "lora", "LoRA via peft (paper default r=8, alpha=8, query+value)", apply_lora,
    options={
        "r": Option(int, 8, "rank of the update", positive=True),
        "alpha": Option(float, 8.0, "scaling numerator: the update is scaled by alpha/r", positive=True),
        "dropout": Option(float, 0.0, "dropout on the LoRA input"),
        "target_modules": Option(comma_list, None, "comma-separated module names (default: peft's per-architecture q,v)"),
    },
    defaults={"learning_rate": 5e-4},
))
