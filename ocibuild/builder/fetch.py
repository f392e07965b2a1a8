"""ADD https://...: download into a scratch file, check ``--checksum``, name it.

As BuildKit: the file is named after the ``Content-Disposition`` filename or the last
component of the URL path, gets mode 0600 and the ``Last-Modified`` time, and is not
unpacked. ``--checksum=sha256:HEX`` (also sha384, sha512) must match the body.
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
import os
import posixpath
import re
import urllib.error
import urllib.parse
import urllib.request

from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError
from ocibuild.observe.log import human_size
from ocibuild.registry.progress import Progress

URL_RE = re.compile(r"^https?://", re.IGNORECASE)
GIT_RE = re.compile(r"^(git://|git@|ssh://|[^/]+\.git(#|$))|\.git(#.*)?$")
DIGEST_RE = re.compile(r"^(sha256|sha384|sha512):([0-9a-f]+)$")
_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
TIMEOUT = 60.0


def is_url(src: str) -> bool:
    return bool(URL_RE.match(src))


def is_git(src: str) -> bool:
    return bool(GIT_RE.search(src)) and not os.path.exists(src)


def parse_checksum(value: str) -> tuple[str, str]:
    m = DIGEST_RE.match(value)
    if m is None or len(m.group(2)) != _HEX_LEN[m.group(1)]:
        raise OcibuildError(
            f"invalid checksum digest format: {value!r}",
            hint="give --checksum=sha256:<64 hex digits>",
        )
    return m.group(1), m.group(2)


@dataclass(frozen=True)
class Download:
    path: str  # the scratch file
    name: str  # the file name to use in the image
    mtime: float | None


def filename_for(url: str, disposition: str | None) -> str:
    if disposition:
        msg = email.message.Message()
        msg["content-disposition"] = disposition
        name = msg.get_filename()
        if name:
            return posixpath.basename(name)
    path = urllib.parse.urlparse(url).path
    name = posixpath.basename(path.rstrip("/")) if path else ""
    return urllib.parse.unquote(name) or "index.html"


def download(
    url: str, dest_dir: str, checksum: str | None, progress: Progress | None = None
) -> Download:
    """Fetch ``url`` into ``dest_dir``; raise OcibuildError on HTTP errors or mismatch.
    ``progress`` hears of it under the key ``url`` (the caller ends it)."""
    algo_hex = parse_checksum(checksum) if checksum else None
    hasher = hashlib.new(algo_hex[0] if algo_hex else "sha256")
    path = os.path.join(dest_dir, "download")
    request = urllib.request.Request(url, headers={"User-Agent": "ocibuild"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
            length = resp.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else 0
            if progress is not None:
                progress.begin(url, url, total)
                progress.note(f"downloading {url}" + (f" ({human_size(total)})" if total else ""))
            done = 0
            with open(path, "wb") as f:
                while chunk := resp.read(1 << 20):
                    hasher.update(chunk)
                    f.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress.update(url, done)
            disposition = resp.headers.get("Content-Disposition")
            modified = resp.headers.get("Last-Modified")
    except urllib.error.HTTPError as exc:
        raise OcibuildError(
            f"invalid response status {exc.code} fetching {url}",
            hint="check the URL; ADD downloads it as it is",
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OcibuildError(f"cannot fetch {url}: {reason}") from None
    if algo_hex and hasher.hexdigest() != algo_hex[1]:
        raise OcibuildError(
            f"digest mismatch {algo_hex[0]}:{hasher.hexdigest()}: {checksum}",
            hint="the downloaded content differs from --checksum",
        )
    mtime = None
    if modified:
        parsed = email.utils.parsedate_to_datetime(modified)
        mtime = parsed.timestamp() if parsed else None
    return Download(path, filename_for(url, disposition), mtime)
