#!/usr/bin/env python3
"""Generate manifests/ (the kustomize install) from the Helm chart, the only source of the objects.

    scripts/render-manifests.py --helm HELM            # rewrite the generated files
    scripts/render-manifests.py --helm HELM --check    # fail if they differ from the chart (CI)

manifests/base/ is `helm template` of charts/azwi-webhook with manifests/values.yaml (static
manifests: upstream's static labels and selector, a Namespace, no Helm metadata), one file per
template. Each kustomize Component is the difference between the base and a render with a few more
values: objects only in the component's render become its resources, objects it drops become
`$patch: delete`, and changed objects become JSON patches (RFC 6902) computed field by field. So a
component adds to the base exactly what the chart adds for that setting, and can be combined with
the others.

Generated files start with GENERATED_MARK; files without it (overlays, examples, the README) are
written by hand. Needs python3 with PyYAML, and helm (e2e/helm/build.sh builds it).
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(REPO_ROOT, "charts", "azwi-webhook")
MANIFESTS = os.path.join(REPO_ROOT, "manifests")
BASE_VALUES = os.path.join(MANIFESTS, "values.yaml")
NAMESPACE = "azure-workload-identity-system"
RELEASE = "azwi-webhook"

GENERATED_MARK = "# Generated from charts/azwi-webhook by scripts/render-manifests.py: edit the chart"

# Component name -> (extra values, what it is for: the header of its kustomization.yaml).
COMPONENTS: Dict[str, Tuple[dict, str]] = {
    "cert-manager": (
        {"certificates": {"mode": "cert-manager"}},
        "cert-manager issues and renews the serving certificate; its cainjector keeps the\n"
        "MutatingWebhookConfiguration's caBundle in sync. The webhook runs with\n"
        "--disable-cert-rotation and reads tls.crt / tls.key from the Secret mounted at /certs,\n"
        "and loses its permissions on Secrets and on the webhook configuration.\n"
        "Requires cert-manager (with cainjector). Use overlays/cert-manager, or add this\n"
        "component to your own overlay: components: [<path>/manifests/components/cert-manager]",
    ),
    "prometheus": (
        {"metrics": {"serviceMonitor": {"enabled": True}}},
        "Prometheus Operator scraping: a metrics Service on the container's \"metrics\" port\n"
        "(plain HTTP, /metrics) and a ServiceMonitor selecting it.\n"
        "Requires the Prometheus Operator CRDs (monitoring.coreos.com/v1). Many Prometheus\n"
        "installs only pick up ServiceMonitors carrying a particular label (e.g. `release:\n"
        "kube-prometheus-stack`); add it in your overlay if so.",
    ),
}


class Doc:
    """One rendered object: the template it came from, its text as rendered, and the parsed object."""

    def __init__(self, source: str, text: str, obj: dict):
        self.source = source
        self.text = text
        self.obj = obj

    @property
    def key(self) -> Tuple[str, str, str, str]:
        md = self.obj.get("metadata") or {}
        group = self.obj["apiVersion"].rpartition("/")[0]
        return group, self.obj["kind"], md.get("namespace") or "", md["name"]


def helm_template(helm: str, extra_values: Optional[dict] = None) -> List[Doc]:
    cmd = [helm, "template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", BASE_VALUES]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
        if extra_values:
            yaml.safe_dump(extra_values, extra)
            extra.flush()
            cmd += ["-f", extra.name]
        out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"render-manifests: {' '.join(cmd)} failed:\n{out.stderr.strip()}")
    return split_documents(out.stdout)


def split_documents(stream: str) -> List[Doc]:
    docs = []
    for chunk in stream.split("\n---\n"):
        lines = chunk.strip("\n").splitlines()
        if lines and lines[0] == "---":
            lines = lines[1:]
        source = None
        if lines and lines[0].startswith("# Source: "):
            source = os.path.basename(lines[0][len("# Source: "):])
            lines = lines[1:]
        text = "\n".join(lines).strip("\n")
        obj = yaml.safe_load(text) if text else None
        if not obj:
            continue
        if source is None:
            raise SystemExit(f"render-manifests: a rendered document has no '# Source:' line:\n{text[:200]}")
        docs.append(Doc(source, text, obj))
    return docs


def files_of(docs: List[Doc], header: str) -> Dict[str, str]:
    """File name -> content: the documents of each template, in render order, with a header."""
    grouped: Dict[str, List[str]] = {}
    for d in docs:
        grouped.setdefault(d.source, []).append(d.text)
    return {name: f"{header}\n" + "\n---\n".join(texts) + "\n" for name, texts in grouped.items()}


# --- JSON patch between two objects ------------------------------------------------------------


def pointer(path: List[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def json_patch(old: Any, new: Any, path: Optional[List[Any]] = None) -> List[dict]:
    """RFC 6902 operations turning old into new: per key for maps, appends for lists that grew at
    the end, per index for lists of the same length, a whole replacement otherwise."""
    path = path or []
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        ops: List[dict] = []
        for k in old:
            if k not in new:
                ops.append({"op": "remove", "path": pointer(path + [k])})
        for k, v in new.items():
            if k not in old:
                ops.append({"op": "add", "path": pointer(path + [k]), "value": v})
            else:
                ops += json_patch(old[k], v, path + [k])
        return ops
    if isinstance(old, list) and isinstance(new, list):
        if len(new) > len(old) and new[:len(old)] == old:
            return [{"op": "add", "path": pointer(path + ["-"]), "value": v} for v in new[len(old):]]
        if len(new) == len(old):
            ops = []
            for i, (a, b) in enumerate(zip(old, new)):
                ops += json_patch(a, b, path + [i])
            return ops
    return [{"op": "replace", "path": pointer(path), "value": new}]


def component_files(name: str, base: List[Doc], rendered: List[Doc], description: str) -> Dict[str, str]:
    header = f"{GENERATED_MARK}, then run it."
    base_by_key = {d.key: d for d in base}
    new_by_key = {d.key: d for d in rendered}
    added = [d for d in rendered if d.key not in base_by_key]
    files = files_of(added, header)

    patches: List[str] = []
    for d in base:
        group, kind, ns, obj_name = d.key
        if d.key not in new_by_key:
            # A strategic-merge delete patch names the object completely.
            md = {"name": obj_name, **({"namespace": ns} if ns else {})}
            body = yaml.safe_dump({"$patch": "delete", "apiVersion": d.obj["apiVersion"], "kind": kind,
                                   "metadata": md}, sort_keys=False)
            patches.append("  - patch: |-\n" + indent(body.rstrip("\n"), 6))
            continue
        ops = json_patch(d.obj, new_by_key[d.key].obj)
        if not ops:
            continue
        target = {"group": group, "version": d.obj["apiVersion"].rpartition("/")[2], "kind": kind,
                  "name": obj_name, **({"namespace": ns} if ns else {})}
        body = yaml.safe_dump(ops, sort_keys=False, width=100)
        patches.append("  - target:\n" + indent(yaml.safe_dump(target, sort_keys=False).rstrip("\n"), 6)
                       + "\n    patch: |-\n" + indent(body.rstrip("\n"), 6))

    values = yaml.safe_dump(COMPONENTS[name][0], default_flow_style=True, width=200).strip()
    lines = [header, f"# Values: manifests/values.yaml + {values}", "#"]
    lines += [f"# {l}" if l else "#" for l in description.splitlines()]
    lines += ["apiVersion: kustomize.config.k8s.io/v1alpha1", "kind: Component"]
    if added:
        lines += ["", "resources:"] + [f"  - {f}" for f in sorted(files)]
    if patches:
        lines += ["", "patches:"] + patches
    files["kustomization.yaml"] = "\n".join(lines) + "\n"
    return files


def indent(text: str, n: int) -> str:
    return "\n".join((" " * n + l) if l else l for l in text.splitlines())


def base_kustomization(files: List[str]) -> str:
    lines = [
        f"{GENERATED_MARK}, then run it.",
        "#",
        "#   kubectl apply -k manifests/        (= manifests/base)",
        "#",
        "# Certificates are self-managed: the webhook fills Secret `azure-wi-webhook-server-cert`",
        "# (CA + serving certificate) and the MutatingWebhookConfiguration's caBundle, and rotates",
        "# both (certs/README.md). For cert-manager instead, use overlays/cert-manager.",
        "# Set AZURE_TENANT_ID in your own overlay (see manifests/README.md).",
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "",
        "resources:",
    ] + [f"  - {f}" for f in files]
    return "\n".join(lines) + "\n"


# Kubernetes' own install order (as Helm's and kustomize's), so that the base lists the Namespace
# first and the webhook configuration last.
ORDER = ["namespace.yaml", "service-account.yaml", "secret.yaml", "config.yaml", "rbac.yaml", "service.yaml",
         "deployment.yaml", "pod-disruption-budget.yaml", "mutating-webhook-configuration.yaml"]


def render(helm: str) -> Dict[str, str]:
    """Relative path under manifests/ -> content, for every generated file."""
    base = helm_template(helm)
    out = {f"base/{name}": text for name, text in files_of(base, f"{GENERATED_MARK}, then run it.").items()}
    names = sorted((p[len("base/"):] for p in out),
                   key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    out["base/kustomization.yaml"] = base_kustomization(names)
    for name, (values, description) in COMPONENTS.items():
        rendered = helm_template(helm, values)
        for f, text in component_files(name, base, rendered, description).items():
            out[f"components/{name}/{f}"] = text
    return out


def generated_in_tree() -> Dict[str, str]:
    found = {}
    for root, _, files in os.walk(MANIFESTS):
        for f in files:
            p = os.path.join(root, f)
            with open(p) as fh:
                text = fh.read()
            if text.startswith(GENERATED_MARK):
                found[os.path.relpath(p, MANIFESTS)] = text
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--helm", default=os.environ.get("HELM", "helm"), help="helm binary (default: $HELM or helm)")
    ap.add_argument("--check", action="store_true", help="fail if the generated files are not up to date")
    args = ap.parse_args()

    want = render(args.helm)
    have = generated_in_tree()
    if args.check:
        problems = []
        for path in sorted(set(want) | set(have)):
            if path not in have:
                problems.append(f"manifests/{path}: missing")
            elif path not in want:
                problems.append(f"manifests/{path}: generated earlier, no longer rendered by the chart")
            elif have[path] != want[path]:
                diff = difflib.unified_diff(have[path].splitlines(), want[path].splitlines(),
                                            f"manifests/{path}", "rendered from the chart", lineterm="", n=2)
                problems.append("\n".join(diff))
        if problems:
            print("render-manifests: manifests/ differs from the chart; run scripts/render-manifests.py "
                  "and commit:\n" + "\n".join(problems), file=sys.stderr)
            return 1
        print(f"render-manifests: {len(want)} generated files match the chart")
        return 0
    for path in have:
        if path not in want:
            os.remove(os.path.join(MANIFESTS, path))
    for path, text in want.items():
        full = os.path.join(MANIFESTS, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    print(f"render-manifests: wrote {len(want)} files under manifests/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
