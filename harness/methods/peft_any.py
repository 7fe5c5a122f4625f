"""Any method peft ships, by name (`peft:IA3`, `peft:LORA`, `peft:DORA`, ...) or from a saved
`adapter_config.json`. Settings: `--method-option key=value` style keys via method_options/YAML.
This is how a new peft method is checked against the paper's LoRA on the same loop."""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

from harness.errors import HarnessError, unknown_choice
from harness.methods.base import MethodSpec

# Names accepted after 'peft:' besides peft's PeftType values: LoRA variants that are LoRA configs
# (DoRA: use_dora; EVA: a data-driven init) or LoRA with another optimizer (LoRA+).
ALIASES = {"DORA": ("LORA", {"use_dora": True}), "EVA": ("LORA", {"init_lora_weights": "eva"}),
           "LORAPLUS": ("LORA", {})}
# Options that are not peft config fields: the training hooks below read them.
HOOK_OPTIONS = {"LORAPLUS": {"loraplus_lr_ratio": 16.0}}


def _loraplus_optimizer(model, learning_rate, weight_decay, options):
    """LoRA+: B's learning rate is loraplus_lr_ratio x A's (peft's optimizer factory)."""
    import torch
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(model, torch.optim.AdamW, lr=learning_rate, weight_decay=weight_decay,
                                     loraplus_lr_ratio=float(options.get("loraplus_lr_ratio", 16.0)))


def _eva_init(model, batches, total_steps, options):
    """EVA: initialise LoRA's A from the SVD of the layer inputs on the first training batches."""
    from peft import initialize_lora_eva_weights

    class Plain:  # plain dicts; class labels (one per row) are no token mask: left out
        def __len__(self):
            return len(batches)

        def __iter__(self):
            for batch in batches:
                batch = dict(batch)
                if batch.get("labels") is not None and batch["labels"].ndim < 2:
                    batch.pop("labels")
                yield batch

    initialize_lora_eva_weights(model, Plain(), show_progress_bar=False)


def _adalora_schedule(model, batches, total_steps, options):
    """AdaLoRA's rank budget schedule needs the run's step count (known once the data is batched)."""
    if "total_step" not in options:
        model.peft_config["default"].total_step = total_steps
        allocator = getattr(model.base_model, "rankallocator", None)
        if allocator is not None:
            allocator.set_total_step(total_steps)


def _adalora_step(model, step, options):
    model.base_model.update_and_allocate(step)


# Tuners whose forward needs task ids (one prompt or skill mix per task); a run trains one task: id 0.
TASK_IDS = ("MULTITASK_PROMPT_TUNING", "POLY")


def _suite_forward(self, input_ids=None, attention_mask=None, past_key_values=None, task_ids=None, **kwargs):
    """The forward of peft models that need more than peft's own on the harness's loop: task ids for
    the tuners that need them, and a KV cache for prompt learning.

    peft's prompt learning (prompt tuning, p-tuning, prefix tuning, ...) adds its virtual tokens at
    every forward call: right for training and a full-sequence pass, wrong for a decoder stepping with
    a KV cache, which would see them again at every step (and prefix tuning would replace the cache).
    Given a cache, this forward puts the virtual tokens into it once, on the first call, and later
    calls find them there: the mask is widened and the positions shifted by their number, as in the
    full pass. Calls without a cache go to peft's forward unchanged. Bound to the model as its
    ``forward`` (a bound method, so a deep copy of the model binds to the copy)."""
    import torch

    config = self.active_peft_config
    if task_ids is None and config.peft_type in TASK_IDS:
        rows = input_ids if input_ids is not None else kwargs["inputs_embeds"]
        task_ids = torch.zeros(len(rows), dtype=torch.long, device=rows.device)
    cached = past_key_values is not None and hasattr(past_key_values, "get_seq_length") and input_ids is not None
    if not (config.is_prompt_learning and cached):
        extra = {} if past_key_values is None else {"past_key_values": past_key_values}
        return type(self).forward(self, input_ids=input_ids, attention_mask=attention_mask, task_ids=task_ids,
                                  **extra, **kwargs)
    n = config.num_virtual_tokens
    (batch, length), seen = input_ids.shape, past_key_values.get_seq_length()
    if attention_mask is None:  # the cache's own positions (virtual ones aside) and the new ones
        attention_mask = torch.ones(batch, max(seen - n, 0) + length, dtype=torch.long, device=input_ids.device)
    positions = kwargs.pop("position_ids", None)
    if positions is None:
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -length:]
    mask = torch.cat([attention_mask.new_ones(batch, n), attention_mask], dim=1)
    base = self.get_base_model()
    if seen == 0:
        if config.peft_type in ("PREFIX_TUNING", "CARTRIDGE"):  # a key and a value per layer
            for index, layer in enumerate(self.get_prompt(batch).layers):
                past_key_values.update(layer.keys, layer.values, index)
        else:  # embeddings in front of the input's
            words = self.word_embeddings(input_ids)
            embeds = torch.cat([self.get_prompt(batch_size=batch, task_ids=task_ids).to(words.dtype), words], 1)
            virtual = torch.arange(n, device=positions.device).expand(batch, n)
            return base(inputs_embeds=embeds, attention_mask=mask, past_key_values=past_key_values,
                        position_ids=torch.cat([virtual, positions + n], 1), **kwargs)
    return base(input_ids=input_ids, attention_mask=mask, past_key_values=past_key_values,
                position_ids=positions + n, **kwargs)


def _on_the_loop(model):
    """A peft model as the harness's loop and decoder call it: the forward above where peft's own needs
    more (prompt learning, task ids); every other tuner as peft built it."""
    config = model.active_peft_config
    if config.is_prompt_learning or config.peft_type in TASK_IDS:
        model.forward = types.MethodType(_suite_forward, model)
    return model


def _load(base_model, folder, options, head_modules):
    """A saved peft adapter on its base model, ready for the loop like a freshly applied one."""
    from peft import PeftModel

    return _on_the_loop(PeftModel.from_pretrained(base_model, folder))


def _merge(model):
    """Fold the update into the weights where the tuner can (peft's merge_and_unload); else an error."""
    if not hasattr(model, "merge_and_unload"):
        raise HarnessError(f"{type(model).__name__} cannot be merged.")
    return model.merge_and_unload()


# Tuners whose layers act on each token on its own (--padding-free may pack a batch's real tokens):
# each gives the padded model's outputs packed, on tiny-bert (tests/test_padding_free.py). Not here:
# POLY and MULTITASK_PROMPT_TUNING (per-example task ids), LILY (differs packed), the prefix and cache
# tuners, and those that do not run on encoders.
TOKEN_WISE = frozenset({
    "LORA", "ADALORA", "ADAMSS", "BOFT", "IA3", "BEFT", "LOHA", "LOKR", "OFT", "VERA", "FROD", "PVERA", "FOURIERFT",
    "GLORA", "HRA", "UNILORA", "RANDLORA", "HIRA", "OSF", "DELORA", "GRALORA", "TINYLORA", "PSOFT", "PEANUT",
    "SUPERTUNING", "DEFT", "LN_TUNING", "VBLORA", "MISS", "ROAD", "SHIRA", "C3A", "WAVEFT", "PROMPT_TUNING",
    "P_TUNING"})

HOOKS = {"LORAPLUS": {"optimizer": _loraplus_optimizer}, "EVA": {"before_training": _eva_init},
         "ADALORA": {"before_training": _adalora_schedule, "after_step": _adalora_step}}


def peft_task_type(model):
    """peft's task type for a transformers model: causal LM or sequence classification."""
    from peft import TaskType

    name = type(model).__name__
    return TaskType.CAUSAL_LM if name.endswith(("ForCausalLM", "LMHeadModel")) else TaskType.SEQ_CLS


def peft_types() -> list[str]:
    """Every tuner the installed peft offers, as accepted after 'peft:' (aliases included)."""
    return [*_peft_types(), *ALIASES]


def _peft_types() -> list[str]:
    from peft import PeftType

    return [t.value for t in PeftType]


def peft_method(name: str) -> MethodSpec:
    if name.endswith(".json"):
        path = Path(name)
        if not path.is_file():
            raise HarnessError(f"peft config '{name}' does not exist.")
        try:
            base = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise HarnessError(f"{name}:{err.lineno}: invalid JSON ({err.msg}).") from None
        peft_type, fixed = base.pop("peft_type", None), base
        alias = peft_type
        if peft_type is None:
            raise HarnessError(f"{name}: no 'peft_type' key; is this a peft adapter_config.json?")
    else:
        alias = name.removeprefix("peft:").upper()
        peft_type, fixed = ALIASES.get(alias, (alias, {}))
        if peft_type not in _peft_types():
            raise unknown_choice("peft method", name.removeprefix("peft:"), [*_peft_types(), *ALIASES])

    def apply(model, options, head_modules):
        from peft import PEFT_TYPE_TO_CONFIG_MAPPING, get_peft_model

        config_class = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
        settings = {k: v for k, v in {**fixed, **options}.items()
                    if k not in ("task_type", "base_model_name_or_path", "revision", "modules_to_save")
                    and k not in HOOK_OPTIONS.get(alias, {})}
        if peft_type == "ADALORA" and "total_step" not in settings:
            settings["total_step"] = 10**9  # a placeholder: the schedule hook sets the run's step count
        eva = settings.get("eva_config")
        if isinstance(eva, dict) or eva is None and settings.get("init_lora_weights") == "eva":
            from peft import EvaConfig  # EVA's settings (YAML gives a mapping; none: its defaults)

            settings["eva_config"] = EvaConfig(**(eva or {}))
        known = {f.name for f in dataclasses.fields(config_class)}
        # Configs without these fields (X-LoRA, trainable tokens, adaption prompt) do not take them.
        given = {key: value for key, value in (("task_type", peft_task_type(model)),
                                               ("modules_to_save", head_modules or None)) if key in known}
        try:
            config = config_class(**given, **settings)
        except TypeError as err:
            raise HarnessError(f"peft {peft_type}: {err}") from None
        if getattr(config, "token_indices", None) == []:  # peft would fail later, inside index_copy_
            raise HarnessError(f"peft {peft_type}: no token_indices: give the ids of the tokens whose embedding rows "
                               f"to train (method option token_indices: [id, ...]).")
        return _on_the_loop(get_peft_model(model, config))

    # Free-form options: peft validates them when the config is built.
    described = f"peft {peft_type}" + (f" ({alias})" if alias != peft_type else "")
    return MethodSpec(name, described, apply, defaults={"learning_rate": 1e-3}, free_options=True, merge=_merge,
                      load=_load, token_wise=peft_type in TOKEN_WISE, **HOOKS.get(alias, {}))
