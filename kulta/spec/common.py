"""Pieces shared by the Rollout and AnalysisTemplate parsers: metadata, names, arguments.

Kept in one place so both document kinds give the same errors for the same mistakes
(a bad name, a label value that is a number, an argument with two values).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kulta.model.rollout import DEFAULT_NAMESPACE, ArgValueFrom, PodTemplateHashValue
from kulta.spec.fields import (
    MISSING,
    Issues,
    check_keys,
    child,
    index,
    read_list,
    read_mapping,
    read_str,
    read_string_map,
    show,
)

__all__ = [
    "MAX_HEADER_VALUE",
    "MAX_REGEX_LENGTH",
    "ArgSpec",
    "Metadata",
    "check_dns_label",
    "check_dns_subdomain",
    "check_header_name",
    "check_header_value",
    "compile_regex",
    "parse_args",
    "parse_metadata",
    "unsupported",
]

# Every pattern here is used with ``fullmatch``: ``$`` also matches before a final newline.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ARG_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: an HTTP header name (an RFC 9110 token), as Gateway API's ``HeaderName`` pattern.
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
#: Gateway API's ``HeaderName`` is at most 256 characters.
_MAX_HEADER_NAME = 256
#: Gateway API's ``HTTPHeaderMatch.value`` is at most 4096 characters.
MAX_HEADER_VALUE = 4096
#: a regular expression in a file (a header route's ``regex``, ``dryRun[].metricName``) is at most this long.
MAX_REGEX_LENGTH = 1024
#: the characters of a header value KULTA matches or sends: printable ASCII and tab.
_HEADER_VALUE_CHARS = re.compile(r"[\t\x20-\x7e]*")

#: metadata fields the API server writes; a file exported from a cluster carries them.
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "ownerReferences",
    "finalizers",
)


def unsupported(what: str, instead: str = "") -> str:
    """The message for an Argo Rollouts field KULTA refuses."""
    tail = f"; {instead}" if instead else "; remove it (docs/spec.md lists what KULTA supports)"
    return f"{what} is not supported by KULTA{tail}"


def check_dns_label(issues: Issues, value: str, path: str) -> bool:
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        issues.add(
            path,
            f"{show(value)} is not a valid name: use at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
        )
        return False
    return True


def check_dns_subdomain(issues: Issues, value: str, path: str, *, max_length: int = 253) -> bool:
    if len(value) > max_length or not _DNS_SUBDOMAIN.fullmatch(value):
        issues.add(
            path,
            f"{show(value)} is not a valid name: use at most {max_length} lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit",
        )
        return False
    return True


def check_header_name(issues: Issues, value: str, path: str) -> bool:
    """An HTTP header name: letters, digits and ``!#$%&'*+-.^_`|~``, at most 256 characters."""
    if len(value) > _MAX_HEADER_NAME or not _HEADER_NAME.fullmatch(value):
        issues.add(
            path,
            f"{show(value)} is not a valid HTTP header name: use at most {_MAX_HEADER_NAME} letters, digits "
            "and !#$%&'*+-.^_`|~",
        )
        return False
    return True


def _character_kind(char: str) -> str:
    if char in "\r\n":
        return "a line break"
    if char == "\x00":
        return "a NUL character"
    if char.isascii():
        return "a control character"
    return "a non-ASCII character"


def check_header_value(issues: Issues, value: str, path: str, *, max_length: int = MAX_HEADER_VALUE) -> bool:
    """A header value: printable ASCII and tabs, at most ``max_length`` characters.

    A line break would split the header (or forge another one), a NUL or control
    character is refused by HTTP servers, and non-ASCII bytes are read differently by
    each proxy; so all are refused when the file is read.
    """
    if len(value) > max_length:
        issues.add(path, f"is {len(value)} characters long; a header value here has at most {max_length}")
        return False
    if not _HEADER_VALUE_CHARS.fullmatch(value):
        position, char = next((i, c) for i, c in enumerate(value) if not _HEADER_VALUE_CHARS.fullmatch(c))
        issues.add(
            path,
            f"{show(value)} holds {_character_kind(char)} (U+{ord(char):04X} at character {position + 1}): "
            "header values may only hold printable ASCII characters and tabs",
        )
        return False
    return True


def compile_regex(issues: Issues, text: str, path: str) -> re.Pattern[str] | None:
    """``text`` compiled, if it is a valid regular expression of at most ``MAX_REGEX_LENGTH`` characters.

    ``re.compile`` raises RecursionError on deep nesting and OverflowError on a huge
    repeat count, not only ``re.error``; the length bound keeps compiling cheap.
    """
    if len(text) > MAX_REGEX_LENGTH:
        issues.add(path, f"is {len(text)} characters long; a regular expression here has at most {MAX_REGEX_LENGTH}")
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        issues.add(path, f"{show(text)} is not a valid regular expression: {exc}")
    except (RecursionError, OverflowError):
        issues.add(path, f"{show(text)} is not a valid regular expression: it nests or repeats too much")
    return None


@dataclass(frozen=True)
class Metadata:
    name: str | None
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


def parse_metadata(
    issues: Issues,
    value: Any,
    *,
    namespaced: bool = True,
    max_name_length: int = 253,
    default_namespace: str = DEFAULT_NAMESPACE,
) -> Metadata:
    """``metadata``; a namespaced object without ``namespace`` is in ``default_namespace``."""
    path = "metadata"
    data = read_mapping(issues, value, path)
    if data is None:
        if value is MISSING:
            issues.add(path, "is required: add metadata.name")
        return Metadata(None, default_namespace, {}, {})
    server_set = {key: "is set by the Kubernetes API server; remove it from the file" for key in _SERVER_METADATA}
    refused = {
        "generateName": unsupported("metadata.generateName", "KULTA needs a fixed metadata.name"),
        **server_set,
    }
    if not namespaced:
        refused["namespace"] = "a cluster-scoped object has no namespace; remove it"
    known = ("name", "namespace", "labels", "annotations") if namespaced else ("name", "labels", "annotations")
    check_keys(issues, data, path, known, refused)
    name = read_str(issues, data.get("name", MISSING), child(path, "name"), required=True)
    if name is not None and not check_dns_subdomain(issues, name, child(path, "name"), max_length=max_name_length):
        name = None
    namespace = default_namespace
    if namespaced:
        ns = read_str(issues, data.get("namespace", MISSING), child(path, "namespace"))
        if ns is not None and check_dns_label(issues, ns, child(path, "namespace")):
            namespace = ns
    labels = read_string_map(issues, data.get("labels", MISSING), child(path, "labels"))
    annotations = read_string_map(issues, data.get("annotations", MISSING), child(path, "annotations"))
    return Metadata(name, namespace, labels, annotations)


@dataclass(frozen=True)
class ArgSpec:
    name: str
    value: str | None
    value_from: ArgValueFrom | None


def _parse_value_from(issues: Issues, value: Any, path: str) -> ArgValueFrom | None:
    data = read_mapping(issues, value, path)
    if data is None:
        return None
    check_keys(issues, data, path, ("podTemplateHashValue", "fieldRef", "secretKeyRef"))
    present = [key for key in ("podTemplateHashValue", "fieldRef", "secretKeyRef") if key in data]
    if len(present) != 1:
        found = f" (found {' and '.join(present)})" if present else ""
        issues.add(path, f"needs exactly one of podTemplateHashValue, fieldRef, secretKeyRef{found}")
        return None
    key = present[0]
    where = child(path, key)
    if key == "podTemplateHashValue":
        text = read_str(issues, data[key], where, required=True)
        choices = {member.value: member for member in PodTemplateHashValue}
        if text is None:
            return None
        if text not in choices:
            issues.add(where, f"{show(text)} is not one of Stable, Latest")
            return None
        return ArgValueFrom(pod_template_hash_value=choices[text])
    if key == "fieldRef":
        ref = read_mapping(issues, data[key], where)
        if ref is None:
            return None
        check_keys(issues, ref, where, ("fieldPath",))
        field_path = read_str(issues, ref.get("fieldPath", MISSING), child(where, "fieldPath"), required=True)
        if field_path is None:
            return None
        if not field_path.startswith(("metadata.", "spec.")):
            issues.add(
                child(where, "fieldPath"),
                f"{show(field_path)} is not a Rollout field path; use e.g. metadata.name or metadata.labels['app']",
            )
            return None
        return ArgValueFrom(field_ref=field_path)
    ref = read_mapping(issues, data[key], where)
    if ref is None:
        return None
    check_keys(issues, ref, where, ("name", "key"))
    secret = read_str(issues, ref.get("name", MISSING), child(where, "name"), required=True)
    secret_key = read_str(issues, ref.get("key", MISSING), child(where, "key"), required=True)
    if secret is None or secret_key is None:
        return None
    return ArgValueFrom(secret_key_ref=(secret, secret_key))


def parse_args(issues: Issues, value: Any, path: str, *, value_required: bool) -> tuple[ArgSpec, ...]:
    """``args`` of an analysis reference (value required) or of a template (optional)."""
    items = read_list(issues, value, path)
    if items is None:
        return ()
    result: list[ArgSpec] = []
    seen: set[str] = set()
    for position, item in enumerate(items):
        where = index(path, position)
        data = read_mapping(issues, item, where)
        if data is None:
            continue
        check_keys(issues, data, where, ("name", "value", "valueFrom"))
        name = read_str(issues, data.get("name", MISSING), child(where, "name"), required=True)
        if name is not None and not _ARG_NAME.fullmatch(name):
            issues.add(child(where, "name"), f"{show(name)} may only hold letters, digits, '_', '-' and '.'")
            name = None
        if name is not None and name in seen:
            issues.add(child(where, "name"), f'argument "{name}" is listed twice; keep one')
            name = None
        text: str | None = None
        raw = data.get("value", MISSING)
        if raw is not MISSING:
            if isinstance(raw, str):
                text = raw
            else:
                hint = f': quote it ("{show(raw)}")' if isinstance(raw, bool | int | float) else ""
                issues.add(child(where, "value"), f"must be a string, got {show(raw)}{hint}")
        value_from = None
        if "valueFrom" in data:
            value_from = _parse_value_from(issues, data["valueFrom"], child(where, "valueFrom"))
        if raw is not MISSING and "valueFrom" in data:
            issues.add(where, "set either value or valueFrom, not both")
            continue
        if value_required and raw is MISSING and "valueFrom" not in data:
            issues.add(where, "needs value or valueFrom")
            continue
        if name is None or (raw is not MISSING and text is None) or ("valueFrom" in data and value_from is None):
            continue
        seen.add(name)
        result.append(ArgSpec(name=name, value=text, value_from=value_from))
    return tuple(result)
