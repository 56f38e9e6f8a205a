#!/usr/bin/env python3
"""Validate the Hilo Helm chart without a helm binary or a cluster.

For the default values and for every helm/hilo/ci/*-values.yaml:
  1. helm lint --strict (Helm SDK v4 through helm-python-sdk) for each Kubernetes version:
     errors and warnings fail, infos are printed;
  2. values.schema.json validation, then an offline render (install);
  3. every rendered manifest, hooks and `helm test` Pods included, validated with
     kubernetes-validate in strict mode (unknown fields are errors) against each Kubernetes
     version; an apiVersion/kind without a schema (a removed API, a CRD) is an error, except
     the kinds this file carries a schema for (Gateway API HTTPRoute);
  4. chart rules the schemas cannot express: duplicate YAML keys and objects, the "restricted"
     Pod Security Standard, references between objects (ConfigMaps, Secrets, Services, HPA
     and PDB targets, NetworkPolicy selectors), and that the migration hook and the test hook
     are rendered.
Every problem is reported, not only the first; the exit status is 1 if there is any.

--self-test copies the chart three times, breaks each copy in one known way (an unknown field
in a Deployment spec, a removed API version, a value of the wrong type for values.schema.json)
and fails unless the check reports each one.

Run through scripts/check-chart.sh, which provides the pinned tools in a venv.
"""
from __future__ import annotations

import argparse
import base64
import functools
import json
import pathlib
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils

# kubernetes-validate re-reads and re-parses its (large) _definitions.json for every object;
# the schema files never change during a run, so memoize the reader it calls.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)

KUBE_VERSIONS = ("1.30.0", "1.37.0")
RELEASE = "hilo"
NAMESPACE = "hilo"
REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_CHART = REPO / "helm" / "hilo"

# Schemas for kinds kubernetes-validate does not ship (CRDs). A strict subset of the Gateway API
# v1 (standard channel) HTTPRoute: the fields this chart emits plus their common siblings.
_PARENT_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "group": {"type": "string"},
        "kind": {"type": "string"},
        "namespace": {"type": "string"},
        "name": {"type": "string", "minLength": 1},
        "sectionName": {"type": "string"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    },
}
_HTTP_ROUTE_V1 = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"},
        "kind": {"const": "HTTPRoute"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "parentRefs": {"type": "array", "maxItems": 32, "items": _PARENT_REF},
                "hostnames": {"type": "array", "maxItems": 16, "items": {"type": "string"}},
                "rules": {
                    "type": "array",
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "matches": {
                                "type": "array",
                                "maxItems": 64,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "properties": {
                                                "type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                                                "value": {"type": "string", "pattern": "^/"},
                                            },
                                        },
                                        "headers": {"type": "array", "items": {"type": "object"}},
                                        "queryParams": {"type": "array", "items": {"type": "object"}},
                                        "method": {"type": "string"},
                                    },
                                },
                            },
                            "filters": {"type": "array", "items": {"type": "object"}},
                            "backendRefs": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["name"],
                                    "properties": {
                                        "group": {"type": "string"},
                                        "kind": {"type": "string"},
                                        "name": {"type": "string", "minLength": 1},
                                        "namespace": {"type": "string"},
                                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                        "weight": {"type": "integer", "minimum": 0},
                                        "filters": {"type": "array", "items": {"type": "object"}},
                                    },
                                },
                            },
                            "timeouts": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"request": {"type": "string"}, "backendRequest": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}
# The Prometheus Operator's CRDs, as far as the chart uses them (monitoring.coreos.com/v1).
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"}, "labels": _LABELS},
}
_SERVICE_MONITOR_V1 = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": _LABELS},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}, "any": {"type": "boolean"}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                        },
                    },
                },
            },
        },
    },
}
_PROMETHEUS_RULE_V1 = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr", "labels", "annotations"],
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": _DURATION,
                                        "labels": {
                                            "type": "object",
                                            "required": ["severity"],
                                            "properties": {"severity": {"enum": ["critical", "warning", "info"]}},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "required": ["summary"],
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
EXTRA_SCHEMAS = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): _HTTP_ROUTE_V1,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _SERVICE_MONITOR_V1,
    ("monitoring.coreos.com/v1", "PrometheusRule"): _PROMETHEUS_RULE_V1,
}

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}


@dataclass
class Report:
    """Collects every problem (and info) of a run instead of stopping at the first."""

    quiet: bool = False
    problems: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    passed: int = 0
    failed: int = 0

    def step(self, name: str, problems: list[str], seconds: float) -> None:
        """Record one check step and print its outcome."""
        self.problems.extend(problems)
        if problems:
            self.failed += 1
        else:
            self.passed += 1
        if not self.quiet:
            status = "FAIL" if problems else "ok"
            print(f"  {status:4} {name} ({seconds * 1000:.0f} ms)" + (f": {len(problems)} problem(s)" if problems else ""))
            for p in problems:
                print(f"       - {p}")

    def info(self, msg: str) -> None:
        self.infos.append(msg)
        if not self.quiet:
            print(f"  info {msg}")


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """A YAML loader that rejects duplicate mapping keys (the API server would reject them too)."""


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def scenarios(chart: pathlib.Path) -> list[tuple[str, dict]]:
    """The default values plus each ci/*.yaml values file."""
    out = [("default values", {})]
    for f in sorted((chart / "ci").glob("*.yaml")):
        out.append((f"ci/{f.name}", helm.values_from_yaml(f.read_text()) or {}))
    return out


def lint(chart: pathlib.Path, values: dict, kube: str, report: Report) -> list[str]:
    result = helm.lint(str(chart), values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube}")
    problems = []
    seen = set()
    for m in result.get("messages") or []:
        text = f"{m.get('path')}: {m.get('error')}"
        if m.get("severity", 0) >= 2:
            level = "error" if m["severity"] >= 3 else "warning"
            problems.append(f"lint {level} [k8s {kube}] {text}")
            seen.add(m.get("error"))
        else:
            report.info(f"lint [k8s {kube}] {text}")
    for e in result.get("errors") or []:
        if e not in seen:
            problems.append(f"lint error [k8s {kube}] {e}")
    return problems


def render(chart: pathlib.Path, values: dict) -> tuple[dict[str, str], list[str]]:
    c = helm.Chart.load(str(chart))
    try:
        c.validate_schema(values)
    except helm.HelmError as e:
        return {}, [f"values.schema.json: {e}"]
    try:
        return c.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True), []
    except helm.HelmError as e:
        return {}, [f"render: {type(e).__name__}: {e}"]
    finally:
        c.close()


def parse(manifests: dict[str, str]) -> tuple[list[tuple[str, dict]], list[str]]:
    """Split rendered templates into (template, object) pairs; NOTES.txt must render non-empty."""
    docs, problems = [], []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            if not text.strip():
                problems.append(f"{path}: renders empty")
            continue
        try:
            for doc in yaml.load_all(text, Loader=_StrictLoader):
                if doc is None:
                    continue
                if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
                    problems.append(f"{path}: a document without apiVersion/kind")
                    continue
                if not (doc.get("metadata") or {}).get("name"):
                    problems.append(f"{path}: {doc['kind']} without metadata.name")
                    continue
                docs.append((path, doc))
        except yaml.YAMLError as e:
            problems.append(f"{path}: invalid YAML: {e}")
    return docs, problems


def _name(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _error_text(err: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in err.absolute_path) or "(root)"
    msg = err.message
    if err.context:
        best = jsonschema.exceptions.best_match(err.context)
        msg += f" [{'.'.join(str(p) for p in best.absolute_path)}: {best.message}]"
    return f"{path}: {msg}"


def _all_errors(doc: dict, kube: str) -> list[str]:
    """Every schema error of one object (kubernetes_validate.validate raises only the best one).

    Mirrors how kubernetes-validate picks the schema file; returns [] if its layout changed.
    """
    try:
        versions = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) <= kv_utils.major_minor(kube)]
        version = versions[-1]
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", doc["apiVersion"])
        folder = f"kubernetes-json-schema/v{version}-local-strict"
        schema = kv_utils.schema_contents(f"{folder}/{doc['kind'].lower()}-{api}.json", kube)
        defs = kv_utils.schema_contents(f"{folder}/_definitions.json", kube)
        from referencing import Registry, Resource

        registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
        validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)
        return [_error_text(e) for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]
    except Exception:  # noqa: BLE001 - fall back to the single error
        return []


def validate_k8s(docs: list[tuple[str, dict]], kube: str) -> list[str]:
    problems = []
    for path, doc in docs:
        where = f"[k8s {kube}] {path} {_name(doc)}"
        try:
            kubernetes_validate.validate(doc, kube, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors = _all_errors(doc, kube) or [_error_text(e)]
            problems.extend(f"{where}: {msg}" for msg in errors)
        except kubernetes_validate.SchemaNotFoundError as e:
            extra = EXTRA_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
            if extra is None:
                problems.append(f"{where}: no schema: {e.message} (removed API or unknown CRD)")
                continue
            validator = jsonschema.validators.Draft202012Validator(extra)
            problems.extend(f"{where}: {_error_text(err)}" for err in validator.iter_errors(doc))
        except (kubernetes_validate.InvalidSchemaError, kv_utils.VersionNotSupportedError) as e:
            problems.append(f"{where}: {getattr(e, 'message', e)}")
    return problems


def _pod_spec(doc: dict) -> dict | None:
    if doc["kind"] == "Pod":
        return doc.get("spec") or {}
    if doc["kind"] in POD_KINDS:
        return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def _pod_labels(doc: dict) -> dict:
    if doc["kind"] == "Pod":
        return doc["metadata"].get("labels") or {}
    return (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def _selects(selector: dict, labels: dict) -> bool:
    """matchLabels + matchExpressions (In/NotIn/Exists/DoesNotExist) against a label set."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for ex in selector.get("matchExpressions") or []:
        key, op, vals = ex["key"], ex["operator"], ex.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _existing_secret_names(values: Any) -> set[str]:
    """Every string under a key named existingSecret* in the values (Secrets the user provides)."""
    out: set[str] = set()
    if isinstance(values, dict):
        for k, v in values.items():
            if k.startswith("existingSecret") and not k.endswith("Key") and isinstance(v, str) and v:
                out.add(v)
            else:
                out |= _existing_secret_names(v)
    elif isinstance(values, list):
        for v in values:
            out |= _existing_secret_names(v)
    return out


def chart_rules(docs: list[tuple[str, dict]], values: dict) -> list[str]:
    """Rules the Kubernetes schemas cannot express."""
    problems = []
    seen: dict[tuple, str] = {}
    by_kind: dict[str, dict[str, dict]] = {}
    for path, doc in docs:
        key = (doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else "", doc["kind"], doc["metadata"]["name"])
        if key in seen:
            problems.append(f"{path}: duplicate object {_name(doc)} (also in {seen[key]})")
        seen[key] = path
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc

    secrets = set(by_kind.get("Secret", {})) | _existing_secret_names(values)
    configmaps = set(by_kind.get("ConfigMap", {}))
    services = by_kind.get("Service", {})
    deployments = by_kind.get("Deployment", {})
    workloads = [d for k in POD_KINDS for d in by_kind.get(k, {}).values()]

    for path, doc in docs:
        spec = _pod_spec(doc)
        where = f"{path} {_name(doc)}"
        if spec is not None:
            psc = spec.get("securityContext") or {}
            if spec.get("automountServiceAccountToken") is not False:
                problems.append(f"{where}: automountServiceAccountToken must be false")
            for flag in ("hostNetwork", "hostPID", "hostIPC"):
                if spec.get(flag):
                    problems.append(f"{where}: {flag} is not allowed")
            for vol in spec.get("volumes") or []:
                if "hostPath" in vol:
                    problems.append(f"{where}: hostPath volume {vol.get('name')} is not allowed")
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                cw = f"{where} container {c.get('name')}"
                csc = c.get("securityContext") or {}
                if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                    problems.append(f"{cw}: runAsNonRoot must be true")
                if csc.get("runAsUser", psc.get("runAsUser")) == 0:
                    problems.append(f"{cw}: runs as uid 0")
                seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
                if seccomp not in ("RuntimeDefault", "Localhost"):
                    problems.append(f"{cw}: seccompProfile must be RuntimeDefault or Localhost")
                if csc.get("allowPrivilegeEscalation") is not False:
                    problems.append(f"{cw}: allowPrivilegeEscalation must be false")
                if csc.get("privileged"):
                    problems.append(f"{cw}: privileged is not allowed")
                if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                    problems.append(f"{cw}: capabilities.drop must include ALL")
                if (csc.get("capabilities") or {}).get("add"):
                    problems.append(f"{cw}: capabilities.add is not allowed")
                if csc.get("readOnlyRootFilesystem") is not True:
                    problems.append(f"{cw}: readOnlyRootFilesystem must be true")
                if not ((c.get("resources") or {}).get("requests")):
                    problems.append(f"{cw}: no resource requests")
                for ef in c.get("envFrom") or []:
                    ref = (ef.get("configMapRef") or {}).get("name")
                    if ref and ref not in configmaps and not ef["configMapRef"].get("optional"):
                        problems.append(f"{cw}: envFrom ConfigMap {ref} is not rendered")
                for env in c.get("env") or []:
                    ref = ((env.get("valueFrom") or {}).get("secretKeyRef") or {})
                    if ref.get("name") and ref["name"] not in secrets and not ref.get("optional"):
                        problems.append(f"{cw}: env {env['name']} reads Secret {ref['name']}, neither rendered nor an existingSecret")
                    if ref.get("name") in by_kind.get("Secret", {}):
                        data = by_kind["Secret"][ref["name"]].get("data") or {}
                        if ref.get("key") not in data:
                            problems.append(f"{cw}: env {env['name']} reads key {ref.get('key')} missing from Secret {ref['name']}")
                names = [e["name"] for e in c.get("env") or []]
                dupes = sorted({n for n in names if names.count(n) > 1})
                if dupes:
                    problems.append(f"{cw}: duplicate env {', '.join(dupes)}")

    for name, svc in services.items():
        sel = (svc.get("spec") or {}).get("selector") or {}
        if not any(_selects({"matchLabels": sel}, _pod_labels(w)) for w in workloads if w["kind"] != "Job"):
            problems.append(f"Service/{name}: selector matches no workload")
    for kind in ("HorizontalPodAutoscaler",):
        for name, doc in by_kind.get(kind, {}).items():
            ref = doc["spec"]["scaleTargetRef"]
            if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
                problems.append(f"{kind}/{name}: scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not rendered")
    for name, doc in by_kind.get("PodDisruptionBudget", {}).items():
        if not any(_selects(doc["spec"]["selector"], _pod_labels(w)) for w in deployments.values()):
            problems.append(f"PodDisruptionBudget/{name}: selector matches no Deployment")
    for name, doc in by_kind.get("NetworkPolicy", {}).items():
        sel = doc["spec"].get("podSelector") or {}
        if sel and not any(_selects(sel, _pod_labels(w)) for w in workloads):
            problems.append(f"NetworkPolicy/{name}: podSelector matches no workload")
        # In-namespace peers (podSelector without namespaceSelector) must select a rendered pod.
        rules = [("from", r) for r in doc["spec"].get("ingress") or []] + [("to", r) for r in doc["spec"].get("egress") or []]
        for direction, rule in rules:
            for peer in rule.get(direction) or []:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    if not any(_selects(peer["podSelector"], _pod_labels(w)) for w in workloads):
                        problems.append(f"NetworkPolicy/{name}: {direction} peer {peer['podSelector']} matches no rendered pod")

    def check_backend(where: str, svc_name: str, port: Any) -> None:
        svc = services.get(svc_name)
        if svc is None:
            problems.append(f"{where}: backend Service {svc_name} is not rendered")
            return
        ports = svc["spec"].get("ports") or []
        if not any(port in (p.get("name"), p.get("port")) for p in ports):
            problems.append(f"{where}: Service {svc_name} has no port {port}")

    for name, ing in by_kind.get("Ingress", {}).items():
        for rule in ing["spec"].get("rules") or []:
            for p in (rule.get("http") or {}).get("paths") or []:
                s = p["backend"]["service"]
                check_backend(f"Ingress/{name} {p.get('path')}", s["name"], s["port"].get("name") or s["port"].get("number"))
        tls_hosts = {h for t in ing["spec"].get("tls") or [] for h in t.get("hosts") or []}
        for h in tls_hosts - {r.get("host") for r in ing["spec"].get("rules") or []}:
            problems.append(f"Ingress/{name}: TLS host {h} has no rule")
    for name, route in by_kind.get("HTTPRoute", {}).items():
        for rule in route["spec"].get("rules") or []:
            for b in rule.get("backendRefs") or []:
                check_backend(f"HTTPRoute/{name}", b["name"], b.get("port"))

    # A ServiceMonitor scrapes a rendered Service, by a port that Service has.
    for name, monitor in by_kind.get("ServiceMonitor", {}).items():
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services.values() if wanted.items() <= (s["metadata"].get("labels") or {}).items()]
        if not matched:
            problems.append(f"ServiceMonitor/{name}: selects no rendered Service")
        for endpoint in monitor["spec"]["endpoints"]:
            for svc in matched:
                check_backend(f"ServiceMonitor/{name}", svc["metadata"]["name"], endpoint["port"])
    # Alert expressions: balanced brackets and no template text left over.
    for name, rule in by_kind.get("PrometheusRule", {}).items():
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                expr = r["expr"]
                if any(expr.count(a) != expr.count(b) for a, b in ("()", "{}", "[]")) or "{{" in expr:
                    problems.append(f"PrometheusRule/{name} {r['alert']}: malformed expr {expr!r}")
    # Dashboards: JSON with panels.
    for name, cm in by_kind.get("ConfigMap", {}).items():
        for key, text in (cm.get("data") or {}).items():
            if key.endswith(".json"):
                try:
                    if not json.loads(text).get("panels"):
                        problems.append(f"ConfigMap/{name} {key}: a dashboard without panels")
                except ValueError as e:
                    problems.append(f"ConfigMap/{name} {key}: not JSON: {e}")

    # gRPC reflection lists every method to whoever reaches a port: on only when asked.
    for name, cm in by_kind.get("ConfigMap", {}).items():
        data = cm.get("data") or {}
        if "JWT_ISSUER" in data:
            wanted = (values.get("components", {}).get(name.split("-")[-1], {}).get("grpc", {}).get("reflection")
                      or values.get("componentDefaults", {}).get("grpc", {}).get("reflection") or False)
            if data.get("GRPC_REFLECTION") != str(bool(wanted)).lower():
                problems.append(f"ConfigMap/{name}: GRPC_REFLECTION={data.get('GRPC_REFLECTION')!r}, want {str(bool(wanted)).lower()}")

    # Token verifiers pin accounts' public key: the chart's Secret holds it (as a certificate
    # derived from the private key it generated) unless the operator brings both keys.
    secrets = by_kind.get("Secret", {})
    jwt_values = values.get("secrets", {})
    brings_key = any(jwt_values.get("jwtPrivateKey", {}).get(k) for k in ("value", "existingSecret")) \
        or values.get("existingSecret")
    for name, deploy in by_kind.get("Deployment", {}).items():
        if name.split("-")[-1] not in ("channels", "messaging", "uploads"):
            continue
        env = {e["name"]: e for c in _pod_spec(deploy)["containers"] for e in c.get("env", [])}
        ref = env.get("JWT_PUBLIC_KEY", {}).get("valueFrom", {}).get("secretKeyRef")
        if not ref:
            problems.append(f"Deployment/{name}: JWT_PUBLIC_KEY is not pinned from a Secret")
            continue
        if brings_key:
            continue
        data = (secrets.get(ref["name"], {}).get("data") or {}).get(ref["key"], "")
        try:
            pem = base64.b64decode(data).decode()
        except ValueError:
            pem = ""
        if not pem.startswith("-----BEGIN CERTIFICATE-----"):
            problems.append(f"Deployment/{name}: JWT_PUBLIC_KEY in Secret/{ref['name']} is not the derived certificate")

    # Social sign-in starts at the gateway and is checked again by accounts: same origins.
    configs = {name.split("-")[-1]: cm.get("data") or {} for name, cm in by_kind.get("ConfigMap", {}).items()}
    if "gateway" in configs and "accounts" in configs:
        for key in ("BETTER_AUTH_URL", "CORS_ORIGIN", "TRUSTED_ORIGINS"):
            if configs["gateway"].get(key) != configs["accounts"].get(key):
                problems.append(f"{key} differs between gateway and accounts")

    hooks = [set((d["metadata"].get("annotations") or {}).get("helm.sh/hook", "").split(",")) for _, d in docs]
    if not any("test" in h for h in hooks):
        problems.append("no `helm test` hook Pod rendered")
    migrate_jobs = [d for _, d in docs if d["kind"] == "Job" and
                    {"pre-install", "pre-upgrade"} <= set((d["metadata"].get("annotations") or {}).get("helm.sh/hook", "").split(","))]
    if not migrate_jobs:
        problems.append("no pre-install/pre-upgrade migration hook Job rendered")
    return problems


def check(chart: pathlib.Path, report: Report) -> None:
    """Run every step for every values scenario of the chart."""
    for label, values in scenarios(chart):
        if not report.quiet:
            print(f"{chart.name} with {label}:")
        for kube in KUBE_VERSIONS:
            t = time.monotonic()
            report.step(f"helm lint --strict (k8s {kube})", lint(chart, values, kube, report), time.monotonic() - t)
        t = time.monotonic()
        manifests, problems = render(chart, values)
        report.step("values.schema.json + render", problems, time.monotonic() - t)
        if problems:
            continue
        t = time.monotonic()
        docs, problems = parse(manifests)
        kinds: dict[str, int] = {}
        for _, d in docs:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        report.step(f"parse {len(docs)} objects ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})",
                    problems, time.monotonic() - t)
        for kube in KUBE_VERSIONS:
            t = time.monotonic()
            report.step(f"kubernetes-validate --strict (k8s {kube})", validate_k8s(docs, kube), time.monotonic() - t)
        t = time.monotonic()
        report.step("chart rules (restricted PSS, references, hooks)", chart_rules(docs, values), time.monotonic() - t)


# (description, file, regex anchor, replacement, text the check must report)
INJECTIONS = (
    ("unknown field in a Deployment spec", "templates/deployment.yaml",
     r"^(\s*)revisionHistoryLimit: 5$", r"\1bogusField: true\n\1revisionHistoryLimit: 5", "bogusField"),
    ("removed API (HPA autoscaling/v2beta2)", "templates/hpa.yaml",
     r"^apiVersion: autoscaling/v2$", "apiVersion: autoscaling/v2beta2", "autoscaling/v2beta2"),
    ("wrong value type for values.schema.json (replicaCount: \"two\")", "values.yaml",
     r"^(\s*)replicaCount: 2$", r'\1replicaCount: "two"', "replicaCount"),
)


def self_test(chart: pathlib.Path) -> int:
    """Break copies of the chart on purpose; every copy must fail the check with the expected problem."""
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="hilo-chart-selftest-") as tmp:
        for i, (what, rel, anchor, repl, marker) in enumerate(INJECTIONS):
            copy = pathlib.Path(tmp) / f"case{i}" / chart.name
            shutil.copytree(chart, copy)
            target = copy / rel
            text, n = re.subn(anchor, repl, target.read_text(), count=1, flags=re.MULTILINE)
            if n != 1:
                print(f"  FAIL {what}: anchor {anchor!r} not found in {rel}; update INJECTIONS")
                failed += 1
                continue
            target.write_text(text)
            t = time.monotonic()
            report = Report(quiet=True)
            check(copy, report)
            hits = [p for p in report.problems if marker in p]
            secs = time.monotonic() - t
            if hits:
                passed += 1
                print(f"  ok   {what}: reported as failure ({len(report.problems)} problem(s), {secs:.1f} s), e.g.")
                print(f"       {hits[0][:300]}")
            else:
                failed += 1
                print(f"  FAIL {what}: the check did not report it ({len(report.problems)} other problem(s))")
                for p in report.problems[:5]:
                    print(f"       - {p}")
    print(f"chart-self-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chart", type=pathlib.Path, default=DEFAULT_CHART, help="chart directory (default: helm/hilo)")
    ap.add_argument("--self-test", action="store_true", help="prove the check fails on broken copies of the chart")
    args = ap.parse_args(list(argv) if argv is not None else None)
    chart = args.chart.resolve()
    helm.disable_logging()
    start = time.monotonic()
    if args.self_test:
        print(f"self-test of the chart check on copies of {chart}:")
        rc = self_test(chart)
        print(f"self-test took {time.monotonic() - start:.1f} s")
        return rc
    print(f"helm SDK {helm.helm_sdk_version()}, kubernetes-validate {kubernetes_validate.__version__}, "
          f"Kubernetes {', '.join(KUBE_VERSIONS)}")
    report = Report()
    check(chart, report)
    if report.problems:
        print(f"\n{len(report.problems)} problem(s):")
        for p in report.problems:
            print(f"  - {p}")
    print(f"chart check took {time.monotonic() - start:.1f} s")
    print(f"chart-check: {report.passed} passed, {report.failed} failed")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
