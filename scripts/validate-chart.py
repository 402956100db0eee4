#!/usr/bin/env python3
"""Check the Helm chart charts/azwi-webhook offline (called by .ci/helm.sh).

For every values file in e2e/helm/cases/ (see CASES) this script:

1. renders the chart with helm v4 and with helm v3, and requires the same objects from both;
2. validates every object against the Kubernetes schemas in strict mode (kubernetes-validate) and
   runs the property checks of scripts/validate-manifests.py (probes, flags, security context,
   RBAC verbs, webhook configuration, ports, certificates, ServiceMonitor);
3. checks that every value landed where it should (check_values_applied): each key of the
   upstream workload-identity-webhook chart where upstream applies it, and this chart's own keys.

It also requires every values file in e2e/helm/bad/ to fail with the message its `# expect:` line
names (with both helm versions; `helm lint --strict` too when it says `# lint: fails`), checks
that values.yaml, values.schema.json and the README's table of values agree, and that the upstream
values file sets every upstream key away from its default.

With --binary, the webhook binary must also accept each rendered set of arguments and environment
(check_binary).

Usage (from anywhere):
    scripts/validate-chart.py --helm HELM4 --helm3 HELM3 [--binary target/release/azwi-webhook]
    scripts/validate-chart.py --helm HELM4 --helm3 HELM3 --self-test   # the checks catch breakage
    scripts/validate-chart.py --write-readme                            # regenerate the table
Exits 0 when everything passes, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(REPO_ROOT, "charts", "azwi-webhook")
CASES_DIR = os.path.join(REPO_ROOT, "e2e", "helm", "cases")
BAD_DIR = os.path.join(REPO_ROOT, "e2e", "helm", "bad")
README = os.path.join(CHART, "README.md")

_spec = importlib.util.spec_from_file_location("validate_manifests",
                                               os.path.join(REPO_ROOT, "scripts", "validate-manifests.py"))
vm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vm)  # type: ignore[union-attr]

NS = vm.NAMESPACE
UPSTREAM_NAME = "workload-identity-webhook"

# (name, values file, release, namespace, profiles of validate-manifests' checks)
CASES: List[Tuple[str, str, str, str, List[str]]] = [
    ("defaults", "defaults.yaml", "azwi-webhook", NS, ["webhook", "defaults", "self-managed-rbac"]),
    # Nothing may assume the usual namespace or release name.
    ("defaults-elsewhere", "defaults.yaml", "wi", "identity", ["webhook", "defaults", "self-managed-rbac"]),
    ("upstream-full", "upstream-full.yaml", "workload-identity-webhook", NS, ["webhook", "self-managed-rbac"]),
    ("binding-ca-data", "binding-ca-data.yaml", "azwi-webhook", NS, ["webhook", "defaults", "self-managed-rbac"]),
    ("binding-ca-configmap", "binding-ca-configmap.yaml", "azwi-webhook", NS,
     ["webhook", "defaults", "self-managed-rbac"]),
    ("binding-ctb", "binding-ctb.yaml", "azwi-webhook", NS, ["webhook", "defaults", "self-managed-rbac"]),
    ("binding-ctb-object", "binding-ctb-object.yaml", "azwi-webhook", NS,
     ["webhook", "defaults", "self-managed-rbac"]),
    ("cert-manager", "cert-manager.yaml", "azwi-webhook", NS, ["webhook", "defaults", "cert-manager"]),
    ("cert-manager-issuer", "cert-manager-issuer.yaml", "azwi-webhook", NS, ["webhook", "defaults"]),
    ("service-monitor", "service-monitor.yaml", "azwi-webhook", NS,
     ["webhook", "defaults", "self-managed-rbac", "prometheus"]),
    ("secret-mtls", "secret-mtls.yaml", "azwi-webhook", NS, ["webhook"]),
    ("proxy-resources", "proxy-resources.yaml", "azwi-webhook", NS, ["webhook", "defaults", "self-managed-rbac"]),
]

# Leaf keys of the upstream chart's values.yaml (v1.6.0, the latest release), plus the two keys its
# templates read without listing them (nameOverride, fullnameOverride) and revisionHistoryLimit,
# which its README documents.
UPSTREAM_KEYS = [
    "replicaCount", "image.repository", "image.release", "image.pullPolicy", "imagePullSecrets",
    "nodeSelector", "resources", "tolerations", "affinity", "topologySpreadConstraints", "service.type",
    "service.port", "service.targetPort", "azureEnvironment", "azureTenantID", "logLevel", "metricsAddr",
    "metricsBackend", "priorityClassName", "mutatingWebhookAnnotations", "podLabels", "podAnnotations",
    "mutatingWebhookNamespaceSelector", "podDisruptionBudget.minAvailable", "podDisruptionBudget.maxUnavailable",
    "revisionHistoryLimit", "nameOverride", "fullnameOverride",
    "customTokenEndpoint.annotationSuffix", "customTokenEndpoint.audience",
    "customTokenEndpoint.azureKubernetesCaData", "customTokenEndpoint.azureKubernetesSniName",
    "customTokenEndpoint.azureKubernetesTokenProxy", "customTokenEndpoint.azureKubernetesCAConfigMapName",
    "customTokenEndpoint.azureKubernetesCACTBSignerName", "customTokenEndpoint.azureKubernetesCACTBLabelSelector",
    "extraEnv", "extraVolumes", "extraVolumeMounts",
]
# Exclusive with a key upstream-full.yaml sets, so set away from their default in another case.
UPSTREAM_KEYS_ELSEWHERE = {
    "customTokenEndpoint.azureKubernetesCAConfigMapName": "binding-ca-configmap.yaml",
    "customTokenEndpoint.azureKubernetesCACTBSignerName": "binding-ctb.yaml",
    "customTokenEndpoint.azureKubernetesCACTBLabelSelector": "binding-ctb.yaml",
}

CTE_ENV = {
    "azureKubernetesTokenProxy": "AZURE_KUBERNETES_TOKEN_PROXY",
    "azureKubernetesSniName": "AZURE_KUBERNETES_SNI_NAME",
    "azureKubernetesCaData": "AZURE_KUBERNETES_CA_DATA",
    "azureKubernetesCAConfigMapName": "AZURE_KUBERNETES_CA_CONFIGMAP_NAME",
    "azureKubernetesCACTBSignerName": "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME",
}


# ---------------------------------------------------------------------------------------------
# Rendering


class HelmError(Exception):
    pass


def helm_template(helm: str, release: str, namespace: str, values_file: str) -> str:
    cmd = [helm, "template", release, CHART, "--namespace", namespace, "-f", values_file]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise HelmError(out.stderr.strip())
    return out.stdout


def documents(stream: str) -> List[dict]:
    return [d for d in yaml.safe_load_all(stream) if d]


def load_yaml(path: str) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


def merged(defaults: Any, override: Any) -> Any:
    """Helm's values merge: maps merge key by key, anything else (lists included) replaces, and an
    explicit null deletes the default."""
    if isinstance(defaults, dict) and isinstance(override, dict):
        out = dict(defaults)
        for k, v in override.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = merged(defaults.get(k), v)
        return out
    return override


def get_path(values: dict, path: str, default: Any = None) -> Any:
    return vm.dig(values, *path.split("."), default=default)


# ---------------------------------------------------------------------------------------------
# Values landed where they belong


def addr_port(addr: str) -> Optional[int]:
    return vm.parse_port(addr)


def check_values_applied(c: vm.Checker, values: dict, release: str) -> None:
    """Each value where it takes effect: the upstream keys where the upstream chart applies them
    (with this chart's documented fixes), then this chart's own keys."""
    dep = next(iter(c.find("Deployment", vm.DEPLOYMENT, c.namespace)), None)
    if not c.expect(dep is not None, None, "no Deployment rendered"):
        return
    pod = dig_dict(dep, "spec", "template", "spec")
    ctr = next((x for x in pod.get("containers") or [] if x.get("name") == vm.CONTAINER), {})
    args = ctr.get("args") or []
    name = values.get("nameOverride") or UPSTREAM_NAME

    def arg(flag: str) -> Optional[str]:
        found = [a.split("=", 1)[1] for a in args if a.startswith(f"--{flag}=")]
        return found[-1] if found else None

    def same(actual: Any, expected: Any, what: str, obj: Optional[dict] = dep) -> None:
        c.expect(actual == expected, obj, f"{what}: rendered {actual!r}, values say {expected!r}")

    # Selector: the upstream chart's (immutable, so an upgrade from it must find the same).
    selector = {"app": name, "azure-workload-identity.io/system": "true", "chart": name, "release": release}
    same(dig_dict(dep, "spec", "selector", "matchLabels"), selector, "Deployment selector (upstream chart's)")
    for kind in ("PodDisruptionBudget",):
        for o in c.find(kind, namespace=c.namespace):
            same(dig_dict(o, "spec", "selector", "matchLabels"), selector, f"{kind} selector", o)
    for svc in c.find("Service", vm.SERVICE, c.namespace):
        same(dig_dict(svc, "spec", "selector"), selector, "Service selector", svc)
    for o in c.objects:
        c.expect(values.get("fullnameOverride", "") == "" or values["fullnameOverride"] not in
                 (vm.dig(o, "metadata", "name") or ""), o, "fullnameOverride must not rename objects")

    same(dep["spec"].get("replicas"), values["replicaCount"], "replicaCount")
    if values.get("revisionHistoryLimit") is None:
        c.expect("revisionHistoryLimit" not in dep["spec"], dep, "revisionHistoryLimit unset must not render")
    else:
        same(dep["spec"].get("revisionHistoryLimit"), values["revisionHistoryLimit"], "revisionHistoryLimit")
    image = values["image"]
    sep = "@" if str(image["release"]).startswith("sha256:") else ":"
    same(ctr.get("image"), f"{image['repository']}{sep}{image['release']}", "image.repository/release")
    same(ctr.get("imagePullPolicy"), image["pullPolicy"], "image.pullPolicy")
    sa = next(iter(c.find("ServiceAccount", vm.SERVICE_ACCOUNT, c.namespace)), {})
    same(sa.get("imagePullSecrets") or [], values.get("imagePullSecrets") or [], "imagePullSecrets (ServiceAccount)", sa)
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
        same(pod.get(key) or type(values.get(key) or {})(), values.get(key) or type(values.get(key) or {})(), key)
    same(pod.get("priorityClassName") or "", values.get("priorityClassName") or "", "priorityClassName")
    same(ctr.get("resources") or {}, values.get("resources") or {}, "resources")
    labels = dig_dict(dep, "spec", "template", "metadata", "labels")
    for k, v in (values.get("podLabels") or {}).items():
        same(labels.get(k), v, f"podLabels.{k}")
    annotations = dig_dict(dep, "spec", "template", "metadata", "annotations")
    for k, v in (values.get("podAnnotations") or {}).items():
        same(annotations.get(k), v, f"podAnnotations.{k}")

    svc = next(iter(c.find("Service", vm.SERVICE, c.namespace)), {})
    same(vm.dig(svc, "spec", "type"), values["service"]["type"], "service.type", svc)
    same([p.get("port") for p in vm.dig(svc, "spec", "ports", default=[]) or []], [values["service"]["port"]],
         "service.port", svc)
    ports = vm.container_ports(ctr)
    same(ports.get("webhook"), values["service"]["targetPort"], "service.targetPort (container port)")
    same(arg("webhook-addr"), f":{values['service']['targetPort']}", "service.targetPort (--webhook-addr)")

    cm = next(iter(c.find("ConfigMap", vm.CONFIGMAP, c.namespace)), {})
    data = cm.get("data") or {}
    same(data.get("AZURE_TENANT_ID"), values["azureTenantID"], "azureTenantID", cm)
    same(data.get("AZURE_ENVIRONMENT"), values.get("azureEnvironment") or "AzurePublicCloud", "azureEnvironment", cm)
    same(arg("log-level"), values["logLevel"], "logLevel")
    same(arg("metrics-addr"), values["metricsAddr"], "metricsAddr")
    same(ports.get("metrics"), addr_port(values["metricsAddr"]), "metricsAddr (container port)")
    same(arg("metrics-backend"), values["metricsBackend"], "metricsBackend")

    mwc = next(iter(c.find("MutatingWebhookConfiguration", vm.MWC)), {})
    hook = vm.dig(mwc, "webhooks", 0, default={}) or {}
    mwc_annotations = vm.dig(mwc, "metadata", "annotations", default={}) or {}
    for k, v in (values.get("mutatingWebhookAnnotations") or {}).items():
        same(mwc_annotations.get(k), v, f"mutatingWebhookAnnotations.{k}", mwc)
    same(vm.dig(hook, "clientConfig", "service", "port"), values["service"]["port"],
         "service.port (webhook configuration)", mwc)
    user_sel = values.get("mutatingWebhookNamespaceSelector") or {}
    ns_sel = hook.get("namespaceSelector") or {}
    same(ns_sel.get("matchLabels") or {}, user_sel.get("matchLabels") or {},
         "mutatingWebhookNamespaceSelector.matchLabels", mwc)
    exprs = ns_sel.get("matchExpressions") or []
    user_exprs = user_sel.get("matchExpressions") or []
    same(exprs[:len(user_exprs)], user_exprs, "mutatingWebhookNamespaceSelector.matchExpressions", mwc)
    excluded = list(dict.fromkeys([*(values.get("excludedNamespaces") or []), c.namespace]))
    same(exprs[len(user_exprs):], [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                    "values": excluded}],
         "excludedNamespaces + the release namespace", mwc)

    pdb = next(iter(c.find("PodDisruptionBudget", namespace=c.namespace)), {})
    budget = values.get("podDisruptionBudget") or {}
    if budget.get("maxUnavailable") is not None:
        same({k: v for k, v in (pdb.get("spec") or {}).items() if k != "selector"},
             {"maxUnavailable": budget["maxUnavailable"]}, "podDisruptionBudget.maxUnavailable", pdb)
    else:
        same({k: v for k, v in (pdb.get("spec") or {}).items() if k != "selector"},
             {"minAvailable": budget["minAvailable"]} if budget.get("minAvailable") is not None else {},
             "podDisruptionBudget.minAvailable", pdb)

    cte = values["customTokenEndpoint"]
    same(arg("custom-token-endpoint-annotation-suffix"), cte["annotationSuffix"], "customTokenEndpoint.annotationSuffix")
    same(arg("custom-token-endpoint-audience"), cte["audience"], "customTokenEndpoint.audience")
    for key, env in CTE_ENV.items():
        same(data.get(env), cte.get(key) or None, f"customTokenEndpoint.{key}", cm)
    selector_value = cte.get("azureKubernetesCACTBLabelSelector")
    if isinstance(selector_value, str) and selector_value:
        selector_value = json.loads(selector_value)
    rendered_selector = data.get("AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR")
    same(json.loads(rendered_selector) if rendered_selector else None, selector_value or None,
         "customTokenEndpoint.azureKubernetesCACTBLabelSelector", cm)

    env = ctr.get("env") or []
    same([e.get("name") for e in env[:1]], ["POD_NAMESPACE"], "env starts with POD_NAMESPACE")
    same(env[1:], values.get("extraEnv") or [], "extraEnv")
    volumes = pod.get("volumes") or []
    mounts = ctr.get("volumeMounts") or []
    extra_v = values.get("extraVolumes") or []
    extra_m = values.get("extraVolumeMounts") or []
    same(volumes[len(volumes) - len(extra_v):] if extra_v else [], extra_v, "extraVolumes")
    same(mounts[len(mounts) - len(extra_m):] if extra_m else [], extra_m, "extraVolumeMounts")

    # This chart's own keys.
    rbac = "off" if values["rbacCheck"] is False else values["rbacCheck"]
    same(arg("rbac-check"), rbac, "rbacCheck")
    same(arg("shutdown-delay"), values["shutdownDelay"], "shutdownDelay")
    same(arg("shutdown-drain-timeout"), values["shutdownDrainTimeout"], "shutdownDrainTimeout")
    same(arg("termination-grace-period"), f"{values['terminationGracePeriodSeconds']}s",
         "terminationGracePeriodSeconds (--termination-grace-period)")
    same(arg("max-in-flight-reviews"), str(values["maxInFlightReviews"]), "maxInFlightReviews")
    same(arg("tls-min-version"), str(values["tlsMinVersion"]), "tlsMinVersion")
    same(pod.get("terminationGracePeriodSeconds"), values["terminationGracePeriodSeconds"],
         "terminationGracePeriodSeconds")
    same(data.get("PROXY_IMAGE"), values["proxySidecar"]["image"] or None, "proxySidecar.image", cm)
    same(data.get("PROXY_INIT_IMAGE"), values["proxySidecar"]["initImage"] or None, "proxySidecar.initImage", cm)
    for prefix, key in (("PROXY", "resources"), ("PROXY_INIT", "initResources")):
        configured = values["proxySidecar"].get(key) or {}
        for kind in ("request", "limit"):
            for resource in ("cpu", "memory"):
                want = (configured.get(f"{kind}s") or {}).get(resource)
                same(data.get(f"{prefix}_{resource}_{kind}".upper()), None if want is None else quantity_text(want),
                     f"proxySidecar.{key}.{kind}s.{resource}", cm)
    ca = values["clientCA"]
    want_ca = f"/client-ca/{ca['key']}" if (ca["configMapName"] or ca["secretName"]) else (ca["file"] or None)
    same(arg("client-ca-file"), want_ca, "clientCA")
    if ca["configMapName"] or ca["secretName"]:
        vol = next((v for v in volumes if v.get("name") == "client-ca"), {})
        source = vol.get("configMap", {}).get("name") or vol.get("secret", {}).get("secretName")
        same(source, ca["configMapName"] or ca["secretName"], "clientCA source volume")

    mode = values["certificates"]["mode"]
    same("--disable-cert-rotation" in args, mode != "self-managed", "certificates.mode (--disable-cert-rotation)")
    cert_vol = next((v for v in volumes if v.get("name") == "cert"), None)
    if mode == "self-managed":
        same(cert_vol, None, "certificates.mode self-managed mounts no certificate")
        c.expect(len(c.find("Secret", vm.CERT_SECRET, c.namespace)) == 1, None,
                 "self-managed: the release must own the (empty) certificate Secret, as upstream's does")
    else:
        want_secret = values["certificates"]["secret"]["name"] if mode == "secret" else vm.CERT_SECRET
        same(vm.dig(cert_vol or {}, "secret", "secretName"), want_secret, "certificate volume's Secret")
    certs = c.find("Certificate", namespace=c.namespace)
    if mode == "cert-manager":
        serving = [x for x in certs if vm.dig(x, "spec", "secretName") == vm.CERT_SECRET]
        if c.expect(len(serving) == 1, None, "cert-manager: one Certificate writing the certificate Secret"):
            ref = values["certificates"]["certManager"]["issuerRef"]
            if ref:
                same(vm.dig(serving[0], "spec", "issuerRef"),
                     {"group": ref.get("group") or "cert-manager.io", "kind": ref.get("kind") or "Issuer",
                      "name": ref["name"]}, "certificates.certManager.issuerRef", serving[0])
                same(len(certs), 1, "with an issuerRef the chart creates no CA of its own")
            for n in vm.dig(serving[0], "spec", "dnsNames", default=[]) or []:
                c.expect(n.startswith(f"{vm.SERVICE}.{c.namespace}.svc"), serving[0], f"dnsName {n} is not the Service's")
            c.expect(len(vm.dig(serving[0], "spec", "commonName", default="") or "") <= 64, serving[0],
                     "commonName longer than 64 characters (cert-manager refuses it)")
    else:
        same(certs, [], "certificates.mode: Certificates only with cert-manager")
    if mode == "secret" and values["certificates"]["secret"]["caBundle"]:
        same(vm.dig(hook, "clientConfig", "caBundle"), values["certificates"]["secret"]["caBundle"],
             "certificates.secret.caBundle", mwc)
    else:
        c.expect("caBundle" not in (hook.get("clientConfig") or {}), mwc,
                 "caBundle must not be rendered (an upgrade would overwrite the live one)")

    monitor = values["metrics"]["serviceMonitor"]
    mons = c.find("ServiceMonitor", namespace=c.namespace)
    if monitor["enabled"]:
        if c.expect(len(mons) == 1, None, "metrics.serviceMonitor.enabled: one ServiceMonitor"):
            for k, v in (monitor.get("labels") or {}).items():
                same(vm.dig(mons[0], "metadata", "labels", k), v, f"metrics.serviceMonitor.labels.{k}", mons[0])
            same(vm.dig(mons[0], "spec", "endpoints", 0, "interval"), monitor["interval"],
                 "metrics.serviceMonitor.interval", mons[0])
    else:
        same(mons, [], "metrics.serviceMonitor disabled")

    same(c.find("Namespace"), [], "a Helm release must not own its namespace")


def quantity_text(value: Any) -> str:
    """A quantity as the ConfigMap must carry it: whole numbers without exponent or `.0`."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def dig_dict(obj: Any, *path: Any) -> dict:
    found = vm.dig(obj, *path, default={})
    return found if isinstance(found, dict) else {}


def check_binary(c: vm.Checker, binary: str) -> None:
    """The webhook binary accepts the rendered arguments and environment: it gets past its
    configuration checks (which exit with status 2 naming the flag or variable) and its check of
    the files the flags name, and stops at the next step, the Kubernetes client, for want of a
    cluster. Listen ports become 0 so nothing binds a fixed port; the mounted certificate directory
    and client CA become files made by `azwi-webhook certs`."""
    dep = next(iter(c.find("Deployment", vm.DEPLOYMENT, c.namespace)), None)
    cm = next(iter(c.find("ConfigMap", vm.CONFIGMAP, c.namespace)), None)
    if dep is None or cm is None:
        return
    ctr = next((x for x in vm.dig(dep, "spec", "template", "spec", "containers", default=[]) or []
                if x.get("name") == vm.CONTAINER), {})
    args = [re.sub(r"^(--(?:webhook|health|metrics)-addr=.*:)[0-9]+$", r"\g<1>0", a) for a in ctr.get("args") or []]
    with tempfile.TemporaryDirectory(prefix="azwi-chart-certs-") as certs:
        run_binary(c, binary, dep, cm, ctr, args, certs)


def run_binary(c: vm.Checker, binary: str, dep: dict, cm: dict, ctr: dict, args: List[str], certs: str) -> None:
    made = subprocess.run([binary, "certs", "--out", certs, "--dns-name", "localhost"], capture_output=True,
                          text=True, timeout=10)
    if made.returncode != 0:
        c.expect(False, dep, f"azwi-webhook certs failed: {made.stderr.strip()}")
        return
    args = [re.sub(r"^--webhook-cert-dir=.*$", f"--webhook-cert-dir={certs}", a) for a in args]
    args = [re.sub(r"^--client-ca-file=.*$", f"--client-ca-file={certs}/ca.crt", a) for a in args]
    env = {k: str(v) for k, v in (cm.get("data") or {}).items()}
    env.update({e["name"]: e["value"] for e in ctr.get("env") or [] if "value" in e})
    env.update({"POD_NAMESPACE": c.namespace, "KUBECONFIG": "/nonexistent/kubeconfig", "HOME": "/nonexistent",
                "PATH": os.environ.get("PATH", "/usr/bin")})
    try:
        out = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return  # still serving: the configuration was accepted
    last = (out.stderr.strip().splitlines() or [""])[-1]
    c.expect(out.returncode != 2, dep, f"the webhook binary refuses the rendered configuration: {last}")
    c.expect("Kubernetes client" in last, dep, f"the webhook binary stopped before its Kubernetes client: {last}")


# ---------------------------------------------------------------------------------------------
# Values file, schema and README agree


def doc_comments() -> Dict[str, str]:
    """`# --` comments of values.yaml, keyed by the dotted path of the key they precede."""
    docs: Dict[str, str] = {}
    stack: List[Tuple[int, str]] = []
    pending: Optional[List[str]] = None
    with open(os.path.join(CHART, "values.yaml")) as f:
        for line in f:
            stripped = line.strip()
            if stripped.startswith("# -- "):
                pending = [stripped[5:]]
                continue
            if stripped.startswith("#") and pending is not None and not stripped.startswith("##"):
                pending.append(stripped[1:].strip())
                continue
            m = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
            if m:
                ind = len(m.group(1))
                while stack and stack[-1][0] >= ind:
                    stack.pop()
                path = ".".join([p for _, p in stack] + [m.group(2)])
                stack.append((ind, m.group(2)))
                if pending is not None:
                    docs[path] = " ".join(pending)
            pending = None if not stripped.startswith("#") else pending
    return docs


def schema_leaves(schema: dict, prefix: str = "") -> List[str]:
    """Dotted paths of the schema's documented units: keys with their own properties recurse."""
    out = []
    for k, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}{k}"
        if sub.get("type") == "object" and sub.get("properties") and sub.get("additionalProperties") is False \
                and k not in ("affinity", "resources", "initResources", "mutatingWebhookNamespaceSelector", "issuerRef"):
            out += schema_leaves(sub, path + ".")
        else:
            out.append(path)
    return out


def schema_type(sub: dict) -> str:
    """The type column: the enum's values, or the JSON types."""
    if "enum" in sub:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in sub["enum"] if not isinstance(v, bool))
    if "oneOf" in sub:
        return " or ".join(dict.fromkeys(schema_type(s) for s in sub["oneOf"]))
    t = sub.get("type", "any")
    return " or ".join(t) if isinstance(t, list) else t


def schema_at(schema: dict, path: str) -> dict:
    root = schema
    for p in path.split("."):
        schema = (schema.get("properties") or {}).get(p, {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/definitions/"):
            schema = (root.get("definitions") or {}).get(ref.rsplit("/", 1)[1], {})
    return schema


def readme_table(values: dict, schema: dict) -> str:
    docs = doc_comments()
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for path in schema_leaves(schema):
        if path == "global":
            continue
        default = get_path(values, path)
        shown = json.dumps(default, separators=(", ", ": "))
        shown = f"`{shown}`" if len(shown) <= 48 else "see `values.yaml`"
        sub = schema_at(schema, path)
        typ = schema_type(sub)
        description = docs.get(path, "").replace("|", "\\|")
        rows.append(f"| `{path}` | {typ} | {shown} | {description} |")
    return "\n".join(rows)


TABLE_BEGIN = "<!-- values table: generated by scripts/validate-chart.py --write-readme -->"
TABLE_END = "<!-- end of values table -->"


def check_values_docs(values: dict, schema: dict, readme: str) -> List[str]:
    errors = []
    docs = doc_comments()
    leaves = [p for p in schema_leaves(schema) if p != "global"]
    for path in leaves:
        if path not in docs:
            errors.append(f"values.yaml: {path} has no `# --` description")
        if get_path(values, path, default=KeyError) is KeyError:
            errors.append(f"values.yaml: {path} is in values.schema.json but has no default in values.yaml")
    for path in docs:
        if path not in leaves:
            errors.append(f"values.yaml: `# --` description of {path}, which is not a documented key of the schema")
    for path in UPSTREAM_KEYS:
        if get_path(values, path, default=KeyError) is KeyError:
            errors.append(f"values.yaml: upstream key {path} is missing")
    begin, end = readme.find(TABLE_BEGIN), readme.find(TABLE_END)
    if begin < 0 or end < begin:
        errors.append(f"README.md: markers {TABLE_BEGIN!r} ... {TABLE_END!r} missing")
    elif readme[begin + len(TABLE_BEGIN):end].strip() != readme_table(values, schema):
        errors.append("README.md: the table of values is stale; run scripts/validate-chart.py --write-readme")
    return errors


def check_versions(values: dict) -> List[str]:
    """The chart's appVersion is the crate's version, and the default image is that release."""
    errors = []
    chart = load_yaml(os.path.join(CHART, "Chart.yaml"))
    with open(os.path.join(REPO_ROOT, "Cargo.toml")) as f:
        m = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', f.read(), re.M | re.S)
    crate = m.group(1) if m else None
    if chart.get("appVersion") != crate:
        errors.append(f"Chart.yaml: appVersion {chart.get('appVersion')!r} is not the crate's version {crate!r}")
    if str(get_path(values, "image.release")) != chart.get("appVersion"):
        errors.append(f"values.yaml: image.release {get_path(values, 'image.release')!r} is not appVersion "
                      f"{chart.get('appVersion')!r}")
    return errors


def check_upstream_file(values_defaults: dict) -> List[str]:
    """upstream-full.yaml sets every upstream key away from its default (the exclusive ones
    elsewhere), so that check_values_applied proves each one is applied."""
    errors = []
    full = load_yaml(os.path.join(CASES_DIR, "upstream-full.yaml"))
    for path in UPSTREAM_KEYS:
        where = UPSTREAM_KEYS_ELSEWHERE.get(path, "upstream-full.yaml")
        case = full if where == "upstream-full.yaml" else load_yaml(os.path.join(CASES_DIR, where))
        value = get_path(case, path, default=KeyError)
        if value is KeyError or value == get_path(values_defaults, path):
            errors.append(f"e2e/helm/cases/{where}: upstream key {path} is not set away from its default")
    return errors


# ---------------------------------------------------------------------------------------------
# Driver


def identity(obj: dict) -> Tuple[str, str, str, str]:
    md = obj.get("metadata") or {}
    return obj.get("apiVersion", ""), obj.get("kind", ""), md.get("namespace", ""), md.get("name", "")


def render_case(helms: Dict[str, str], release: str, namespace: str, values_file: str) -> List[dict]:
    """The objects helm v4 renders, after checking helm v3 renders the same ones. The order of the
    documents may differ: helm v4 sorts MutatingWebhookConfiguration among the kinds it knows,
    helm v3 after them with the custom resources; each installs in its own order anyway."""
    rendered = {v: documents(helm_template(h, release, namespace, values_file)) for v, h in helms.items()}
    v4 = rendered["v4"]
    for version, objs in rendered.items():
        if sorted(objs, key=identity) != sorted(v4, key=identity):
            theirs = {identity(o): o for o in objs}
            differ = [identity(o) for o in v4 if theirs.get(identity(o)) != o]
            differ += [k for k in theirs if k not in {identity(o) for o in v4}]
            raise HelmError(f"helm {version} renders differently from helm v4: {differ}")
    return v4


def run_case(name: str, objects: List[dict], values: dict, release: str, namespace: str,
             profiles: List[str], versions: List[str], schemas: bool = True,
             binary: Optional[str] = None) -> List[str]:
    errs = vm.run_checks(name, objects, profiles, versions, schemas=schemas, namespace=namespace)
    c = vm.Checker(name, objects, namespace)
    try:
        check_values_applied(c, values, release)
        if binary:
            check_binary(c, binary)
    except Exception as e:  # malformed render must fail the check, never crash it
        c.fail(None, f"values check stopped on malformed input: {type(e).__name__}: {e}")
    return errs + c.errors


def check_bad(helms: Dict[str, str]) -> List[str]:
    errors = []
    for f in sorted(os.listdir(BAD_DIR)):
        path = os.path.join(BAD_DIR, f)
        with open(path) as fh:
            text = fh.read()
        m = re.search(r"^# expect: (.+)$", text, re.M)
        if not m:
            errors.append(f"e2e/helm/bad/{f}: no '# expect:' line")
            continue
        expected = m.group(1).strip()
        for version, helm in helms.items():
            try:
                helm_template(helm, "wi", NS, path)
                errors.append(f"e2e/helm/bad/{f}: helm {version} rendered it; expected a failure with {expected!r}")
            except HelmError as e:
                if expected not in str(e):
                    errors.append(f"e2e/helm/bad/{f}: helm {version} failed without {expected!r}: {e}")
            if re.search(r"^# lint: fails$", text, re.M):
                out = subprocess.run([helm, "lint", "--strict", CHART, "-f", path], capture_output=True, text=True)
                if out.returncode == 0 or expected not in out.stdout + out.stderr:
                    errors.append(f"e2e/helm/bad/{f}: helm {version} lint --strict did not fail with {expected!r}")
    return errors


def main_check(helms: Dict[str, str], versions: List[str], binary: Optional[str]) -> int:
    defaults = load_yaml(os.path.join(CHART, "values.yaml"))
    schema = load_yaml(os.path.join(CHART, "values.schema.json"))
    with open(README) as f:
        readme = f.read()
    errors = check_values_docs(defaults, schema, readme) + check_upstream_file(defaults) + check_versions(defaults)
    for version, helm in helms.items():
        out = subprocess.run([helm, "lint", "--strict", CHART, "--set", "azureTenantID=11111111-2222-3333-4444-555555555555"], capture_output=True, text=True)
        if out.returncode != 0:
            errors.append(f"helm {version} lint --strict failed:\n{out.stdout}{out.stderr}")
        else:
            print(f"  helm {version} lint --strict: ok")
    for name, values_file, release, namespace, profiles in CASES:
        path = os.path.join(CASES_DIR, values_file)
        try:
            objects = render_case(helms, release, namespace, path)
        except HelmError as e:
            errors.append(f"[{name}] {e}")
            continue
        values = merged(defaults, load_yaml(path))
        errs = run_case(name, objects, values, release, namespace, profiles, versions, binary=binary)
        print(f"  {name:22s} {len(objects):3d} objects, helm {' = '.join(helms)}, k8s {', '.join(versions)}"
              f"{', binary' if binary else ''}: "
              f"{'ok' if not errs else f'{len(errs)} problem(s)'}")
        errors += errs
    bad = check_bad(helms)
    print(f"  {len(os.listdir(BAD_DIR))} bad values files: {'all refused with their message' if not bad else 'problems'}")
    errors += bad
    return vm.report(errors, "chart validation")


# Each must make check_values_applied (or the docs checks) report a problem containing the text.
MUTATIONS: List[Tuple[str, str, Callable[[List[dict]], None], str]] = [
    ("replicas not applied", "upstream-full",
     lambda o: vm._set(vm._get(o, "Deployment"), "spec.replicas", 2), "replicaCount"),
    ("selector without the release label", "upstream-full",
     lambda o: vm._get(o, "Deployment")["spec"]["selector"]["matchLabels"].pop("release"), "upstream chart's"),
    ("service.port ignored (as upstream)", "upstream-full",
     lambda o: vm._set(vm._get(o, "MutatingWebhookConfiguration")["webhooks"][0], "clientConfig.service.port", 443),
     "service.port (webhook configuration)"),
    ("metricsAddr's port not the container port", "upstream-full",
     lambda o: vm._set(vm._ctr(o), "ports.2.containerPort", 8095), "metricsAddr (container port)"),
    ("user namespace selector dropped", "upstream-full",
     lambda o: vm._get(o, "MutatingWebhookConfiguration")["webhooks"][0]["namespaceSelector"].pop("matchLabels"),
     "mutatingWebhookNamespaceSelector.matchLabels"),
    ("imagePullSecrets dropped", "upstream-full",
     lambda o: vm._get(o, "ServiceAccount").pop("imagePullSecrets"), "imagePullSecrets"),
    ("extraEnv dropped", "upstream-full",
     lambda o: vm._set(vm._ctr(o), "env", vm._ctr(o)["env"][:1]), "extraEnv"),
    ("token proxy not in the ConfigMap", "upstream-full",
     lambda o: vm._get(o, "ConfigMap")["data"].pop("AZURE_KUBERNETES_TOKEN_PROXY"),
     "customTokenEndpoint.azureKubernetesTokenProxy"),
    ("both PDB fields", "upstream-full",
     lambda o: vm._set(vm._get(o, "PodDisruptionBudget"), "spec.minAvailable", 1), "podDisruptionBudget"),
    ("caBundle rendered in self-managed mode", "defaults",
     lambda o: vm._set(vm._get(o, "MutatingWebhookConfiguration")["webhooks"][0], "clientConfig.caBundle", "eA=="),
     "caBundle must not be rendered"),
    ("release owns a Namespace", "defaults",
     lambda o: o.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}), "namespace"),
    ("proxy init request not in the ConfigMap", "proxy-resources",
     lambda o: vm._get(o, "ConfigMap")["data"].pop("PROXY_INIT_MEMORY_REQUEST"),
     "proxySidecar.initResources.requests.memory"),
    ("whole-number quantity rendered as a float", "proxy-resources",
     lambda o: vm._set(vm._get(o, "ConfigMap"), "data.PROXY_MEMORY_REQUEST", "1.073741824e+09"),
     "proxySidecar.resources.requests.memory"),
    ("CTB selector changed", "binding-ctb",
     lambda o: vm._set(vm._get(o, "ConfigMap"), "data.AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR", "{}"),
     "azureKubernetesCACTBLabelSelector"),
    ("issuerRef ignored", "cert-manager-issuer",
     lambda o: vm._set(vm._get(o, "Certificate"), "spec.issuerRef.kind", "Issuer"), "issuerRef"),
    ("client CA flag missing", "secret-mtls",
     lambda o: vm._set(vm._ctr(o), "args", [a for a in vm._ctr(o)["args"] if "client-ca" not in a]), "clientCA"),
    ("drain timeout flag missing", "secret-mtls",
     lambda o: vm._set(vm._ctr(o), "args", [a for a in vm._ctr(o)["args"] if "drain-timeout" not in a]),
     "shutdownDrainTimeout"),
    ("grace period not passed to the webhook", "secret-mtls",
     lambda o: vm._set(vm._ctr(o), "args", [a for a in vm._ctr(o)["args"] if "grace-period" not in a]),
     "--termination-grace-period"),
    ("ServiceMonitor label dropped", "service-monitor",
     lambda o: vm._get(o, "ServiceMonitor")["metadata"]["labels"].pop("release"), "serviceMonitor.labels"),
]


# With --binary: configurations the webhook binary itself must refuse.
BINARY_MUTATIONS: List[Tuple[str, str, Callable[[List[dict]], None], str]] = [
    ("retired cloud", "defaults",
     lambda o: vm._set(vm._get(o, "ConfigMap"), "data.AZURE_ENVIRONMENT", "AzureGermanCloud"), "refuses"),
    ("flag the binary does not know", "defaults", lambda o: vm._ctr(o)["args"].append("--no-such-flag"), "refuses"),
    ("delay + drain longer than the grace period", "defaults",
     lambda o: vm._set(vm._ctr(o), "args", ["--shutdown-delay=30s" if a.startswith("--shutdown-delay=") else a
                                            for a in vm._ctr(o)["args"]]), "refuses"),
    ("proxy CPU request above its limit", "proxy-resources",
     lambda o: vm._set(vm._get(o, "ConfigMap"), "data.PROXY_CPU_REQUEST", "2"), "refuses"),
]


def main_self_test(helms: Dict[str, str], versions: List[str], binary: Optional[str]) -> int:
    defaults = load_yaml(os.path.join(CHART, "values.yaml"))
    schema = load_yaml(os.path.join(CHART, "values.schema.json"))
    cases = {c[0]: c for c in CASES}
    renders: Dict[str, Tuple[List[dict], dict]] = {}
    failures = 0
    mutations = MUTATIONS + (BINARY_MUTATIONS if binary else [])
    for desc, target, mutate, expected in mutations:
        name, values_file, release, namespace, profiles = cases[target]
        if target not in renders:
            path = os.path.join(CASES_DIR, values_file)
            renders[target] = (render_case({"v4": helms["v4"]}, release, namespace, path),
                               merged(defaults, load_yaml(path)))
        objs, values = copy.deepcopy(renders[target][0]), renders[target][1]
        mutate(objs)
        errs = run_case(name, objs, values, release, namespace, profiles, versions, schemas=False, binary=binary)
        if any(expected in e for e in errs):
            print(f"  ok    caught: {desc}")
        else:
            print(f"  FAIL  not caught: {desc} (expected {expected!r}; got {errs})")
            failures += 1
    with open(README) as f:
        readme = f.read()
    stale = readme.replace("| `replicaCount` | integer | `2` |", "| `replicaCount` | integer | `3` |")
    if stale == readme or not any("stale" in e for e in check_values_docs(defaults, schema, stale)):
        print("  FAIL  not caught: a stale README table")
        failures += 1
    else:
        print("  ok    caught: a stale README table")
    undocumented = copy.deepcopy(schema)
    undocumented["properties"]["notInValues"] = {"type": "string"}
    if not any("notInValues" in e for e in check_values_docs(defaults, undocumented, readme)):
        print("  FAIL  not caught: a schema key without a default or description")
        failures += 1
    else:
        print("  ok    caught: a schema key without a default or description")
    if failures:
        print(f"self-test FAILED: {failures} case(s)", file=sys.stderr)
        return 1
    print(f"self-test passed ({len(mutations) + 2} broken variants caught)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--helm", help="helm v4 binary")
    ap.add_argument("--helm3", help="helm v3 binary (renders must equal helm v4's)")
    ap.add_argument("-k", "--kubernetes-version", action="append", dest="versions",
                    help=f"Kubernetes version(s) to validate against (default: {', '.join(vm.K8S_VERSIONS)})")
    ap.add_argument("--binary", help="azwi-webhook binary: also check it accepts each rendered configuration")
    ap.add_argument("--self-test", action="store_true", help="check that broken renders are caught")
    ap.add_argument("--write-readme", action="store_true", help="regenerate the README's table of values")
    args = ap.parse_args()
    if args.write_readme:
        values = load_yaml(os.path.join(CHART, "values.yaml"))
        schema = load_yaml(os.path.join(CHART, "values.schema.json"))
        with open(README) as f:
            readme = f.read()
        begin, end = readme.find(TABLE_BEGIN), readme.find(TABLE_END)
        if begin < 0 or end < begin:
            print(f"validate-chart: README.md lacks the markers {TABLE_BEGIN!r} ... {TABLE_END!r}", file=sys.stderr)
            return 1
        readme = readme[:begin + len(TABLE_BEGIN)] + "\n" + readme_table(values, schema) + "\n" + readme[end:]
        with open(README, "w") as f:
            f.write(readme)
        print("validate-chart: README.md table written")
        return 0
    if not args.helm or not args.helm3:
        ap.error("--helm and --helm3 are required")
    if vm.kubernetes_validate is None:
        print("validate-chart: python module kubernetes_validate missing", file=sys.stderr)
        return 2
    helms = {"v4": args.helm, "v3": args.helm3}
    versions = args.versions or vm.K8S_VERSIONS
    if args.self_test:
        return main_self_test(helms, versions[:1], args.binary)
    return main_check(helms, versions, args.binary)


if __name__ == "__main__":
    sys.exit(main())
