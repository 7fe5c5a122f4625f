"""User-facing errors: one line, exit code 2, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """An error caused by the user's input or environment, reported as one line.

    The CLI prints ``harness: error: <message>`` and exits with ``exit_code``.
    """

    exit_code = 2


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid choice most similar to ``name``, or None if nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_choice(kind: str, name: str, choices: Iterable[str], hint: str = "") -> HarnessError:
    """Build the standard 'unknown X' error: suggestion first, then every valid choice."""
    choices = sorted(choices)
    guess = closest(name, choices)
    suggestion = f" Did you mean '{guess}'?" if guess else ""
    tail = f" {hint}" if hint else ""
    return HarnessError(f"unknown {kind} '{name}'.{suggestion} Valid choices: {', '.join(choices)}.{tail}")


def check_keys(keys: Iterable, valid: Iterable[str], where: str) -> None:
    """Raise the standard one-line error for the first key of a mapping that is not in ``valid``."""
    valid = set(valid)
    for key in keys:
        if key not in valid:
            guess = closest(str(key), valid)
            suggestion = f" Did you mean {guess!r}?" if guess else ""
            raise HarnessError(f"{where}: unknown key '{key}'.{suggestion} Valid keys: {', '.join(sorted(valid))}.")


def error_line(err: BaseException, limit: int = 200) -> str:
    """'Type: first line of the message' (at most ``limit`` characters of it): a failure shown in a
    table cell or a report instead of a blank."""
    text = str(err)
    return f"{type(err).__name__}: {text.splitlines()[0][:limit] if text else ''}"
