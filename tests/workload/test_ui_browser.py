"""The MLflow UI in a real browser, behind a real prefix-stripping ingress.

What a person does: opens the URL the ingress hands out, finds the
experiment a notebook logged, opens its run and the run's artifact. Every
piece is real: the MLflow server runs under Pebble from the mlflow-tracking
charm's layer, with the allowed hosts and CORS origins the charm derived from
traefik's answer; the ingress is Debian's nginx configured from what the
charm asked traefik for (prefix, strip-prefix, port), read by the traefik
stand-in of the contract tests; the browser is Debian's Chromium driven by
Debian's chromedriver, reaching the ingress under a host name that is not
localhost (``mlflow.ingress.test``, mapped to 127.0.0.1 inside the browser), so
MLflow's Host and Origin checks really apply.

Screenshots of every step go to ``$TEST_OUTPUT_DIR/ui-browser`` (default
``.cache/test-output/ui-browser``).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stack.charm_loader import REPO, charm_modules
from stack.ingress_proxy import IngressProxy, nginx_binary
from stack.mlflow_server import MlflowServer, mt, run_json_script
from stack.pebble import free_port
from tests.workload.conftest import PebbleFactory, need, record

INGRESS_HOST = "mlflow.ingress.test"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ERROR_MARKERS = (
    "Invalid Host header",
    "Cross-origin request blocked",
    "403 Forbidden",
    "404 Not Found",
    "Something went wrong",
)
ml = charm_modules("mlflow-tracking", "charm", "client")


@pytest.fixture(scope="module")
def output_dir() -> Path:
    base = Path(os.environ.get("TEST_OUTPUT_DIR", REPO / ".cache" / "test-output"))
    path = base / "ui-browser"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _charm_run(relation: Any) -> Any:
    """The mlflow-tracking charm, one hook, with the network probes of its own pod stubbed."""
    from tests.contract.chain import context
    from tests.contract.test_contracts import mlflow_state

    ctx = context("mlflow-tracking", app_name="mlflow-tracking")
    state = dataclasses.replace(mlflow_state(relation), model=_model())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ml.client.Probe, "server_ready", lambda self, port, ca=None: True)
        return ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)


def _model() -> Any:
    from ops import testing

    return testing.Model(name="test-model")


@dataclass
class BehindIngress:
    """The server, the proxy in front of it, and the run a notebook logged through it."""

    server: MlflowServer
    proxy: IngressProxy
    url: str
    experiment: str
    run_id: str
    run_name: str

    @property
    def origin(self) -> str:
        return f"http://{INGRESS_HOST}:{self.proxy.port}"


@pytest.fixture(scope="module")
def behind_ingress(module_pebble_factory: PebbleFactory, mlflow_venv_dir: Path) -> BehindIngress:
    from ops import testing

    from tests.contract.chain import bag
    from tests.contract.ingress_providers import traefik_route

    need(nginx_binary(), "nginx not installed (apt-get install nginx-light)")

    # 1. The charm asks traefik for a route; the traefik stand-in reads it.
    asked = _charm_run(testing.Relation("ingress", remote_app_name="traefik"))
    mine = next(iter(asked.relations))
    route = traefik_route(bag(mine.local_app_data), [bag(mine.local_unit_data)])
    assert route.backends[0].endswith(":5000")

    # 2. The proxy routes that prefix to the server (on loopback instead of the unit's DNS name).
    port = free_port()
    proxy = IngressProxy.start(
        module_pebble_factory("ingress-proxy"),
        route.prefix,
        f"http://127.0.0.1:{port}",
        route.strip_prefix,
    )
    url = proxy.url(INGRESS_HOST)

    # 3. traefik answers with that URL; the charm derives the server's allowed hosts and origins.
    answer = dataclasses.replace(mine, remote_app_data={"ingress": json.dumps({"url": url})})
    configured = _charm_run(answer)
    argv = shlex.split(
        configured.get_container("mlflow-server").plan.services["mlflow-server"].command
    )
    allowed = tuple(argv[argv.index("--allowed-hosts") + 1].split(","))
    origins = tuple(argv[argv.index("--cors-allowed-origins") + 1].split(","))

    # 4. The real server from the charm's builders, with exactly those settings.
    daemon = module_pebble_factory("mlflow-behind-ingress")
    server = MlflowServer.start(
        daemon,
        mlflow_venv_dir,
        mt.workload.sqlite_store(str(daemon.directory / "data" / "mlflow.db")),
        mt.state.LOCAL_ARTIFACTS,
        port=port,
        allowed_hosts=allowed,
        cors_allowed_origins=origins,
    )

    # 5. A notebook logs a run through the ingress URL (the API behind the prefix).
    experiment = "seen-through-the-ingress"
    logged = run_json_script(
        mlflow_venv_dir,
        Path(REPO / "stack" / "notebook.py"),
        ["log", experiment],
        {"MLFLOW_TRACKING_URI": proxy.url()},
        daemon.directory / "notebook-home",
        timeout=300,
    )
    status, body = _request(proxy, "GET", f"/api/2.0/mlflow/runs/get?run_id={logged['run_id']}")
    assert status == 200, body
    run_name = json.loads(body)["run"]["info"]["run_name"]
    return BehindIngress(server, proxy, url, experiment, logged["run_id"], run_name)


def _request(
    proxy: IngressProxy,
    method: str,
    path: str,
    host: str | None = None,
    origin: str | None = None,
    body: dict | None = None,
) -> tuple[int, str]:
    """One request to the proxy on loopback, with the Host (and Origin) a browser would send."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    headers = {"Host": host or f"127.0.0.1:{proxy.port}", "Content-Type": "application/json"}
    if origin:
        headers["Origin"] = origin
    conn.request(
        method,
        f"/{proxy.prefix}{path}",
        body=json.dumps(body) if body is not None else None,
        headers=headers,
    )
    response = conn.getresponse()
    return response.status, response.read().decode(errors="replace")


class TestTheIngressHostAndOrigin:
    """The settings the charm derived are what let a browser in; others stay out."""

    def test_the_ingress_host_is_accepted_and_an_unknown_host_is_refused(self, behind_ingress):
        proxy = behind_ingress.proxy
        host = f"{INGRESS_HOST}:{proxy.port}"

        ok, _ = _request(proxy, "GET", "/api/2.0/mlflow/experiments/search?max_results=5", host)
        refused, text = _request(proxy, "GET", "/api/2.0/mlflow/experiments/search", "evil.test")

        assert ok == 200
        assert refused == 403, text

    def test_a_post_from_the_ingress_origin_passes_and_from_another_origin_is_blocked(
        self, behind_ingress
    ):
        proxy = behind_ingress.proxy
        host = f"{INGRESS_HOST}:{proxy.port}"
        search = {"experiment_ids": ["0"], "max_results": 1}

        ok, _ = _request(
            proxy, "POST", "/ajax-api/2.0/mlflow/runs/search", host, behind_ingress.origin, search
        )
        blocked, text = _request(
            proxy, "POST", "/ajax-api/2.0/mlflow/runs/search", host, "http://evil.test", search
        )

        assert ok == 200
        assert blocked == 403
        assert "Cross-origin request blocked" in text


@pytest.fixture(scope="module")
def browser(output_dir: Path) -> Iterator[Any]:
    need(
        CHROMIUM if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists() else None,
        "Debian's chromium and chromium-driver are needed (apt-get install chromium "
        "chromium-driver)",
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={output_dir / 'profile'}",
        # The ingress's host name, resolved to loopback inside this browser only.
        f"--host-resolver-rules=MAP {INGRESS_HOST} 127.0.0.1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(
        service=Service(CHROMEDRIVER, log_output=str(output_dir / "chromedriver.log")),
        options=options,
    )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        # chromedriver.quit() ends Chromium and the driver it started (by PID, through Selenium).
        driver.quit()


class Person:
    """What a person does in the browser, with a screenshot of every step."""

    def __init__(self, driver: Any, output_dir: Path):
        self.driver = driver
        self.output_dir = output_dir
        self.shots: list[Path] = []

    def body(self) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def shot(self, name: str) -> None:
        path = self.output_dir / f"{len(self.shots) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)

    def wait_for(self, what: str, found: Callable[[], Any], timeout: float = 60) -> Any:
        """Poll until ``found`` returns something; fail on an error page or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.body()
            for marker in ERROR_MARKERS:
                if marker in text:
                    self.shot("error")
                    pytest.fail(f"error page while waiting for {what}: {marker!r}")
            try:
                result = found()
            except Exception:  # selenium raises many kinds while a page renders
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                self.shot("timeout")
                pytest.fail(f"timed out waiting for {what}; page text: {text[:500]!r}")
            time.sleep(0.5)

    def element(self, xpath: str) -> Any:
        from selenium.webdriver.common.by import By

        elements = self.driver.find_elements(By.XPATH, xpath)
        return next((e for e in elements if e.is_displayed()), None)

    def responses(self, origin: str) -> list[tuple[int, str]]:
        """(status, URL) of every response from ``origin``, from the browser's own network log."""
        seen = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.responseReceived":
                continue
            response = message["params"]["response"]
            if response["url"].startswith(origin):
                seen.append((int(response["status"]), str(response["url"])))
        return seen


def test_a_person_finds_the_run_and_its_artifact_through_the_ingress(
    behind_ingress: BehindIngress, browser: Any, output_dir: Path
):
    person = Person(browser, output_dir)
    started = time.monotonic()

    # The URL the charm's status and get-client-env show: the ingress URL, with its slash.
    browser.get(behind_ingress.url + "/")
    person.wait_for("the home page", lambda: "Welcome to MLflow" in person.body())
    person.shot("home")

    # Runs live in the "Model training" view.
    person.wait_for(
        "the Model training switch",
        lambda: person.element("//*[normalize-space(text())='Model training']"),
    ).click()
    person.wait_for(
        "the experiment in the list",
        lambda: person.element(f"//a[normalize-space(.)='{behind_ingress.experiment}']"),
    ).click()
    person.wait_for(
        "the run in the experiment",
        lambda: person.element(f"//a[normalize-space(.)='{behind_ingress.run_name}']"),
    )
    person.shot("experiment-runs")
    person.element(f"//a[normalize-space(.)='{behind_ingress.run_name}']").click()
    person.wait_for("the run page", lambda: behind_ingress.run_id in person.body())
    person.shot("run")

    person.wait_for(
        "the Artifacts tab",
        lambda: person.element("//*[@role='tab' and normalize-space(.)='Artifacts']"),
    ).click()
    person.wait_for(
        "notes.txt in the artifact tree",
        lambda: person.element("//*[normalize-space(text())='notes.txt']"),
    ).click()
    person.wait_for("the artifact's content", lambda: "trained on four points" in person.body())
    person.shot("artifact")

    seen = person.responses(behind_ingress.origin)
    failed = [(status, url) for status, url in seen if status >= 400]
    posts = [url for _, url in seen if "/ajax-api/" in url and "search" in url]
    record(
        "UI through the ingress (Chromium, nginx prefix-stripping proxy)",
        f"home -> experiment -> run -> artifact in {time.monotonic() - started:.1f} s; "
        f"{len(seen)} responses from the ingress, {len(failed)} errors; "
        f"{len(person.shots)} screenshots in {output_dir}",
    )
    assert behind_ingress.url.endswith("/test-model-mlflow-tracking")
    assert all(url.startswith(behind_ingress.url + "/") for _, url in seen), seen
    assert posts, "the UI searched nothing through the ingress: the check above proves nothing"
    assert failed == [], f"the browser got error responses from the ingress: {failed}"
