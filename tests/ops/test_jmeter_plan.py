"""The JMeter plans parse, and every sampler asserts its status and its content, so a
wrong answer under load counts as an error instead of a fast success. Cheap: no JMeter."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from jmeter import build_plan
from tests.helpers import ROOT

PLANS = sorted((ROOT / "jmeter").glob("*.jmx"))
SAMPLER_TAGS = {"HTTPSamplerProxy", "JDBCSampler", "JSR223Sampler", "TCPSampler"}
ASSERTION_TAGS = {"ResponseAssertion", "JSONPathAssertion", "JSONAssertion", "XPath2Assertion"}


def _children(tree: ET.Element) -> list[tuple[ET.Element, ET.Element]]:
    """(element, its hashTree) pairs of a JMeter hashTree."""
    items = list(tree)
    return [(items[i], items[i + 1]) for i in range(0, len(items), 2)]


def _samplers(tree: ET.Element, inherited: list[ET.Element]):
    """Every sampler with the assertions that apply to it: its own and those in scope."""
    pairs = _children(tree)
    in_scope = inherited + [e for e, _ in pairs if e.tag in ASSERTION_TAGS]
    for element, subtree in pairs:
        if element.tag in SAMPLER_TAGS:
            own = [e for e, _ in _children(subtree) if e.tag in ASSERTION_TAGS]
            yield element, in_scope + own
        else:
            yield from _samplers(subtree, in_scope)


def _prop(element: ET.Element, name: str) -> str:
    found = element.find(f"*[@name='{name}']")
    return found.text or "" if found is not None else ""


def _checks(assertions: list[ET.Element]) -> set[str]:
    kinds = set()
    for assertion in assertions:
        if assertion.get("enabled") == "false":
            continue
        if assertion.tag == "ResponseAssertion":
            field = _prop(assertion, "Assertion.test_field")
            kinds.add("status" if field == "Assertion.response_code" else "content")
        else:
            kinds.add("content")
    return kinds


def test_there_is_a_plan():
    assert PLANS, "no .jmx plan under jmeter/"


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.name)
def test_every_sampler_asserts_status_and_content(plan):
    root = ET.parse(plan).getroot()  # noqa: S314 - our own committed file
    assert root.tag == "jmeterTestPlan"
    samplers = list(_samplers(root.find("hashTree"), []))
    assert len(samplers) >= 5
    for sampler, assertions in samplers:
        name = sampler.get("testname")
        assert _checks(assertions) == {"status", "content"}, f"{name} lacks an assertion"


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.name)
def test_hosts_and_sizes_come_from_properties(plan):
    """Nothing that differs between runs is hard-coded: it is a -J property."""
    text = plan.read_text()
    root = ET.fromstring(text)  # noqa: S314 - our own committed file
    for sampler in root.iter("HTTPSamplerProxy"):
        assert not _prop(sampler, "HTTPSampler.domain"), "host belongs in the defaults"
    for group in root.iter("ThreadGroup"):
        assert _prop(group, "ThreadGroup.num_threads").startswith("${")
    for name in ("host", "port", "region", "loops", "duration"):
        assert f"${{__P({name}," in text


def test_writes_use_fresh_idempotency_keys():
    text = (ROOT / "jmeter" / "loyalty.jmx").read_text()
    assert "${__UUID()}" in text
    assert text.count('<stringProp name="Header.name">Idempotency-Key</stringProp>') == 3


def test_the_committed_plan_is_what_build_plan_writes():
    """Edit jmeter/build_plan.py and run it; never the XML by hand."""
    committed = (ROOT / "jmeter" / "loyalty.jmx").read_text()
    assert _normalized(committed) == _normalized(build_plan.plan())


def _normalized(text: str) -> str:
    return re.sub(r'name="\d+"', 'name="N"', text)
