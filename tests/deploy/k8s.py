"""Small readers over rendered manifests, for the chart's semantic checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}


@dataclass
class Pod:
    """One pod template: its workload, labels and spec."""

    workload: dict
    labels: dict
    spec: dict

    @property
    def name(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}"

    @property
    def component(self) -> str:
        return self.labels.get("app.kubernetes.io/component", "")

    def containers(self, *, init: bool = True) -> list[dict]:
        found = list(self.spec.get("containers", []))
        if init:
            found += self.spec.get("initContainers", [])
        return found

    def container(self, name: str) -> dict:
        matches = [c for c in self.containers() if c["name"] == name]
        assert len(matches) == 1, f"{self.name}: {len(matches)} containers named {name}"
        return matches[0]

    def port_names(self) -> set[str]:
        return {p["name"] for c in self.containers(init=False) for p in c.get("ports", []) if "name" in p}

    def port_numbers(self) -> set[int]:
        return {p["containerPort"] for c in self.containers(init=False) for p in c.get("ports", [])}

    def volume(self, name: str) -> dict:
        matches = [v for v in self.spec.get("volumes", []) if v["name"] == name]
        assert len(matches) == 1, f"{self.name}: {len(matches)} volumes named {name}"
        return matches[0]


def pods(manifests: list[dict]) -> list[Pod]:
    """Every pod template: the workloads', and each replicated job's of a Kubeflow TrainingRuntime."""
    found = []
    for doc in manifests:
        if doc["kind"] in WORKLOAD_KINDS:
            template = doc["spec"]["template"]
            found.append(Pod(doc, template["metadata"].get("labels", {}), template["spec"]))
        elif doc["kind"] == "TrainingRuntime":
            for job in doc["spec"]["template"]["spec"]["replicatedJobs"]:
                template = job["template"]["spec"]["template"]
                found.append(Pod(doc, template["metadata"].get("labels", {}), template["spec"]))
    return found


def pod(manifests: list[dict], component: str) -> Pod:
    matches = [p for p in pods(manifests) if p.component == component]
    assert len(matches) == 1, f"{len(matches)} pods with component {component}"
    return matches[0]


def of_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [doc for doc in manifests if doc["kind"] == kind]


def named(manifests: list[dict], kind: str, name: str) -> dict:
    matches = [doc for doc in of_kind(manifests, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


def env(container: dict) -> dict[str, dict]:
    """Variable name -> its env entry (the whole entry: value or valueFrom)."""
    entries = container.get("env", [])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"{container['name']}: duplicate env {sorted(names)}"
    return {e["name"]: e for e in entries}


def env_value(container: dict, name: str) -> str:
    entry = env(container)[name]
    assert "value" in entry, f"{container['name']}: {name} is not a plain value"
    return entry["value"]


def selects(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics, matchLabels and matchExpressions."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def walk_strings(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)
    elif node is not None:
        yield str(node)
