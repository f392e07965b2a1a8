"""FROM NAME: the local store first or the registry, per the ``--pull`` policy.

* ``missing`` (default): an image the store has under that name (as written, or as Docker
  normalises it; a digest reference pulled before) is used; otherwise it is pulled;
* ``always``: pulled (only layers the store lacks are downloaded);
* ``never``: the store only.

With a ``platform``, a local image counts only when its config is for that platform (an
image of another architecture under the same name is pulled over, as Docker does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocibuild.errors import ImageNotFound, OcibuildError
from ocibuild.image.model import JSON, canonical_json
from ocibuild.image.store import Store
from ocibuild.observe.log import Reporter
from ocibuild.platforms import matches, parse_platform
from ocibuild.registry.reference import parse_reference

if TYPE_CHECKING:
    from ocibuild.registry.transfer import RegistryOptions

# pull/push (oras, requests) are imported inside the functions: a FROM that the local
# store satisfies never pays for loading them.


def _local(store: Store, name: str, platform: str | None = None) -> str | None:
    found: str | None
    try:
        found = store.resolve(name)
    except OcibuildError:
        from ocibuild.registry.pull import find_local

        try:
            found = find_local(store, parse_reference(name))
        except OcibuildError:
            return None
    if found is None or platform is None:
        return found
    return found if matches(store.get_config(found), parse_platform(platform)) else None


def resolve_base(
    store: Store,
    name: str,
    *,
    policy: str = "missing",
    tls_verify: bool | None = None,
    reporter: Reporter | None = None,
    platform: str | None = None,
) -> str:
    """The config digest of base image ``name``, pulled when the policy says so."""
    if name.startswith("sha256:"):
        return store.resolve(name)
    if policy != "always":
        found = _local(store, name, platform)
        if found is not None:
            return found
        if policy == "never":
            what = f" for {platform}" if platform else ""
            raise ImageNotFound(
                f"{name}{what} is not in the local store and --pull=never forbids pulling it",
                hint=f"pull it first (ocibuild pull {name}) or use --pull=missing",
            )
    from ocibuild.registry.progress import ReporterProgress
    from ocibuild.registry.pull import pull
    from ocibuild.registry.transfer import RegistryOptions

    ref = parse_reference(name)
    progress = ReporterProgress(reporter) if reporter is not None else None
    result = pull(
        store,
        ref,
        platform=platform,
        ropts=RegistryOptions(tls_verify=tls_verify),
        progress=progress,
    )
    return result.image_id


def push_name(
    store: Store,
    image_id: str,
    name: str,
    *,
    compression: str = "gzip",
    tls_verify: bool | None = None,
    reporter: Reporter | None = None,
) -> str:
    """Push ``image_id`` as ``name`` (``build --push``, ``--output type=registry``);
    returns the manifest digest."""
    from ocibuild.registry.progress import ReporterProgress
    from ocibuild.registry.push import push
    from ocibuild.registry.transfer import RegistryOptions

    progress = ReporterProgress(reporter) if reporter is not None else None
    result = push(
        store,
        image_id,
        parse_reference(name),
        compression=compression,
        ropts=RegistryOptions(tls_verify=tls_verify),
        progress=progress,
    )
    return result.manifest_digest


def push_index(
    store: Store,
    images: list[tuple[str, JSON]],
    name: str,
    *,
    compression: str = "gzip",
    tls_verify: bool | None = None,
    reporter: Reporter | None = None,
    ropts: RegistryOptions | None = None,
) -> str:
    """Push several images (config digest, platform descriptor) and one OCI image index
    over them as ``name`` (a multi-platform image); returns the index's digest. Each image
    goes up first (under the tag, which the index then takes over). ``ropts``: the
    RegistryOptions (credentials, jobs) to use instead of ``tls_verify`` alone."""
    from ocibuild.image.model import MT_OCI_INDEX, MT_OCI_MANIFEST, descriptor, make_index
    from ocibuild.registry.progress import ReporterProgress
    from ocibuild.registry.push import push, put_manifest
    from ocibuild.registry.transfer import RegistryOptions, connect

    ref = parse_reference(name)
    ref = ref if ref.tag else ref.with_tag("latest")
    ropts = ropts if ropts is not None else RegistryOptions(tls_verify=tls_verify)
    progress = ReporterProgress(reporter) if reporter is not None else None
    entries = []
    for image_id, platform in images:
        result = push(store, image_id, ref, compression=compression, ropts=ropts, progress=progress)
        entries.append(
            descriptor(
                MT_OCI_MANIFEST, result.manifest_digest, result.manifest_size, platform=platform
            )
        )
    index = canonical_json(make_index(entries))
    digest = put_manifest(connect(ref, ropts), ref, index, MT_OCI_INDEX, "image index")
    if reporter is not None:
        reporter.info(f"pushed {ref.familiar()}@{digest} (index of {len(entries)} platforms)")
    return digest
