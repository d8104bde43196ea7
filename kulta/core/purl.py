"""Container image references as package URLs (``pkg:oci/...``).

CDEvents name the artifact a service runs with ``artifactId``, and the spec's
examples use package URLs. An image string from a pod template is not one: it
may omit the registry (Docker Hub), the ``library/`` prefix, the tag, or carry a
digest. This module parses the reference the way container runtimes do and
renders the purl the way the purl ``oci`` type asks: the name is the last path
segment (lowercased), the version is the digest, and the physical location goes
into the ``repository_url`` and ``tag`` qualifiers (sorted by key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from kulta.errors import PermanentError

__all__ = [
    "DOCKER_HUB",
    "ImageRef",
    "ImageReferenceError",
    "oci_purl",
    "parse_image",
]

#: Registry that runtimes assume when a reference names none.
DOCKER_HUB = "docker.io"
#: Aliases of Docker Hub normalised to ``DOCKER_HUB``.
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: Docker Hub's namespace of official images (``nginx`` is ``library/nginx``).
_OFFICIAL_NAMESPACE = "library"
#: Tag runtimes assume when a reference has neither tag nor digest.
_DEFAULT_TAG = "latest"

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}")
_REGISTRY = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)

#: Characters a purl qualifier value may carry unencoded besides unreserved ones.
_QUALIFIER_SAFE = "/:"


class ImageReferenceError(PermanentError):
    """An image string in the rollout's status is not a valid container image reference."""

    def __init__(self, image: str, reason: str) -> None:
        self.image = image
        self.reason = reason
        super().__init__(f"image {image!r} is not a valid image reference: {reason}")


@dataclass(frozen=True)
class ImageRef:
    """A fully qualified image reference: registry, repository path, tag, digest."""

    registry: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """The last segment of the repository path (the purl name)."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def repository_url(self) -> str:
        return f"{self.registry}/{self.path}"


def _looks_like_registry(component: str) -> bool:
    """Runtimes treat the first segment as a host only if it could not be a path."""
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def parse_image(image: str) -> ImageRef:
    """Parse ``[registry[:port]/]path[:tag][@digest]`` with Docker's defaults.

    Raises :class:`ImageReferenceError` naming the image and what is wrong.
    """
    ref = image.strip()
    if not ref:
        raise ImageReferenceError(image, "it is empty")
    if any(ch.isspace() for ch in ref):
        raise ImageReferenceError(image, "it contains whitespace")

    digest = ""
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise ImageReferenceError(image, f"digest {digest!r} is not <algorithm>:<hex>")
        algorithm, hexpart = digest.split(":", 1)
        digest = f"{algorithm.lower()}:{hexpart.lower()}"

    tag = ""
    last_slash = ref.rfind("/")
    last_colon = ref.rfind(":")
    if last_colon > last_slash:
        ref, tag = ref[:last_colon], ref[last_colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ImageReferenceError(image, f"tag {tag!r} is not a valid tag")

    first, sep, rest = ref.partition("/")
    if sep and _looks_like_registry(first):
        registry, path = first, rest
        if not _REGISTRY.fullmatch(registry):
            raise ImageReferenceError(image, f"registry {registry!r} is not a host[:port]")
    else:
        registry, path = DOCKER_HUB, ref
    if registry.lower() in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"{_OFFICIAL_NAMESPACE}/{path}"

    if not path:
        raise ImageReferenceError(image, "the repository path is empty")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise ImageReferenceError(
                image, f"repository path segment {component!r} must be lowercase letters, digits and . _ - separators"
            )

    if not tag and not digest:
        tag = _DEFAULT_TAG
    return ImageRef(registry=registry, path=path, tag=tag, digest=digest)


def oci_purl(image: str) -> str:
    """The purl of an image: ``pkg:oci/<name>[@<digest>]?repository_url=...&tag=...``.

    >>> oci_purl("registry.local/team/demo:v2")
    'pkg:oci/demo?repository_url=registry.local/team/demo&tag=v2'
    """
    ref = parse_image(image)
    purl = f"pkg:oci/{quote(ref.name.lower(), safe='')}"
    if ref.digest:
        purl += "@" + quote(ref.digest, safe="")
    qualifiers = {"repository_url": ref.repository_url}
    if ref.tag:
        qualifiers["tag"] = ref.tag
    encoded = "&".join(f"{key}={quote(value, safe=_QUALIFIER_SAFE)}" for key, value in sorted(qualifiers.items()))
    return f"{purl}?{encoded}"
