"""factory_boy factories for deployments and comparisons."""

from __future__ import annotations

import factory
from django.utils import timezone

from control_plane.deployments.models import Comparison, Deployment
from tests.control_plane.runs.factories import AdapterFactory


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    adapter = factory.SubFactory(AdapterFactory)
    target = "http://127.0.0.1:9"
    served_name = factory.LazyAttribute(lambda d: d.adapter.name)
    state = Deployment.State.LOADED
    loaded_at = factory.LazyFunction(timezone.now)


class ComparisonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Comparison

    kind = Comparison.Kind.ONE
    adapter = factory.SubFactory(AdapterFactory)
    request = factory.LazyFunction(lambda: {"prompt": "Hi.", "system_prompt": "", "sampling": {}})
