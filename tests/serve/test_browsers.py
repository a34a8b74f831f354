"""When the browser tests run, skip or fail: decided by tests/serve/browsers.py, checked here on fake paths."""

from pathlib import Path

import pytest

from tests.serve.browsers import PACKAGES, browser_problem, browser_required, need_browser, skip_reason


def program(path: Path, executable: bool = True) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def test_both_programs_there_runs_the_tests(tmp_path):
    chromium, driver = program(tmp_path / "chromium"), program(tmp_path / "chromedriver")
    assert browser_problem(chromium, driver) is None and skip_reason(chromium, driver, environ={}) is None
    need_browser(chromium, driver, environ={"MM_REQUIRE_BROWSER": "1"})  # neither skips nor fails


@pytest.mark.parametrize("missing", ["chromium", "chromedriver", "both", "not executable"])
def test_a_missing_program_skips_with_the_packages_to_install(tmp_path, missing):
    chromium, driver = tmp_path / "chromium", tmp_path / "chromedriver"
    if missing in ("chromedriver", "not executable"):
        program(chromium)
    if missing == "chromium":
        program(driver)
    if missing == "not executable":
        program(driver, executable=False)
    problem = browser_problem(chromium, driver)
    assert problem is not None and "\n" not in problem and problem.endswith(f"apt-get install {PACKAGES}")
    assert PACKAGES == "chromium chromium-driver fonts-wqy-zenhei"
    named = {"chromium": [chromium], "chromedriver": [driver], "both": [chromium, driver],
             "not executable": [driver]}[missing]
    assert all(str(p) in problem for p in named)
    assert not any(str(p) in problem for p in {chromium, driver} - set(named))
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver fonts-wqy-zenhei"):
        need_browser(chromium, driver, environ={})
    assert skip_reason(chromium, driver, environ={}) == problem
    assert skip_reason(chromium, driver, environ={"MM_REQUIRE_BROWSER": "1"}) is None  # then need_browser fails


def test_required_browser_missing_is_a_failure(tmp_path):
    chromium, driver = tmp_path / "chromium", program(tmp_path / "chromedriver")
    with pytest.raises(pytest.fail.Exception, match=r"^MM_REQUIRE_BROWSER=1 and .*chromium.* missing.*apt-get"):
        need_browser(chromium, driver, environ={"MM_REQUIRE_BROWSER": "1"})


@pytest.mark.parametrize("value,required", [("1", True), (" 1\n", True), ("0", False), ("", False),
                                            ("yes", False)])
def test_only_mm_require_browser_1_requires_it(value, required):
    assert browser_required({"MM_REQUIRE_BROWSER": value}) is required
    assert browser_required({}) is False


def test_ci_requires_the_browser():
    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text()
    assert "export MM_REQUIRE_BROWSER=1" in ci
    assert ci.index("export MM_REQUIRE_BROWSER=1") < ci.index("make test")
