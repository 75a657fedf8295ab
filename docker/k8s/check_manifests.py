#!/usr/bin/env python3
"""Checks docker/k8s/*.yaml and docker/compose.yaml without a cluster.

kubectl --dry-run needs an API server; this checks what we can on our own:
every document parses and has apiVersion, kind and metadata.name; workload
selectors match their pod labels; Services, PodDisruptionBudgets, the KEDA
ScaledObject and the HPA point at something defined here; the autoscalers
use testfleet_desired_workers; and every --flag in a container's args (and in
the Dockerfile's entrypoints and compose commands) is one the binary's --help
lists, so the manifests cannot drift from the code.

  check_manifests.py BIN_DIR
"""
import glob
import os
import re
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DOCKER = os.path.dirname(HERE)
errors = []


def fail(where, what):
    errors.append(f"{where}: {what}")


def flags_of(bin_dir, binary, cache={}):
    if binary not in cache:
        out = subprocess.run([os.path.join(bin_dir, binary), "--help"],
                             capture_output=True, text=True, check=False)
        cache[binary] = set(re.findall(r"--[a-z][a-z0-9-]*", out.stdout))
    return cache[binary]


def check_flags(where, bin_dir, binary, args):
    known = flags_of(bin_dir, binary)
    if not known:
        fail(where, f"{binary} --help listed no flags")
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and flag not in known:
            fail(where, f"{binary} has no flag {flag}")


def main(bin_dir):
    documents = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    documents.append((os.path.basename(path), doc))
    if not documents:
        fail(HERE, "no manifests")
    by_kind = {}
    for name, doc in documents:
        where = f"{name} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for key in ("apiVersion", "kind", "metadata"):
            if key not in doc:
                fail(where, f"missing {key}")
        if not doc.get("metadata", {}).get("name"):
            fail(where, "missing metadata.name")
        by_kind.setdefault(doc.get("kind"), []).append((where, doc))

    pod_labels = []  # label sets of every pod template
    workloads = {}
    for kind in ("StatefulSet", "Deployment"):
        for where, doc in by_kind.get(kind, []):
            spec = doc["spec"]
            labels = spec["template"]["metadata"]["labels"]
            selector = spec["selector"]["matchLabels"]
            if any(labels.get(k) != v for k, v in selector.items()):
                fail(where, "selector does not match the pod labels")
            pod_labels.append(labels)
            workloads[doc["metadata"]["name"]] = kind
            if kind == "StatefulSet":
                if "serviceName" not in spec:
                    fail(where, "StatefulSet without serviceName")
                if not spec.get("volumeClaimTemplates"):
                    fail(where, "coordinator data needs a persistent volume")
            pod = spec["template"]["spec"]
            if "terminationGracePeriodSeconds" not in pod:
                fail(where, "no terminationGracePeriodSeconds for the drain")
            for container in pod["containers"]:
                cwhere = f"{where} container {container['name']}"
                if not container.get("image"):
                    fail(cwhere, "no image")
                if "livenessProbe" not in container:
                    fail(cwhere, "no liveness probe")
                binary = {"coordinator": "coordinator",
                          "worker": "worker",
                          "cache-server": "cache_server"}.get(container["name"])
                if binary is None:
                    fail(cwhere, "unknown container name")
                else:
                    check_flags(cwhere, bin_dir, binary, container.get("args", []))

    def selects_something(where, selector):
        if not any(all(l.get(k) == v for k, v in selector.items())
                   for l in pod_labels):
            fail(where, f"selector {selector} matches no pod template")

    for where, doc in by_kind.get("Service", []):
        selects_something(where, doc["spec"]["selector"])
    for where, doc in by_kind.get("PodDisruptionBudget", []):
        selects_something(where, doc["spec"]["selector"]["matchLabels"])
    for where, doc in by_kind.get("ScaledObject", []):
        target = doc["spec"]["scaleTargetRef"]["name"]
        if workloads.get(target) != "Deployment":
            fail(where, f"scales {target}, which is not a Deployment here")
        queries = [t["metadata"].get("query", "") for t in doc["spec"]["triggers"]]
        if not any("testfleet_desired_workers" in q for q in queries):
            fail(where, "no trigger on testfleet_desired_workers")
    for where, doc in by_kind.get("HorizontalPodAutoscaler", []):
        target = doc["spec"]["scaleTargetRef"]["name"]
        if workloads.get(target) != "Deployment":
            fail(where, f"scales {target}, which is not a Deployment here")
        names = [m.get("external", {}).get("metric", {}).get("name")
                 for m in doc["spec"]["metrics"]]
        if "testfleet_desired_workers" not in names:
            fail(where, "no metric testfleet_desired_workers")
    for kind in ("StatefulSet", "Deployment", "Service", "PodDisruptionBudget",
                 "ScaledObject", "HorizontalPodAutoscaler"):
        if kind not in by_kind:
            fail(HERE, f"no {kind}")

    # The Dockerfile's entrypoints and the compose commands use real flags.
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        dockerfile = f.read()
    for binary, args in re.findall(r'ENTRYPOINT \["([a-z_]+)",?\s*([^\]]*)\]',
                                   dockerfile):
        check_flags(f"Dockerfile {binary}", bin_dir, binary,
                    re.findall(r'"(--[^"]+)"', args))
    with open(os.path.join(DOCKER, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    for name, service in compose["services"].items():
        binary = service["build"]["target"].replace("-", "_")
        check_flags(f"compose {name}", bin_dir, binary, service.get("command", []))

    for error in errors:
        print(error)
    print(f"{len(documents)} manifests checked, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
