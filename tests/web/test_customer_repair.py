"""End to end in a real browser: a real ``fixlens serve`` with the real detector, and headless Chromium whose
camera plays a film of the router twin with its WAN cable out, repaired part-way (tests/web/fake_camera.py).

The customer page, opened from a support link, must take the ``router_no_internet`` scene to ``resolved``
with every step verified by vision and no button pressed. On the way it takes the screenshots of the docs
(web-customer-landscape.png and -portrait.png; ``make docs-images`` writes them into docs/images/) while the
first step's overlays sit on the device.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import (
    CHROMIUM,
    FixlensServer,
    chromium_args,
    fixlens_token,
    page_state,
    rest,
    wait_for,
    watch_errors,
)

LANDSCAPE = {"width": 960, "height": 540}
PORTRAIT = {"width": 400, "height": 800}
REPAIR_TIMEOUT_S = 200.0  # the film is 32 s and loops; a slow machine may need a second pass


@pytest.mark.slow
def test_the_customer_page_repairs_the_router_with_every_step_verified_by_vision(
        playwright: Any, fixlens_server: FixlensServer, fake_camera_video: Path, screenshots: Path) -> None:
    customer = fixlens_token("customer", "web-customer")
    link = rest(fixlens_server, "POST", "/v1/sessions", customer)  # a support link: session, single-use link
    session, token, url = link["session"], link["token"], link["url"]
    assert url.startswith("/#link=") and token not in url

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(fake_camera_video))
    context = browser.new_context(viewport=LANDSCAPE, locale="en-GB")
    page = context.new_page()
    watch_errors(page)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    started = time.monotonic()
    try:
        page.goto(fixlens_server.url + url)
        # The first step, seen from behind the router: its overlays are on the WAN port, which faces the camera.
        wait_for(page, lambda s: s.get("step") == "check_wan", 90, "the first step")
        page.wait_for_selector(".label:not(.label-behind):not([hidden])", timeout=60_000)
        page.wait_for_timeout(400)
        page.screenshot(path=str(screenshots / "web-customer-landscape.png"))
        page.set_viewport_size(PORTRAIT)
        page.wait_for_timeout(600)
        page.screenshot(path=str(screenshots / "web-customer-portrait.png"))
        page.set_viewport_size(LANDSCAPE)
        wait_for(page, lambda s: s.get("outcome") is not None,
                   max(1.0, REPAIR_TIMEOUT_S - (time.monotonic() - started)), "the end of the session")
        page.wait_for_selector("#end:not([hidden])")
    finally:
        try:
            final = page_state(page)
            page_token = page.evaluate("sessionStorage.getItem('fixlens.token')")
        except Exception as exc:  # the page itself failed: say so in the assertion below
            final, page_token = {"unreadable": str(exc)}, None
        context.close()
        browser.close()
    elapsed = time.monotonic() - started

    agent = fixlens_token("agent", "web-test-agent")
    record = rest(fixlens_server, "GET", f"/v1/sessions/{session}", agent)
    history = [(h["step_id"], h["how"]) for h in record["history"]]
    why = (f"after {elapsed:.0f} s: page {final}, session outcome {record['outcome']}, history {history}, "
           f"server log tail:\n{fixlens_server.log[-3000:]}")
    state = final
    assert state["outcome"] == "resolved" and record["outcome"] == "resolved", why
    assert record["scene"] == "router_no_internet", why  # chosen by the server from what the camera showed
    left = [h for h in record["history"] if h["verified_at"] is not None]
    assert left and all(h["how"] == "vision" for h in left), why  # no Done, no timeout moved a step on
    assert history[0][0] == "check_wan" and history[-1][0] == "resolved", why
    assert state["events"] == [], why  # nothing was pressed
    assert state["stats"]["maxInFlight"] <= 2 and state["stats"]["sent"] > 0, why
    assert not page.errors, page.errors
    print(f"\nweb repair: resolved {elapsed:.1f} s after the page opened; steps {history}; frames sent "
          f"{state['stats']['sent']}, answered {state['stats']['answered']}, lost {state['stats']['lost']}")
    # The session token never goes into a URL, and the link only in the fragment: no request line and no
    # server log line carries either.
    link_token = url.removeprefix("/#link=")
    assert page_token and page_token.startswith("fl1."), page_token  # what the link was exchanged for
    secret_values = (token, link_token, page_token)
    assert not [u for u in requests if any(s in u for s in secret_values)], requests
    assert not [s for s in secret_values if s in fixlens_server.log]
