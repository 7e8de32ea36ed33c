"""factory_boy factories for control-plane rows."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from control_plane.datasets.models import Dataset, GenerationJob, JobEvent

PASSWORD = "a-long-test-password-4711"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)


class DatasetFactory(factory.django.DjangoModelFactory):
    """A dataset row only; tests that need its file upload it through the service."""

    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    path = factory.LazyAttribute(lambda d: f"datasets/{d.name}.jsonl")
    source = Dataset.Source.GENERATED
    status = Dataset.Status.GENERATING


class GenerationJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GenerationJob

    job_id = factory.Sequence(lambda n: f"job{n:04d}")
    dataset = factory.SubFactory(DatasetFactory)
    state = GenerationJob.State.RUNNING
    target_rows = 10


class JobEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobEvent

    job = factory.SubFactory(GenerationJobFactory)
    seq = factory.Sequence(lambda n: n + 1)
    type = JobEvent.Type.PROGRESS
    payload = factory.LazyFunction(lambda: {"kept": 1, "dropped": 0, "failed": 0, "target_rows": 10})
    time = factory.LazyFunction(timezone.now)
