"""The customer page in Spanish and German: the closing card names the outcome in the page's language (the
scene's end arrives with no text), and a step that only asks a question shows its choices without Done.

The step messages are the real server's: the scene engine's ``ShowStep`` through ``step_message``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ar_server.protocol import End, Event, Step
from ar_server.session.convert import step_message
from product_models.catalog import default_catalog
from scenes import Engine, ShowStep, load_library
from tests.web.conftest import ServerThread, mint, watch_errors
from tests.web.test_page_stream import open_page


def shown_step(step_id: str, locale: str) -> Step:
    """The ``step`` message the server sends on entering ``step_id`` of router_no_internet in ``locale``."""
    scene = load_library().get("router_no_internet")
    run = Engine(scene, default_catalog().get(scene.product), locale)
    run.start(0.0)
    (show,) = [e for e in run.jump_to(step_id, 1.0) if isinstance(e, ShowStep)]
    return step_message(show)


@pytest.fixture(params=["es-ES", "de-DE"])
def page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 900, "height": 420}, locale=request.param)
    page = context.new_page()
    page.fixlens_locale = request.param
    watch_errors(page)
    yield page
    context.close()
    assert not page.errors, page.errors


END_TITLE = {"es-ES": "Un agente de soporte continúa", "de-DE": "Ein Support-Mitarbeiter übernimmt"}


def test_a_question_step_has_no_done_and_the_escalated_end_is_translated(page: Any,
                                                                        page_server: ServerThread) -> None:
    """Regression: Done showed beside offer_reset's choices and took the first one, a factory reset."""
    locale = page.fixlens_locale
    stream = open_page(page, page_server, mint("customer", f"cust-end-{locale}"))
    connection = stream.wait_connection(0)
    connection.welcome("resume-E")
    offer = shown_step("offer_reset", locale[:2])
    assert not offer.accepts_done and len(offer.choices) == 2
    connection.send(offer)
    page.wait_for_selector("button.choice[data-choice='agent']")
    assert page.is_hidden("#done")
    assert page.inner_text("#step-text") == offer.text
    page.click("button.choice[data-choice='agent']")
    stream.wait(lambda: any(isinstance(m, Event) for m in connection.received), what="the choice")
    (event,) = [m for m in connection.received if isinstance(m, Event)]
    assert (event.kind, event.step, event.choice) == ("choose", "offer_reset", "agent")

    check = shown_step("check_wan", locale[:2])  # a step with a done_goto keeps its Done
    assert check.accepts_done
    connection.send(check)
    page.wait_for_selector("#done:not([hidden])")

    closing = shown_step("escalate", locale[:2])
    connection.send(closing)
    connection.send(End("escalated"))  # what the server sends when the scene ends: no text
    connection.close(1000)
    page.wait_for_selector("#end:not([hidden])")
    assert page.inner_text("#end-title") == END_TITLE[locale]
    assert page.inner_text("#end-text") == closing.text  # the closing step's own words, in the locale
    assert page.get_attribute("#end", "data-outcome") == "escalated"
