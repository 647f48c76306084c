#!/usr/bin/env python3
"""Assert what the sluice chart renders (run by scripts/k8s-check).

  check_rendered.py [--sluice SLUICE] HELM CHART VALUES.yaml...

For each values file, `helm template` the chart and check the facts a
deployment of sluice relies on: probes on /healthz and /readyz and a startup
probe; a grace period of at least shutdown_timeout_ms (rounded up) plus
MIN_MARGIN s; the replica id from the pod's name (downward API); the
image's non-root user, a read-only root, no capability, RuntimeDefault
seccomp; requests and limits; spread across nodes; a PodDisruptionBudget
and a metrics Service; no secret written anywhere (only Secret references,
and each secret the pipeline names comes from one); the KEDA scaler that
fits the source kind, on the pipeline's group and topic or stream, with
maxReplicaCount defaulting to the partition count for Kafka.  With
--sluice, the pipeline of each rendered ConfigMap must also pass
`sluice check`, in the environment the Deployment gives it (Secrets
replaced by stand-ins, /run/secrets/ by a temporary folder).

Then it proves that it can fail: broken renders (values overrides, edited
copies of the templates, and edits of a good render) must each be refused
for the expected reason.  Prints one line per case and ends with
'N passed, M failed'; exits non-zero on any failure.
"""
import copy
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

UID = 10001
MIN_MARGIN = 5  # seconds past shutdown_timeout_ms for the process to exit
PIPELINE_PATH = "/etc/sluice/pipeline.yaml"
SECRET_DIR = "/run/secrets/"
SECRET_MODE = 0o400
DEFAULT_SHUTDOWN_MS = 30000
# Names of env vars and pipeline keys that hold credentials.
SECRETISH = re.compile(
    r"pass|secret|token|api[-_]?key|auth|cookie|credential|jaas|key\.pem",
    re.I)
# Pipeline keys that only name where a secret is.
SECRET_REF_KEYS = {"password_env", "password_file", "api_key_env",
                   "api_key_file", "value_env", "value_file"}
SCALER = {"kafka": "kafka", "redis-stream": "redis-streams",
          "redis-list": "redis"}


def merge(base, over):
    """Helm's merge of values: maps merge, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return over


def render(helm, chart, values=None, args=()):
    cmd = [helm, "template", "rel", chart, "--namespace", "stream"]
    if values:
        cmd += ["-f", values]
    cmd += list(args)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip()
    return [d for d in yaml.safe_load_all(p.stdout) if d], None


class Facts:
    """What one render must show, from the merged values."""

    def __init__(self, values):
        self.v = values
        p = values.get("pipeline") or {}
        if p.get("existingConfigMap"):
            self.config = None
            self.source = p.get("source") or {}
            self.shutdown_ms = p.get("shutdownTimeoutMs") or DEFAULT_SHUTDOWN_MS
            self.gateway = bool(p.get("gateway"))
        else:
            self.config = p.get("config") or {}
            self.source = self.config.get("source") or {}
            self.shutdown_ms = self.config.get(
                "shutdown_timeout_ms", DEFAULT_SHUTDOWN_MS)
            self.gateway = bool((self.config.get("gateway") or {}).get("enabled"))


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def walk_strings(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk_strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def pipeline_secret_refs(node, path, errs, refs):
    """Secrets a pipeline names; a credential key with a value is an error."""
    if isinstance(node, dict):
        if set(node) <= {"value_env", "value_file"} and node:
            for k, v in node.items():
                refs.append((k, str(v), path))
            return
        for k, v in node.items():
            p = f"{path}.{k}"
            if k in SECRET_REF_KEYS:
                refs.append((k, str(v), p))
            elif SECRETISH.search(str(k)) and not isinstance(v, dict) and v not in (None, ""):
                errs.append(f"pipeline {p}: a credential written as a value "
                            f"(name it with *_env/*_file or value_env/value_file)")
            else:
                pipeline_secret_refs(v, p, errs, refs)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            pipeline_secret_refs(v, f"{path}[{i}]", errs, refs)


def sluice_check(sluice, docs):
    """`sluice check` of the rendered pipeline, as the pod would run it."""
    cms = by_kind(docs, "ConfigMap")
    if not cms:
        return []
    dep = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    main = [c for c in dep["containers"] if c["name"] == "sluice"][0]
    with tempfile.TemporaryDirectory(prefix="sluice-k8s-") as tmp:
        secrets = os.path.join(tmp, "secrets") + "/"
        os.mkdir(secrets)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for e in main.get("env") or []:
            env[e["name"]] = str(e["value"]) if "value" in e else "stand-in"
        for ic in dep.get("initContainers") or []:
            for dst in re.findall(r"chmod 0?400 (\S+)", " ".join(ic.get("args") or [])):
                path = secrets + dst[len(SECRET_DIR):]
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                os.write(fd, b"stand-in\n")
                os.close(fd)
        text = cms[0]["data"]["pipeline.yaml"].replace(SECRET_DIR, secrets)
        path = os.path.join(tmp, "pipeline.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([sluice, "check", path], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            return [f"sluice check of the rendered pipeline: exit {p.returncode}: "
                    + (p.stderr or p.stdout).strip().replace(tmp, "")]
    return []


def check(docs, facts):
    """The list of what is wrong with one render (empty: all good)."""
    errs = []
    v = facts.v
    deps = by_kind(docs, "Deployment")
    if len(deps) != 1:
        return [f"expected one Deployment, got {len(deps)}"]
    dep = deps[0]
    name = dep["metadata"]["name"]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels") or {}
    ctrs = pod.get("containers") or []
    main = [c for c in ctrs if c.get("name") == "sluice"]
    if len(main) != 1:
        return [f"expected one container 'sluice', got {[c.get('name') for c in ctrs]}"]
    c = main[0]
    inits = pod.get("initContainers") or []

    # The pipeline the Deployment runs: the rendered ConfigMap if any.
    config = facts.config
    shutdown_ms = facts.shutdown_ms
    cms = by_kind(docs, "ConfigMap")
    if facts.config is not None:
        if len(cms) != 1 or "pipeline.yaml" not in (cms[0].get("data") or {}):
            errs.append("no ConfigMap with pipeline.yaml for pipeline.config")
        else:
            config = yaml.safe_load(cms[0]["data"]["pipeline.yaml"])
            if config != facts.config:
                errs.append("the ConfigMap's pipeline.yaml is not pipeline.config")
            shutdown_ms = config.get("shutdown_timeout_ms", DEFAULT_SHUTDOWN_MS)

    # Command line: pipeline file, listener, replica id from the pod name.
    args = c.get("args") or []
    port = v["port"]
    if args[:2] != ["run", PIPELINE_PATH]:
        errs.append(f"args do not start with run {PIPELINE_PATH}: {args}")
    if "--listen" not in args or args[args.index("--listen") + 1:][:1] != [f"0.0.0.0:{port}"]:
        errs.append(f"args lack --listen 0.0.0.0:{port}: {args}")
    env = {e["name"]: e for e in c.get("env") or []}
    if "--replica-id" not in args or args[args.index("--replica-id") + 1:][:1] != ["$(POD_NAME)"]:
        errs.append(f"replica id: args lack --replica-id $(POD_NAME): {args}")
    pn = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {})
    if pn.get("fieldPath") != "metadata.name":
        errs.append("replica id: env POD_NAME is not the downward API's metadata.name")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
    vols = {x["name"]: x for x in pod.get("volumes") or []}
    pm = mounts.get(PIPELINE_PATH)
    want_cm = (v["pipeline"].get("existingConfigMap")
               or (cms[0]["metadata"]["name"] if cms else None))
    if not pm or vols.get(pm["name"], {}).get("configMap", {}).get("name") != want_cm:
        errs.append(f"{PIPELINE_PATH} is not mounted from ConfigMap {want_cm}")

    # Probes.
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        pr = c.get(probe)
        if not pr:
            errs.append(f"probes: no {probe}")
            continue
        g = pr.get("httpGet") or {}
        pport = ports.get(g.get("port"), g.get("port"))
        if g.get("path") != path or pport != port:
            errs.append(f"probes: {probe} is {g.get('path')} on port {pport}, "
                        f"not {path} on {port}")

    # Drain: the kubelet must not kill a worker that is still draining.
    grace = pod.get("terminationGracePeriodSeconds")
    need = math.ceil(shutdown_ms / 1000) + MIN_MARGIN
    if not isinstance(grace, int) or grace < need:
        errs.append(f"drain: terminationGracePeriodSeconds {grace} < "
                    f"shutdown_timeout_ms {shutdown_ms} / 1000 + {MIN_MARGIN}")
    ru = spec.get("strategy", {}).get("rollingUpdate", {})
    if spec.get("strategy", {}).get("type") != "RollingUpdate" or ru.get("maxUnavailable") not in (0, "0", "0%"):
        errs.append("rollout: not a RollingUpdate with maxUnavailable 0")

    # Security.
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True or psc.get("runAsUser") != UID:
        errs.append(f"security: pod not runAsNonRoot with runAsUser {UID}")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        errs.append("security: pod seccompProfile is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        errs.append("security: a service account token is mounted")
    for ctr in ctrs + inits:
        n = ctr.get("name")
        sc = ctr.get("securityContext") or {}
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            errs.append(f"security: container {n} may run as root")
        if sc.get("runAsUser", psc.get("runAsUser")) != UID:
            errs.append(f"security: container {n} runAsUser is not {UID}")
        if sc.get("readOnlyRootFilesystem") is not True:
            errs.append(f"security: container {n} root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("privileged"):
            errs.append(f"security: container {n} may escalate privileges")
        caps = sc.get("capabilities") or {}
        if caps.get("drop") != ["ALL"] or caps.get("add"):
            errs.append(f"security: container {n} does not drop ALL capabilities "
                        f"(or adds some): {caps}")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {})
        if seccomp.get("type") != "RuntimeDefault":
            errs.append(f"security: container {n} seccompProfile is not RuntimeDefault")
        res = ctr.get("resources") or {}
        for kind in ("requests", "limits"):
            if not all(k in (res.get(kind) or {}) for k in ("cpu", "memory")):
                errs.append(f"resources: container {n} lacks cpu/memory {kind}")
        for e in ctr.get("env") or []:
            if "value" in e and SECRETISH.search(e["name"]):
                errs.append(f"secrets: container {n} env {e['name']} is a literal "
                            f"value, not a secretKeyRef")

    # Spread across nodes.
    tsc = pod.get("topologySpreadConstraints") or []
    if not any(t.get("topologyKey") == "kubernetes.io/hostname" for t in tsc):
        errs.append("spread: no topologySpreadConstraint on kubernetes.io/hostname")

    # Secrets: none written, each one the pipeline names comes from a Secret.
    if by_kind(docs, "Secret"):
        errs.append("secrets: the chart renders a Secret (values would hold it)")
    for i, d in enumerate(docs):
        for path, s in walk_strings(d):
            if re.search(r"password\s*=|://[^/@\s:]+:[^/@\s]+@", s, re.I):
                errs.append(f"secrets: {d.get('kind')} {path} holds a credential: {s[:60]!r}")
    secret_env = {n for n, e in env.items()
                  if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
                  and e["valueFrom"]["secretKeyRef"].get("key")}
    copied = {}
    for ic in inits:
        script = " ".join(ic.get("args") or []) + " ".join(ic.get("command") or [])
        for src, dst in re.findall(r"cp (\S+) (\S+)", script):
            if re.search(r"chmod 0?400 " + re.escape(dst) + r"(\s|$)", script):
                copied[dst] = (ic, src)
    if config is not None:
        refs = []
        pipeline_secret_refs(config, "pipeline", errs, refs)
        for kind, ref, where in refs:
            if kind.endswith("_env") and ref not in secret_env:
                errs.append(f"secrets: {where} names ${ref}, which no secretKeyRef sets")
            if kind.endswith("_file"):
                if not ref.startswith(SECRET_DIR) or ref not in copied:
                    errs.append(f"secrets: {where} names {ref}, which no Secret volume "
                                f"provides with mode 0400")
                    continue
                ic, src = copied[ref]
                im = [m for m in ic.get("volumeMounts") or [] if src.startswith(m["mountPath"] + "/")]
                sv = vols.get(im[0]["name"], {}).get("secret") if im else None
                if not sv or sv.get("defaultMode") != SECRET_MODE:
                    errs.append(f"secrets: {ref} is not from a Secret volume with "
                                f"defaultMode 0400")
                rm = mounts.get(SECRET_DIR.rstrip("/"))
                if not rm or not rm.get("readOnly") or vols.get(rm["name"], {}).get("emptyDir", {}).get("medium") != "Memory":
                    errs.append(f"secrets: {SECRET_DIR} is not a read-only memory volume")
    for s in v.get("secretEnv") or []:
        if s["name"] not in secret_env:
            errs.append(f"secrets: secretEnv {s['name']} is not a secretKeyRef")

    # Disruption budget, metrics Service, gateway Service.
    def selects(sel):
        return bool(sel) and all(pod_labels.get(k) == x for k, x in sel.items())
    pdbs = by_kind(docs, "PodDisruptionBudget")
    if v["podDisruptionBudget"]["enabled"] and not (
            len(pdbs) == 1 and selects(pdbs[0]["spec"]["selector"]["matchLabels"])):
        errs.append("no PodDisruptionBudget selecting the workers")
    svcs = by_kind(docs, "Service")
    metrics = [s for s in svcs if selects(s["spec"].get("selector"))
               and any(p.get("targetPort") in ("http", port) and p.get("name") == "http-metrics"
                       for p in s["spec"]["ports"])]
    if len(metrics) != 1:
        errs.append("no Service for /metrics selecting the workers")
    gw = [s for s in svcs if s not in metrics and selects(s["spec"].get("selector"))]
    if facts.gateway and len(gw) != 1:
        errs.append("gateway: no Service for POST /v1/process")
    if not facts.gateway and gw:
        errs.append("a gateway Service for a pipeline without gateway.enabled")
    sm = by_kind(docs, "ServiceMonitor")
    if bool(v["serviceMonitor"]["enabled"]) != bool(sm):
        errs.append("ServiceMonitor rendered iff serviceMonitor.enabled: not so")
    hpa = by_kind(docs, "HorizontalPodAutoscaler")
    if bool(v["autoscaling"]["enabled"]) != bool(hpa):
        errs.append("HPA rendered iff autoscaling.enabled: not so")
    if hpa and hpa[0]["spec"]["scaleTargetRef"]["name"] != name:
        errs.append("HPA does not target the Deployment")

    # KEDA.
    so = by_kind(docs, "ScaledObject")
    keda = v["keda"]
    if (keda["enabled"] or v["autoscaling"]["enabled"]) and "replicas" in spec:
        errs.append("replicas set although an autoscaler owns the count")
    if not keda["enabled"]:
        if so:
            errs.append("a ScaledObject although keda.enabled is false")
        return errs
    if len(so) != 1:
        return errs + [f"keda: expected one ScaledObject, got {len(so)}"]
    so = so[0]["spec"]
    kind = facts.source.get("kind")
    if so["scaleTargetRef"].get("name") != name or so["scaleTargetRef"].get("kind", "Deployment") != "Deployment":
        errs.append("keda: ScaledObject does not target the Deployment")
    trig = so.get("triggers") or []
    if len(trig) != 1 or trig[0].get("type") != SCALER.get(kind):
        errs.append(f"keda: source kind {kind} wants one '{SCALER.get(kind)}' trigger, got "
                    f"{[t.get('type') for t in trig]}")
        return errs
    md = trig[0].get("metadata") or {}
    want_max = keda.get("maxReplicaCount")
    if want_max is None:
        want_max = keda["kafka"]["partitions"] if kind == "kafka" else 10
    if so.get("maxReplicaCount") != want_max:
        errs.append(f"keda: maxReplicaCount {so.get('maxReplicaCount')}, want {want_max}"
                    + (" (the partition count)" if kind == "kafka" else ""))
    if so.get("minReplicaCount") != keda["minReplicaCount"]:
        errs.append("keda: minReplicaCount is not keda.minReplicaCount")
    if kind == "kafka":
        k = facts.source.get("kafka") or {}
        if md.get("consumerGroup") != k.get("group"):
            errs.append(f"keda: consumerGroup {md.get('consumerGroup')} is not the pipeline's {k.get('group')}")
        topics = k.get("topics") or []
        if len(topics) == 1 and md.get("topic") != topics[0]:
            errs.append(f"keda: topic {md.get('topic')} is not the pipeline's {topics[0]}")
        if len(topics) > 1 and "topic" in md:
            errs.append("keda: one topic named although the group reads several")
        want = keda["kafka"]["bootstrapServers"] or k.get("brokers")
        if md.get("bootstrapServers") != want:
            errs.append(f"keda: bootstrapServers {md.get('bootstrapServers')}, want {want}")
        if str(md.get("lagThreshold")) != str(keda["kafka"]["lagThreshold"]):
            errs.append("keda: lagThreshold is not keda.kafka.lagThreshold")
    else:
        r = facts.source.get("redis") or {}
        key = "stream" if kind == "redis-stream" else "listName"
        if md.get(key) != r.get("key"):
            errs.append(f"keda: {key} {md.get(key)} is not the pipeline's {r.get('key')}")
        if kind == "redis-stream":
            if md.get("consumerGroup") != r.get("group", "sluice"):
                errs.append("keda: consumerGroup is not the pipeline's redis group")
            lag = keda["redis"].get("lagCount")
            if (lag is None) != ("pendingEntriesCount" in md) or (lag is not None and "lagCount" not in md):
                errs.append("keda: redis-streams uses lagCount iff keda.redis.lagCount is set")
    return errs


# ---- proving that the check fails -------------------------------------

def _dep(docs):
    return by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]


def _main(docs):
    return [c for c in _dep(docs)["containers"] if c["name"] == "sluice"][0]


def _set_args(docs, f):
    _main(docs)["args"] = f(_main(docs)["args"])


MUTATIONS = [
    # (what, expected text in an error, edit of a good render)
    ("startup probe removed", "no startupProbe", lambda d: _main(d).pop("startupProbe")),
    ("readiness on /healthz", "readinessProbe is /healthz",
     lambda d: _main(d)["readinessProbe"]["httpGet"].update(path="/healthz")),
    ("liveness probe removed", "no livenessProbe", lambda d: _main(d).pop("livenessProbe")),
    ("grace period = shutdown timeout, no margin", "drain:",
     lambda d: _dep(d).update(terminationGracePeriodSeconds=45)),
    ("runs as root", "runAsUser is not", lambda d: _main(d)["securityContext"].update(runAsUser=0)),
    ("writable root filesystem", "root filesystem is writable",
     lambda d: _main(d)["securityContext"].update(readOnlyRootFilesystem=False)),
    ("a capability added", "capabilities",
     lambda d: _main(d)["securityContext"]["capabilities"].update(add=["NET_ADMIN"])),
    ("seccomp unconfined", "seccompProfile",
     lambda d: (_dep(d)["securityContext"].pop("seccompProfile"),
                _main(d)["securityContext"].pop("seccompProfile"))),
    ("password literal in env", "is a literal value",
     lambda d: _main(d)["env"].append({"name": "PGPASSWORD", "value": "hunter2"})),
    ("secret env from a ConfigMap", "which no secretKeyRef sets",
     lambda d: [e.update(valueFrom={"configMapKeyRef": {"name": "x", "key": "y"}})
                for e in _main(d)["env"] if e["name"] == "PGPASSWORD"]),
    ("secret volume mode 0644", "defaultMode 0400",
     lambda d: [x["secret"].update(defaultMode=0o644) for x in _dep(d)["volumes"] if "secret" in x]),
    ("password written in the pipeline", "credential",
     lambda d: by_kind(d, "ConfigMap")[0]["data"].update(
         {"pipeline.yaml": by_kind(d, "ConfigMap")[0]["data"]["pipeline.yaml"].replace(
             "password_env: PGPASSWORD", "password: hunter2")})),
    ("replica id not from the pod name", "replica id",
     lambda d: _set_args(d, lambda a: [x if x != "$(POD_NAME)" else "worker" for x in a])),
    ("no spread across nodes", "spread", lambda d: _dep(d).pop("topologySpreadConstraints")),
    ("no limits", "lacks cpu/memory limits", lambda d: _main(d)["resources"].pop("limits")),
    ("scaler type redis-streams for Kafka", "wants one 'kafka' trigger",
     lambda d: by_kind(d, "ScaledObject")[0]["spec"]["triggers"][0].update(type="redis-streams")),
    ("maxReplicaCount past the partitions", "maxReplicaCount",
     lambda d: by_kind(d, "ScaledObject")[0]["spec"].update(maxReplicaCount=100)),
    ("wrong consumer group", "consumerGroup",
     lambda d: by_kind(d, "ScaledObject")[0]["spec"]["triggers"][0]["metadata"].update(consumerGroup="other")),
    ("PodDisruptionBudget dropped", "PodDisruptionBudget",
     lambda d: d.remove(by_kind(d, "PodDisruptionBudget")[0])),
]

# Values overrides that must make the check (or helm) refuse the render.
BROKEN_VALUES = [
    ("startup probe disabled", ["--set", "probes.startup.enabled=false"], "no startupProbe"),
    ("readiness probe disabled", ["--set", "probes.readiness.enabled=false"], "no readinessProbe"),
    ("a password as a plain env value",
     ["--set-json", 'env=[{"name":"PGPASSWORD","value":"hunter2"}]'], "literal"),
    ("drain margin below 5 s", ["--set", "drainMarginSeconds=1"], "helm: drainMarginSeconds"),
    ("secret file outside /run/secrets",
     ["--set-json", 'secretFiles=[{"secretName":"s","key":"k","path":"/tmp/k"}]'], "helm: secretFiles[0].path"),
    ("KEDA and the HPA at once", ["--set", "autoscaling.enabled=true"], "helm: autoscaling.enabled and keda.enabled"),
]

# Variants of other values files: (file prefix, what, overrides, want)
# where want is "" (the render must pass), "helm: TEXT" (the chart must
# refuse it) or a text the check must report.
VARIANTS = [
    ("redis-keda", "Redis Streams on the group's lag, scaled to zero",
     ["--set", "keda.redis.lagCount=100", "--set", "keda.minReplicaCount=0"], ""),
    ("redis-keda", "Redis Streams scaled to zero on pending entries",
     ["--set", "keda.minReplicaCount=0"], "helm: needs keda.redis.lagCount"),
    ("redis-keda", "Redis password file not provided", ["--set-json", "secretFiles=[]"],
     "/run/secrets/redis-password, which no Secret volume provides"),
    ("gateway", "KEDA for a gateway without a source", ["--set", "keda.enabled=true",
                                                         "--set", "autoscaling.enabled=false"],
     "helm: KEDA scales on consumer lag"),
    ("no-keda", "KEDA on brokers written as ${VAR}", ["--set", "keda.enabled=true"],
     "helm: set keda.kafka.bootstrapServers"),
    ("no-keda", "KEDA with two topics: the group's whole lag",
     ["--set", "keda.enabled=true", "--set", "keda.kafka.bootstrapServers=kafka:9092",
      "--set", "keda.kafka.partitions=4"], ""),
]

# Edits of the templates (in a copy of the chart) that must be caught.
BROKEN_TEMPLATES = [
    ("readiness probe path", "deployment.yaml", "path: /readyz", "path: /healthz", "readinessProbe"),
    ("grace period without the margin", "_helpers.tpl",
     "{{- add (div (add $ms 999) 1000) $margin -}}", "{{- div $ms 1000 -}}", "drain:"),
    ("read-only root dropped", "_helpers.tpl", "readOnlyRootFilesystem: true",
     "readOnlyRootFilesystem: false", "root filesystem is writable"),
    ("uid changed", "_helpers.tpl", "runAsUser: 10001", "runAsUser: 1000", "runAsUser is not"),
    ("replica id from the pod name", "deployment.yaml", "fieldPath: metadata.name",
     "fieldPath: metadata.namespace", "replica id"),
    ("secret mode 0400", "deployment.yaml", "defaultMode: 256", "defaultMode: 420", "defaultMode 0400"),
    ("KEDA partitions default", "scaledobject.yaml", "{{- $max = int $k.kafka.partitions }}",
     "{{- $max = 10 }}", "maxReplicaCount"),
    ("scaler chosen from the source kind", "scaledobject.yaml", "- type: kafka",
     "- type: redis-streams", "trigger"),
]


class Tally:
    def __init__(self):
        self.passed = self.failed = 0

    def ok(self, what):
        self.passed += 1
        print(f"ok    {what}")

    def fail(self, what, why):
        self.failed += 1
        print(f"FAIL  {what}")
        for w in why:
            print(f"        {w}")


def main(argv):
    sluice = None
    if len(argv) > 2 and argv[1] == "--sluice":
        sluice, argv = argv[2], argv[:1] + argv[3:]
    if len(argv) < 4:
        sys.exit(__doc__)
    helm, chart, files = argv[1], argv[2], argv[3:]
    with open(os.path.join(chart, "values.yaml")) as f:
        defaults = yaml.safe_load(f)
    t = Tally()
    good = {}
    for vf in files:
        with open(vf) as f:
            facts = Facts(merge(defaults, yaml.safe_load(f) or {}))
        docs, err = render(helm, chart, vf)
        what = f"render facts: {os.path.basename(vf)}"
        if docs is None:
            t.fail(what, [f"helm template failed: {err}"])
            continue
        errs = check(docs, facts)
        if sluice:
            errs += sluice_check(sluice, docs)
        if errs:
            t.fail(what, errs)
        else:
            t.ok(what)
            good[os.path.basename(vf)] = (vf, docs, facts)

    base = next((good[k] for k in good if k.startswith("kafka-keda")), None)
    if base is None:
        t.fail("negative cases", ["no good kafka-keda render to break"])
    else:
        vf, docs, facts = base
        for what, want, edit in MUTATIONS:
            d = copy.deepcopy(docs)
            edit(d)
            errs = check(d, facts)
            if any(want in e for e in errs):
                t.ok(f"refused: {what}")
            else:
                t.fail(f"not refused: {what} (want '{want}')", errs or ["check passed"])
        for what, args, want in BROKEN_VALUES:
            d, err = render(helm, chart, vf, args)
            if want.startswith("helm: "):
                # The chart itself must refuse these values.
                got = d is None and want[len("helm: "):] in err
                errs = [f"helm: {err}"] if d is None else ["helm template accepted it"]
            else:
                errs = [f"helm: {err}"] if d is None else check(d, facts)
                got = d is not None and any(want in e for e in errs)
            if got:
                t.ok(f"refused: {what}")
            else:
                t.fail(f"not refused: {what} (want '{want}')", errs or ["check passed"])
        for prefix, what, args, want in VARIANTS:
            hit = [k for k in good if k.startswith(prefix)]
            if not hit:
                t.fail(f"variant: {what}", [f"no good render of {prefix}-values.yaml"])
                continue
            pvf, _, _ = good[hit[0]]
            with open(pvf) as f:
                pv = yaml.safe_load(f) or {}
            d, err = render(helm, chart, pvf, args)
            if want.startswith("helm: "):
                ok = d is None and want[len("helm: "):] in err
                errs = [f"helm: {err}"] if d is None else ["helm template accepted it"]
            else:
                # The facts follow the overrides: render them as values.
                over = {}
                for flag, kv in zip(args[::2], args[1::2]):
                    key, val = kv.split("=", 1)
                    val = yaml.safe_load(val)
                    node = over
                    parts = key.split(".")
                    for part in parts[:-1]:
                        node = node.setdefault(part, {})
                    node[parts[-1]] = val
                pf = Facts(merge(merge(defaults, pv), over))
                errs = [f"helm: {err}"] if d is None else check(d, pf)
                ok = d is not None and (not errs if not want else any(want in e for e in errs))
            if ok:
                t.ok(f"variant: {what}: " + ("passes" if not want else "refused"))
            else:
                t.fail(f"variant: {what} (want {want or 'a pass'!r})", errs or ["check passed"])
        if sluice:
            d, err = render(helm, chart, vf, ["--set", "pipeline.config.sink.postgres.batch_rowz=5"])
            errs = [f"helm: {err}"] if d is None else sluice_check(sluice, d)
            if any("batch_rowz" in e for e in errs):
                t.ok("refused: a pipeline that sluice check refuses")
            else:
                t.fail("not refused: a pipeline that sluice check refuses", errs or ["check passed"])
        with tempfile.TemporaryDirectory(prefix="sluice-chart-") as tmp:
            for what, tpl, old, new, want in BROKEN_TEMPLATES:
                copy_dir = os.path.join(tmp, "sluice")
                shutil.rmtree(copy_dir, ignore_errors=True)
                shutil.copytree(chart, copy_dir)
                p = os.path.join(copy_dir, "templates", tpl)
                with open(p) as f:
                    text = f.read()
                if old not in text:
                    t.fail(f"template edit: {what}", [f"{tpl} no longer contains {old!r}"])
                    continue
                with open(p, "w") as f:
                    f.write(text.replace(old, new))
                d, err = render(helm, copy_dir, vf)
                errs = [f"helm: {err}"] if d is None else check(d, facts)
                if any(want in e for e in errs):
                    t.ok(f"refused: template edit: {what}")
                else:
                    t.fail(f"not refused: template edit: {what} (want '{want}')",
                           errs or ["check passed"])
    print(f"{t.passed} passed, {t.failed} failed")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
