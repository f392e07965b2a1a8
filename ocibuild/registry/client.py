"""One registry host, spoken to through oras.

What oras gives us: ``oras.provider.Registry`` (its ``requests`` session, with cookies
off), its token auth backend (``TokenAuth.request_token``: the bearer-token flow, with
Basic credentials or anonymously) and its ``WWW-Authenticate`` parser. What we add here:
Basic-challenge registries (docker-registry with htpasswd answers ``Basic realm=...``,
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
from urllib.parse import urljoin

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


def error_message(resp: requests.Response) -> str:
    """The registry's own ``errors[].message`` (or the HTTP reason)."""
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
        self.auth = self.oras.auth
        if credentials is not None:
            self.auth.set_basic_auth(credentials.username, credentials.password)
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
        try:
            token = self.auth.request_token(challenge)
        except requests.exceptions.RequestException as e:
            raise RegistryError(
                f"{self.host}: cannot get a token from {challenge.realm}: {reason(e)}"
            ) from e
        if not token:
            raise AuthError(
                f"{self.host}: the token service refused access to {challenge.scope}",
                hint=self._login_hint(),
            )
        with self._lock:
            self._tokens[scope] = str(token)

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
        resp: requests.Response = self.session.request(
            method,
            url,
            headers=all_headers,
            data=data,
            stream=stream,
            verify=self.verify,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            allow_redirects=True,
        )
        return resp

    def _detect_scheme(self) -> None:
        if self._scheme_known:
            return
        try:
            self.session.get(self.base, verify=False, timeout=CONNECT_TIMEOUT)
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
                time.sleep(delay)
                attempt += 1
                continue
            self.raise_for(resp, what)

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
