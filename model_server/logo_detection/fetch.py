"""Fetch image URLs under an allow-list policy, with streaming size and time limits.

The policy is applied twice: to the URL (scheme, host, port, user-info, literal IP) before any
connection, and to every address DNS returns, inside the connector, so the address actually
connected to is always one we checked (a name that resolves to 169.254.169.254 is refused
without a packet being sent there). Redirects are followed here, one hop at a time, each hop
re-checked against the whole policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.helpers import proxies_from_env
from aiohttp.resolver import DefaultResolver
from yarl import URL

from .errors import ErrorType, ImageError
from .settings import Settings

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_CHUNK_BYTES = 64 * 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_refusal(address: Address, allow_loopback: bool = False) -> str | None:
    """Why we won't connect to `address` (None: it is public, or loopback when allowed)."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 address that carries an IPv4 one is judged by the IPv4 address it reaches.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = address_refusal(embedded, allow_loopback)
            return f"{reason} (via {address})" if reason else None
        if address.is_site_local:
            return "a site-local address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    for flag, reason in (
        ("is_unspecified", "the unspecified address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, flag):
            return reason
    return None if address.is_global else "not a public address"


class AddressRefused(Exception):
    """Every address a host resolved to is refused by the policy (never an OSError, so
    aiohttp passes it through unchanged instead of reporting a DNS failure)."""


class PublicAddressResolver(AbstractResolver):
    """DNS that only returns addresses the policy allows: the connector connects to nothing else.

    Proxy hosts from HTTPS_PROXY/HTTP_PROXY are exempt (an egress proxy usually sits on a private
    network); through a proxy the proxy resolves the image host, so it must enforce its own
    egress policy, while our host/port allow-list and literal-address checks still apply.
    """

    def __init__(self, allow_loopback: bool, exempt_hosts: frozenset[str] = frozenset()) -> None:
        self._inner = DefaultResolver()
        self._allow_loopback = allow_loopback
        self._exempt_hosts = exempt_hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        records = await self._inner.resolve(host, port, family)
        if host.lower().rstrip(".") in self._exempt_hosts:
            return records
        allowed, reasons = [], []
        for record in records:
            address = ipaddress.ip_address(record["host"].split("%")[0])
            reason = address_refusal(address, self._allow_loopback)
            if reason is None:
                allowed.append(record)
            else:
                reasons.append(f"{address} is {reason}")
        if not allowed:
            refused = "; ".join(reasons)
            raise AddressRefused(f"host {host!r} resolves only to refused addresses: {refused}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class ImageFetcher:
    """One pooled aiohttp session per process; a global cap on simultaneous fetches."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._resolver: PublicAddressResolver | None = None
        self._slots = asyncio.Semaphore(settings.fetch_max_concurrency)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    async def fetch(self, url: str) -> bytes:
        """The body of `url`, following allowed redirects; raises ImageError."""
        settings = self.settings
        target = check_url(url, settings)
        async with self._slots, self._tracked():
            session = self._ensure_session()
            try:
                async with asyncio.timeout(settings.fetch_total_timeout_s):
                    return await self._follow(session, target)
            except AddressRefused as error:
                raise ImageError(ErrorType.URL_NOT_ALLOWED, str(error)) from None
            except aiohttp.ConnectionTimeoutError:
                message = f"could not connect within {settings.fetch_connect_timeout_s:g} s"
                raise ImageError(ErrorType.FETCH_FAILED, message) from None
            except aiohttp.SocketTimeoutError:
                message = f"the server sent nothing for {settings.fetch_read_timeout_s:g} s"
                raise ImageError(ErrorType.FETCH_FAILED, message) from None
            except TimeoutError:
                message = f"fetching took longer than {settings.fetch_total_timeout_s:g} s"
                raise ImageError(ErrorType.FETCH_FAILED, message) from None
            except aiohttp.ClientConnectorDNSError as error:
                message = f"DNS lookup failed for {error.host!r}: {error.os_error}"
                raise ImageError(ErrorType.FETCH_FAILED, message) from None
            except (aiohttp.ClientError, OSError) as error:
                message = f"fetch failed: {type(error).__name__}: {error}"
                raise ImageError(ErrorType.FETCH_FAILED, message) from None

    async def close(self) -> None:
        """At shutdown: let fetches in flight finish (bounded), then close the pool."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.settings.fetch_total_timeout_s + 1)
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
        resolver, self._resolver = self._resolver, None
        if resolver is not None:
            await resolver.close()

    @contextlib.asynccontextmanager
    async def _tracked(self) -> AsyncIterator[None]:
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def _ensure_session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the server's event loop (aiohttp binds it to a loop)."""
        if self._closing:
            raise ImageError(ErrorType.FETCH_FAILED, "the server is shutting down")
        if self._session is None:
            settings = self.settings
            proxy_hosts = frozenset(
                (info.proxy.host or "").lower() for info in proxies_from_env().values()
            )
            self._resolver = PublicAddressResolver(settings.fetch_allow_loopback, proxy_hosts)
            connector = aiohttp.TCPConnector(
                resolver=self._resolver,
                limit=settings.fetch_max_concurrency,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=settings.fetch_connect_timeout_s,
                    sock_read=settings.fetch_read_timeout_s,
                ),
                # Images are already compressed; refusing gzip also rules out gzip bombs.
                headers={"User-Agent": settings.user_agent, "Accept-Encoding": "identity"},
                auto_decompress=False,
                trust_env=True,  # HTTPS_PROXY / NO_PROXY for production egress
            )
        return self._session

    async def _follow(self, session: aiohttp.ClientSession, target: URL) -> bytes:
        for _hop in range(self.settings.fetch_max_redirects + 1):
            async with session.get(target, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in _REDIRECT_STATUSES and location:
                    target = check_url(_join(target, location), self.settings)
                    continue
                if not 200 <= response.status < 300:
                    raise ImageError(
                        ErrorType.FETCH_FAILED, f"the server answered HTTP {response.status}"
                    )
                return await _read_limited(response, self.settings.max_image_bytes)
        raise ImageError(
            ErrorType.FETCH_FAILED, f"more than {self.settings.fetch_max_redirects} redirects"
        )


def _join(base: URL, location: str) -> str:
    try:
        return str(base.join(URL(location)))
    except (ValueError, TypeError) as error:
        raise ImageError(ErrorType.FETCH_FAILED, f"invalid redirect Location: {error}") from None


async def _read_limited(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """Stream the body and stop as soon as it passes the limit.

    Content-Length is neither required nor trusted: it may only make us give up early.
    """
    too_large = ImageError(ErrorType.TOO_LARGE, f"the image is larger than {max_bytes} bytes")
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def check_url(url: str, settings: Settings) -> URL:
    """Apply the allow-list before any connection is made."""
    try:
        parsed = URL(url)
        scheme = (parsed.scheme or "").lower()
        host = (parsed.host or "").lower().rstrip(".")
        port = (
            parsed.explicit_port if parsed.explicit_port is not None else _DEFAULT_PORTS.get(scheme)
        )
    except (ValueError, TypeError) as error:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"invalid URL: {error}") from None
    if scheme not in settings.fetch_allowed_schemes:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"URL scheme {scheme!r} is not allowed")
    if parsed.user is not None or parsed.password is not None:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, "URLs with user-info are not allowed")
    if _canonical_host(host) not in {_canonical_host(h) for h in settings.fetch_allowed_hosts}:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"host {host!r} is not allowed")
    if port not in settings.fetch_allowed_ports:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"port {port} is not allowed")
    _check_literal_address(host, settings)
    return parsed


def _canonical_host(host: str) -> str:
    """IP literals compared by value (::ffff:127.0.0.1 == ::ffff:7f00:1), names by lower case."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower().rstrip(".")


def _check_literal_address(host: str, settings: Settings) -> None:
    """A literal IP never reaches the resolver, so it is checked here."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return
    reason = address_refusal(address, settings.fetch_allow_loopback)
    if reason is not None:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"address {address} is {reason}")
