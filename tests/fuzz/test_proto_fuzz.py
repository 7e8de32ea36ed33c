"""The message strategies of the gRPC fuzz: they reach what they claim to, and never dial out."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.serving.v1 import serving_pb2
from tests.support.proto_fuzz import loopback_only, messages, mutations

CLOSED = "http://127.0.0.1:9"
FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _collect(strategy, n: int = 300) -> list:
    seen = []

    @FAST
    @given(strategy)
    def take(message):
        seen.append(message)

    take()
    return seen[:n]


def test_requests_reach_unknown_enums_bounds_repeated_and_nested_fields():
    found = _collect(messages(pb.StartGenerationRequest.DESCRIPTOR, closed_url=CLOSED))
    modes = {m.mode for m in found}
    assert modes - set(pb.GenerationMode.values()), "no enum value outside the schema"
    assert {2**31 - 1, -(2**31)} & {m.num_rows for m in found}, "no int32 bound"
    assert any(len(m.instructions) > 1 for m in found)
    assert any(m.filters.judge.endpoint.base_url for m in found), "no field three messages deep"
    assert any(".." in m.dataset_name for m in found)
    doubles = [v for m in _collect(messages(pb.Sampling.DESCRIPTOR, closed_url=CLOSED)) for v in _scalars(m)
               if isinstance(v, float)]
    assert any(v != v for v in doubles) and float("inf") in doubles, "no NaN or infinity"


def _scalars(message) -> list:
    values = []
    for field, value in message.ListFields():
        items = value if field.is_repeated else [value]
        for item in items:
            values.extend(_scalars(item) if hasattr(item, "ListFields") else [item])
    return values


def test_a_oneof_gets_at_most_one_member():
    for event in _collect(messages(pb.GenerationEvent.DESCRIPTOR, closed_url=CLOSED)):
        members = [f.name for f, _ in event.ListFields() if f.containing_oneof is not None]
        assert len(members) <= 1, members


def test_mutations_keep_most_of_the_template():
    template = pb.StartGenerationRequest(dataset_name="keep-me", num_rows=3, mode=pb.GENERATION_MODE_FIXED,
                                         prompt_template="Say hi.")
    found = _collect(mutations(template, closed_url=CLOSED))
    kept = sum(m.dataset_name == "keep-me" and m.prompt_template == "Say hi." for m in found)
    assert kept > len(found) // 2
    assert any(m != template for m in found)


@given(url=st.sampled_from(["https://api.openai.com/v1", " http://10.0.0.1:8000/v1", "HTTP://example.com",
                            "http://127.0.0.1:8000/v1", "http://localhost:9/v1", "http://[::1]:9"]))
def test_loopback_only_sends_every_dialable_url_to_the_closed_port(url):
    request = serving_pb2.CompareBatchRequest(judge=serving_pb2.Judge(base_url=url), target=url)
    loopback_only(request, CLOSED)
    assert request.judge.base_url == request.target == CLOSED


def test_loopback_only_keeps_urls_that_already_go_nowhere_and_text():
    request = pb.StartGenerationRequest(endpoint=pb.Endpoint(base_url=f"{CLOSED}/v1?x=1"),
                                        instructions=["no url here", "http://", "http://127.0.0.1:99999"])
    loopback_only(request, CLOSED)
    assert request.endpoint.base_url == f"{CLOSED}/v1?x=1"
    assert list(request.instructions) == ["no url here", "http://", "http://127.0.0.1:99999"]
