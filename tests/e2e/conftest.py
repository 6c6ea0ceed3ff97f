"""Browser tests: a real server on a free port and Debian's Chromium driven by Playwright.

Never downloads a browser: Chromium must be /usr/bin/chromium (`apt-get install chromium`).
Screenshots go to tests/e2e/screenshots/ for people to look at.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import PASSWORD, make_app
from triage.models import Role
from triage.services import create_user

CHROMIUM = os.environ.get("TRIAGE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this folder as a browser test."""
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def live_app(database_url: str) -> Flask:
    """The application the live server serves (CSRF on, as in production)."""
    return make_app(database_url, WTF_CSRF_ENABLED=True)


@pytest.fixture
def live_server(live_app: Flask) -> Iterator[str]:
    """Serve `live_app` over real HTTP on a free port; yields the base URL."""
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    live_app.extensions["triage.db"].dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium, or a skip that says why."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Callable[..., Any]]:
    """Factory: a new page (own cookies) with a viewport and a language."""
    contexts = []

    def make(*, width: int = 1280, height: int = 900, lang: str = "zh-CN", mobile: bool = False) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, locale=lang,
                                      extra_http_headers={"Accept-Language": lang},
                                      is_mobile=mobile, has_touch=mobile, device_scale_factor=1)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def shoot() -> Callable[[Any, str], Path]:
    """Save a full-page screenshot under tests/e2e/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def staff_login(live_app: Flask, live_server: str) -> Callable[[Any, Role], None]:
    """Create a staff user of a role and log `page` in through the real login form."""

    def do(page: Any, role: Role) -> None:
        username = f"{role.value}-e2e"
        with live_app.app_context():
            s = live_app.extensions["triage.db"].session()
            from sqlmodel import select

            from triage.models import StaffUser

            if s.exec(select(StaffUser).where(StaffUser.username == username)).first() is None:
                create_user(s, username=username, password=PASSWORD, role=role)
            s.close()
        page.goto(f"{live_server}/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")

    return do
