"""The namespace of a document that names none: ``default``, ``--namespace``, or per directory.

``kubectl apply -n shop -f DIR`` and an Argo CD destination namespace put every
namespace-less object of the files into ``shop``; most published Argo Rollouts
examples rely on that. KULTA has the same notion: a default namespace for the files
it reads (``--namespace NS``, else ``default``) and, for ``kulta run``, one per
directory of the repository (``--path-namespace DIR=NS``, the longest DIR wins).
Every lookup error says which of these applied, so a missing ``metadata.namespace``
is never a silent surprise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from kulta.errors import ConfigError
from kulta.model.rollout import DEFAULT_NAMESPACE

__all__ = ["DefaultNamespaces", "check_namespace", "parse_path_namespace"]

#: used with ``fullmatch`` (``$`` would also match before a final newline)
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_OPTION = "--namespace"
_PATH_OPTION = "--path-namespace"


def check_namespace(text: str, option: str = _OPTION) -> str:
    """``text`` if it is a valid namespace name (a DNS label), else a ConfigError naming ``option``."""
    if len(text) > 63 or not _DNS_LABEL.fullmatch(text):
        raise ConfigError(
            f"{option}: {text!r} is not a valid namespace: use at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return text


def _directory(text: str) -> str:
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts:
        raise ConfigError(f"{_PATH_OPTION}: {text!r} must be a directory relative to the repository root, without '..'")
    posix = pure.as_posix()
    return "" if posix == "." else posix


def parse_path_namespace(text: str) -> tuple[str, str]:
    """``"apps/shop=shop"`` -> ``("apps/shop", "shop")``: files under that directory default to that namespace."""
    directory, sep, namespace = text.rpartition("=")
    if not sep or not directory:
        raise ConfigError(f"{_PATH_OPTION}: {text!r} must be DIR=NAMESPACE, e.g. apps/shop=shop")
    return _directory(directory), check_namespace(namespace, _PATH_OPTION)


@dataclass(frozen=True)
class DefaultNamespaces:
    """Which namespace a document without ``metadata.namespace`` is in, by the file it is in.

    ``by_directory`` pairs a directory (POSIX, relative to the ``base`` of ``load_paths``)
    with a namespace; a file under several of them takes the longest.
    """

    default: str = DEFAULT_NAMESPACE
    by_directory: tuple[tuple[str, str], ...] = ()

    def _directory_of(self, file: str) -> tuple[str, str] | None:
        best: tuple[str, str] | None = None
        for directory, namespace in self.by_directory:
            inside = not directory or file == directory or file.startswith(directory + "/")
            if inside and (best is None or len(directory) > len(best[0])):
                best = (directory, namespace)
        return best

    def for_file(self, file: str) -> str:
        """The namespace of a namespace-less document of ``file``."""
        found = self._directory_of(file)
        return self.default if found is None else found[1]

    def origin(self, file: str) -> str:
        """Why a namespace-less document of ``file`` is in ``for_file(file)``: for error messages."""
        found = self._directory_of(file)
        if found is None:
            return f"the default namespace of these files; set metadata.namespace or {_OPTION}"
        where = found[0] or "."
        return f"the namespace of the files under {where} ({_PATH_OPTION}); set metadata.namespace to change it"
