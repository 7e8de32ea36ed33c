"""Read a Prometheus /metrics endpoint into samples that tests can compare before and after."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Samples:
    """Every sample of one scrape: (sample name, labels) -> value."""

    values: dict[tuple[str, frozenset], float]

    def sum(self, name: str, **labels: str) -> float:
        """The sum over `name`'s samples whose labels include `labels` (0 when there are none)."""
        wanted = set(labels.items())
        return sum(value for (sample, have), value in self.values.items() if sample == name and wanted <= have)

    def names(self) -> set[str]:
        return {sample for sample, _ in self.values}

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [dict(have) for sample, have in self.values if sample == name]


def parse(text: str) -> Samples:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Samples(values)


def scrape(url: str, **headers: str) -> Samples:
    reply = httpx.get(url, headers=headers, timeout=10)
    reply.raise_for_status()
    assert reply.headers["content-type"].startswith("text/plain"), reply.headers["content-type"]
    return parse(reply.text)
