#!/usr/bin/env python3
"""Validate the azwi-webhook Kubernetes manifests offline.

For every kustomization (base, each overlay, a base+all-components combination,
and the examples) this script:

1. renders it with `kubectl kustomize`;
2. validates every object against the Kubernetes OpenAPI schemas with
   kubernetes-validate in strict mode (unknown fields are errors), for each
   Kubernetes version in K8S_VERSIONS. Custom resources whose schemas
   kubernetes-validate does not ship are skipped only if listed in
   SKIP_SCHEMA (they get property checks below instead);
3. checks properties that schemas cannot express (see the check_* functions):
   probes, flags, RBAC, security context, webhook configuration, ports,
   namespaces, certificates, example RBAC.

Usage (from the repository root):
    scripts/validate-manifests.py              # check everything
    scripts/validate-manifests.py --self-test  # prove the checks catch breakage
    scripts/validate-manifests.py -k 1.33 -k 1.37   # other Kubernetes versions

Exits 0 when everything passes, 1 with one line per problem otherwise.
Needs: python3, PyYAML, kubernetes-validate, kubectl (for kustomize).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import yaml

try:
    import kubernetes_validate
    import kubernetes_validate.utils as kv_utils
except ImportError:  # pragma: no cover - reported clearly below
    kubernetes_validate = None
    kv_utils = None

# ---------------------------------------------------------------------------
# What we expect. Changing the manifests in these respects means changing this
# list too, on purpose.

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFESTS = os.path.join(REPO_ROOT, "manifests")

# Newest version kubernetes-validate 1.37.0 ships, one mid-range (the
# k8s-openapi feature the crate is built with) and an older still-common one.
K8S_VERSIONS = ["1.37", "1.34", "1.30"]

# Custom resources without schemas in kubernetes-validate: skipped from schema
# validation (property checks below cover the fields that matter).
SKIP_SCHEMA = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}

NAMESPACE = "azure-workload-identity-system"
DEPLOYMENT = "azure-wi-webhook-controller-manager"
CONTAINER = "manager"
SERVICE_ACCOUNT = "azure-wi-webhook-admin"
CONFIGMAP = "azure-wi-webhook-config"
SERVICE = "azure-wi-webhook-webhook-service"
CERT_SECRET = "azure-wi-webhook-server-cert"
MWC = "azure-wi-webhook-mutating-webhook-configuration"
WEBHOOK = "mutation.azure-workload-identity.io"
WEBHOOK_PATH = "/mutate-v1-pod"

# serve flags (README, "Configuration"). True = takes a value, False = boolean switch.
ALLOWED_FLAGS: Dict[str, bool] = {
    "webhook-addr": True,
    "webhook-cert-dir": True,
    "disable-cert-rotation": False,
    "tls-min-version": True,
    "client-ca-file": True,
    "health-addr": True,
    "metrics-addr": True,
    "metrics-backend": True,
    "log-level": True,
    "audience": True,
    "custom-token-endpoint-annotation-suffix": True,
    "custom-token-endpoint-audience": True,
    "shutdown-delay": True,
    "shutdown-drain-timeout": True,
    "termination-grace-period": True,
    "rbac-check": True,
    "max-in-flight-reviews": True,
}
FLAG_VALUES = {
    "tls-min-version": {"1.2", "1.3"},
    "rbac-check": {"deny", "warn", "off"},
    "log-level": {"", "info", "debug", "trace", "all"},
    "metrics-backend": {"prometheus"},
}
FLAG_DEFAULTS = {
    "custom-token-endpoint-annotation-suffix": "identity-binding",
    "custom-token-endpoint-audience": "api://AKSIdentityBinding",
    "rbac-check": "deny",
    "webhook-addr": ":9443",
    "health-addr": ":9440",
    "metrics-addr": ":8095",
    "webhook-cert-dir": "/certs",
    "shutdown-delay": "5s",
    "shutdown-drain-timeout": "15s",
}
# container port name -> flag giving the listening address
PORT_FLAGS = {"webhook": "webhook-addr", "health": "health-addr", "metrics": "metrics-addr"}

ALLOWED_ENV = {
    "AZURE_TENANT_ID", "AZURE_ENVIRONMENT", "PROXY_IMAGE", "PROXY_INIT_IMAGE",
    *(f"PROXY{c}_{r}_{k}" for c in ("", "_INIT") for r in ("CPU", "MEMORY") for k in ("REQUEST", "LIMIT")),
    "AZURE_KUBERNETES_TOKEN_PROXY", "AZURE_KUBERNETES_TOKEN_ENDPOINT", "AZURE_KUBERNETES_SNI_NAME",
    "AZURE_KUBERNETES_CA_DATA", "AZURE_KUBERNETES_CA_CONFIGMAP_NAME",
    "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR",
}
CLOUDS = {"azurepubliccloud", "azurecloud", "azurechinacloud", "azureusgovernmentcloud", "azureusgovernment"}
CA_SOURCES = ["AZURE_KUBERNETES_CA_DATA", "AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME"]

# RBAC: (apiGroup, resource) -> allowed verbs, plus the names non-create verbs
# must be pinned to (None = any name, e.g. the cluster-wide ServiceAccount cache).
CLUSTER_RBAC: Dict[Tuple[str, str], Tuple[set, Optional[set]]] = {
    ("", "serviceaccounts"): ({"get", "list", "watch"}, None),
    ("authorization.k8s.io", "subjectaccessreviews"): ({"create"}, None),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"):
        ({"get", "list", "watch", "update", "patch"}, {MWC}),
}
NAMESPACED_RBAC: Dict[Tuple[str, str], Tuple[set, Optional[set]]] = {
    ("", "secrets"): ({"get", "list", "watch", "update", "patch", "create"}, {CERT_SECRET}),
}
# Needed whatever the configuration.
REQUIRED_CLUSTER = [("", "serviceaccounts", {"get", "list", "watch"})]
# Needed only when the webhook checks identity-binding RBAC.
REQUIRED_RBAC_CHECK = [("authorization.k8s.io", "subjectaccessreviews", {"create"})]
# Needed only when the webhook manages its own certificates (list/watch: both objects are watched by
# name, so changes are repaired within seconds).
REQUIRED_SELF_MANAGED_CLUSTER = [("admissionregistration.k8s.io", "mutatingwebhookconfigurations",
                                  {"get", "list", "watch", "update", "patch"})]
# Writers are conflict-safe (resourceVersion), so no Lease is needed or granted.
REQUIRED_SELF_MANAGED_NS = [("", "secrets", {"get", "list", "watch", "update", "patch", "create"})]

CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "CustomResourceDefinition", "PriorityClass", "StorageClass", "ClusterIssuer", "APIService",
    "PersistentVolume", "Node", "ClusterTrustBundle", "IngressClass", "RuntimeClass",
}

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Kustomizations to check: (name, path relative to repo root, profiles).
# Profile "webhook" runs the webhook checks; extras add overlay-specific ones (see
# check_webhook_install).
STATIC = ["webhook", "defaults", "static", "exclude-kube-system"]
TARGETS = [
    ("base", "manifests", STATIC + ["self-managed-rbac"]),
    ("cert-manager", "manifests/overlays/cert-manager", STATIC + ["cert-manager"]),
    ("prometheus", "manifests/overlays/prometheus", STATIC + ["self-managed-rbac", "prometheus"]),
    ("all-components", None, STATIC + ["cert-manager", "prometheus"]),  # rendered from a temp overlay
    ("examples", "manifests/examples", ["examples"]),
]
COMPONENTS_DIR = os.path.join(MANIFESTS, "components")


# ---------------------------------------------------------------------------
# Helpers


class Checker:
    """Collects problems for one rendered kustomization."""

    def __init__(self, render: str, objects: List[dict], namespace: str = NAMESPACE):
        self.render = render
        self.objects = objects
        self.namespace = namespace
        self.errors: List[str] = []

    def fail(self, obj: Optional[dict], msg: str) -> None:
        where = ref(obj) if obj is not None else "-"
        self.errors.append(f"[{self.render}] {where}: {msg}")

    def expect(self, cond: bool, obj: Optional[dict], msg: str) -> bool:
        if not cond:
            self.fail(obj, msg)
        return cond

    def find(self, kind: str, name: Optional[str] = None, namespace: Optional[str] = None) -> List[dict]:
        out = []
        for o in self.objects:
            md = o.get("metadata") or {}
            if o.get("kind") != kind:
                continue
            if name is not None and md.get("name") != name:
                continue
            if namespace is not None and md.get("namespace") != namespace:
                continue
            out.append(o)
        return out

    def one(self, kind: str, name: str, namespace: Optional[str] = None) -> Optional[dict]:
        found = self.find(kind, name, namespace)
        if len(found) != 1:
            self.fail(None, f"expected exactly one {kind} {namespace + '/' if namespace else ''}{name}, "
                            f"found {len(found)}")
            return None
        return found[0]


def ref(obj: dict) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{md.get('name')}"


def dig(obj: Any, *path: Any, default: Any = None) -> Any:
    for p in path:
        if isinstance(obj, dict) and p in obj:
            obj = obj[p]
        elif isinstance(obj, list) and isinstance(p, int) and -len(obj) <= p < len(obj):
            obj = obj[p]
        else:
            return default
    return obj


def selector_matches(selector: Optional[dict], labels: Dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (an empty selector matches everything)."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def parse_port(addr: str) -> Optional[int]:
    m = re.match(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]*):(\d{1,5})$", addr)
    if not m:
        return None
    port = int(m.group(1))
    return port if 0 < port < 65536 else None


def parse_duration(s: str) -> Optional[float]:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    if not re.fullmatch(r"(\d+(\.\d+)?(ms|s|m|h))+", s or ""):
        return None
    return sum(float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ms|s|m|h)", s))


def parse_args(c: Checker, dep: dict, args: List[str]) -> Dict[str, Optional[str]]:
    """Parse container args into {flag: value}; report unknown/malformed flags."""
    flags: Dict[str, Optional[str]] = {}
    i = 0
    if args and args[0] == "serve":
        i = 1
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            c.fail(dep, f"unexpected positional argument {a!r} (only a leading 'serve' is allowed)")
            i += 1
            continue
        name, eq, value = a[2:].partition("=")
        if name not in ALLOWED_FLAGS:
            c.fail(dep, f"unknown flag --{name} (allowed: {', '.join(sorted(ALLOWED_FLAGS))})")
            i += 1
            continue
        if name in flags:
            c.fail(dep, f"flag --{name} given twice")
        takes_value = ALLOWED_FLAGS[name]
        if takes_value and not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            else:
                c.fail(dep, f"flag --{name} needs a value")
                value = None
        elif not takes_value and eq and value not in ("true", "false"):
            c.fail(dep, f"flag --{name} is a switch; got value {value!r}")
        flags[name] = value if takes_value else (value or "true")
        i += 1
    for name, allowed in FLAG_VALUES.items():
        if name in flags and (flags[name] or "").lower() not in allowed:
            c.fail(dep, f"--{name}={flags[name]} not one of {sorted(allowed)}")
    for name in ("webhook-addr", "health-addr", "metrics-addr"):
        if name in flags and parse_port(flags[name] or "") is None:
            c.fail(dep, f"--{name}={flags[name]!r} is not [host]:port")
    for name in ("shutdown-delay", "shutdown-drain-timeout", "termination-grace-period"):
        if name in flags and parse_duration(flags[name] or "") is None:
            c.fail(dep, f"--{name}={flags[name]!r} is not a duration like 5s")
    if "max-in-flight-reviews" in flags and not re.fullmatch(r"[1-9][0-9]{0,9}", flags["max-in-flight-reviews"] or ""):
        c.fail(dep, f"--max-in-flight-reviews={flags['max-in-flight-reviews']!r} is not a positive number")
    return flags


def flag(flags: Dict[str, Optional[str]], name: str) -> Optional[str]:
    return flags.get(name, FLAG_DEFAULTS.get(name))


def cert_rotation_disabled(flags: Dict[str, Optional[str]]) -> bool:
    return flags.get("disable-cert-rotation") == "true"


# ---------------------------------------------------------------------------
# Schema validation


def check_schemas(c: Checker, versions: List[str]) -> None:
    for obj in c.objects:
        if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
            c.fail(None, f"not a Kubernetes object: {str(obj)[:80]}")
            continue
        if (obj["apiVersion"], obj["kind"]) in SKIP_SCHEMA:
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(obj, v, strict=True)
            except kv_utils.SchemaNotFoundError as e:
                c.fail(obj, f"k8s {v}: no schema ({e.message}); add it to SKIP_SCHEMA only if it is a CRD")
            except kv_utils.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                c.fail(obj, f"k8s {v} schema (strict): {path or '<root>'}: {e.message}")
            except kv_utils.VersionNotSupportedError as e:
                c.fail(None, f"kubernetes-validate: {e.message}")
                return


def check_namespaces(c: Checker, expected_ns: Optional[str]) -> None:
    for obj in c.objects:
        ns = dig(obj, "metadata", "namespace")
        if obj.get("kind") in CLUSTER_SCOPED:
            c.expect(ns is None, obj, "cluster-scoped object must not have metadata.namespace")
        elif c.expect(bool(ns), obj, "namespaced object has no metadata.namespace") and expected_ns:
            c.expect(ns == expected_ns, obj, f"namespace is {ns!r}, expected {expected_ns!r}")


# ---------------------------------------------------------------------------
# Webhook install checks


def check_namespace_object(c: Checker) -> None:
    ns = c.one("Namespace", c.namespace)
    if ns is None:
        return
    labels = dig(ns, "metadata", "labels", default={}) or {}
    for mode in ("enforce", "audit", "warn"):
        c.expect(labels.get(f"pod-security.kubernetes.io/{mode}") == "restricted", ns,
                 f"label pod-security.kubernetes.io/{mode} must be 'restricted'")


def container_ports(container: dict) -> Dict[str, int]:
    return {p.get("name"): p.get("containerPort") for p in container.get("ports") or [] if p.get("name")}


def resolve_port(container: dict, port: Any) -> Optional[int]:
    """A probe/targetPort value (name or number) -> declared container port number, or None."""
    declared = container.get("ports") or []
    if isinstance(port, int):
        return port if any(p.get("containerPort") == port for p in declared) else None
    for p in declared:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_deployment(c: Checker, defaults: bool) -> Tuple[Optional[dict], Optional[dict], Dict[str, Optional[str]]]:
    """The webhook Deployment. `defaults`: also the settings a user may change (replicas, resources,
    scheduling), as shipped."""
    dep = c.one("Deployment", DEPLOYMENT, c.namespace)
    if dep is None:
        return None, None, {}
    spec = dep.get("spec") or {}
    pod = dig(spec, "template", "spec", default={}) or {}
    pod_labels = dig(spec, "template", "metadata", "labels", default={}) or {}

    if defaults:
        replicas = spec.get("replicas", 1)
        c.expect(isinstance(replicas, int) and replicas >= 2, dep, "replicas must be >= 2 (failurePolicy Fail)")
    c.expect(bool(dig(spec, "selector", "matchLabels")) and selector_matches(spec.get("selector"), pod_labels),
             dep, "spec.selector must match the pod template labels")

    containers = pod.get("containers") or []
    mgr = [x for x in containers if x.get("name") == CONTAINER]
    if not c.expect(len(mgr) == 1, dep, f"needs exactly one container named {CONTAINER!r}"):
        return dep, None, {}
    ctr = mgr[0]
    image = ctr.get("image") or ""
    c.expect(bool(re.search(r":[^/]+$|@sha256:", image)) and not image.endswith(":latest"), dep,
             f"image {image!r} must be pinned to a tag or digest (not :latest)")
    c.expect(not ctr.get("command"), dep, "use the image ENTRYPOINT (/azwi-webhook); set args, not command")

    flags = parse_args(c, dep, ctr.get("args") or [])

    # Ports: each listener flag must match the container port of the same role.
    ports = container_ports(ctr)
    for pname, fname in PORT_FLAGS.items():
        want = parse_port(flag(flags, fname) or "")
        if c.expect(pname in ports, dep, f"container port named {pname!r} is missing"):
            c.expect(ports[pname] == want, dep,
                     f"container port {pname!r} is {ports[pname]} but --{fname} listens on {want}")

    # Probes: on the health port, at /healthz (liveness/startup) and /readyz (readiness).
    health_port = ports.get("health")
    for probe, paths, required in (("livenessProbe", {"/healthz"}, True),
                                   ("readinessProbe", {"/readyz"}, True),
                                   ("startupProbe", {"/healthz", "/readyz"}, False)):
        p = ctr.get(probe)
        if p is None:
            c.expect(not required, dep, f"{probe} is missing")
            continue
        hg = p.get("httpGet")
        if not c.expect(hg is not None, dep, f"{probe} must be an httpGet probe"):
            continue
        c.expect(hg.get("path") in paths, dep, f"{probe} path {hg.get('path')!r} must be one of {sorted(paths)}")
        c.expect((hg.get("scheme") or "HTTP") == "HTTP", dep, f"{probe} must use HTTP (health listener is plain)")
        num = resolve_port(ctr, hg.get("port"))
        if c.expect(num is not None, dep, f"{probe} port {hg.get('port')!r} is not a declared container port"):
            c.expect(num == health_port, dep, f"{probe} port {num} is not the health port {health_port}")

    # Security context (effective value: container overrides pod).
    psc = pod.get("securityContext") or {}
    csc = ctr.get("securityContext") or {}

    def eff(key: str) -> Any:
        return csc.get(key, psc.get(key))

    c.expect(eff("runAsNonRoot") is True, dep, "runAsNonRoot must be true")
    c.expect(eff("runAsUser") == 65532, dep, "runAsUser must be 65532")
    c.expect(eff("runAsGroup") == 65532, dep, "runAsGroup must be 65532")
    c.expect(dig(eff("seccompProfile"), "type") == "RuntimeDefault", dep, "seccompProfile must be RuntimeDefault")
    c.expect(csc.get("allowPrivilegeEscalation") is False, dep, "allowPrivilegeEscalation must be false")
    c.expect(csc.get("readOnlyRootFilesystem") is True, dep, "readOnlyRootFilesystem must be true")
    c.expect(csc.get("privileged") in (None, False), dep, "container must not be privileged")
    c.expect("ALL" in (dig(csc, "capabilities", "drop") or []), dep, "capabilities.drop must contain ALL")
    c.expect(not dig(csc, "capabilities", "add"), dep, "capabilities.add must be empty")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        c.expect(not pod.get(host), dep, f"{host} must not be set")

    if defaults:
        res = ctr.get("resources") or {}
        c.expect(bool(dig(res, "requests", "cpu")) and bool(dig(res, "requests", "memory")), dep,
                 "resources.requests.cpu and .memory must be set")
        c.expect(bool(dig(res, "limits", "memory")), dep, "resources.limits.memory must be set")
        c.expect(not dig(res, "limits", "cpu"), dep, "no CPU limit (throttling shows up as admission latency)")
        c.expect(pod.get("priorityClassName") == "system-cluster-critical", dep,
                 "priorityClassName must be system-cluster-critical")
        c.expect(dig(pod, "nodeSelector", "kubernetes.io/os") == "linux", dep,
                 "nodeSelector kubernetes.io/os: linux")
    c.expect(pod.get("automountServiceAccountToken") is not False, dep,
             "automountServiceAccountToken must not be false (the webhook calls the API server)")
    c.expect(pod.get("serviceAccountName") == SERVICE_ACCOUNT, dep,
             f"serviceAccountName must be {SERVICE_ACCOUNT}")
    c.one("ServiceAccount", SERVICE_ACCOUNT, c.namespace)

    tsc = pod.get("topologySpreadConstraints") or []
    for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone") if defaults else ():
        t = [x for x in tsc if x.get("topologyKey") == key]
        if c.expect(len(t) == 1, dep, f"needs one topologySpreadConstraint on {key}"):
            c.expect(t[0].get("whenUnsatisfiable") == "ScheduleAnyway", dep,
                     f"topologySpreadConstraint on {key} must be ScheduleAnyway")
            c.expect(bool(t[0].get("labelSelector")) and selector_matches(t[0].get("labelSelector"), pod_labels),
                     dep, f"topologySpreadConstraint on {key} must select the webhook pods")

    # Environment.
    env = {e.get("name"): e for e in ctr.get("env") or []}
    c.expect(dig(env, "POD_NAMESPACE", "valueFrom", "fieldRef", "fieldPath") == "metadata.namespace", dep,
             "env POD_NAMESPACE must come from fieldRef metadata.namespace")
    c.expect(any(dig(e, "configMapRef", "name") == CONFIGMAP for e in ctr.get("envFrom") or []), dep,
             f"envFrom must reference ConfigMap {CONFIGMAP}")

    # Certificates: with rotation disabled they come from the Secret volume.
    cert_dir = flag(flags, "webhook-cert-dir")
    if cert_rotation_disabled(flags):
        mounts = [m for m in ctr.get("volumeMounts") or [] if m.get("mountPath") == cert_dir]
        if c.expect(len(mounts) == 1, dep, f"--disable-cert-rotation needs a volume mounted at {cert_dir}"):
            c.expect(mounts[0].get("readOnly") is True, dep, f"{cert_dir} mount must be readOnly")
            vols = [v for v in pod.get("volumes") or [] if v.get("name") == mounts[0].get("name")]
            c.expect(len(vols) == 1 and bool(dig(vols[0], "secret", "secretName")), dep,
                     f"{cert_dir} must be a Secret volume")
    else:
        # Self-managed: the webhook reads the Secret through the API. Mounting it would put the CA
        # private key (ca.key) on the node's disk for nothing.
        for v in pod.get("volumes") or []:
            items = dig(v, "secret", "items")
            exposes_key = items is None or any(i.get("key") == "ca.key" for i in items)
            c.expect(not (dig(v, "secret", "secretName") == CERT_SECRET and exposes_key), dep,
                     f"volume {v.get('name')!r} mounts Secret {CERT_SECRET} with its CA key; self-managed "
                     f"certificates need no volume")

    return dep, ctr, flags


def check_config(c: Checker) -> None:
    cm = c.one("ConfigMap", CONFIGMAP, c.namespace)
    if cm is None:
        return
    data = cm.get("data") or {}
    for k, v in data.items():
        c.expect(k in ALLOWED_ENV, cm, f"unknown key {k!r} (allowed: {', '.join(sorted(ALLOWED_ENV))})")
        c.expect(isinstance(v, str) and v.strip() != "", cm,
                 f"{k} is set but empty: leave optional settings out instead")
    c.expect(bool(UUID_RE.match(data.get("AZURE_TENANT_ID", ""))), cm, "AZURE_TENANT_ID must be a UUID")
    if "AZURE_ENVIRONMENT" in data:
        c.expect(str(data["AZURE_ENVIRONMENT"]).lower() in CLOUDS, cm,
                 f"AZURE_ENVIRONMENT {data['AZURE_ENVIRONMENT']!r} is not a supported cloud")
    c.expect(sum(1 for k in CA_SOURCES if data.get(k)) <= 1, cm, f"at most one of {', '.join(CA_SOURCES)}")
    if data.get("AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR"):
        c.expect(bool(data.get("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME")), cm,
                 "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR needs AZURE_KUBERNETES_CA_CTB_SIGNER_NAME")
        try:
            json.loads(data["AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR"])
        except ValueError as e:
            c.fail(cm, f"AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR is not JSON: {e}")
    if data.get("AZURE_KUBERNETES_CA_DATA"):
        c.expect("-----BEGIN CERTIFICATE-----" in data["AZURE_KUBERNETES_CA_DATA"], cm,
                 "AZURE_KUBERNETES_CA_DATA must be PEM certificate(s)")


def check_service(c: Checker, dep: Optional[dict], ctr: Optional[dict], port: int) -> Optional[dict]:
    """The webhook Service: selects the pods, and `port` (the one the webhook configuration calls)
    forwards to the container's webhook port."""
    svc = c.one("Service", SERVICE, c.namespace)
    if svc is None or dep is None or ctr is None:
        return svc
    pod_labels = dig(dep, "spec", "template", "metadata", "labels", default={}) or {}
    sel = dig(svc, "spec", "selector", default={}) or {}
    c.expect(bool(sel) and all(pod_labels.get(k) == v for k, v in sel.items()), svc,
             "spec.selector must select the webhook pods")
    c.expect(sel == (dig(dep, "spec", "selector", "matchLabels", default={}) or {}), svc,
             "spec.selector must be the Deployment's selector (so it also matches the pods being replaced)")
    ports = [p for p in dig(svc, "spec", "ports", default=[]) or [] if p.get("port") == port]
    if c.expect(len(ports) == 1, svc, f"must expose port {port} (the webhook configuration calls it)"):
        tp = ports[0].get("targetPort", port)
        num = resolve_port(ctr, tp)
        c.expect(num is not None and num == container_ports(ctr).get("webhook"), svc,
                 f"port {port} targetPort {tp!r} does not resolve to the container's webhook port "
                 f"{container_ports(ctr).get('webhook')}")
    return svc


def check_pdb(c: Checker, dep: Optional[dict], defaults: bool) -> None:
    pdbs = c.find("PodDisruptionBudget", namespace=c.namespace)
    if not c.expect(len(pdbs) == 1, None, "expected one PodDisruptionBudget for the webhook") or dep is None:
        return
    pdb = pdbs[0]
    pod_labels = dig(dep, "spec", "template", "metadata", "labels", default={}) or {}
    spec = pdb.get("spec") or {}
    c.expect(("minAvailable" in spec) != ("maxUnavailable" in spec), pdb,
             "exactly one of minAvailable and maxUnavailable (the API server rejects both)")
    if defaults:
        c.expect(spec.get("minAvailable") == 1, pdb, "minAvailable must be 1")
    c.expect(selector_matches(dig(pdb, "spec", "selector"), pod_labels) and bool(dig(pdb, "spec", "selector")),
             pdb, "selector must match the webhook pods")


def check_mwc(c: Checker, dep: Optional[dict], flags: Dict[str, Optional[str]], defaults: bool,
              excluded: Iterable[str]) -> Optional[dict]:
    """The webhook configuration. `excluded`: namespaces it must never see besides its own."""
    mwc = c.one("MutatingWebhookConfiguration", MWC)
    if mwc is None:
        return None
    c.expect(mwc.get("apiVersion") == "admissionregistration.k8s.io/v1", mwc, "apiVersion must be admissionregistration.k8s.io/v1")
    hooks = mwc.get("webhooks") or []
    if not c.expect(len(hooks) == 1 and hooks[0].get("name") == WEBHOOK, mwc, f"must have exactly one webhook {WEBHOOK}"):
        return mwc
    w = hooks[0]
    c.expect(w.get("rules") == [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                                 "operations": ["CREATE"], "scope": "Namespaced"}]
             or w.get("rules") == [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                                    "operations": ["CREATE"]}],
             mwc, f"rules must be exactly CREATE of v1 pods, got {w.get('rules')}")
    c.expect(w.get("admissionReviewVersions") == ["v1", "v1beta1"], mwc, "admissionReviewVersions must be [v1, v1beta1]")
    c.expect(w.get("objectSelector") == {"matchLabels": {"azure.workload.identity/use": "true"}}, mwc,
             "objectSelector must be exactly matchLabels azure.workload.identity/use: \"true\"")
    for key, val in (("failurePolicy", "Fail"), ("sideEffects", "None"), ("matchPolicy", "Equivalent"),
                     ("reinvocationPolicy", "IfNeeded"), ("timeoutSeconds", 10)):
        c.expect(w.get(key) == val, mwc, f"{key} must be {val!r}, got {w.get(key)!r}")
    cc = w.get("clientConfig") or {}
    c.expect("url" not in cc, mwc, "clientConfig.url must not be set (use the service)")
    svc_ref = cc.get("service") or {}
    c.expect(svc_ref.get("name") == SERVICE and svc_ref.get("namespace") == c.namespace, mwc,
             f"clientConfig.service must be {c.namespace}/{SERVICE}")
    c.expect(svc_ref.get("path") == WEBHOOK_PATH, mwc, f"clientConfig.service.path must be {WEBHOOK_PATH}")
    if defaults:
        c.expect(svc_ref.get("port", 443) == 443, mwc, "clientConfig.service.port must be 443")
    c.expect("caBundle" not in cc or bool(re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", cc["caBundle"])), mwc,
             "clientConfig.caBundle must be base64")

    # The webhook must never see its own namespace (nor the others excluded): evaluate the
    # selector against those namespaces' labels (including the rendered ones).
    ns_sel = w.get("namespaceSelector")
    for ns in (*excluded, c.namespace):
        labels = {"kubernetes.io/metadata.name": ns}
        for o in c.find("Namespace", ns):
            labels.update(dig(o, "metadata", "labels", default={}) or {})
        c.expect(not selector_matches(ns_sel, labels), mwc, f"namespaceSelector must exclude namespace {ns}")
    if defaults:
        c.expect(selector_matches(ns_sel, {"kubernetes.io/metadata.name": "default"}), mwc,
                 "namespaceSelector must still select ordinary namespaces (e.g. default)")

    # Shutdown: grace period > shutdown delay + the longest request (the webhook timeout).
    if dep is not None:
        grace = dig(dep, "spec", "template", "spec", "terminationGracePeriodSeconds", default=30)
        delay = parse_duration(flag(flags, "shutdown-delay") or "") or 0
        c.expect(grace > delay + (w.get("timeoutSeconds") or 10), dep,
                 f"terminationGracePeriodSeconds {grace} must exceed shutdown delay {delay}s + "
                 f"webhook timeout {w.get('timeoutSeconds') or 10}s")
        # The webhook's own bound: delay + drain + 2 s to exit (serve refuses to start otherwise).
        drain = parse_duration(flag(flags, "shutdown-drain-timeout") or "") or 0
        c.expect(grace >= delay + drain + 2, dep,
                 f"terminationGracePeriodSeconds {grace} must be at least shutdown delay {delay}s + "
                 f"drain timeout {drain}s + 2s")
        told = flags.get("termination-grace-period")
        c.expect(told is None or parse_duration(told) == grace, dep,
                 f"--termination-grace-period={told} must equal terminationGracePeriodSeconds {grace}")
    return mwc


def rbac_rules_for_sa(c: Checker) -> Tuple[List[Tuple[dict, dict]], List[Tuple[dict, dict]]]:
    """(cluster rules, namespaced rules) granted to the webhook SA, each as (role, rule)."""
    cluster, namespaced = [], []
    for b in c.find("ClusterRoleBinding") + c.find("RoleBinding"):
        subjects = b.get("subjects") or []
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == SERVICE_ACCOUNT
                   and s.get("namespace", dig(b, "metadata", "namespace")) == c.namespace for s in subjects):
            continue
        rr = b.get("roleRef") or {}
        ns = dig(b, "metadata", "namespace") if rr.get("kind") == "Role" else None
        roles = c.find(rr.get("kind", ""), rr.get("name"), ns)
        if not c.expect(len(roles) == 1, b, f"roleRef {rr.get('kind')}/{rr.get('name')} is not defined in "
                                            f"these manifests (no binding to outside roles)"):
            continue
        target = cluster if (b["kind"] == "ClusterRoleBinding") else namespaced
        for rule in roles[0].get("rules") or []:
            target.append((roles[0], rule))
    return cluster, namespaced


def check_rbac(c: Checker, flags: Dict[str, Optional[str]], self_managed_rbac: bool) -> None:
    # No wildcard or escalation anywhere, in any role of the install.
    for role in c.find("ClusterRole") + c.find("Role"):
        c.expect("aggregationRule" not in role, role, "aggregationRule not allowed")
        for rule in role.get("rules") or []:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                c.expect("*" not in (rule.get(field) or []), role, f"wildcard '*' in {field}")
            c.expect(not rule.get("nonResourceURLs"), role, "nonResourceURLs not allowed")
            for bad in ("escalate", "bind", "impersonate", "delete", "deletecollection"):
                c.expect(bad not in (rule.get("verbs") or []), role, f"verb {bad!r} not allowed")
    for b in c.find("RoleBinding"):
        c.expect(dig(b, "roleRef", "kind") == "Role", b, "RoleBinding must reference a Role, not a ClusterRole")

    cluster, namespaced = rbac_rules_for_sa(c)

    def check(rules: List[Tuple[dict, dict]], allowed: dict) -> Dict[Tuple[str, str], set]:
        granted: Dict[Tuple[str, str], set] = {}
        for role, rule in rules:
            for g in rule.get("apiGroups") or []:
                for r in rule.get("resources") or []:
                    key = (g, r)
                    if key not in allowed:
                        c.fail(role, f"resource {g or 'core'}/{r} is not in the allowed minimal set")
                        continue
                    verbs, names = allowed[key]
                    extra = set(rule.get("verbs") or []) - verbs
                    c.expect(not extra, role, f"{g or 'core'}/{r}: verbs {sorted(extra)} not allowed "
                                              f"(allowed {sorted(verbs)})")
                    rn = set(rule.get("resourceNames") or [])
                    rverbs = set(rule.get("verbs") or [])
                    if "create" in rverbs:
                        c.expect(not rn, role, f"{g or 'core'}/{r}: create cannot be limited by resourceNames; "
                                               f"put create in its own rule without resourceNames")
                    if names is not None and rverbs - {"create"}:
                        c.expect(bool(rn) and rn <= names, role,
                                 f"{g or 'core'}/{r}: {sorted(rverbs - {'create'})} must be pinned with "
                                 f"resourceNames {sorted(names)}, got {sorted(rn) or 'none'}")
                    granted.setdefault(key, set()).update(rverbs)
        return granted

    gc = check(cluster, CLUSTER_RBAC)
    gn = check(namespaced, NAMESPACED_RBAC)
    for role, _ in namespaced:
        c.expect(dig(role, "metadata", "namespace") == c.namespace, role, f"Role must be in {c.namespace}")

    required_c = list(REQUIRED_CLUSTER)
    required_n: list = []
    unused: list = []
    if needs_subject_access_review(flags):
        required_c += REQUIRED_RBAC_CHECK
    else:
        unused += [(x, gc) for x in REQUIRED_RBAC_CHECK]
    if self_managed_rbac or not cert_rotation_disabled(flags):
        required_c += REQUIRED_SELF_MANAGED_CLUSTER
        required_n += REQUIRED_SELF_MANAGED_NS
    else:
        unused += [(x, gc) for x in REQUIRED_SELF_MANAGED_CLUSTER] + [(x, gn) for x in REQUIRED_SELF_MANAGED_NS]
    for (g, r, verbs), granted in [(x, gc) for x in required_c] + [(x, gn) for x in required_n]:
        missing = verbs - granted.get((g, r), set())
        c.expect(not missing, None, f"{SERVICE_ACCOUNT} lacks {g or 'core'}/{r} {sorted(missing)}")
    # Least privilege: nothing the configured webhook never uses.
    for (g, r, _), granted in unused:
        c.expect((g, r) not in granted, None, f"{SERVICE_ACCOUNT} is granted {g or 'core'}/{r}, which the "
                                              f"webhook does not use with these flags")


def needs_subject_access_review(flags: Dict[str, Optional[str]]) -> bool:
    """The webhook checks RBAC only when identity binding is on (both custom-token-endpoint flags
    non-empty) and --rbac-check is not off."""
    binding = bool(flag(flags, "custom-token-endpoint-annotation-suffix")) and \
        bool(flag(flags, "custom-token-endpoint-audience"))
    return binding and (flag(flags, "rbac-check") or "deny").lower() != "off"


def check_secret(c: Checker, flags: Dict[str, Optional[str]]) -> None:
    """The certificate Secret, when the install ships one, is an empty shell the webhook fills:
    key material never comes from manifests. With rotation disabled, something else (cert-manager,
    the user) writes it, so the install must not own it."""
    for sec in c.find("Secret", CERT_SECRET, c.namespace):
        if cert_rotation_disabled(flags):
            c.fail(sec, "with --disable-cert-rotation the install must not include this Secret (its writer owns it)")
        c.expect(not sec.get("data") and not sec.get("stringData"), sec, "must carry no data (the webhook fills it)")
        c.expect(sec.get("type", "Opaque") == "Opaque", sec,
                 "type must stay Opaque, as upstream's (the type is immutable, so an upgrade would fail)")


def check_client_ca(c: Checker, dep: Optional[dict], ctr: Optional[dict], flags: Dict[str, Optional[str]]) -> None:
    """--client-ca-file must point into a mounted volume."""
    path = flags.get("client-ca-file")
    if not path or dep is None or ctr is None:
        return
    mounts = [m for m in ctr.get("volumeMounts") or [] if path.startswith(m.get("mountPath", "").rstrip("/") + "/")]
    if c.expect(len(mounts) == 1, dep, f"--client-ca-file={path} is not under a mounted volume"):
        volumes = {v.get("name"): v for v in dig(dep, "spec", "template", "spec", "volumes", default=[]) or []}
        vol = volumes.get(mounts[0].get("name"))
        if c.expect(vol is not None, dep, f"volume {mounts[0].get('name')!r} is mounted but not defined"):
            items = dig(vol, "configMap", "items") or dig(vol, "secret", "items")
            if items is not None:
                rel = path[len(mounts[0]["mountPath"].rstrip("/")) + 1:]
                c.expect(any(i.get("path") == rel for i in items), dep,
                         f"--client-ca-file={path}: volume {vol.get('name')!r} projects no {rel!r}")


def check_webhook_install(c: Checker, profiles: List[str]) -> None:
    """Profiles: "webhook" (what every install must satisfy), "defaults" (also the user-tunable
    settings as shipped), "static" (kubectl manifests: the Namespace object), "exclude-kube-system",
    "self-managed-rbac", "cert-manager", "prometheus"."""
    defaults = "defaults" in profiles
    check_namespaces(c, c.namespace)
    if "static" in profiles:
        check_namespace_object(c)
    dep, ctr, flags = check_deployment(c, defaults)
    check_config(c)
    excluded = ["kube-system"] if "exclude-kube-system" in profiles else []
    mwc = check_mwc(c, dep, flags, defaults, excluded)
    port = dig(mwc, "webhooks", 0, "clientConfig", "service", "port", default=443) if mwc else 443
    check_service(c, dep, ctr, port)
    check_pdb(c, dep, defaults)
    check_secret(c, flags)
    check_client_ca(c, dep, ctr, flags)
    check_rbac(c, flags, "self-managed-rbac" in profiles)
    if "cert-manager" in profiles:
        check_cert_manager(c, dep, flags, mwc)
    if "prometheus" in profiles:
        check_prometheus(c, ctr)


def check_cert_manager(c: Checker, dep: Optional[dict], flags: Dict[str, Optional[str]], mwc: Optional[dict]) -> None:
    c.expect(cert_rotation_disabled(flags), dep, "cert-manager overlay needs --disable-cert-rotation "
                                                 "(cert-manager owns the Secret)")
    if mwc is None:
        return
    inject = dig(mwc, "metadata", "annotations", "cert-manager.io/inject-ca-from")
    if not c.expect(bool(inject) and "/" in inject, mwc, "annotation cert-manager.io/inject-ca-from <ns>/<cert> missing"):
        return
    ns, name = inject.split("/", 1)
    cert = c.find("Certificate", name, ns)
    if not c.expect(len(cert) == 1, mwc, f"inject-ca-from points at Certificate {inject}, not in these manifests"):
        return
    cert = cert[0]
    spec = cert.get("spec") or {}
    mounted = [dig(v, "secret", "secretName") for v in dig(dep, "spec", "template", "spec", "volumes", default=[]) or []
               if v.get("name") == "cert"]
    c.expect(spec.get("secretName") == CERT_SECRET and mounted == [CERT_SECRET], cert,
             f"secretName must be {CERT_SECRET}, the Secret mounted at /certs")
    c.expect(f"{SERVICE}.{c.namespace}.svc" in (spec.get("dnsNames") or []), cert,
             f"dnsNames must contain {SERVICE}.{c.namespace}.svc (the name the API server dials)")
    c.expect(not spec.get("isCA"), cert, "the serving certificate must not be a CA")
    # The issuer chain must be complete inside the overlay.
    issuer = c.find(dig(spec, "issuerRef", "kind", default="Issuer"), dig(spec, "issuerRef", "name"), ns)
    if c.expect(len(issuer) == 1, cert, "issuerRef does not resolve to an Issuer in these manifests"):
        ca_secret = dig(issuer[0], "spec", "ca", "secretName")
        if c.expect(bool(ca_secret), issuer[0], "serving certificate must be issued by a CA Issuer"):
            ca = [x for x in c.find("Certificate", namespace=ns) if dig(x, "spec", "secretName") == ca_secret]
            c.expect(len(ca) == 1 and dig(ca[0], "spec", "isCA") is True, issuer[0],
                     f"CA secret {ca_secret} must come from an isCA Certificate in these manifests")


def check_prometheus(c: Checker, ctr: Optional[dict]) -> None:
    mons = c.find("ServiceMonitor", namespace=c.namespace)
    if not c.expect(len(mons) == 1, None, "expected one ServiceMonitor") or ctr is None:
        return
    mon = mons[0]
    svcs = [s for s in c.find("Service", namespace=c.namespace)
            if selector_matches(dig(mon, "spec", "selector"), dig(s, "metadata", "labels", default={}) or {})]
    if not c.expect(len(svcs) == 1, mon, f"selector must match exactly one Service, matches "
                                         f"{[ref(s) for s in svcs]}"):
        return
    svc = svcs[0]
    c.expect(svc["metadata"]["name"] != SERVICE, mon, "must not scrape the webhook (TLS admission) service")
    eps = dig(mon, "spec", "endpoints", default=[]) or []
    if not c.expect(len(eps) >= 1, mon, "needs an endpoint"):
        return
    for ep in eps:
        ports = [p for p in dig(svc, "spec", "ports", default=[]) or [] if p.get("name") == ep.get("port")]
        if c.expect(len(ports) == 1, mon, f"endpoint port {ep.get('port')!r} is not a named port of {ref(svc)}"):
            tp = resolve_port(ctr, ports[0].get("targetPort", ports[0].get("port")))
            c.expect(tp is not None and tp == container_ports(ctr).get("metrics"), svc,
                     "metrics Service targetPort must resolve to the container's metrics port")
        c.expect(ep.get("path", "/metrics") == "/metrics", mon, "endpoint path must be /metrics")
        c.expect(ep.get("scheme", "http") == "http", mon, "metrics listener is plain HTTP")
    nsel = dig(mon, "spec", "namespaceSelector")
    c.expect(nsel is None or c.namespace in (nsel.get("matchNames") or []) or nsel.get("any") is True, mon,
             f"namespaceSelector must include {c.namespace}")


# ---------------------------------------------------------------------------
# Examples


def check_examples(c: Checker, demo_file: Optional[str]) -> None:
    check_namespaces(c, None)
    sas = c.find("ServiceAccount")
    pods = c.find("Pod")
    c.expect(len(pods) >= 2, None, "expected a workload-identity pod and an identity-binding pod")
    client_ids = {}
    for sa in sas:
        ann = dig(sa, "metadata", "annotations", default={}) or {}
        cid = ann.get("azure.workload.identity/client-id")
        if c.expect(bool(cid) and bool(UUID_RE.match(cid)), sa, "client-id annotation must be a UUID"):
            client_ids[(sa["metadata"].get("namespace"), sa["metadata"]["name"])] = cid
        tid = ann.get("azure.workload.identity/tenant-id")
        if tid is not None:
            c.expect(bool(UUID_RE.match(tid)), sa, "tenant-id annotation must be a UUID")

    binding_pods = 0
    for pod in pods:
        md = pod.get("metadata") or {}
        c.expect((md.get("labels") or {}).get("azure.workload.identity/use") == "true", pod,
                 "label azure.workload.identity/use must be the string \"true\"")
        sa_key = (md.get("namespace"), dig(pod, "spec", "serviceAccountName", default="default"))
        if not c.expect(sa_key in client_ids, pod, f"serviceAccountName {sa_key[1]} is not an annotated "
                                                   f"ServiceAccount in these manifests"):
            continue
        if (md.get("annotations") or {}).get("azure.workload.identity/use-identity-binding") == "true":
            binding_pods += 1
            # Identity binding: RBAC must let the SA use its client id (resource = client id).
            cid = client_ids[sa_key]
            ok = False
            for b in c.find("ClusterRoleBinding") + c.find("RoleBinding"):
                if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa_key[1]
                           and s.get("namespace", dig(b, "metadata", "namespace")) == sa_key[0]
                           for s in b.get("subjects") or []):
                    continue
                rr = b.get("roleRef") or {}
                for role in c.find(rr.get("kind", ""), rr.get("name")):
                    for rule in role.get("rules") or []:
                        if "cid.wi.aks.azure.com" in (rule.get("apiGroups") or []) \
                                and "use-managed-identity" in (rule.get("verbs") or []):
                            c.expect(not rule.get("resourceNames"), role,
                                     "cid.wi.aks.azure.com: the client id is the *resource*; do not use resourceNames")
                            ok = ok or cid in (rule.get("resources") or [])
            c.expect(ok, pod, f"no RBAC grants use-managed-identity on cid.wi.aks.azure.com/{cid} to "
                              f"{sa_key[0]}/{sa_key[1]}")
    c.expect(binding_pods >= 1, None, "expected a pod annotated azure.workload.identity/use-identity-binding: \"true\"")

    # demo.yaml must stand alone for `azwi-webhook inject -f` (SA + pods in one file).
    if demo_file:
        with open(demo_file) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        kinds = [d.get("kind") for d in docs]
        c.expect("ServiceAccount" in kinds and kinds.count("Pod") >= 2, None,
                 f"{os.path.relpath(demo_file, REPO_ROOT)} must hold the ServiceAccount and the pods "
                 f"(for azwi-webhook inject -f), has {kinds}")


# ---------------------------------------------------------------------------
# Driver


def kubectl_kustomize(path: str, extra: Iterable[str] = ()) -> List[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl:
        cmd = [kubectl, "kustomize", *extra, path]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build", *extra, path]
    else:
        raise SystemExit("validate-manifests: need kubectl (or kustomize) on PATH")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RenderError(f"{' '.join(cmd)} failed:\n{out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


class RenderError(Exception):
    pass


def render_target(name: str, path: Optional[str]) -> List[dict]:
    if path is not None:
        return kubectl_kustomize(os.path.join(REPO_ROOT, path))
    # all-components: base + every component, from a throwaway overlay.
    comps = sorted(os.path.join(COMPONENTS_DIR, d) for d in os.listdir(COMPONENTS_DIR)
                   if os.path.isfile(os.path.join(COMPONENTS_DIR, d, "kustomization.yaml")))
    with tempfile.TemporaryDirectory() as tmp:
        # kustomize refuses absolute roots: refer to them relative to tmp.
        rel = lambda p: os.path.relpath(p, tmp)  # noqa: E731
        with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
            yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                            "resources": [rel(os.path.join(MANIFESTS, "base"))],
                            "components": [rel(p) for p in comps]}, f)
        return kubectl_kustomize(tmp, ["--load-restrictor", "LoadRestrictionsNone"])


def run_checks(name: str, objects: List[dict], profiles: List[str], versions: List[str],
               schemas: bool = True, namespace: str = NAMESPACE) -> List[str]:
    c = Checker(name, objects, namespace)
    steps: List[Tuple[str, Callable[[], None]]] = []
    if schemas:
        steps.append(("schema validation", lambda: check_schemas(c, versions)))
    if "webhook" in profiles:
        steps.append(("webhook checks", lambda: check_webhook_install(c, profiles)))
    if "examples" in profiles:
        steps.append(("example checks",
                      lambda: check_examples(c, os.path.join(MANIFESTS, "examples", "demo.yaml"))))
    for what, step in steps:
        try:
            step()
        except Exception as e:  # malformed input must fail the check, never crash it
            c.fail(None, f"{what} stopped on malformed input: {type(e).__name__}: {e}")
    return c.errors


def main_check(versions: List[str]) -> int:
    errors: List[str] = []
    for name, path, profiles in TARGETS:
        try:
            objects = render_target(name, path)
        except RenderError as e:
            errors.append(f"[{name}] {e}")
            continue
        errs = run_checks(name, objects, profiles, versions)
        status = "ok" if not errs else f"{len(errs)} problem(s)"
        print(f"  {name:15s} {len(objects):3d} objects, k8s {', '.join(versions)}: {status}")
        errors += errs
    return report(errors, "manifest validation")


def report(errors: List[str], what: str) -> int:
    """Prints the problems (or that there were none); the exit status for them."""
    if errors:
        print(f"\n{what} FAILED:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    print(f"{what} passed")
    return 0


# --- self-test: each mutation of a good render must be caught ---------------

def _get(objs: List[dict], kind: str, name: Optional[str] = None) -> dict:
    return next(o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name))


def _ctr(objs: List[dict]) -> dict:
    return _get(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def _set(d: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d.setdefault(k, {})
    if value is _DELETE:
        d.pop(keys[-1], None)
    else:
        d[keys[-1]] = value


_DELETE = object()

# (description, target render, mutation, substring expected in some error)
MUTATIONS: List[Tuple[str, str, Callable[[List[dict]], None], str]] = [
    ("liveness probe on a wrong path", "base",
     lambda o: _set(_ctr(o), "livenessProbe.httpGet.path", "/live"), "livenessProbe path"),
    ("readiness probe on an undeclared port", "base",
     lambda o: _set(_ctr(o), "readinessProbe.httpGet.port", "healthz"), "not a declared container port"),
    ("probe on the metrics port", "base",
     lambda o: _set(_ctr(o), "livenessProbe.httpGet.port", "metrics"), "is not the health port"),
    ("unknown flag", "base", lambda o: _ctr(o)["args"].append("--cert-dir=/tmp"), "unknown flag --cert-dir"),
    ("bad flag value", "base", lambda o: _ctr(o)["args"].append("--tls-min-version=1.1"), "--tls-min-version=1.1"),
    ("webhook-addr does not match container port", "base",
     lambda o: _set(_ctr(o), "args", [a.replace(":9443", ":8443") for a in _ctr(o)["args"]]),
     "but --webhook-addr listens on 8443"),
    ("container port renumbered", "base",
     lambda o: _set(_ctr(o), "ports.0.containerPort", 8443), "but --webhook-addr listens on 9443"),
    ("wildcard verb", "base", lambda o: _get(o, "ClusterRole")["rules"][0]["verbs"].append("*"), "wildcard"),
    ("extra resource", "base", lambda o: _get(o, "ClusterRole")["rules"][0]["resources"].append("pods"),
     "core/pods is not in the allowed minimal set"),
    ("list any secret", "base",
     lambda o: _get(o, "Role")["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}),
     "must be pinned with resourceNames"),
    ("no watch of the certificate secret", "base",
     lambda o: _get(o, "Role")["rules"][0]["verbs"].remove("watch"), "lacks core/secrets ['watch']"),
    ("secrets not pinned by name", "base", lambda o: _get(o, "Role")["rules"][0].pop("resourceNames"),
     "must be pinned with resourceNames"),
    ("create with resourceNames", "base",
     lambda o: _set(_get(o, "Role")["rules"][1], "resourceNames", [CERT_SECRET]), "create cannot be limited"),
    ("binding to cluster-admin", "base", lambda o: _set(_get(o, "ClusterRoleBinding"), "roleRef.name", "cluster-admin"),
     "not defined in these manifests"),
    ("missing SubjectAccessReview permission", "base",
     lambda o: _get(o, "ClusterRole")["rules"].pop(1), "lacks authorization.k8s.io/subjectaccessreviews"),
    ("namespaced object without namespace", "base", lambda o: _get(o, "Service")["metadata"].pop("namespace"),
     "no metadata.namespace"),
    ("privilege escalation", "base",
     lambda o: _set(_ctr(o), "securityContext.allowPrivilegeEscalation", True), "allowPrivilegeEscalation"),
    ("writable root fs", "base",
     lambda o: _set(_ctr(o), "securityContext.readOnlyRootFilesystem", False), "readOnlyRootFilesystem"),
    ("capabilities kept", "base", lambda o: _set(_ctr(o), "securityContext.capabilities.drop", []), "drop must contain ALL"),
    ("runs as root", "base", lambda o: _set(_ctr(o), "securityContext.runAsUser", 0), "runAsUser must be 65532"),
    ("failurePolicy Ignore", "base",
     lambda o: _set(_get(o, "MutatingWebhookConfiguration")["webhooks"][0], "failurePolicy", "Ignore"), "failurePolicy"),
    ("UPDATE operation", "base",
     lambda o: _get(o, "MutatingWebhookConfiguration")["webhooks"][0]["rules"][0]["operations"].append("UPDATE"),
     "rules must be exactly"),
    ("own namespace not excluded", "base",
     lambda o: _get(o, "MutatingWebhookConfiguration")["webhooks"][0].pop("namespaceSelector"),
     f"must exclude namespace {NAMESPACE}"),
    ("wrong webhook path", "base",
     lambda o: _set(_get(o, "MutatingWebhookConfiguration")["webhooks"][0], "clientConfig.service.path", "/mutate"),
     "clientConfig.service.path"),
    ("service targetPort wrong", "base",
     lambda o: _set(_get(o, "Service")["spec"]["ports"][0], "targetPort", 8443), "does not resolve"),
    ("empty tenant id", "base", lambda o: _set(_get(o, "ConfigMap"), "data.AZURE_TENANT_ID", ""), "set but empty"),
    ("two CA sources", "base", lambda o: _get(o, "ConfigMap")["data"].update(
        {"AZURE_KUBERNETES_CA_CONFIGMAP_NAME": "x", "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME": "a/b"}), "at most one"),
    ("grace period flag out of step", "base",
     lambda o: _set(_get(o, "Deployment"), "spec.template.spec.terminationGracePeriodSeconds", 40),
     "--termination-grace-period"),
    ("drain longer than the grace period allows", "base",
     lambda o: _ctr(o)["args"].append("--shutdown-drain-timeout=30s"),
     "drain timeout"),
    ("grace period too short", "base",
     lambda o: _set(_get(o, "Deployment"), "spec.template.spec.terminationGracePeriodSeconds", 10),
     "terminationGracePeriodSeconds"),
    ("PSA label missing", "base", lambda o: _get(o, "Namespace")["metadata"]["labels"].pop(
        "pod-security.kubernetes.io/enforce"), "pod-security.kubernetes.io/enforce"),
    ("unknown field (strict schema)", "base",
     lambda o: _set(_get(o, "Deployment"), "spec.template.spec.containers.0.livenessprobe", {}), "schema (strict)"),
    ("wrong type (schema)", "base", lambda o: _set(_get(o, "Deployment"), "spec.replicas", "two"), "schema (strict)"),
    ("self-managed with the CA key mounted", "base",
     lambda o: _get(o, "Deployment")["spec"]["template"]["spec"].update(
         {"volumes": [{"name": "cert", "secret": {"secretName": CERT_SECRET}}]}), "with its CA key"),
    ("self-managed without Secret permissions", "base",
     lambda o: _get(o, "Role")["rules"].pop(0), "lacks core/secrets"),
    ("PDB with both minAvailable and maxUnavailable", "base",
     lambda o: _set(_get(o, "PodDisruptionBudget"), "spec.maxUnavailable", 1), "exactly one of minAvailable"),
    ("Service selects less than the Deployment", "base",
     lambda o: _get(o, "Service")["spec"]["selector"].update({"extra": "x"}), "Deployment's selector"),
    ("SubjectAccessReview granted with --rbac-check=off", "base",
     lambda o: _set(_ctr(o), "args", [a.replace("--rbac-check=deny", "--rbac-check=off") for a in _ctr(o)["args"]]),
     "which the webhook does not use"),
    ("certificate Secret shipped with data", "base",
     lambda o: _set(_get(o, "Secret", CERT_SECRET), "data", {"tls.key": "eA=="}), "must carry no data"),
    ("certificate Secret with an immutable type change", "base",
     lambda o: _set(_get(o, "Secret", CERT_SECRET), "type", "kubernetes.io/tls"), "must stay Opaque"),
    ("client CA file outside every mount", "base",
     lambda o: _ctr(o)["args"].append("--client-ca-file=/client-ca/ca.crt"), "not under a mounted volume"),
    ("max-in-flight-reviews zero", "base",
     lambda o: _ctr(o)["args"].append("--max-in-flight-reviews=0"), "not a positive number"),
    ("cert-manager install owning the certificate Secret", "cert-manager",
     lambda o: o.append({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": CERT_SECRET, "namespace": NAMESPACE}}), "must not include this Secret"),
    ("cert-manager install still granting Secret writes", "cert-manager",
     lambda o: _get(o, "ClusterRole")["rules"].append(
         {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
          "resourceNames": [MWC], "verbs": ["get"]}), "does not use with these flags"),
    ("cert-manager without --disable-cert-rotation", "cert-manager",
     lambda o: _ctr(o)["args"].remove("--disable-cert-rotation"), "needs --disable-cert-rotation"),
    ("cert-manager CA annotation dangling", "cert-manager",
     lambda o: _set(_get(o, "MutatingWebhookConfiguration"), "metadata.annotations",
                    {"cert-manager.io/inject-ca-from": f"{NAMESPACE}/nope"}), "not in these manifests"),
    ("cert-manager wrong DNS name", "cert-manager",
     lambda o: _set(_get(o, "Certificate", "azure-wi-webhook-serving-cert"), "spec.dnsNames", ["x.svc"]), "dnsNames"),
    ("ServiceMonitor on wrong port", "prometheus",
     lambda o: _set(_get(o, "ServiceMonitor")["spec"]["endpoints"][0], "port", "https"), "not a named port"),
    ("example SA uses resourceNames style", "examples",
     lambda o: _get(o, "ClusterRole")["rules"][0].update({"resources": ["identities"],
                                                          "resourceNames": ["x"]}), "do not use resourceNames"),
    ("example pod label is not \"true\"", "examples",
     lambda o: _set(_get(o, "Pod"), "metadata.labels", {"azure.workload.identity/use": "yes"}), "label azure.workload"),
]


def main_self_test(versions: List[str]) -> int:
    renders = {}
    profiles = {}
    for name, path, prof in TARGETS:
        if name == "all-components":
            continue
        renders[name] = render_target(name, path)
        profiles[name] = prof
    failures = 0
    for name, objs in renders.items():
        errs = run_checks(name, objs, profiles[name], versions[:1])
        if errs:
            print(f"  FAIL  unmodified {name} render should pass, got: {errs}")
            failures += 1
        else:
            print(f"  ok    unmodified {name} render passes")
    for desc, target, mutate, expected in MUTATIONS:
        objs = copy.deepcopy(renders[target])
        mutate(objs)
        errs = run_checks(target, objs, profiles[target], versions[:1])
        if any(expected in e for e in errs):
            print(f"  ok    caught: {desc}")
        else:
            print(f"  FAIL  not caught: {desc} (expected an error containing {expected!r}; got {errs})")
            failures += 1
    if failures:
        print(f"self-test FAILED: {failures} case(s)", file=sys.stderr)
        return 1
    print(f"self-test passed ({len(MUTATIONS)} broken variants caught)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", "--kubernetes-version", action="append", dest="versions",
                    help=f"Kubernetes version(s) to validate against (default: {', '.join(K8S_VERSIONS)})")
    ap.add_argument("--self-test", action="store_true", help="check that broken variants are rejected")
    args = ap.parse_args()
    if kubernetes_validate is None:
        print("validate-manifests: python module kubernetes_validate missing (pip install kubernetes-validate)",
              file=sys.stderr)
        return 2
    versions = args.versions or K8S_VERSIONS
    try:
        return main_self_test(versions) if args.self_test else main_check(versions)
    except RenderError as e:
        print(f"validate-manifests: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
