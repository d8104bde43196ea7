"""Image references → purl ``oci`` package URLs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kulta.core.purl import ImageRef, ImageReferenceError, oci_purl, parse_image

DIGEST = "sha256:" + "0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427"
DIGEST_ENC = DIGEST.replace(":", "%3A")


@pytest.mark.parametrize(
    ("image", "purl"),
    [
        ("registry.local/team/demo:v2", "pkg:oci/demo?repository_url=registry.local/team/demo&tag=v2"),
        (f"registry.local/team/demo@{DIGEST}", f"pkg:oci/demo@{DIGEST_ENC}?repository_url=registry.local/team/demo"),
        (
            f"registry.local/team/demo:v2@{DIGEST}",
            f"pkg:oci/demo@{DIGEST_ENC}?repository_url=registry.local/team/demo&tag=v2",
        ),
        ("nginx", "pkg:oci/nginx?repository_url=docker.io/library/nginx&tag=latest"),
        ("nginx:1.27", "pkg:oci/nginx?repository_url=docker.io/library/nginx&tag=1.27"),
        ("bitnami/redis:7.2", "pkg:oci/redis?repository_url=docker.io/bitnami/redis&tag=7.2"),
        ("docker.io/nginx:1.27", "pkg:oci/nginx?repository_url=docker.io/library/nginx&tag=1.27"),
        ("index.docker.io/library/nginx", "pkg:oci/nginx?repository_url=docker.io/library/nginx&tag=latest"),
        ("localhost:5000/app:dev", "pkg:oci/app?repository_url=localhost:5000/app&tag=dev"),
        ("localhost/app", "pkg:oci/app?repository_url=localhost/app&tag=latest"),
        (
            "registry.local:5000/team/sub/app:1.0.0-rc.1",
            "pkg:oci/app?repository_url=registry.local:5000/team/sub/app&tag=1.0.0-rc.1",
        ),
        (
            f"ghcr.io/org/app@{DIGEST.upper().replace('SHA256', 'sha256')}",
            f"pkg:oci/app@{DIGEST_ENC}?repository_url=ghcr.io/org/app",
        ),
        ("10.0.0.5:443/ns/svc:v1", "pkg:oci/svc?repository_url=10.0.0.5:443/ns/svc&tag=v1"),
        ("[::1]:5000/app:v1", "pkg:oci/app?repository_url=%5B::1%5D:5000/app&tag=v1"),
        ("gcr.io/distroless/static:nonroot", "pkg:oci/static?repository_url=gcr.io/distroless/static&tag=nonroot"),
    ],
)
def test_oci_purl(image: str, purl: str) -> None:
    assert oci_purl(image) == purl


@pytest.mark.parametrize(
    ("image", "ref"),
    [
        ("nginx", ImageRef("docker.io", "library/nginx", "latest", "")),
        ("localhost:5000/app:dev", ImageRef("localhost:5000", "app", "dev", "")),
        (f"a.io/b/c@{DIGEST}", ImageRef("a.io", "b/c", "", DIGEST)),
        ("team/app", ImageRef("docker.io", "team/app", "latest", "")),
    ],
)
def test_parse_image(image: str, ref: ImageRef) -> None:
    assert parse_image(image) == ref


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("", "empty"),
        ("nginx latest", "whitespace"),
        ("nginx@sha256:xyz", "digest"),
        ("nginx:bad/tag:", "tag"),
        ("registry.local/Team/app", "lowercase"),
        ("registry.local/", "empty"),
        ("app:-bad", "tag"),
        ("my_registry.local:5000/app", "registry"),
    ],
)
def test_invalid_images_raise_a_typed_error_naming_the_image(image: str, reason: str) -> None:
    with pytest.raises(ImageReferenceError, match=reason) as info:
        oci_purl(image)
    assert info.value.image == image


components = st.from_regex(r"[a-z0-9]{1,8}(?:[-_.][a-z0-9]{1,8})?", fullmatch=True)


@given(
    registry=st.sampled_from(["ghcr.io", "registry.local:5000", "localhost", "docker.io"]),
    path=st.lists(components, min_size=1, max_size=3),
    tag=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)),
    with_digest=st.booleans(),
)
def test_purl_shape_for_any_reference(registry: str, path: list[str], tag: str | None, with_digest: bool) -> None:
    image = f"{registry}/{'/'.join(path)}" + (f":{tag}" if tag else "") + (f"@{DIGEST}" if with_digest else "")
    purl = oci_purl(image)
    name = path[-1]
    assert purl.startswith(f"pkg:oci/{name}" + (f"@{DIGEST_ENC}?" if with_digest else "?"))
    query = purl.split("?", 1)[1]
    pairs = dict(p.split("=", 1) for p in query.split("&"))
    assert list(pairs) == sorted(pairs)
    assert pairs["repository_url"].endswith("/".join(path))
    if tag:
        assert pairs["tag"] == tag
    elif with_digest:
        assert "tag" not in pairs
    else:
        assert pairs["tag"] == "latest"
