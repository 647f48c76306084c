#!/usr/bin/env python3
"""Make JSON schemas that kubeconform can use offline (scripts/k8s-check).

  schemas.py k8s SRC DST
      SRC: a kubernetes-validate schema folder (e.g. v1.33.0-local-strict).
      Its schemas carry an $id (https://kubernetes.io/api/...) and refer to
      "/api/_definitions.json#/$defs/NAME"; resolved against the $id those
      are URLs.  Each output file has no $id and carries, under its own
      $defs, every definition it reaches, referred to as "#/$defs/NAME".
      Names are kept (deployment-apps-v1.json), the layout kubeconform's
      default template {{ .ResourceKind }}{{ .KindSuffix }}.json expects.

  schemas.py crd DST CRD.yaml...
      Each CustomResourceDefinition's openAPIV3Schema, per served version,
      as DST/GROUP/KIND_VERSION.json (kind in lower case), the layout of
      -schema-location 'DST/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'.
      Strict as the Kubernetes schemas are: an object with properties
      admits no other key unless x-kubernetes-preserve-unknown-fields;
      int-or-string and nullable become JSON schema types.
"""
import json
import os
import re
import sys

import yaml

REF = re.compile(r"^[^#]*_definitions\.json#/\$defs/(.+)$")


def _local_refs(node, found):
    """Rewrite refs to _definitions.json as local ones; collect their names."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$id":
                continue
            if k == "$ref" and isinstance(v, str):
                m = REF.match(v)
                if m:
                    found.add(m.group(1))
                    v = "#/$defs/" + m.group(1)
                elif v.startswith("#/$defs/"):
                    found.add(v[len("#/$defs/"):])
            out[k] = _local_refs(v, found)
        return out
    if isinstance(node, list):
        return [_local_refs(v, found) for v in node]
    return node


def k8s(src, dst):
    with open(os.path.join(src, "_definitions.json")) as f:
        defs = json.load(f)["$defs"]
    os.makedirs(dst, exist_ok=True)
    n = 0
    for name in sorted(os.listdir(src)):
        if not name.endswith(".json") or name in ("_definitions.json", "all.json"):
            continue
        with open(os.path.join(src, name)) as f:
            schema = json.load(f)
        want = set()
        schema = _local_refs(schema, want)
        local = {}
        while want:
            d = want.pop()
            if d in local:
                continue
            if d not in defs:
                sys.exit(f"schemas.py: {name}: reference to unknown definition {d}")
            more = set()
            local[d] = _local_refs(defs[d], more)
            want |= more - set(local)
        if local:
            schema["$defs"] = local
        with open(os.path.join(dst, name), "w") as f:
            json.dump(schema, f, separators=(",", ":"))
        n += 1
    if n < 100:
        sys.exit(f"schemas.py: only {n} schemas in {src}")
    print(f"schemas.py: {n} Kubernetes schemas from {src} -> {dst}")


def _strict(node):
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        t = out["type"]
        out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd(dst, paths):
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for d in docs:
            if d.get("kind") != "CustomResourceDefinition":
                continue
            spec = d["spec"]
            group, kind = spec["group"], spec["names"]["kind"]
            for v in spec["versions"]:
                if not v.get("served", True):
                    continue
                schema = _strict(v["schema"]["openAPIV3Schema"])
                schema["$schema"] = "http://json-schema.org/draft-07/schema#"
                props = schema.setdefault("properties", {})
                props["apiVersion"] = {"type": "string", "enum": [f"{group}/{v['name']}"]}
                props["kind"] = {"type": "string", "enum": [kind]}
                out = os.path.join(dst, group, f"{kind.lower()}_{v['name']}.json")
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with open(out, "w") as f:
                    json.dump(schema, f, separators=(",", ":"))
                print(f"schemas.py: {kind} {group}/{v['name']} from {os.path.basename(path)} -> {out}")


def main(argv):
    if len(argv) == 4 and argv[1] == "k8s":
        k8s(argv[2], argv[3])
    elif len(argv) >= 4 and argv[1] == "crd":
        crd(argv[2], argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
