"""The Kubernetes base and dev overlay (``deploy/k8s/``) are valid and agree with the code.

kustomize itself is not a package this repository can install (neither Debian
nor PyPI ships it), so `_build` resolves the kustomizations the way kustomize
does for the features they use (resources, namespace, images, ConfigMap and
Secret generators with ``behavior: merge``), without the name-hash suffixes.
On top of that: every object and every manifest file is validated against the
Kubernetes schemas with ``kubernetes-validate`` for one fixed version, the
names, labels and selectors that tie the objects together agree, and the
settings the pods receive are known settings that `load_settings` accepts.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from auth_service.config import TOOLING_VARIABLES, known_variables, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
DEV = K8S / "overlays" / "dev"
KUBERNETES_VERSION = "1.33.0"
SERVER_LABELS = {"app.kubernetes.io/name": "auth-service", "app.kubernetes.io/component": "server"}
EXTERNAL_SECRETS = {"auth-service-runtime", "auth-service-migrate"}
"""Secrets the base references by name without providing them (no secret values in the base)."""

Obj = dict[str, Any]


@dataclass
class Build:
    objects: list[Obj] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    """Every file the kustomizations referenced (resources and generator sources)."""

    def one(self, kind: str, name: str) -> Obj:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
        return found[0]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]


def _generated(kind: str, spec: Obj, directory: Path, build: Build) -> Obj:
    data: dict[str, str] = {}
    for literal in spec.get("literals", []):
        key, sep, value = literal.partition("=")
        assert sep, f"{spec['name']}: literal {literal!r} is not KEY=VALUE"
        data[key] = value
    for source in spec.get("files", []):
        key, _, relative = source.rpartition("=")
        path = directory / relative
        assert path.resolve().is_relative_to(directory.resolve()), (
            f"{path}: kustomize loads no file outside the kustomization's directory"
        )
        assert path.is_file(), f"{directory}: generator file {relative} does not exist"
        build.files.append(path)
        data[key or path.name] = path.read_text()
    obj: Obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}}
    if kind == "Secret":
        obj["type"] = "Opaque"
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    else:
        obj["data"] = data
    return obj


def _containers(obj: Obj) -> Iterator[Obj]:
    spec = obj["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def _build(directory: Path) -> Build:
    """Resolve one kustomization directory (recursively through its resources)."""
    kustomization = directory / "kustomization.yaml"
    assert kustomization.is_file(), f"{directory} has no kustomization.yaml"
    k = yaml.safe_load(kustomization.read_text())
    build = Build(files=[kustomization])
    for resource in k.get("resources", []):
        path = directory / resource
        assert path.exists(), f"{kustomization}: resource {resource} does not exist"
        if path.is_dir():
            sub = _build(path)
            build.objects += sub.objects
            build.files += sub.files
        else:
            build.files.append(path)
            build.objects += [o for o in yaml.safe_load_all(path.read_text()) if o is not None]
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for spec in k.get(key, []):
            new = _generated(kind, spec, directory, build)
            behavior = spec.get("behavior", "create")
            existing = [
                o
                for o in build.objects
                if o["kind"] == kind and o["metadata"]["name"] == spec["name"]
            ]
            if behavior == "create":
                assert not existing, f"{kind}/{spec['name']} generated twice"
                build.objects.append(new)
            else:
                assert len(existing) == 1, f"{kind}/{spec['name']}: nothing to {behavior}"
                if behavior == "merge":
                    existing[0]["data"] = {**existing[0]["data"], **new["data"]}
                else:
                    existing[0]["data"] = new["data"]
    if "namespace" in k:
        for obj in build.objects:
            if obj["kind"] != "Namespace":
                obj["metadata"]["namespace"] = k["namespace"]
    for image in k.get("images", []):
        for obj in build.objects:
            if obj["kind"] in ("Deployment", "Job"):
                for container in _containers(obj):
                    if container["image"].split(":")[0] == image["name"]:
                        name = image.get("newName", image["name"])
                        container["image"] = f"{name}:{image['newTag']}"
    for pairs in k.get("labels", []):
        for obj in build.objects:
            obj["metadata"].setdefault("labels", {}).update(pairs["pairs"])
    return build


BUILDS = {"base": _build(BASE), "dev": _build(DEV)}


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _pod_env(build: Build, workload: Obj) -> dict[str, str]:
    """Every environment variable of the workload's main container, envFrom included."""
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env |= build.one("ConfigMap", ref)["data"]
    for item in container.get("env", []):
        assert "valueFrom" not in item, f"{item['name']}: secrets go in as files (_FILE)"
        env[item["name"]] = item["value"]
    return env


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_object_is_valid_kubernetes(name: str) -> None:
    """Each object of the build, generated ones included, passes strict schema validation."""
    build = BUILDS[name]
    assert {o["kind"] for o in build.objects} >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Job",
        "ConfigMap",
        "ServiceAccount",
    }
    for obj in build.objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_every_manifest_file_is_valid_kubernetes() -> None:
    """Each manifest file on its own, as an operator might ``kubectl apply -f`` it."""
    manifests = [p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"]
    assert len(manifests) >= 8
    for path in manifests:
        for obj in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    """The validation above can fail: a typo in a Deployment field is caught."""
    deployment = yaml.safe_load((BASE / "deployment.yaml").read_text())
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_yaml_file_is_used() -> None:
    """No manifest lies next to the kustomizations without being part of a build."""
    used = {p.resolve() for b in BUILDS.values() for p in b.files}
    for path in K8S.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".toml"):
            assert path.resolve() in used, f"{path} is referenced by no kustomization"


def test_the_policy_is_the_repository_example() -> None:
    """kustomize reads no file outside the base, so the base holds a copy: the same bytes."""
    assert (BASE / "policy.toml").read_bytes() == (ROOT / "deploy" / "policy.toml").read_bytes()


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_names_labels_and_selectors_agree(name: str) -> None:
    build = BUILDS[name]
    deployment = build.one("Deployment", "auth-service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == SERVER_LABELS
    assert _selects(SERVER_LABELS, pod_labels)
    job = build.one("Job", "auth-service-migrate")
    job_labels = job["spec"]["template"]["metadata"]["labels"]

    selectors = {
        "Service": build.one("Service", "auth-service")["spec"]["selector"],
        "PodDisruptionBudget": build.one("PodDisruptionBudget", "auth-service")["spec"]["selector"][
            "matchLabels"
        ],
        "NetworkPolicy": build.one("NetworkPolicy", "auth-service")["spec"]["podSelector"][
            "matchLabels"
        ],
    }
    for kind, selector in selectors.items():
        assert _selects(selector, pod_labels), f"{kind} does not select the server pods"
        assert not _selects(selector, job_labels), f"{kind} selects the migration Job's pod"
    for constraint in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert _selects(constraint["labelSelector"]["matchLabels"], pod_labels)

    hpa = build.one("HorizontalPodAutoscaler", "auth-service")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "auth-service")
    assert hpa["spec"]["minReplicas"] >= 2
    assert deployment["spec"]["replicas"] >= 2

    service = build.one("Service", "auth-service")
    port_names = {p["name"] for c in _containers(deployment) for p in c.get("ports", [])}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in port_names
    for rule in build.one("NetworkPolicy", "auth-service")["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["port"] in port_names
    sa = build.one("ServiceAccount", "auth-service")
    for workload in (deployment, job):
        assert workload["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_referenced_configmap_and_secret_exists(name: str) -> None:
    build = BUILDS[name]
    external = EXTERNAL_SECRETS if name == "base" else set()
    for workload in build.of_kind("Deployment") + build.of_kind("Job"):
        spec = workload["spec"]["template"]["spec"]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                build.one("ConfigMap", volume["configMap"]["name"])
            if "secret" in volume and volume["secret"]["secretName"] not in external:
                build.one("Secret", volume["secret"]["secretName"])
        for container in _containers(workload):
            for source in container.get("envFrom", []):
                build.one("ConfigMap", source["configMapRef"]["name"])
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounted <= {v["name"] for v in spec.get("volumes", [])}
    # The base has no secret values; the dev overlay generates both Secrets.
    assert not BUILDS["base"].of_kind("Secret")
    assert {s["metadata"]["name"] for s in BUILDS["dev"].of_kind("Secret")} == EXTERNAL_SECRETS


def _mounts(build: Build, workload: Obj, tmp: Path) -> dict[str, Path]:
    """mountPath → a local directory holding what the pod would see there."""
    spec = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    result: dict[str, Path] = {}
    for mount in spec["containers"][0]["volumeMounts"]:
        local = tmp / mount["name"]
        local.mkdir()
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            for key, value in build.one("ConfigMap", volume["configMap"]["name"])["data"].items():
                (local / key).write_text(value)
        elif "secret" in volume:
            secret = build.one("Secret", volume["secret"]["secretName"])
            for key, value in secret["data"].items():
                (local / key).write_bytes(base64.b64decode(value))
        result[mount["mountPath"]] = local
    return result


def _localise(env: dict[str, str], mounts: dict[str, Path]) -> dict[str, str]:
    local = dict(env)
    for name, value in env.items():
        for mount_path, directory in mounts.items():
            if value.startswith(mount_path + "/"):
                path = directory / value.removeprefix(mount_path + "/")
                if name.endswith("_FILE") or name == "AUTH_POLICY_FILE":
                    assert path.is_file(), f"{name}={value}: no such key in the mounted volume"
                local[name] = str(path)
    return local


@pytest.mark.parametrize(
    "kind_name", [("Deployment", "auth-service"), ("Job", "auth-service-migrate")]
)
def test_pod_settings_are_known_and_load(kind_name: tuple[str, str], tmp_path: Path) -> None:
    """Every variable is a setting of `auth_service.config`, and the dev pods' settings load.

    The secret files and the policy are laid out as the pod would see them and
    `load_settings` (the same check as ``serve`` and ``migrate``, unknown
    ``AUTH_*`` names included) accepts the result.
    """
    build = BUILDS["dev"]
    workload = build.one(*kind_name)
    env = _pod_env(build, workload)
    for name in env:
        assert name.startswith("AUTH_") or name.startswith("OTEL_"), name
        if name.startswith("AUTH_"):
            assert name in known_variables() and name not in TOOLING_VARIABLES, name
    settings = load_settings(_localise(env, _mounts(build, workload, tmp_path)), env_file=False)
    assert settings.public_url == "http://localhost:8080"
    assert settings.database_url.startswith("postgresql://auth_service:")
    assert Path(settings.policy_file).read_bytes() == (BASE / "policy.toml").read_bytes()


def test_only_the_migration_job_holds_the_owner_dsn() -> None:
    build = BUILDS["dev"]
    deployment = build.one("Deployment", "auth-service")
    job = build.one("Job", "auth-service-migrate")
    serve_env, migrate_env = _pod_env(build, deployment), _pod_env(build, job)
    assert not any(n.startswith("AUTH_MIGRATE_DATABASE_URL") for n in serve_env)
    serve_secrets = {
        v["secret"]["secretName"]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert serve_secrets == {"auth-service-runtime"}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "serve"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "migrate"
    assert "AUTH_MIGRATE_DATABASE_URL_FILE" in migrate_env
    owner = base64.b64decode(build.one("Secret", "auth-service-migrate")["data"]["database-url"])
    runtime = base64.b64decode(build.one("Secret", "auth-service-runtime")["data"]["database-url"])
    assert owner != runtime


def test_the_server_pod_is_locked_down_and_probed_per_contract() -> None:
    build = BUILDS["base"]
    deployment = build.one("Deployment", "auth-service")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    # What the service writes lands on emptyDir volumes, never the read-only root.
    env = _pod_env(build, deployment)
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {
        m["mountPath"]
        for m in container["volumeMounts"]
        if "emptyDir" in volumes[m["name"]] and not m.get("readOnly", False)
    }
    for name in ("AUTH_AUDIT_SPOOL_DIR", "AUTH_METRICS_DIR"):
        assert any(env[name] == w or env[name].startswith(w + "/") for w in writable), name
    assert "/tmp" in writable
    # The spool fits its volume: the per-worker cap times the workers.
    spool = volumes["audit-spool"]["emptyDir"]["sizeLimit"]
    assert spool.endswith("Gi")
    assert (
        int(env["AUTH_AUDIT_SPOOL_MAX_BYTES"]) * int(env["AUTH_WORKERS"])
        < int(spool.removesuffix("Gi")) * 2**30
    )
    assert pod["terminationGracePeriodSeconds"] > float(env["AUTH_AUDIT_SHUTDOWN_TIMEOUT"]) + 5
