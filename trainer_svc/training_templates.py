"""Training versions of chat templates that trl 1.16 does not know.

Assistant-only loss needs `{% generation %}` markers around what the assistant says,
its end-of-turn token included, so the model learns to stop. trl swaps in a marked
version of the templates it knows (Phi-3, Qwen, Llama 3, …); SmolLM2's ChatML template
is not among them (`get_training_chat_template` raises ValueError). This module is the
same idea for the templates we ship: `chat_templates/<name>.jinja` is a model's own
template, byte for byte, and `<name>_training.jinja` the marked version.

A marked template is only used after it is shown to render exactly like the original
(`renders_like`): on conversations with and without a system message, several turns,
with and without the generation prompt. So what the model trains on is what vLLM,
which applies the original template, sends it at inference.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES_DIR = Path(__file__).with_name("chat_templates")
KNOWN = ("smollm2",)  # each has <name>.jinja and <name>_training.jinja

# Conversations the two renderings are compared on.
_PROBES: tuple[tuple[list[dict[str, str]], bool], ...] = (
    ([{"role": "user", "content": "Hi there"}], True),
    ([{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}], False),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}], True),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"},
      {"role": "assistant", "content": "6\nDone."}], False),
)


@cache
def _table() -> dict[str, str]:
    """The original template (stripped) -> its training version."""
    return {
        (TEMPLATES_DIR / f"{name}.jinja").read_text().strip(): (TEMPLATES_DIR / f"{name}_training.jinja").read_text()
        for name in KNOWN
    }


def known_training_template(chat_template: str) -> str | None:
    """The marked version of `chat_template` if we ship one, else None."""
    return _table().get(chat_template.strip())


def renders_like(tokenizer: Any, training_template: str) -> bool:
    """True when `training_template` renders every probe conversation exactly like the tokenizer's own."""
    for messages, add_generation_prompt in _PROBES:
        kwargs = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
        original = tokenizer.apply_chat_template(messages, **kwargs)
        marked = tokenizer.apply_chat_template(messages, chat_template=training_template, **kwargs)
        if original != marked:
            return False
    return True
