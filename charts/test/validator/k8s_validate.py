#!/usr/bin/env python3
"""Strict, offline validation of Kubernetes manifests.

Every YAML document is checked against the Kubernetes JSON schemas that the PyPI
package `kubernetes-validate` bundles (its `-local-strict` variants, where every
object has `additionalProperties: false`), so a wrong type, an unknown field or a
missing required field is an error. Unlike the `kubernetes-validate` CLI this
  * reports every error of a resource, not only the first,
  * fails on a kind it has no schema for (the CLI only warns and exits 0),
  * fails on duplicate mapping keys (the API server rejects them, PyYAML keeps
    the last one silently),
  * checks the names the schemas cannot: metadata.name (DNS-1123 subdomain, and a
    DNS-1035 label for Services), port names (IANA_SVC_NAME, at most 15 chars),
    label keys and values.

Usage: k8s_validate.py [--kubernetes-version 1.37.0] [--json] FILE... | -
       k8s_validate.py --dump FILE... | -     (the YAML documents as a JSON array; no validation)
--json prints {resources, invalid, results: [{source, resource, errors, document}]}.
Exit status 0 when every resource is valid, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from functools import lru_cache
from importlib import resources as importlib_resources
from typing import Any, Iterator

import jsonschema
import yaml
from referencing import Registry, Resource

DEFAULT_KUBERNETES_VERSION = "1.37.0"

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = re.compile(rf"^{DNS1123_LABEL}(\.{DNS1123_LABEL})*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys in a mapping."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _schema_root() -> Any:
    return importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")


@lru_cache(maxsize=None)
def _schema_dir(version: str) -> Any:
    wanted = tuple(int(p) for p in version.lstrip("v").split(".")[:2])
    candidates = []
    for entry in _schema_root().iterdir():
        m = re.match(r"^v(\d+)\.(\d+)\.\d+-local-strict$", entry.name)
        if m and (int(m.group(1)), int(m.group(2))) <= wanted:
            candidates.append(((int(m.group(1)), int(m.group(2))), entry))
    if not candidates:
        raise SystemExit(f"k8s-validate: no bundled schemas for Kubernetes {version}")
    return max(candidates, key=lambda c: c[0])[1]


@lru_cache(maxsize=None)
def _registry(version: str) -> Registry:
    defs = json.loads(_schema_dir(version).joinpath("_definitions.json").read_text())
    return Resource.from_contents(defs) @ Registry()


@lru_cache(maxsize=None)
def _validator(version: str, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    # rbac.authorization.k8s.io/v1 -> rbac-v1 ; v1 -> v1 (the bundle's file naming)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_file = _schema_dir(version).joinpath(f"{kind.lower()}-{group_version}.json")
    if not schema_file.is_file():
        return None
    schema = json.loads(schema_file.read_text())
    # A kind's file is looked up by (kind, group prefix); make sure the group matches.
    gvks = schema.get("x-kubernetes-group-version-kind") or []
    group, _, ver = api_version.rpartition("/")
    if gvks and not any(g.get("group", "") == group and g.get("version") == ver and g.get("kind") == kind for g in gvks):
        return None
    registry = Resource.from_contents(schema) @ _registry(version)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _names(doc: dict) -> Iterator[str]:
    kind = doc.get("kind")
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        yield "metadata.name: required"
    elif kind == "Service":
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            yield f"metadata.name: {name!r} is not a DNS-1035 label (Service names: [a-z]([-a-z0-9]*[a-z0-9])?, max 63)"
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        yield f"metadata.name: {name!r} is not a DNS-1123 subdomain"
    for field in ("labels",):
        for key, value in ((meta.get(field) or {}) if isinstance(meta.get(field), dict) else {}).items():
            prefix, _, local = str(key).rpartition("/")
            if len(local) > 63 or not LABEL_NAME.match(local) or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
                yield f"metadata.labels: invalid key {key!r}"
            if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
                yield f"metadata.labels.{key}: invalid value {value!r}"
    for path, port_name in _port_names(doc, ""):
        if len(port_name) > 15 or not IANA_SVC_NAME.match(port_name) or "--" in port_name \
                or not re.search(r"[a-z]", port_name):
            yield f"{path}: port name {port_name!r} is not an IANA_SVC_NAME (max 15 chars, [a-z0-9-])"


def _port_names(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yields (path, name) of every container port and Service port name."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "ports" and isinstance(value, list):
                for i, port in enumerate(value):
                    if isinstance(port, dict) and isinstance(port.get("name"), str):
                        yield f"{child}.{i}.name", port["name"]
            else:
                yield from _port_names(value, child)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _port_names(item, f"{path}.{i}")


def validate_document(doc: Any, version: str) -> tuple[str, list[str]]:
    if not isinstance(doc, dict):
        return "<not a mapping>", [f"document is a {type(doc).__name__}, not a mapping"]
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    ident = f"{kind}/{(doc.get('metadata') or {}).get('name', '?')}"
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return ident, ["apiVersion and kind are required strings"]
    validator = _validator(version, api_version, kind)
    if validator is None:
        return ident, [f"no schema for {api_version} {kind} in Kubernetes {version} (unknown kind or API version)"]
    errors = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in err.absolute_path) or "<root>"
        errors.append(f"{where}: {err.message}")
    errors.extend(_names(doc))
    return ident, errors


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", "--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION)
    parser.add_argument("--json", action="store_true", help="print one JSON report instead of text lines")
    parser.add_argument("--dump", action="store_true", help="print the documents as a JSON array, do not validate")
    parser.add_argument("files", nargs="+", help="manifest files, '-' for stdin")
    args = parser.parse_args(argv)

    results = []
    dumped = []
    for source in args.files:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
        try:
            docs = [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]
        except yaml.YAMLError as exc:
            if args.dump:
                raise SystemExit(f"k8s-validate: {source}: {exc}")
            results.append({"source": source, "resource": "<yaml>", "errors": [f"YAML: {exc}"], "document": None})
            continue
        if args.dump:
            dumped.extend(docs)
            continue
        for doc in docs:
            ident, errors = validate_document(doc, args.kubernetes_version)
            results.append({"source": source, "resource": ident, "errors": errors, "document": doc})

    if args.dump:
        print(json.dumps(dumped, default=str))
        return 0

    failed = [r for r in results if r["errors"]]
    if args.json:
        print(json.dumps({"kubernetesVersion": args.kubernetes_version, "resources": len(results),
                          "invalid": len(failed), "results": results}, default=str))
    else:
        for r in results:
            for e in r["errors"]:
                print(f"ERROR {r['source']}: {r['resource']}: {e}")
        print(f"k8s-validate: {len(results)} resources, {len(failed)} invalid "
              f"(Kubernetes {args.kubernetes_version}, strict schemas)")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
