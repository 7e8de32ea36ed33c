"""The judge score of the generation evals: an OpenAI-compatible endpoint grades each answer 1-5.

Configured on the trainer (trainer_svc.config.JudgeConfig: SYNTHTUNE_TRAINER_JUDGE_URL, _MODEL,
_TOKEN, _TIMEOUT_S); a run with generation evals (eval_generate_rows) then also reports
`eval_judge_score`, the mean grade of the answers the judge graded. An answer the judge did not
grade (an error status, a timeout, a reply without a grade 1-5) counts as no grade, never as one:
it is left out of the mean and counted in `eval_judge_ungraded`; when none is graded the score is
NaN, which is never the best. The token goes only into the Authorization header: never into
events, logs, the run folder or the manifest.
"""

from __future__ import annotations

import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

PARALLEL = 4  # requests in flight at once
_GRADE = re.compile(r"\b([1-5])\b")
SYSTEM = ("You grade answers against a reference answer. Reply with one digit from 1 to 5 and nothing else: "
          "5 = says the same as the reference, 4 = nearly, 3 = partly, 2 = mostly wrong, 1 = wrong or unrelated.")


@dataclass(frozen=True)
class Judge:
    base_url: str  # ".../v1"
    model: str
    token: str = field(default="", repr=False)  # never in a repr, a log line or an event
    timeout_s: float = 30.0

    def grade(self, client: Any, question: str, reference: str, answer: str) -> int | None:
        """The grade 1-5, or None when the judge gave none (any failure: it is reported, not raised)."""
        import httpx

        body = {"model": self.model, "temperature": 0, "max_tokens": 4, "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Question:\n{question}\n\nReference answer:\n{reference}\n\n"
                                        f"Answer to grade:\n{answer}\n\nGrade (1-5):"}]}
        try:
            response = client.post(f"{self.base_url.rstrip('/')}/chat/completions", json=body)
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"] or ""
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            logger.warning("the judge gave no grade", extra={"error": type(exc).__name__})
            return None
        match = _GRADE.search(content)
        return int(match[1]) if match else None

    def score(self, items: list[tuple[str, str, str]]) -> dict[str, float]:
        """{"eval_judge_score": mean grade (NaN when none), "eval_judge_ungraded": count} of
        (question, reference, answer) items."""
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        with httpx.Client(timeout=self.timeout_s, headers=headers) as client, \
                ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            grades = list(pool.map(lambda item: self.grade(client, *item), items))
        graded = [g for g in grades if g is not None]
        return {"eval_judge_score": sum(graded) / len(graded) if graded else math.nan,
                "eval_judge_ungraded": float(len(grades) - len(graded))}
