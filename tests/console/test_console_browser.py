"""The console in headless Chromium against a real explainer process, Redis and Kafka: log in, list, open
the alert, mark it a false positive, suppress it; the feedback and the rule are stored (API), audited
(broker) and visible; the actions are reachable by keyboard; the main text is readable (WCAG contrast)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_core.settings import KafkaSettings
from minerlens_explainer.settings import ExplainerSettings

from tests.console.browser import chromium, contrast, contrast_of, explainer_process, require_browser, screenshot
from tests.explainer.conftest import Artifacts, Tokens, free_port, serve
from tests.explainer.factory import pod_ref, verdict_for
from tests.explainer.operator_data import pod_windows, seed_alert
from tests.explainer.test_pods import MODEL
from tests.integration.services import require_kafka
from tests.kafka_io import read_records

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

WCAG_AA = 4.5


@dataclass(frozen=True)
class Console:
    base: str
    settings: ExplainerSettings
    kafka: KafkaSettings
    shots: Path


def test_contrast_formula() -> None:
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21.0)
    assert contrast("rgb(119, 119, 119)", "rgb(255, 255, 255)") == pytest.approx(4.48, abs=0.01)  # just fails AA
    assert contrast("rgb(255, 255, 255)", "rgb(255, 255, 255)") == pytest.approx(1.0)


@pytest.fixture
async def seeded(
    make_settings: Callable[..., ExplainerSettings], miner_windows: list[FeatureWindow],
    benign_windows: list[FeatureWindow],
) -> ExplainerSettings:  # fmt: skip
    """The store filled (as the ingestion would) by an in-process explainer on the test's key prefix."""
    tag = uuid.uuid4().hex[:8]
    settings = make_settings(audit_topic=f"test.audit.{tag}", suppressions_topic=f"test.suppressions.{tag}")
    async with serve(settings) as api:
        miner = pod_ref("team-a", "miner-1", uid=f"uid-miner-{tag}")
        await seed_alert(api.runtime, pod_windows(miner_windows[:6], miner), miner)
        web = pod_ref("shop", "web-7f9c", uid=f"uid-web-{tag}")
        await seed_alert(api.runtime, pod_windows(miner_windows[:6], web), web, "alert-2",
                         comm="<b>nginx</b>", exe="/usr/sbin/nginx", image="docker.io/library/nginx")  # fmt: skip
        for i in range(3):
            p = pod_ref("team-b", f"gzip-{i}", uid=f"uid-gzip-{i}-{tag}")
            ing = api.runtime.ingestor()
            for j, w in enumerate(pod_windows(benign_windows[:6], p)):
                await ing.handle(settings.windows_topic, w.model_dump_json().encode())
                v = verdict_for(w, 0.02 + 0.03 * ((i + j) % 4), MODEL)
                await ing.handle(settings.verdicts_topic, v.model_dump_json().encode())
    return settings


@pytest.fixture
def console(seeded: ExplainerSettings, artifacts: Artifacts, tokens: Tokens, tmp_path: Path) -> Iterator[Console]:
    require_browser()
    kafka = KafkaSettings(bootstrap=require_kafka(), compression="none")
    s = seeded
    env = {
        "MINERLENS_EXPLAINER_TOKENS_FILE": str(tokens.path), "MINERLENS_EXPLAINER_MODELS": str(artifacts.v1),
        "MINERLENS_EXPLAINER_REDIS_URL": s.redis_url, "MINERLENS_EXPLAINER_KEY_PREFIX": s.key_prefix,
        "MINERLENS_EXPLAINER_INGEST": "false", "MINERLENS_EXPLAINER_AUDIT_TOPIC": s.audit_topic,
        "MINERLENS_EXPLAINER_SUPPRESSIONS_TOPIC": s.suppressions_topic, "MINERLENS_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "MINERLENS_KAFKA_COMPRESSION": "none", "MINERLENS_EXPLAINER_REDIS_TIMEOUT_S": "5",
    }  # fmt: skip
    with explainer_process(env, free_port(), tmp_path / "explainer.log") as base:
        yield Console(base, s, kafka, tmp_path / "screenshots")


def wait_for(driver: Any, css: str, text: str = "", timeout_s: float = 20) -> Any:
    """The first element matching ``css`` (containing ``text``) once the new page shows it."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: Any) -> Any:
        for el in d.find_elements(By.CSS_SELECTOR, css):
            if text in el.text:
                return el
        return False

    # an element of the page being left goes stale while the next one loads: asked again
    return WebDriverWait(driver, timeout_s, ignored_exceptions=(StaleElementReferenceException,)).until(found)


def _login(driver: Any, c: Console, token: str, shots: bool = False) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{c.base}/console/alerts")
    assert "/console/login" in driver.current_url  # no session: the login page
    driver.find_element(By.ID, "name").send_keys("alice")
    if shots:
        screenshot(driver, "login", c.shots)
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait_for(driver, "main h1", "Open alerts")
    assert driver.current_url.endswith("/console/alerts"), driver.find_element(By.TAG_NAME, "main").text


def test_triage_an_alert_in_the_browser(console: Console, tokens: Tokens) -> None:
    from selenium.webdriver.common.by import By

    c = console
    with chromium() as driver:
        _login(driver, c, tokens.admin, shots=True)
        rows = driver.find_elements(By.CSS_SELECTOR, "main tbody tr")
        assert len(rows) == 2, driver.find_element(By.TAG_NAME, "main").text
        assert "<b>nginx</b>" in driver.find_element(By.TAG_NAME, "main").text  # shown as text, not markup
        assert not driver.find_elements(By.CSS_SELECTOR, "main td b")
        screenshot(driver, "alerts", c.shots)

        driver.find_element(By.LINK_TEXT, "Pods").click()
        wait_for(driver, "main h1", "Pods")
        assert len(driver.find_elements(By.CSS_SELECTOR, "main tbody tr")) == 5
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg.spark")) == 5
        screenshot(driver, "pods", c.shots)

        driver.find_element(By.LINK_TEXT, "Alerts").click()
        wait_for(driver, "main h1", "Open alerts")
        driver.find_element(By.LINK_TEXT, "team-a/miner-1").click()
        wait_for(driver, "main h1", "team-a/miner-1")
        assert driver.current_url.endswith("/console/pods/team-a/miner-1")
        page = driver.find_element(By.TAG_NAME, "main").text
        assert "alert-1" in page
        assert "xmrig" in page
        assert "Syscall mix against benign pods" in page
        assert driver.find_elements(By.CSS_SELECTOR, "svg.waterfall rect")
        screenshot(driver, "alert", c.shots)
        driver.find_element(By.LINK_TEXT, "lime").click()
        wait_for(driver, "nav.methods a[aria-current=true]", "lime")
        assert "method=lime" in driver.current_url
        assert driver.find_elements(By.CSS_SELECTOR, "svg.waterfall rect")
        screenshot(driver, "alert-lime", c.shots)

        driver.find_element(By.ID, "fb-reason").send_keys("our nightly video encoder, not a miner")
        driver.find_element(By.CSS_SELECTOR, "button[value=false_positive]").click()
        wait_for(driver, "p.notice", "judgement was saved")
        assert "notice=feedback" in driver.current_url
        table = driver.find_element(By.ID, "feedback").find_element(By.XPATH, "following-sibling::table").text
        assert "false positive" in table
        assert "our nightly video encoder" in table
        assert "alice" in table

        driver.find_element(By.ID, "sp-reason").send_keys("nightly encoder batch")
        driver.find_element(By.CSS_SELECTOR, "#sp-title ~ button[type=submit]").click()
        wait_for(driver, "p.notice", "suppression was created")
        assert "notice=suppressed" in driver.current_url
        assert "covers this alert" in driver.find_element(By.TAG_NAME, "main").text
        screenshot(driver, "alert-after-actions", c.shots)

        driver.find_element(By.LINK_TEXT, "Suppressions").click()
        wait_for(driver, "main h1", "Suppressions")
        text = driver.find_element(By.TAG_NAME, "main").text
        assert "namespace=team-a and image=ghcr.io/acme/web:1.0 and process=xmrig" in text
        screenshot(driver, "suppressions", c.shots)
        driver.find_element(By.LINK_TEXT, "Feedback").click()
        wait_for(driver, "main h1", "Feedback")
        screenshot(driver, "feedback", c.shots)

    auth = tokens.auth()
    fb = httpx.get(f"{c.base}/v1/feedback", headers=auth).json()["feedback"]
    assert [(f["label"], f["pod"], f["by"]["name"]) for f in fb] == [("false_positive", "miner-1", "alice")]
    rules = httpx.get(f"{c.base}/v1/suppressions", headers=auth).json()["suppressions"]
    assert [(r["namespace"], r["process"], r["owner"]) for r in rules] == [("team-a", "xmrig", "alice")]
    import asyncio

    audit = asyncio.run(read_records(c.kafka, c.settings.audit_topic, expect=2))
    assert sorted(json.loads(a.value)["action"] for a in audit) == ["feedback.create", "suppression.create"]
    published = asyncio.run(read_records(c.kafka, c.settings.suppressions_topic, expect=1))
    assert [p.key.decode() for p in published] == [rules[0]["id"]]
    for shot in ("login", "alerts", "pods", "alert", "alert-after-actions", "suppressions", "feedback"):
        assert (c.shots / f"{shot}.png").stat().st_size > 5000


def test_keyboard_reaches_the_actions_and_text_is_readable(console: Console, tokens: Tokens) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    c = console
    with chromium() as driver:
        _login(driver, c, tokens.admin)
        driver.get(f"{c.base}/console/pods/team-a/miner-1")
        wait_for(driver, "main h1", "team-a/miner-1")
        order: list[str] = []
        for _ in range(120):
            driver.switch_to.active_element.send_keys(Keys.TAB)
            el = driver.switch_to.active_element
            label = (
                el.get_attribute("id") or el.get_attribute("value") or el.get_attribute("textContent") or ""
            ).strip()
            order.append(label)
            if el.get_attribute("value") == "false_positive":
                break
        else:
            pytest.fail(f"Tab never reached the 'False positive' button; order: {order}")
        assert order[0] == "Skip to content"  # the skip link comes first
        assert order.index("Alerts") < order.index("fb-reason") < len(order) - 1  # nav, then the form, then it
        outline = driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle",
                                        driver.switch_to.active_element)  # fmt: skip
        assert outline != "none"  # focus is visible

        checks = {"body text": "main p, main td", "table header": "th", "links": "main a",
                  "navigation": "header nav a", "buttons": "button", "severity badge": ".sev-High"}  # fmt: skip
        checked: dict[str, int] = {}
        for page in ("/console/pods/team-a/miner-1", "/console/alerts", "/console/", "/console/suppressions"):
            driver.get(c.base + page)
            wait_for(driver, "main h1")
            for what, css in checks.items():
                for el in driver.find_elements(By.CSS_SELECTOR, css)[:25]:
                    if not el.is_displayed() or not el.text.strip():
                        continue
                    ratio, fg, bg = contrast_of(driver, el)
                    assert ratio >= WCAG_AA, f"{page} {what} {el.text[:30]!r}: {fg} on {bg} = {ratio:.2f}"
                    checked[what] = checked.get(what, 0) + 1
        assert set(checked) == set(checks), checked  # every kind of text was found and measured
