"""Contract tests of the deploy/ artifacts, run through the real validators.

Why these run real tools instead of only parsing YAML: a rule file can parse and still be
rejected by Prometheus, a compose file can parse and still use an option Compose does not
know, a manifest can parse and still have a misspelt field the API server would drop.
The tools are installed by ``scripts/install-tools.sh``; these tests never skip, because a
silently skipped validator is a validator that is not run.

They also pin the seams between files owned by different people: every metric an alert
or a dashboard panel uses must be defined in ``pacer_stream.observability.metrics``, and
every ``PACER_`` variable a deployment sets must be a field of ``Settings``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pacer_stream.observability.metrics import REGISTRY, label_names
from pacer_stream.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "pacer-stream.json"
K8S = DEPLOY / "k8s"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"

HINT = (
    "run `bash scripts/install-tools.sh` (installs promtool, docker-compose, kubernetes-validate)"
)
#: Oldest Kubernetes minor the manifests must still validate against, and the newest.
K8S_VERSIONS = ("1.30.0", "1.37.0")
#: Labels Prometheus adds or histograms carry, usable in any expression.
IMPLICIT_LABELS = frozenset({"job", "instance", "le"})

METRIC_RE = re.compile(r"\bpacer_[a-z0-9_]+")
SELECTOR_RE = re.compile(r"\b(pacer_[a-z0-9_]+)\{([^}]*)\}")
MATCHER_RE = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING_RE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _tool(name: str) -> str:
    """Return the path of a required command-line tool, failing (not skipping) if absent."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH: {HINT}", pytrace=False)
    return path


def _run(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a validator and return its result (never raises on a non-zero exit)."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=180, check=False)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


# --- metric names ----------------------------------------------------------------------


def _exposed_names() -> dict[str, frozenset[str]]:
    """Map every series name the registry can expose to the label names it carries."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
    }
    declared = label_names()
    names: dict[str, frozenset[str]] = {}
    for family in REGISTRY.collect():
        labels = frozenset(declared[family.name])
        for suffix in suffixes.get(family.type, ("",)):
            names[family.name + suffix] = labels
        for sample in family.samples:
            names.setdefault(sample.name, labels)
    return names


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs(node: Any) -> Iterator[str]:
    """Yield every PromQL expression in a Grafana dashboard (targets and variables)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_exprs(item)


def _all_exprs() -> list[tuple[str, str]]:
    exprs = [(f"alert {r['alert']}", str(r["expr"])) for r in _alert_rules()]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [("dashboard", e) for e in _dashboard_exprs(dashboard)]
    return exprs


def _check_expr(where: str, expr: str, exposed: dict[str, frozenset[str]]) -> list[str]:
    """Return problems of one expression: unknown metrics and labels they do not carry."""
    problems: list[str] = []
    used = set(METRIC_RE.findall(expr))
    for name in sorted(used - set(exposed)):
        problems.append(f"{where}: metric {name} is not defined in observability/metrics.py")
    for name, matchers in SELECTOR_RE.findall(expr):
        for label in MATCHER_RE.findall(matchers):
            if name in exposed and label not in exposed[name] | IMPLICIT_LABELS:
                problems.append(f"{where}: {name} has no label {label!r}")
    allowed = IMPLICIT_LABELS.union(*(exposed.get(n, frozenset()) for n in used))
    for grouping in GROUPING_RE.findall(expr):
        for label in (g.strip() for g in grouping.split(",")):
            if label and label not in allowed:
                problems.append(f"{where}: grouping label {label!r} not on {sorted(used)}")
    return problems


def test_alert_and_dashboard_metrics_exist_in_registry() -> None:
    exposed = _exposed_names()
    exprs = _all_exprs()
    assert len(exprs) > 20
    problems = [p for where, expr in exprs for p in _check_expr(where, expr, exposed)]
    assert not problems, "\n".join(problems)


def test_expression_checker_catches_mistakes() -> None:
    """The checker above must reject what it is meant to reject (else it proves nothing)."""
    exposed = _exposed_names()
    assert _check_expr("t", "rate(pacer_no_such_metric_total[5m])", exposed)
    assert _check_expr("t", 'pacer_dlq_records_total{campaign_id="c1"}', exposed)
    assert _check_expr("t", "sum by (campaign_id) (pacer_dlq_records_total)", exposed)
    assert not _check_expr("t", 'sum by (topic) (pacer_dlq_records_total{job="x"})', exposed)


# --- Prometheus rules --------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    _ok(_run([_tool("promtool"), "check", "rules", str(ALERTS)]))


def test_promtool_test_rules() -> None:
    result = _run([_tool("promtool"), "test", "rules", ALERTS_TEST.name], cwd=ALERTS_TEST.parent)
    _ok(result)
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    """An alert without a test that makes it fire may never fire."""
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {rule["alert"] for rule in _alert_rules()}
    assert alerts - fired == set(), f"alerts never expected to fire in tests: {alerts - fired}"
    for rule in _alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_promtool_detects_a_wrong_expectation(tmp_path: Path) -> None:
    """Guard against a promtool that passes anything: a wrong expectation must fail."""
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    (tmp_path / "bad_test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["alerts.yml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {"series": 'up{job="pacer-stream", instance="w"}', "values": "1x10"}
                        ],
                        "alert_rule_test": [
                            {
                                "eval_time": "5m",
                                "alertname": "PacerWorkerDown",
                                "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    result = _run([_tool("promtool"), "test", "rules", "bad_test.yml"], cwd=tmp_path)
    assert result.returncode != 0


# --- Grafana -----------------------------------------------------------------------------


def test_grafana_dashboard_is_valid_json_with_unique_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "pacer-stream"
    assert isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), panel["title"]


# --- Kubernetes --------------------------------------------------------------------------


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(f"the kubernetes-validate package is not installed: {HINT}", pytrace=False)
    return kubernetes_validate


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_validate_strict(version: str) -> None:
    kv = _kubernetes_validate()
    manifests = _manifests()
    kinds = {doc["kind"] for _, doc in manifests}
    expected = {"Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    assert kinds >= expected
    errors = []
    for path, doc in manifests:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            errors.append(f"{path.name} {doc['kind']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


def test_kubernetes_validate_rejects_a_misspelt_field() -> None:
    kv = _kubernetes_validate()
    deployment = next(doc for _, doc in _manifests() if doc["kind"] == "Deployment")
    bad = json.loads(json.dumps(deployment))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_kubernetes_validate_cli_passes() -> None:
    """The same check through the CLI, as an operator would run it."""
    cli = shutil.which("kubernetes-validate") or str(
        Path(__import__("sys").executable).parent / "kubernetes-validate"
    )
    if not Path(cli).exists():
        pytest.fail(f"kubernetes-validate CLI not found: {HINT}", pytrace=False)
    files = [str(p) for p in sorted(K8S.glob("*.y*ml"))]
    _ok(_run([cli, "--strict", "--quiet", *files]))


def test_worker_deployment_follows_operations_contract() -> None:
    deployment = next(doc for _, doc in _manifests() if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port = Settings().worker_web_port
    assert {p["containerPort"] for p in container["ports"]} == {port}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/data"]]

    configmap = next(doc for _, doc in _manifests() if doc["kind"] == "ConfigMap")
    assert configmap["data"]["PACER_WORKER_DATA_DIR"] == "/data"
    assert container["envFrom"][0]["configMapRef"]["name"] == configmap["metadata"]["name"]

    pdb = next(doc for _, doc in _manifests() if doc["kind"] == "PodDisruptionBudget")
    service = next(doc for _, doc in _manifests() if doc["kind"] == "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (pdb["spec"]["selector"]["matchLabels"], service["spec"]["selector"]):
        assert selector.items() <= labels.items()


# --- Compose and Dockerfile -----------------------------------------------------------------


def test_docker_compose_config_is_valid() -> None:
    _ok(_run([_tool("docker-compose"), "-f", str(COMPOSE), "config", "-q"]))


def test_docker_compose_rejects_an_invalid_file(tmp_path: Path) -> None:
    """Guard against a docker-compose that accepts anything."""
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE.read_text().replace("    healthcheck:", "    healthcheckz:", 1))
    result = _run([_tool("docker-compose"), "-f", str(bad), "config", "-q"], cwd=tmp_path)
    assert result.returncode != 0


def test_docker_compose_services() -> None:
    result = _run([_tool("docker-compose"), "-f", str(COMPOSE), "config"])
    _ok(result)
    services = yaml.safe_load(result.stdout)["services"]
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert re.fullmatch(r"redis:7\.\d+\.\d+-alpine", services["redis"]["image"])
    worker = services["worker"]
    assert worker["build"]
    env = worker["environment"]
    assert env["PACER_KAFKA_BOOTSTRAP_SERVERS"].startswith("kafka:")
    assert env["PACER_REDIS_URL"].startswith("redis://redis:")
    conditions = {name: dep["condition"] for name, dep in worker["depends_on"].items()}
    assert conditions["kafka"] == "service_healthy"
    assert conditions["redis"] == "service_healthy"
    for name in ("kafka", "redis", "worker"):
        assert "healthcheck" in services[name], name
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"


def _deploy_env_keys() -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        keys[f"compose:{name}"] = {
            k for k in service.get("environment", {}) if k.startswith("PACER_")
        }
    for path, doc in _manifests():
        if doc["kind"] == "ConfigMap":
            keys[f"k8s:{path.name}"] = set(doc["data"])
        if doc["kind"] == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                keys[f"k8s:{path.name}"] = {e["name"] for e in c.get("env", [])}
    keys["Dockerfile"] = set(re.findall(r"\b(PACER_[A-Z0-9_]+)=", DOCKERFILE.read_text()))
    return keys


def test_deploy_environment_matches_settings() -> None:
    """A misspelt PACER_ variable is silently ignored by pydantic-settings: catch it here."""
    known = {f"PACER_{name.upper()}" for name in Settings.model_fields}
    unknown = {
        where: sorted(k for k in found if k not in known)
        for where, found in _deploy_env_keys().items()
        if any(k not in known for k in found)
    }
    assert not unknown, f"unknown settings: {unknown}"


def test_dockerfile_runs_worker_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    assert re.search(r"^USER\s+10001", text, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["pacer-stream"]' in text
    assert 'CMD ["worker"]' in text
