"""Topic trees against the fake endpoint through a real ChatClient: shape, fallback, resume, coverage."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import Counter

import pytest

from datagen_svc.openai_client import ChatClient
from datagen_svc.planning import PlanningError
from datagen_svc.topic_tree import (
    MAX_EMPTY_LEAF_BATCHES,
    TopicTreeSource,
    expansion_calls,
    leaf_count,
)
from tests.datagen_svc.conftest import fake_client_config
from tests.support.fake_openai import FakeOpenAI, Status, schema_name

TOPIC = "home cooking"
_EXPAND_RE = re.compile(r"List (\d+) distinct subtopics of: (.*)\.\n")
_ABOUT_RE = re.compile(r"Write (\d+) new.*? about: (.*)\.\n")


def prompt_of(body) -> str:
    return body["messages"][-1]["content"]


def expansions(fake) -> list:
    return [r for r in fake.chat_requests() if _EXPAND_RE.search(prompt_of(r.body))]


def tree_endpoint(fake, *, subtopics=None, instructions=None):
    """Answer expansion prompts with subtopics(path, n) (default: "<last> i" for i < n) and
    instruction prompts with instructions(path, n) (default: fresh numbered ones naming the path)."""
    counter = itertools.count(1)
    subtopics = subtopics or (lambda path, n: [f"{path[-1]} {i}" for i in range(n)])
    instructions = instructions or (
        lambda path, n: [f"Question {next(counter)} on {' / '.join(path)}?" for _ in range(n)]
    )

    def respond(body):
        prompt = prompt_of(body)
        if match := _EXPAND_RE.search(prompt):
            return json.dumps({"subtopics": subtopics(match.group(2).split(" > "), int(match.group(1)))})
        if match := _ABOUT_RE.search(prompt):
            return json.dumps(
                {"instructions": instructions(match.group(2).split(" > "), int(match.group(1)))}
            )
        return None

    fake.respond = respond
    return fake


def client_for(fake) -> ChatClient:
    return ChatClient(fake_client_config(fake, max_retries=0, backoff_max_s=0.02))


def draw(fake, state_path, *, calls: int, concurrent: bool = False, **options):
    """(the tree, the Planned rows of up to `calls` next() calls, stopping at None)."""
    values = {"topic": TOPIC, "depth": 2, "breadth": 3, "sampling": {"max_tokens": 16}, "known": []}
    values |= {"target_rows": calls} | options

    async def go():
        async with client_for(fake) as client:
            source = TopicTreeSource(client=client, state_path=state_path, **values)
            if concurrent:
                rows = await asyncio.gather(*(source.next(wanted=calls) for _ in range(calls)))
            else:
                rows = []
                while len(rows) < calls and (row := await source.next(wanted=calls - len(rows))) is not None:
                    rows.append(row)
            return await source.tree(), rows

    return asyncio.run(go())


def shape(node) -> list:
    return [node["name"], [shape(c) for c in node["children"]]] if node["children"] else node["name"]


def test_cost_formulas():
    assert [expansion_calls(d, 3) for d in (1, 2, 3, 4)] == [1, 4, 13, 40]
    assert leaf_count(2, 3) == 9 and leaf_count(4, 10) == 10_000


def test_the_topic_is_split_breadth_ways_depth_levels_down_and_saved(fake, tmp_path):
    tree_endpoint(fake)
    state = tmp_path / "job" / "topic_tree.json"
    tree, _ = draw(fake, state, calls=1)
    assert shape(tree) == [
        TOPIC,
        [[f"{TOPIC} {i}", [f"{TOPIC} {i} {j}" for j in range(3)]] for i in range(3)],
    ]
    sent = expansions(fake)
    assert len(sent) == expansion_calls(2, 3) == 4
    for request in sent:
        assert schema_name(request.body) == "subtopics"
        assert (
            request.body["response_format"]["json_schema"]["schema"]["properties"]["subtopics"]["maxItems"]
            == 3
        )
        assert "max_tokens" not in request.body
    # The whole path is named (children are expanded concurrently: any arrival order).
    assert any(f"subtopics of: {TOPIC} > {TOPIC} 1." in prompt_of(r.body) for r in sent)
    saved = json.loads(state.read_text())
    assert saved["tree"] == tree and (saved["topic"], saved["depth"], saved["breadth"]) == (TOPIC, 2, 3)


def test_siblings_are_deduplicated_and_a_barren_node_stays_a_leaf(fake, tmp_path):
    answers = {
        (TOPIC,): ["Baking", " baking ", "Soups", TOPIC.upper(), "Grilling", "Extra"],
        (TOPIC, "Baking"): [],
        (TOPIC, "Soups"): ["Broths", "Broths"],
    }
    tree_endpoint(fake, subtopics=lambda path, n: answers.get(tuple(path), ["x", "y"]))
    tree, rows = draw(fake, tmp_path / "t.json", calls=12)
    # " baking " repeats a sibling and TOPIC repeats the parent; "Extra" is beyond breadth.
    assert shape(tree) == [TOPIC, ["Baking", ["Soups", ["Broths"]], ["Grilling", ["x", "y"]]]]
    paths = Counter(tuple(r.provenance["topic_path"]) for r in rows)
    assert paths == {
        (TOPIC, "Baking"): 3,
        (TOPIC, "Soups", "Broths"): 3,
        (TOPIC, "Grilling", "x"): 3,
        (TOPIC, "Grilling", "y"): 3,
    }


def test_without_structured_output_it_falls_back_to_plain_text(tmp_path):
    with FakeOpenAI(reject_response_format=True) as fake:
        tree_endpoint(fake)
        tree, rows = draw(fake, tmp_path / "t.json", calls=9, depth=1, breadth=3)
        sent = fake.chat_requests()
    assert len(shape(tree)[1]) == 3 and len(rows) == 9
    assert "response_format" in sent[0].body  # asked once, refused, never again
    assert all("response_format" not in r.body for r in sent[1:])
    assert len(sent) == 1 + 1 + 3  # the refused call, the expansion, one batch per leaf


def test_a_saved_tree_is_reused_with_no_expansion_calls(fake, tmp_path):
    tree_endpoint(fake)
    state = tmp_path / "t.json"
    first, _ = draw(fake, state, calls=1)
    with FakeOpenAI() as again:
        tree_endpoint(again)
        second, rows = draw(again, state, calls=2)
        assert expansions(again) == []
    assert second == first and len(rows) == 2


def test_leaves_are_visited_round_robin_with_even_quotas_and_topic_paths(fake, tmp_path):
    tree_endpoint(fake)
    _, rows = draw(fake, tmp_path / "t.json", calls=30, target_rows=20, concurrent=True)
    found = [r for r in rows if r is not None]
    # ceil(20 / 9) = 3 per leaf; asked for more (rows lost to dropped answers), every leaf gives
    # one more in turn, so coverage stays even.
    assert len(found) == 30
    per_leaf = Counter(tuple(r.provenance["topic_path"]) for r in found)
    assert len(per_leaf) == 9 and set(per_leaf.values()) == {3, 4}
    for row in found:
        path = row.provenance["topic_path"]
        assert row.provenance["strategy"] == "topic_tree" and len(path) == 3 and path[0] == TOPIC
        assert row.instruction.endswith(f"on {' / '.join(path)}?")  # asked of its own leaf
    assert len({r.instruction for r in found}) == 30


def test_a_small_target_still_spans_every_top_level_branch(fake, tmp_path):
    tree_endpoint(fake)
    _, rows = draw(fake, tmp_path / "t.json", calls=3)
    assert [r.provenance["topic_path"][1] for r in rows] == [f"{TOPIC} {i}" for i in range(3)]


def test_a_leaf_that_only_repeats_itself_is_barren_and_the_others_finish(fake, tmp_path):
    counter = itertools.count(1)

    def instructions(path, n):
        if path[-1] == "Soups":
            return ["How do I make stock?"]  # new once, then nothing new
        return [f"Tip {next(counter)} for {path[-1]}?" for _ in range(n)]

    tree_endpoint(fake, subtopics=lambda path, n: ["Baking", "Soups"], instructions=instructions)
    _, rows = draw(fake, tmp_path / "t.json", calls=10, depth=1, breadth=2, known=["Tip 1 for Baking?"])
    per_leaf = Counter(r.provenance["topic_path"][-1] for r in rows)
    assert per_leaf == {"Baking": 9, "Soups": 1}  # the barren leaf's share goes to the other
    assert "Tip 1 for Baking?" not in {r.instruction for r in rows}  # already in the dataset
    soup_batches = [r for r in fake.chat_requests() if "about: home cooking > Soups." in prompt_of(r.body)]
    assert len(soup_batches) == 1 + MAX_EMPTY_LEAF_BATCHES
    assert "- How do I make stock?" in prompt_of(soup_batches[-1].body)  # told what not to repeat


@pytest.mark.parametrize("fault", ["no subtopics", "endpoint error"])
def test_a_topic_that_cannot_be_split_fails_planning(fake, tmp_path, fault):
    if fault == "no subtopics":
        tree_endpoint(fake, subtopics=lambda path, n: [])
    else:
        fake.script(Status(500, message="backend down"))
    with pytest.raises(PlanningError, match="backend down" if fault == "endpoint error" else "no subtopics"):
        draw(fake, tmp_path / "t.json", calls=1)
    assert not (tmp_path / "t.json").exists()


def test_no_instructions_anywhere_fails_planning(fake, tmp_path):
    tree_endpoint(fake, instructions=lambda path, n: [])
    with pytest.raises(PlanningError, match="no new instructions for any of the 2 subtopics"):
        draw(fake, tmp_path / "t.json", calls=2, depth=1, breadth=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depth": 0}, "depth"),
        ({"depth": 5}, "depth"),
        ({"breadth": 11}, "breadth"),
        ({"depth": 4, "breadth": 6}, "leaves"),  # 1296 leaves
        ({"topic": " "}, "topic"),
        ({"target_rows": 0}, "target_rows"),
    ],
)
def test_impossible_shapes_are_refused(fake, tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        draw(fake, tmp_path / "t.json", calls=1, **options)
    assert fake.chat_requests() == []
