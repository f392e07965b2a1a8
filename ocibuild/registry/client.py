"""One registry host, spoken to through oras.

What oras gives us: ``oras.provider.Registry`` (its ``requests`` session, with cookies
off) and its ``WWW-Authenticate`` parser. What we add here: the bearer-token flow, with
Basic credentials sent to the token service only over https or to the registry's own
host and port (never over plain http to another host: a hostile registry could name any
realm), anonymously otherwise; bodies read with hard limits (a registry's sizes are not
trusted); Basic-challenge registries (docker-registry with htpasswd answers ``Basic realm=...``,
which oras' token backend would try to fetch as a token realm), one token per scope
(pull on one repository, push on another), retries with exponential backoff on
connection errors, 429 and 5xx, and errors that say what happened and what to do.

Scheme: loopback hosts (``localhost``, ``127.0.0.0/8``, ``::1``) speak plain HTTP, as
Docker does; any other host speaks HTTPS with verification. ``tls_verify=False`` accepts
an unverified certificate and falls back to plain HTTP when the host has no TLS;
``tls_verify=True`` forces verified HTTPS even on loopback.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

import oras.auth.utils
import oras.provider
import requests
import requests.adapters

from ocibuild.registry.auth import Credentials
from ocibuild.registry.errors import AuthError, NotFoundError, RegistryError, Unreachable
from ocibuild.registry.reference import is_loopback

DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 0.5
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 120.0
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Bodies ocibuild reads whole (errors, tokens, answers to PUT/HEAD) are small: a registry
# that sends more is cut off, never buffered.
MAX_SMALL_BODY = 1 << 20
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")

Body = bytes | Callable[[], Any] | None


def transient(exc: BaseException) -> bool:
    """A network error worth retrying (not a TLS failure)."""
    return isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | requests.exceptions.ChunkedEncodingError,
    ) and not isinstance(exc, requests.exceptions.SSLError)


def reason(exc: BaseException) -> str:
    """The short cause of a requests error (``Connection refused``)."""
    text = str(exc)
    found = _ERRNO_TEXT.findall(text)
    if found:
        return str(found[-1]).strip()
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was closed by the registry"
    return text if len(text) < 200 else text[:200] + "..."


def read_small(resp: requests.Response, limit: int = MAX_SMALL_BODY) -> bytes:
    """The body of ``resp`` (made with ``stream=True``), at most ``limit`` bytes read;
    it is then ``resp.content``. A longer body raises RegistryError."""
    if getattr(resp, "_content_consumed", False):
        return resp.content or b""
    try:
        data = resp.raw.read(limit + 1, decode_content=True) or b""
    except Exception as e:
        resp.close()
        raise RegistryError(f"reading an answer of {resp.url} failed: {e}") from e
    if len(data) > limit:
        resp.close()
        raise RegistryError(
            f"{resp.url} answered with more than {limit} bytes where a short reply was due",
            hint="the registry (or the server at that address) misbehaves",
        )
    resp._content = bytes(data)
    resp._content_consumed = True
    return bytes(data)


def error_message(resp: requests.Response) -> str:
    """The registry's own ``errors[].message`` (or the HTTP reason)."""
    try:
        read_small(resp, 64 << 10)
    except RegistryError:
        return f"HTTP {resp.status_code} {resp.reason or ''}".strip()
    try:
        doc = resp.json()
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errors, list) and errors:
            parts = []
            for err in errors:
                if isinstance(err, dict):
                    code = str(err.get("code", "")).lower().replace("_", " ")
                    parts.append(str(err.get("message") or code))
            if parts:
                return "; ".join(parts)
    except ValueError:
        pass
    return f"HTTP {resp.status_code} {resp.reason or ''}".strip()


class Client:
    """Requests to ``https://HOST/v2/...`` (or http), authenticated and retried."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        tls_verify: bool | None = None,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        pool: int = 8,
    ) -> None:
        self.host = host
        self.credentials = credentials
        self.retries = retries
        self.backoff = backoff
        # told before each retry ("... retrying in 2s (attempt 2 of 4)"): progress output
        self.on_retry: Callable[[str], None] | None = None
        self.loopback = is_loopback(host)
        plain = self.loopback and tls_verify is not True
        self.verify = tls_verify is not False
        self.scheme = "http" if plain else "https"
        self._scheme_known = plain or tls_verify is not False
        self.oras = oras.provider.Registry(
            hostname=host, insecure=plain, tls_verify=self.verify, auth_backend="token"
        )
        self.session: requests.Session = self.oras.session
        if self.loopback:
            self.session.trust_env = False  # no proxy for loopback, ever
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=pool)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._basic = False  # the registry asked for Basic auth
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- URLs --------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}/v2/"

    def url(self, path: str) -> str:
        return path if "://" in path else self.base + path.lstrip("/")

    @staticmethod
    def location(resp: requests.Response) -> str:
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"registry answered {resp.status_code} without a Location")
        return urljoin(resp.url, loc)

    # -- auth --------------------------------------------------------------------------
    def _auth_header(self, scope: str) -> dict[str, str]:
        with self._lock:
            if self._basic and self.credentials is not None:
                return {"Authorization": "Basic " + self.credentials.basic()}
            token = self._tokens.get(scope)
        return {"Authorization": "Bearer " + token} if token else {}

    def _login_hint(self) -> str:
        if self.credentials is not None:
            return (
                f"check the user name and password for {self.host} "
                f"(from {self.credentials.source or 'the command line'}); "
                f"'ocibuild login {self.host}' replaces them"
            )
        return f"log in first: ocibuild login {self.host}"

    def _authenticate(self, resp: requests.Response, scope: str, sent: bool) -> None:
        """Answer a 401 challenge; raises AuthError when that cannot work."""
        raw = resp.headers.get("WWW-Authenticate", "")
        kind = raw.split(" ", 1)[0].lower()
        who = "wrong user name or password" if self.credentials else "authentication required"
        if kind == "basic":
            if self.credentials is None or sent:
                raise AuthError(f"{self.host}: {who}", hint=self._login_hint())
            with self._lock:
                self._basic = True
            return
        if kind != "bearer" or sent:
            raise AuthError(f"{self.host}: {who} ({error_message(resp)})", hint=self._login_hint())
        challenge = oras.auth.utils.parse_auth_header(raw)
        if not challenge.scope and scope:
            challenge.scope = scope
        realm = str(challenge.realm or "")
        if not realm:
            raise RegistryError(f"{self.host}: a Bearer challenge without a realm: {raw!r}")
        if "://" not in realm:
            realm = f"{self.scheme}://{realm}"
        withheld = self.credentials is not None and not self.realm_trusted(realm)
        try:
            token = self._request_token(realm, challenge.service, challenge.scope, withheld)
        except requests.exceptions.RequestException as e:
            raise RegistryError(f"{self.host}: cannot get a token from {realm}: {reason(e)}") from e
        if not token:
            hint = self._login_hint()
            if withheld:
                hint = (
                    f"your credentials for {self.host} were not sent to {realm}: a token "
                    "service on another host gets them only over https"
                )
            raise AuthError(
                f"{self.host}: the token service refused access to {challenge.scope}", hint=hint
            )
        with self._lock:
            self._tokens[scope] = str(token)

    def realm_trusted(self, realm: str) -> bool:
        """May the registry's credentials go to the token service at ``realm``? Over
        https, yes; over plain http only to the registry's own host and port."""
        url = urlsplit(realm)
        if url.scheme == "https":
            return True
        if url.scheme != "http":
            return False
        own = urlsplit(f"{self.scheme}://{self.host}")
        return (url.hostname, url.port or 80) == (own.hostname, own.port or 80)

    def _request_token(
        self, realm: str, service: str | None, scope: str | None, anonymous: bool
    ) -> str | None:
        """GET a token from ``realm`` (Basic credentials unless ``anonymous``); the
        answer is read up to MAX_SMALL_BODY. None when the service refuses."""
        params = {k: v for k, v in (("service", service), ("scope", scope)) if v}
        headers = {"Accept": "application/json"}
        if self.credentials is not None and not anonymous:
            headers["Authorization"] = "Basic " + self.credentials.basic()
        resp = self.session.get(
            realm,
            headers=headers,
            params=params,
            verify=self.verify,
            stream=True,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
        )
        try:
            if resp.status_code != 200:
                return None
            read_small(resp)
            try:
                doc = resp.json()
            except ValueError:
                return None
        finally:
            resp.close()
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        return str(token) if isinstance(token, str) and token else None

    # -- requests ----------------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        scope: str,
        headers: dict[str, str] | None,
        body: Body,
        stream: bool,
    ) -> requests.Response:
        all_headers = {**(headers or {}), **self._auth_header(scope)}
        data = body() if callable(body) else body
        # Always streamed: a body is read here only up to MAX_SMALL_BODY. Redirects (a
        # blob on a CDN) are followed; requests drops the Authorization header when one
        # leads to another host, port or scheme.
        resp: requests.Response = self.session.request(
            method,
            url,
            headers=all_headers,
            data=data,
            stream=True,
            verify=self.verify,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            allow_redirects=True,
        )
        if not stream and resp.status_code not in (401,) and resp.status_code < 300:
            read_small(resp)
        return resp

    def _detect_scheme(self) -> None:
        if self._scheme_known:
            return
        try:
            self.session.get(self.base, verify=False, timeout=CONNECT_TIMEOUT, stream=True).close()
        except requests.exceptions.SSLError:
            self.scheme = "http"
        except requests.exceptions.ConnectionError:
            pass
        self._scheme_known = True

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        what: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        expect: Iterable[int] = (200,),
        retry: bool = True,
    ) -> requests.Response:
        """Send with auth and retries; a status outside ``expect`` raises.

        ``what`` names the object in messages (``manifest team/app:1``). A callable
        ``body`` is called for every attempt (so a file can be reopened).
        """
        self._detect_scheme()
        url = self.url(path)
        wanted = set(expect)
        attempt = 0
        sent_auth = False
        while True:
            try:
                resp = self._send(method, url, scope, headers, body, stream)
            except requests.exceptions.SSLError as e:
                raise RegistryError(
                    f"{self.host}: TLS failed: {reason(e)}",
                    hint="for a registry without a valid certificate pass --tls-verify=false",
                ) from e
            except requests.exceptions.RequestException as e:
                if retry and transient(e) and attempt < self.retries:
                    self.retrying(f"cannot reach {self.host}: {reason(e)}", attempt)
                    time.sleep(self.backoff * 2**attempt)
                    attempt += 1
                    continue
                raise Unreachable(
                    f"cannot reach registry {self.host}: {reason(e)}",
                    hint="check that the registry is running and reachable; run the "
                    "command again once it is: what is complete is not transferred again",
                ) from e
            if resp.status_code == 401:
                resp.close()
                self._authenticate(resp, scope, sent_auth)
                sent_auth = True
                continue
            if resp.status_code in wanted:
                return resp
            if resp.status_code in _TRANSIENT_STATUS and retry and attempt < self.retries:
                resp.close()
                delay = self.backoff * 2**attempt
                after = resp.headers.get("Retry-After", "")
                if after.isdigit():
                    delay = min(float(after), 30.0)
                self.retrying(f"{self.host}: {what}: HTTP {resp.status_code}", attempt, delay)
                time.sleep(delay)
                attempt += 1
                continue
            self.raise_for(resp, what)

    def retrying(self, problem: str, attempt: int, delay: float | None = None) -> None:
        """Say that a request failed and is tried again (attempt 0: the first failed)."""
        if self.on_retry is None:
            return
        delay = self.backoff * 2**attempt if delay is None else delay
        self.on_retry(
            f"{problem}; retrying in {delay:.1f}s (attempt {attempt + 2} of {self.retries + 1})"
        )

    def raise_for(self, resp: requests.Response, what: str) -> None:
        message = error_message(resp)
        resp.close()
        if resp.status_code == 404:
            raise NotFoundError(
                f"{what} not found in {self.host}: {message}",
                hint="check the name and tag (the registry is case and spelling exact)",
            )
        if resp.status_code in (401, 403):
            hint = self._login_hint()
            raise AuthError(f"{self.host} denied access to {what}: {message}", hint=hint)
        raise RegistryError(f"{self.host}: {what}: {message}")

    def ping(self) -> None:
        """``GET /v2/`` with the credentials: raises AuthError when they are refused."""
        self.request("GET", "", scope="", what="the API root", expect=(200,))
