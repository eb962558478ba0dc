"""The Helm chart (deploy/helm/kitaru) renders to manifests that pass kubernetes-validate for
every Kubernetes version the kubernetes plugin names; its stack is a valid kitaru stack."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from helm_render import TemplateError, render_chart, render_template
from test_kubernetes import CLUSTER_VERSIONS

from kitaru_core.stack import validate_stack

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "kitaru"
FULL = {
    "apiKey": {"existingSecret": "kitaru-api-key"},
    "envFrom": [{"secretRef": {"name": "aws-credentials"}}],
    "serviceAccountName": "kitaru", "nodeSelector": {"pool": "services"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "kitaru", "effect": "NoSchedule"}],
    "replicas": 2, "recoveryInterval": 0,
}


def manifests(values: dict | None = None) -> list[dict]:
    rendered = render_chart(CHART, release="agents", values=values)
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("values", [None, FULL], ids=["defaults", "every-option"])
@pytest.mark.parametrize("version", CLUSTER_VERSIONS)
def test_rendered_manifests_pass_kubernetes_validate(version: str, values: dict | None) -> None:
    docs = manifests(values)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def _by_kind(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs}


def test_deployment_probes_secrets_and_resources() -> None:
    docs = _by_kind(manifests())
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    [server] = pod["containers"]
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"
    assert server["readinessProbe"]["httpGet"]["path"] == "/ready"
    env = {e["name"]: e for e in server["env"]}
    registry_url = env["KITARU_REGISTRY_URL"]["valueFrom"]["secretKeyRef"]
    assert registry_url == {"name": "kitaru-registry", "key": "url"}
    assert "KITARU_API_KEY" not in env and "envFrom" not in server and "serviceAccountName" not in pod
    assert server["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    assert server["args"] == ["--port", "8237", "--recovery-interval", "10"]
    assert docs["Service"]["spec"]["ports"][0]["port"] == 8237
    assert pod["volumes"][0]["configMap"]["name"] == "agents-stack"

    full = _by_kind(manifests(FULL))
    pod = full["Deployment"]["spec"]["template"]["spec"]
    [server] = pod["containers"]
    env = {e["name"]: e for e in server["env"]}
    assert env["KITARU_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "kitaru-api-key", "key": "token"}
    assert server["envFrom"] == [{"secretRef": {"name": "aws-credentials"}}]
    assert pod["serviceAccountName"] == "kitaru" and pod["nodeSelector"] == {"pool": "services"}
    assert full["Deployment"]["spec"]["replicas"] == 2
    # No secret value is ever part of a manifest: only references.
    assert "postgresql://" not in yaml.safe_dump_all(manifests(FULL))


def test_the_configmap_holds_a_valid_stack_with_references() -> None:
    stack_text = _by_kind(manifests())["ConfigMap"]["data"]["stack.yaml"]
    spec = yaml.safe_load(stack_text)
    assert spec["registry"] == {"flavor": "postgres", "config": {"url": "${env:KITARU_REGISTRY_URL}"}}
    assert spec["artifact_store"] == {"flavor": "s3", "config": {"path": "s3://acme-agents/kitaru",
                                                                 "region": "eu-west-1"}}
    validated = validate_stack(spec, source="the chart's ConfigMap")
    assert validated["orchestrator"]["flavor"] == "kubernetes"


def test_the_renderer_refuses_what_it_does_not_support() -> None:
    context = {"Values": {"a": {"b": 1}, "on": False, "items": []}, "Release": {"Name": "r"}}
    assert render_template("x: {{ .Values.a.b | quote }}", context) == 'x: "1"'
    assert render_template("a:\n  {{- if .Values.on }}\n  b: 1\n  {{- end }}\nc: 2", context) == "a:\nc: 2"
    assert render_template("m: {{- toYaml .Values.a | nindent 2 }}", context) == "m:\n  b: 1"
    for bad in ("{{ .Values.missing }}", "{{ range .Values.items }}{{ end }}",
                "{{ .Values.a | upper }}", "{{ include \"x\" . }}", "{{ if .Values.on }}",
                "{{ .Values.a }}"):
        with pytest.raises(TemplateError):
            render_template(bad, context)


def test_the_dockerfile_copies_what_exists_and_uses_the_entrypoint() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    assert "kitaru stack register" in entrypoint and "kitaru server start --host 0.0.0.0" in entrypoint
    for plugin in ("kitaru-server", "kitaru-postgres", "kitaru-kubernetes"):
        assert f"./plugins/{plugin}" in text
