"""Linear probing: the backbone stays frozen and only the task head trains. The floor a method must
clear to show that it adapted the backbone at all (the head alone learns a good part of a task)."""

from harness.methods.base import MethodSpec


def apply_head(model, options, head_modules):
    return model  # nothing to add: no backbone parameter is declared trainable


HEAD = MethodSpec("head", "linear probing: only the task head trains (the floor for every method)", apply_head,
                  defaults={"learning_rate": 1e-3}, trainable=lambda name: False, head_only=True, token_wise=True)
