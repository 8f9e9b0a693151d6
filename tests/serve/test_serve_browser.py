"""The web chat page in a real headless Chromium (Debian's, driven by playwright -- its own
browser download is not used): type a message, see the streamed text appear, press Stop.

The model answers every chat with SAY repeated until max_tokens (serve_testlib.looping_qwen), a
few ms per token, so a long answer is still streaming when Stop is pressed."""

import shutil
import tempfile

import pytest

from serve_testlib import SAY, Server, looping_qwen  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium; .ci/run does)")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = looping_qwen(tmp_path_factory.mktemp("loop"))
    with Server("--model", str(d), "--name", "loop") as s:
        yield s


@pytest.fixture
def page():
    with tempfile.TemporaryDirectory() as profile, playwright.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_type_a_message_see_it_stream_and_stop(server, page):
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model').textContent === 'loop'")
    page.click("summary")                                   # open Settings
    page.fill("#max_tokens", "8")
    page.fill("#input", "Hello there")
    page.press("#input", "Enter")
    answer = page.locator(".msg.assistant .body").last
    answer.wait_for()
    page.wait_for_function("document.getElementById('send').disabled === false")   # done streaming
    assert page.locator(".msg.user .body").last.inner_text() == "Hello there"
    assert answer.inner_text().strip() == (SAY * 8).strip()
    assert "max tokens" in page.locator(".msg.assistant").last.inner_text()       # it says why it ended

    # a long answer: text appears while it streams, Stop ends it, the page stays usable
    page.fill("#max_tokens", "3000")
    page.fill("#input", "Tell me more")
    page.click("#send")
    second = page.locator(".msg.assistant .body").nth(1)
    page.wait_for_function("document.querySelectorAll('.msg.assistant .body')[1].textContent.length > 40")
    assert page.locator("#stop").is_enabled()
    page.click("#stop")
    page.wait_for_function("document.getElementById('stop').disabled === true")
    shown = second.inner_text()
    assert shown.startswith("Let me look.") and len(shown) < len(SAY) * 3000
    assert "(stopped)" in page.locator(".msg.assistant").nth(1).inner_text()
    page.wait_for_timeout(300)
    assert second.inner_text() == shown                                      # nothing more arrives
    # the server saw the disconnect and freed the slot
    for _ in range(100):
        if server.metrics()["groundup_running_sequences"] == 0:
            break
        page.wait_for_timeout(100)
    assert server.metrics()["groundup_running_sequences"] == 0
    assert server.metrics()['groundup_requests_total{endpoint="/v1/chat/completions",status="499"}'] == 1

    # the conversation is kept: a third message goes out with the first two turns
    page.fill("#max_tokens", "2")
    page.fill("#input", "Thanks")
    page.press("#input", "Enter")
    page.wait_for_function("document.querySelectorAll('.msg.assistant .body').length === 3 && "
                           "document.getElementById('send').disabled === false")
    assert page.locator(".msg.assistant .body").nth(2).inner_text().strip() == (SAY * 2).strip()
    assert page.evaluate("messages.length") == 6        # 3 user turns, 3 answers (the stopped one kept as far as it got)
