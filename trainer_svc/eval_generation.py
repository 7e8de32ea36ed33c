"""Generation metrics during training: greedy answers to held-out rows, scored against their references.

`GenerationEval(rows, ...)(model)` answers each row with the model being trained (the PEFT
model, switched to eval mode and back: no second copy of the model in memory) and returns

    {"eval_exact_match": share of answers equal to the reference (stripped), 0..1,
     "eval_chrf": mean sentence chrF (sacrebleu's defaults, as the proxy's batch compare), 0..100,
     "eval_judge_score", "eval_judge_ungraded": with a judge (trainer_svc.eval_judge),
     "eval_generation_runtime": seconds (the judge's calls included)}

The rows are trl examples of the held-out split ({"messages"} or {"prompt", "completion"}); the
prompt is rendered as training rendered it (the chat template with a generation prompt, or the
instruction text), so what is scored is what serving will ask. No torch at import.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


def exact_match(text: str, reference: str) -> bool:
    # The same rule as serving_proxy_svc.compare (a separate deployable: not imported from here).
    return text.strip() == reference.strip()


_chrf = None


def chrf(text: str, reference: str) -> float:
    """Sentence-level chrF, 0-100 (character 6-grams, beta 2)."""
    global _chrf
    if _chrf is None:
        from sacrebleu.metrics import CHRF

        _chrf = CHRF()
    return float(_chrf.sentence_score(text.strip(), [reference.strip()]).score)


def prompt_and_reference(example: dict[str, Any]) -> tuple[Any, str]:
    """(the conversation without its answer, or the prompt text; the reference answer)."""
    if "messages" in example:
        messages = list(example["messages"])
        return messages[:-1], str(messages[-1]["content"])
    return example["prompt"], str(example["completion"])


BATCH_ROWS = 16  # rows answered by one generate() call (left-padded), so an eval of 16 rows is one batch


def question_text(prompt: Any) -> str:
    """What was asked, for the judge: the last user turn, or the instruction prompt's text."""
    if isinstance(prompt, list):
        return next((str(m["content"]) for m in reversed(prompt) if m.get("role") == "user"), "")
    return str(prompt)


@dataclass
class GenerationEval:
    rows: list[dict[str, Any]]
    tokenizer: Any
    prompt_format: str
    max_new_tokens: int = 128
    batch_rows: int = BATCH_ROWS
    judge: Any = None  # a trainer_svc.eval_judge.Judge: also eval_judge_score

    def __post_init__(self) -> None:
        import copy

        self.last_answers: list[str] = []
        # A copy that pads on the left (generation appends on the right); the trainer's keeps its side.
        self._tokenizer = copy.deepcopy(self.tokenizer)
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token

    def _inputs(self, prompts: list[Any]) -> dict[str, Any]:
        if isinstance(prompts[0], list):
            return self._tokenizer.apply_chat_template(prompts, add_generation_prompt=True, return_dict=True,
                                                       return_tensors="pt", padding=True)
        return self._tokenizer(prompts, return_tensors="pt", padding=True)

    def __call__(self, model: Any) -> dict[str, float]:
        import torch
        from transformers import GenerationConfig

        started = time.monotonic()
        was_training = model.training
        model.eval()
        eos = model.generation_config.eos_token_id
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, use_cache=True,
                                  eos_token_id=eos, pad_token_id=self._tokenizer.pad_token_id)
        matches, scores, answers, graded = 0, [], [], []
        try:
            for start in range(0, len(self.rows), self.batch_rows):
                pairs = [prompt_and_reference(example) for example in self.rows[start:start + self.batch_rows]]
                inputs = {k: v.to(model.device) for k, v in self._inputs([p for p, _ in pairs]).items()}
                with torch.inference_mode():
                    output = model.generate(**inputs, generation_config=config)
                width = inputs["input_ids"].shape[1]  # left-padded: every answer starts here
                for row, (prompt, reference) in zip(output, pairs):
                    text = self._tokenizer.decode(row[width:], skip_special_tokens=True).strip()
                    answers.append(text)
                    graded.append((question_text(prompt), reference, text))
                    matches += exact_match(text, reference)
                    scores.append(chrf(text, reference))
        finally:
            if was_training:
                model.train()
        self.last_answers = answers
        n = max(len(self.rows), 1)
        metrics = {"eval_exact_match": matches / n, "eval_chrf": sum(scores) / n}
        if self.judge is not None:
            metrics.update(self.judge.score(graded))
        metrics["eval_generation_runtime"] = round(time.monotonic() - started, 4)
        return metrics
