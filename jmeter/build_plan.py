"""Writes jmeter/loyalty.jmx, the load-test plan: ``python jmeter/build_plan.py``.

The plan is plain JMeter XML (open it in the JMeter GUI to look at it), but it is written
from this file so that every sampler is declared next to its assertions and nothing is
copied by hand; tests/ops/test_jmeter_plan.py checks that the committed .jmx is exactly what
this script writes, and that every sampler asserts its status and its content.

What one JMeter process does against one region's app (``-Jregion=us -Jport=...``):

* ``customers`` threads: sign in once (GET /login, the CSRF token from its hidden input,
  POST /login; and POST /api/v1/auth/token), then loop: the card page, the htmx history
  partial (``/card?fresh=1`` + ``HX-Request``), the family page and its partial, GET /me.
* ``staff`` threads: the region's barista signs in to the API once, then loops over the
  region's test cards: earn with a fresh ``Idempotency-Key`` (``${__UUID()}``), replay the
  same earn (must answer the first receipt with ``Idempotent-Replayed: true``), redeem 1.

So about 85 % of requests are reads. Every parameter is a ``-J`` property with a default
(see ``PARAMETERS``).
"""

from __future__ import annotations

import itertools
import xml.dom.minidom
from pathlib import Path
from xml.sax.saxutils import escape

from db.seed import DEMO_PASSWORD

PLAN = Path(__file__).with_name("loyalty.jmx")

PARAMETERS = [
    ("host", "127.0.0.1"),
    ("port", "8000"),
    ("region", "us"),
    ("customers", "8"),  # customer threads (each its own account: load.<region>.<n>)
    ("staff", "2"),  # barista threads
    ("loops", "50"),  # iterations per thread
    ("duration", "600"),  # seconds; a safety stop, loops normally end the run first
    ("rampup", "5"),
    ("think_ms", "0"),
    ("customer_prefix", "load"),
    ("password", DEMO_PASSWORD),
    ("staff_email", "barista.${__P(region,us)}@example.com"),
    ("cards_csv", "cards-${__P(region,us)}.csv"),  # one column "card": the region's cards
    ("currency", "USD"),
    ("amount", "12.50"),
]

_ids = itertools.count(1000)
EQUALS, SUBSTRING, NOT = 8, 16, 4


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _s(name: str, value: object) -> str:
    return f'<stringProp name="{name}">{escape(str(value))}</stringProp>'


def _b(name: str, value: bool) -> str:
    return f'<boolProp name="{name}">{"true" if value else "false"}</boolProp>'


def _tree(element: str, children: list[str] = ()) -> str:
    """An element followed by its hashTree of children (leaves get an empty one)."""
    parts = [c if c.endswith("</hashTree>") else c + "<hashTree/>" for c in children]
    return element + "<hashTree>" + "".join(parts) + "</hashTree>"


def _headers(name: str, pairs: list[tuple[str, str]]) -> str:
    items = "".join('<elementProp name="" elementType="Header">' + _s("Header.name", k)
                    + _s("Header.value", v) + "</elementProp>" for k, v in pairs)
    return (f'<HeaderManager guiclass="HeaderPanel" testclass="HeaderManager" '
            f'testname="{_attr(name)}" enabled="true">'
            f'<collectionProp name="HeaderManager.headers">{items}</collectionProp>'
            "</HeaderManager>")


def _form_field(name: str, value: str) -> str:
    return (f'<elementProp name="{_attr(name)}" elementType="HTTPArgument">'
            + _b("HTTPArgument.always_encode", True) + _s("Argument.value", value)
            + _s("Argument.metadata", "=") + _b("HTTPArgument.use_equals", True)
            + _s("Argument.name", name) + "</elementProp>")


def _sampler(name: str, method: str, path: str, *, form: list[tuple[str, str]] | None = None,
             body: str | None = None) -> str:
    if body is not None:
        arguments = ('<elementProp name="HTTPsampler.Arguments" elementType="Arguments">'
                     '<collectionProp name="Arguments.arguments">'
                     '<elementProp name="" elementType="HTTPArgument">'
                     + _b("HTTPArgument.always_encode", False) + _s("Argument.value", body)
                     + _s("Argument.metadata", "=")
                     + "</elementProp></collectionProp></elementProp>")
    else:
        arguments = ('<elementProp name="HTTPsampler.Arguments" elementType="Arguments" '
                     'guiclass="HTTPArgumentsPanel" testclass="Arguments" '
                     'testname="User Defined Variables" enabled="true">'
                     '<collectionProp name="Arguments.arguments">'
                     + "".join(_form_field(k, v) for k, v in form or [])
                     + "</collectionProp></elementProp>")
    return (f'<HTTPSamplerProxy guiclass="HttpTestSampleGui" testclass="HTTPSamplerProxy" '
            f'testname="{_attr(name)}" enabled="true">'
            + (_b("HTTPSampler.postBodyRaw", True) if body is not None else "") + arguments
            + _s("HTTPSampler.domain", "") + _s("HTTPSampler.port", "")
            + _s("HTTPSampler.protocol", "") + _s("HTTPSampler.path", path)
            + _s("HTTPSampler.method", method)
            # Redirects are asserted, not followed: a login must answer 302 to /card.
            + _b("HTTPSampler.follow_redirects", False) + _b("HTTPSampler.auto_redirects", False)
            + _b("HTTPSampler.use_keepalive", True) + _b("HTTPSampler.DO_MULTIPART_POST", False)
            + "</HTTPSamplerProxy>")


def _response_assertion(name: str, field: str, strings: list[str], test_type: int) -> str:
    items = "".join(_s(str(next(_ids)), x) for x in strings)
    # "Asserion" is JMeter's own spelling of this property.
    return (f'<ResponseAssertion guiclass="AssertionGui" testclass="ResponseAssertion" '
            f'testname="{_attr(name)}" enabled="true">'
            f'<collectionProp name="Asserion.test_strings">{items}</collectionProp>'
            + _s("Assertion.custom_message", "") + _s("Assertion.test_field", field)
            + _b("Assertion.assume_success", False)
            + f'<intProp name="Assertion.test_type">{test_type}</intProp></ResponseAssertion>')


def status(code: str) -> str:
    return _response_assertion(f"status {code}", "Assertion.response_code", [code], EQUALS)


def body_has(*texts: str) -> str:
    return _response_assertion("body has " + ", ".join(texts), "Assertion.response_data",
                               list(texts), SUBSTRING)


def body_lacks(text: str) -> str:
    return _response_assertion(f"body lacks {text}", "Assertion.response_data", [text],
                               SUBSTRING | NOT)


def header_has(text: str) -> str:
    return _response_assertion(f"headers have {text}", "Assertion.response_headers", [text],
                               SUBSTRING)


def json_is(path: str, expected: str | None = None) -> str:
    """``path`` exists (and, with ``expected``, equals it)."""
    name = f"{path} == {expected}" if expected is not None else f"{path} present"
    return ('<JSONPathAssertion guiclass="JSONPathAssertionGui" testclass="JSONPathAssertion" '
            f'testname="{_attr(name)}" enabled="true">' + _s("JSON_PATH", path)
            + _s("EXPECTED_VALUE", expected or "") + _b("JSONVALIDATION", expected is not None)
            + _b("EXPECT_NULL", False) + _b("INVERT", False) + _b("ISREGEX", False)
            + "</JSONPathAssertion>")


def _regex(ref: str, pattern: str) -> str:
    return ('<RegexExtractor guiclass="RegexExtractorGui" testclass="RegexExtractor" '
            f'testname="extract {ref}" enabled="true">'
            + _s("RegexExtractor.useHeaders", "false") + _s("RegexExtractor.refname", ref)
            + _s("RegexExtractor.regex", pattern) + _s("RegexExtractor.template", "$1$")
            + _s("RegexExtractor.default", "NOT_FOUND") + _s("RegexExtractor.match_number", "1")
            + "</RegexExtractor>")


def _json_extract(ref: str, path: str) -> str:
    return ('<JSONPostProcessor guiclass="JSONPostProcessorGui" testclass="JSONPostProcessor" '
            f'testname="extract {ref}" enabled="true">'
            + _s("JSONPostProcessor.referenceNames", ref)
            + _s("JSONPostProcessor.jsonPathExprs", path)
            + _s("JSONPostProcessor.match_numbers", "1")
            + _s("JSONPostProcessor.defaultValues", "NOT_FOUND") + "</JSONPostProcessor>")


def _fresh_keys(names: list[str]) -> str:
    """Per iteration, a new ``${__UUID()}`` in each variable (an idempotency key)."""
    keys = "".join(_s(str(next(_ids)), x) for x in names)
    values = "".join(_s(str(next(_ids)), "${__UUID()}") for _ in names)
    return ('<UserParameters guiclass="UserParametersGui" testclass="UserParameters" '
            'testname="fresh idempotency keys" enabled="true">'
            f'<collectionProp name="UserParameters.names">{keys}</collectionProp>'
            '<collectionProp name="UserParameters.thread_values">'
            f'<collectionProp name="{next(_ids)}">{values}</collectionProp></collectionProp>'
            + _b("UserParameters.per_iteration", True) + "</UserParameters>")


def _thread_group(name: str, threads: str, comment: str) -> str:
    return (f'<ThreadGroup guiclass="ThreadGroupGui" testclass="ThreadGroup" '
            f'testname="{_attr(name)}" enabled="true">'
            + _s("TestPlan.comments", comment) + _s("ThreadGroup.on_sample_error", "continue")
            + '<elementProp name="ThreadGroup.main_controller" elementType="LoopController" '
              'guiclass="LoopControlPanel" testclass="LoopController" '
              'testname="Loop Controller" enabled="true">'
            + _b("LoopController.continue_forever", False)
            + _s("LoopController.loops", "${loops}") + "</elementProp>"
            + _s("ThreadGroup.num_threads", threads) + _s("ThreadGroup.ramp_time", "${rampup}")
            + _b("ThreadGroup.scheduler", True) + _s("ThreadGroup.duration", "${duration}")
            + _s("ThreadGroup.delay", "0") + _b("ThreadGroup.same_user_on_next_iteration", True)
            + "</ThreadGroup>")


def _once(name: str) -> str:
    return ('<OnceOnlyController guiclass="OnceOnlyControllerGui" '
            f'testclass="OnceOnlyController" testname="{_attr(name)}" enabled="true"/>')


def _think_time() -> str:
    return ('<ConstantTimer guiclass="ConstantTimerGui" testclass="ConstantTimer" '
            'testname="think time (think_ms)" enabled="true">'
            + _s("ConstantTimer.delay", "${think_ms}") + "</ConstantTimer>")


HTMX = _headers("htmx request", [("HX-Request", "true"),
                                 ("HX-Current-URL", "http://${host}:${port}/card")])
JSON = _headers("JSON body", [("Content-Type", "application/json"),
                              ("Accept", "application/json")])


def _var(name: str) -> str:
    return "${" + name + "}"


def _bearer(token: str) -> str:
    return _headers("Bearer token", [("Authorization", "Bearer " + _var(token)),
                                     ("Accept", "application/json")])


def _till(token: str, key: str) -> str:
    return _headers("Bearer token, JSON, Idempotency-Key", [
        ("Authorization", "Bearer " + _var(token)), ("Content-Type", "application/json"),
        ("Accept", "application/json"), ("Idempotency-Key", _var(key))])


CUSTOMER_EMAIL = "${customer_prefix}.${region}.${__threadNum}@example.com"
EARN = '{"kind":"earn","card":"${card}","amount":"${amount}","currency":"${currency}"}'
REDEEM = '{"kind":"redeem","card":"${card}","coins":1,"confirm_static":true}'
CUSTOMER_TOKEN_REQUEST = '{"email":"' + CUSTOMER_EMAIL + '","password":"${password}"}'


def customers() -> str:
    return _tree(_thread_group("customers", "${customers}", (
        "Each virtual customer signs in once (the page form with its CSRF token, and the "
        "API), then keeps looking at the card, the htmx history partial, the family page and "
        "its partial, and /me.")), [
        _tree(_once("sign in once"), [
            _tree(_sampler("page: GET /login", "GET", "/login"), [
                status("200"), body_has("csrf_token", "Sign in"),
                _regex("csrf_token", 'name="csrf_token" type="hidden" value="([^"]+)"')]),
            _tree(_sampler("page: POST /login", "POST", "/login", form=[
                ("csrf_token", "${csrf_token}"), ("email", CUSTOMER_EMAIL),
                ("password", "${password}")]), [
                status("302"), header_has("Location: /card")]),
            _tree(_sampler("api: POST /auth/token", "POST", "/api/v1/auth/token",
                           body=CUSTOMER_TOKEN_REQUEST), [
                JSON, status("200"), json_is("$.access_token"),
                _json_extract("api_token", "$.access_token")]),
        ]),
        _tree(_sampler("page: GET /card", "GET", "/card"), [
            status("200"), body_has('id="balance"', "Recent activity", "<svg"),
            body_lacks("Sign in")]),
        _tree(_sampler("htmx: GET /card?fresh=1 (history)", "GET", "/card?fresh=1"), [
            HTMX, status("200"), body_has('id="wallet"', 'id="balance"'), body_lacks("<html")]),
        _tree(_sampler("page: GET /family", "GET", "/family"), [
            status("200"), body_has('id="family"', "<html")]),
        _tree(_sampler("htmx: GET /family (list)", "GET", "/family"), [
            HTMX, status("200"), body_has('id="family"'), body_lacks("<html")]),
        _tree(_sampler("api: GET /me", "GET", "/api/v1/me"), [
            _bearer("api_token"), status("200"), json_is("$.balance"),
            json_is("$.account.email")]),
        _think_time(),
    ])


def staff() -> str:
    cards = ('<CSVDataSet guiclass="TestBeanGUI" testclass="CSVDataSet" '
             'testname="cards of this region (cards_csv)" enabled="true">'
             + _s("delimiter", ",") + _s("fileEncoding", "UTF-8") + _s("filename", "${cards_csv}")
             + _b("ignoreFirstLine", True) + _b("quotedData", False) + _b("recycle", True)
             + _s("shareMode", "shareMode.all") + _b("stopThread", False)
             + _s("variableNames", "card") + "</CSVDataSet>")
    return _tree(_thread_group("staff", "${staff}", (
        "Baristas at the region's store: each signs in to the API once, then for a card of "
        "one of the region's customers earns (fresh Idempotency-Key), replays that earn (it "
        "must answer the first receipt, not apply twice) and redeems one coin.")), [
        cards,
        _tree(_once("sign in once"), [
            _tree(_sampler("api: POST /auth/token (staff)", "POST", "/api/v1/auth/token",
                           body='{"email":"${staff_email}","password":"${password}"}'), [
                JSON, status("200"), json_is("$.access_token"),
                _json_extract("staff_token", "$.access_token")]),
        ]),
        _tree(_sampler("api: POST /transactions earn", "POST", "/api/v1/transactions",
                       body=EARN), [
            _fresh_keys(["earn_key", "redeem_key"]), _till("staff_token", "earn_key"),
            status("201"), json_is("$.kind", "earn"), _json_extract("earn_id", "$.id")]),
        _tree(_sampler("api: POST /transactions earn (replay)", "POST", "/api/v1/transactions",
                       body=EARN), [
            _till("staff_token", "earn_key"), status("200"),
            header_has("Idempotent-Replayed: true"), json_is("$.id", "${earn_id}")]),
        _tree(_sampler("api: POST /transactions redeem", "POST", "/api/v1/transactions",
                       body=REDEEM), [
            _till("staff_token", "redeem_key"), status("201"), json_is("$.kind", "redeem")]),
        _think_time(),
    ])


def plan() -> str:
    parameters = ('<Arguments guiclass="ArgumentsPanel" testclass="Arguments" '
                  'testname="Parameters (-J)" enabled="true">'
                  '<collectionProp name="Arguments.arguments">'
                  + "".join(f'<elementProp name="{_attr(k)}" elementType="Argument">'
                            + _s("Argument.name", k) + _s("Argument.value", f"${{__P({k},{v})}}")
                            + _s("Argument.metadata", "=") + "</elementProp>"
                            for k, v in PARAMETERS)
                  + "</collectionProp></Arguments>")
    defaults = ('<ConfigTestElement guiclass="HttpDefaultsGui" testclass="ConfigTestElement" '
                'testname="HTTP Request Defaults" enabled="true">'
                '<elementProp name="HTTPsampler.Arguments" elementType="Arguments" '
                'guiclass="HTTPArgumentsPanel" testclass="Arguments" '
                'testname="User Defined Variables" enabled="true">'
                '<collectionProp name="Arguments.arguments"/></elementProp>'
                + _s("HTTPSampler.domain", "${host}") + _s("HTTPSampler.port", "${port}")
                + _s("HTTPSampler.protocol", "http") + _s("HTTPSampler.contentEncoding", "UTF-8")
                + _s("HTTPSampler.implementation", "HttpClient4")
                + _s("HTTPSampler.connect_timeout", "5000")
                + _s("HTTPSampler.response_timeout", "30000") + "</ConfigTestElement>")
    browser = _headers("browser headers", [
        ("Accept-Encoding", "gzip, deflate"), ("Accept-Language", "en"),
        ("User-Agent", "loyalty-jmeter/5.5 (${region})")])
    cookies = ('<CookieManager guiclass="CookiePanel" testclass="CookieManager" '
               'testname="HTTP Cookie Manager" enabled="true">'
               '<collectionProp name="CookieManager.cookies"/>'
               + _b("CookieManager.clearEachIteration", False)
               + _b("CookieManager.controlledByThreadGroup", False) + "</CookieManager>")
    test_plan = ('<TestPlan guiclass="TestPlanGui" testclass="TestPlan" '
                 'testname="Loyalty Card: one region" enabled="true">'
                 + _s("TestPlan.comments", (
                     "One region's app under realistic load: customers reading (pages, htmx "
                     "partials, API) and baristas earning and redeeming. Written by "
                     "jmeter/build_plan.py; every -J property is in 'Parameters (-J)'."))
                 + _b("TestPlan.functional_mode", False)
                 + _b("TestPlan.tearDown_on_shutdown", True)
                 + _b("TestPlan.serialize_threadgroups", False)
                 + '<elementProp name="TestPlan.user_defined_variables" elementType="Arguments" '
                   'guiclass="ArgumentsPanel" testclass="Arguments" '
                   'testname="User Defined Variables" enabled="true">'
                   '<collectionProp name="Arguments.arguments"/></elementProp>'
                 + _s("TestPlan.user_define_classpath", "") + "</TestPlan>")
    body = _tree(test_plan, [parameters, defaults, browser, cookies, customers(), staff()])
    raw = ('<jmeterTestPlan version="1.2" properties="5.0" jmeter="5.5"><hashTree>' + body
           + "</hashTree></jmeterTestPlan>")
    pretty = xml.dom.minidom.parseString(raw).toprettyxml(indent="  ")  # noqa: S318 - ours
    lines = [line for line in pretty.splitlines()[1:] if line.strip()]
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(lines) + "\n"


def main() -> None:
    PLAN.write_text(plan())
    print(f"wrote {PLAN}")


if __name__ == "__main__":
    main()
