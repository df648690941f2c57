"""Validate custom resources (KEDA, VPA, Karpenter) offline against their upstream CRDs.

Each served version's `openAPIV3Schema` becomes a JSON Schema the way the API server reads it:
- an object with `properties` admits no other keys, unless `x-kubernetes-preserve-unknown-fields`;
- `x-kubernetes-int-or-string` admits an integer or a string; `nullable` admits null;
- `x-kubernetes-validations` CEL rules are evaluated with cel-python against the value at their node.
Transition rules (those reading `oldSelf`) only apply to updates, so a create-time check skips them.
The Kubernetes CEL extensions the CRDs use (`find`, `split`) are supplied here; a rule that still does
not compile is reported as an error rather than silently passed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_METADATA_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    out.pop("nullable", None)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    return out


@dataclass
class Violation:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


@dataclass
class _Version:
    schema: dict[str, Any]
    validator: jsonschema.protocols.Validator = field(init=False)

    def __post_init__(self) -> None:
        spec = _to_json_schema(self.schema)
        # apiVersion, kind and metadata are checked by the API server itself, not by the CRD's schema.
        spec.setdefault("properties", {}).update(
            {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
        )
        self.validator = jsonschema.Draft7Validator(spec)


class CustomResourceSchemas:
    """The CRDs in a folder and its subfolders (operators/), by (group/version, kind)."""

    def __init__(self, crd_dir: Path) -> None:
        self.versions: dict[tuple[str, str], _Version] = {}
        for path in sorted(crd_dir.rglob("*.yaml")):
            for crd in yaml.safe_load_all(path.read_text()):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    if version.get("served", True):
                        schema = version["schema"]["openAPIV3Schema"]
                        self.versions[(f"{group}/{version['name']}", kind)] = _Version(schema)

    def knows(self, doc: dict[str, Any]) -> bool:
        return (doc.get("apiVersion"), doc.get("kind")) in self.versions

    def violations(self, doc: dict[str, Any]) -> list[Violation]:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key not in self.versions:
            return [Violation("", f"no CRD serves {key[0]} {key[1]}")]
        version = self.versions[key]
        found = [
            Violation("/".join(map(str, error.absolute_path)), error.message)
            for error in version.validator.iter_errors(doc)
        ]
        name = (doc.get("metadata") or {}).get("name", "")
        if not _METADATA_NAME.match(name) or len(name) > 253:
            found.append(Violation("metadata/name", f"{name!r} is not a DNS subdomain name"))
        if not found:  # CEL rules assume a value of the declared shape
            found.extend(_cel_violations(version.schema, doc, ""))
        return found


@cache
def _program(rule: str):
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(rule), functions=_CEL_EXTENSIONS)


def _find(value: Any, pattern: Any) -> Any:
    from celpy import celtypes

    match = re.search(str(pattern), str(value))
    return celtypes.StringType(match.group(0) if match else "")


def _split(value: Any, separator: Any) -> Any:
    from celpy import celtypes

    return celtypes.ListType([celtypes.StringType(part) for part in str(value).split(str(separator))])


_CEL_EXTENSIONS = {"find": _find, "split": _split}


def _cel_violations(schema: dict[str, Any], value: Any, path: str) -> Iterator[Violation]:
    import celpy

    for check in schema.get("x-kubernetes-validations", []):
        rule = check["rule"]
        if "oldSelf" in rule:
            continue
        try:
            result = _program(rule).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as error:
            yield Violation(path, f"CEL rule {rule!r} could not be evaluated: {error}")
            continue
        if result is not True and str(result) != "True":
            yield Violation(path, f"{check.get('message', 'CEL rule failed')} ({rule})")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, item in value.items():
            sub = properties.get(key)
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            if sub is not None:
                yield from _cel_violations(sub, item, f"{path}/{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _cel_violations(schema["items"], item, f"{path}/{index}")


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [copy.deepcopy(doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
