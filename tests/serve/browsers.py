"""Whether the browser tests can run here: Debian's headless Chromium and its driver.

Without them the browser tests skip with one line naming the packages to install, so `make test` passes on
a machine that has no browser; with `MM_REQUIRE_BROWSER=1` (set by `.ci/run`) a missing browser fails them
instead, so CI cannot quietly stop testing the app in a real browser.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = "chromium chromium-driver fonts-wqy-zenhei"  # fonts: the Chinese questions in the screenshots
REQUIRE = "MM_REQUIRE_BROWSER"


def browser_problem(chromium: Path = CHROMIUM, driver: Path = CHROMEDRIVER) -> str | None:
    """One line saying what is missing and how to install it; None when both programs are there."""
    missing = [str(p) for p in (chromium, driver) if not (p.is_file() and os.access(p, os.X_OK))]
    if not missing:
        return None
    return f"no headless browser ({' and '.join(missing)} missing): sudo apt-get install {PACKAGES}"


def browser_required(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(REQUIRE, "").strip() == "1"


def skip_reason(chromium: Path = CHROMIUM, driver: Path = CHROMEDRIVER,
                environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the browser tests may skip here (for a module-level skip: one line in the report), None when they
    must run: the browser is there, or MM_REQUIRE_BROWSER=1 says they must and `need_browser` fails them."""
    return None if browser_required(environ) else browser_problem(chromium, driver)


def need_browser(chromium: Path = CHROMIUM, driver: Path = CHROMEDRIVER,
                 environ: Mapping[str, str] = os.environ) -> None:
    """Return when the browser is there; otherwise skip the calling test, or fail it under MM_REQUIRE_BROWSER=1."""
    problem = browser_problem(chromium, driver)
    if problem is None:
        return
    if browser_required(environ):
        pytest.fail(f"{REQUIRE}=1 and {problem}", pytrace=False)
    pytest.skip(problem)
