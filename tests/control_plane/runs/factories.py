"""factory_boy factories for runs, their events and adapters."""

from __future__ import annotations

import factory
from django.utils import timezone

from control_plane.runs.models import Adapter, Run, RunEvent


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    run_id = factory.Sequence(lambda n: f"run{n:04d}")
    base_model = "tiny-phi3"
    state = Run.State.RUNNING
    max_steps = 10


class RunEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RunEvent

    run = factory.SubFactory(RunFactory)
    seq = factory.Sequence(lambda n: n + 1)
    type = RunEvent.Type.STEP
    payload = factory.LazyAttribute(
        lambda e: {
            "step": e.seq,
            "max_steps": 10,
            "epoch": e.seq / 10,
            "loss": 3.0 - 0.1 * e.seq,
            "learning_rate": 1e-3,
            "grad_norm": 1.0,
            "tokens_per_s": 1000.0,
            "eta_s": 10.0 - e.seq,
        }
    )
    time = factory.LazyFunction(timezone.now)


class AdapterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Adapter

    name = factory.Sequence(lambda n: f"tiny-phi3-lora-v{n + 1}")
    path = factory.LazyAttribute(lambda a: f"adapters/{a.name}")
    run = factory.SubFactory(RunFactory, state=Run.State.SUCCEEDED)
    base_model = "tiny-phi3"
    prompt_format = "chat"
    weights_sha256 = "ab" * 32
    manifest = factory.LazyAttribute(lambda a: {"name": a.name, "run_id": a.run.run_id if a.run else ""})
