"""The one prompt format, shared by the trainer and the serving proxy.

A model is trained and served the same way:
- "chat": the tokenizer has a chat template. Train on `messages` with
  assistant-only loss (the end-of-turn token inside the loss); serve through
  /v1/chat/completions, where vLLM applies the same template.
- "instruction": no chat template. Train on the old app's text
  ("### Instruction:" / "### Response:") with loss on the response and the eos
  token; serve through /v1/completions with the same prompt text.
The adapter's manifest records which one was used; the proxy reads it there.
"""

from __future__ import annotations

from typing import Any, Literal

from synthtune.records import to_chat, to_instruction

PromptFormat = Literal["chat", "instruction"]
PROMPT_FORMATS: tuple[str, ...] = ("chat", "instruction")


def format_for_tokenizer(tokenizer: Any) -> PromptFormat:
    """'chat' when the tokenizer has a chat template, else 'instruction'."""
    return "chat" if getattr(tokenizer, "chat_template", None) else "instruction"


def instruction_prompt(instruction: str, *, input_text: str | None = None, system: str | None = None) -> str:
    """The seed app's prompt text, up to and including the response header."""
    parts = [system.strip() + "\n\n"] if system else []
    parts.append(f"### Instruction:\n{instruction}\n\n")
    if input_text:
        parts.append(f"### Input:\n{input_text}\n\n")
    parts.append("### Response:\n")
    return "".join(parts)


def training_example(row: dict, fmt: PromptFormat) -> dict:
    """A dataset row as trl SFT input: {"messages"} for chat, {"prompt","completion"} otherwise."""
    if fmt == "chat":
        return to_chat(row)
    flat = to_instruction(row)
    prompt = instruction_prompt(flat["instruction"], input_text=flat.get("input"), system=flat.get("system"))
    return {"prompt": prompt, "completion": flat["output"]}


def serving_request(prompt: str, fmt: PromptFormat, *, system: str | None = None) -> tuple[str, dict]:
    """(path, body fragment) for asking vLLM about `prompt` in the recorded format."""
    if fmt == "chat":
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return "/v1/chat/completions", {"messages": messages}
    return "/v1/completions", {"prompt": instruction_prompt(prompt, system=system)}


def reference_answer(row: dict) -> tuple[str, str]:
    """(prompt, expected answer) of a dataset row, for comparisons."""
    flat = to_instruction(row)
    prompt = flat["instruction"] if not flat.get("input") else f"{flat['instruction']}\n\n{flat['input']}"
    return prompt, flat["output"]
