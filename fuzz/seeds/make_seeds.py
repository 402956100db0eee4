#!/usr/bin/env python3
"""Writes the committed seed corpus: realistic AdmissionReviews (as the API server sends them) and
the pod objects inside them. Re-run after changing it; the output is deterministic."""
import copy, json, os

HERE = os.path.dirname(os.path.abspath(__file__))
W = "azure.workload.identity/"

def pod(name="web", labels=None, annotations=None, sa="workload", containers=None, init=None, extra_spec=None):
    spec = {"serviceAccountName": sa,
            "containers": containers or [{"name": "app", "image": "nginx:1.27",
                                          "env": [{"name": "LOG", "value": "1"}],
                                          "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}
    if init:
        spec["initContainers"] = init
    spec.update(extra_spec or {})
    meta = {"generateName": name + "-", "namespace": "ns",
            "labels": {W + "use": "true", **(labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

def review(obj, version="admission.k8s.io/v1", op="CREATE", kind="Pod", sub=None):
    req = {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
           "kind": {"group": "", "version": "v1", "kind": kind},
           "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
           "requestKind": {"group": "", "version": "v1", "kind": kind},
           "namespace": "ns", "operation": op,
           "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                        "groups": ["system:serviceaccounts", "system:authenticated"]},
           "object": obj, "oldObject": None, "dryRun": False,
           "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}}
    if sub:
        req["subResource"] = sub
    return {"apiVersion": version, "kind": "AdmissionReview", "request": req}

pods = {
    "plain": pod(),
    "not_opted_in": {**pod(), "metadata": {"name": "x", "namespace": "ns"}},
    "named": {**pod(), "metadata": {"name": "api-0", "namespace": "ns", "labels": {W + "use": "true"}}},
    "skip_containers": pod(annotations={W + "skip-containers": "sidecar;other"},
                           containers=[{"name": "app", "image": "a"}, {"name": "sidecar", "image": "s"}]),
    "init_containers": pod(init=[{"name": "migrate", "image": "m", "env": [{"name": "A", "value": "b"}]}]),
    "proxy": pod(annotations={W + "inject-proxy-sidecar": "true", W + "proxy-sidecar-port": "8000"}),
    "identity_binding": pod(annotations={W + "use-identity-binding": "true"}, sa="tenant"),
    "token_expiration": pod(annotations={W + "service-account-token-expiration": "86400"}, sa="expiring"),
    "already_injected": pod(containers=[{"name": "app", "image": "a", "env": [
        {"name": "AZURE_CLIENT_ID", "value": "old"}, {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/x"}]}]),
    "missing_sa": pod(sa="missing"),
    "outage": pod(sa="down"),
    "default_sa": {**pod(), "spec": {"containers": [{"name": "app", "image": "a"}]}},
    "host_network": pod(extra_spec={"hostNetwork": True, "restartPolicy": "Always"}),
}
os.makedirs(os.path.join(HERE, "admit"), exist_ok=True)
os.makedirs(os.path.join(HERE, "decode_mutate"), exist_ok=True)
for name, obj in pods.items():
    with open(os.path.join(HERE, "decode_mutate", name + ".json"), "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    with open(os.path.join(HERE, "admit", name + ".json"), "w") as f:
        json.dump(review(obj), f, separators=(",", ":"))
extra = {
    "v1beta1": review(pod(), version="admission.k8s.io/v1beta1"),
    "delete": review(None, op="DELETE"),
    "configmap": review({"apiVersion": "v1", "kind": "ConfigMap"}, kind="ConfigMap"),
    "binding_subresource": review(pod(), sub="binding"),
    "no_request": {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
    "no_object": review(None),
    "no_spec": review({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}}),
}
for name, doc in extra.items():
    with open(os.path.join(HERE, "admit", name + ".json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
