"""Fetch image URLs under an allow-list policy, with streaming size and time limits."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import aiohttp
from yarl import URL

from .errors import ErrorType, ImageError
from .settings import Settings

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_CHUNK_BYTES = 64 * 1024


class ImageFetcher:
    """One pooled aiohttp session per process; a global cap on simultaneous fetches."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    async def fetch(self, url: str) -> bytes:
        """The body of `url`, following allowed redirects; raises ImageError."""
        target = check_url(url, self.settings)
        session = self._ensure_session()
        async with self._slots:
            try:
                async with asyncio.timeout(self.settings.fetch_total_timeout_s):
                    return await self._follow(session, target)
            except TimeoutError:
                raise ImageError(
                    ErrorType.FETCH_FAILED,
                    f"fetching took longer than {self.settings.fetch_total_timeout_s:g} s",
                ) from None
            except aiohttp.ClientError as error:
                raise ImageError(ErrorType.FETCH_FAILED, f"fetch failed: {error}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.settings.fetch_connect_timeout_s,
                sock_read=self.settings.fetch_read_timeout_s,
            )
            self._session = aiohttp.ClientSession(
                timeout=timeout,
                headers={"User-Agent": self.settings.user_agent},
                trust_env=True,  # HTTPS_PROXY / NO_PROXY for production egress
                auto_decompress=True,
            )
            self._slots = asyncio.Semaphore(self.settings.fetch_max_concurrency)
        return self._session

    async def _follow(self, session: aiohttp.ClientSession, target: URL) -> bytes:
        for _hop in range(self.settings.fetch_max_redirects + 1):
            async with session.get(target, allow_redirects=False) as response:
                if response.status in _REDIRECT_STATUSES and "Location" in response.headers:
                    target = check_url(
                        str(target.join(URL(response.headers["Location"]))), self.settings
                    )
                    continue
                if not 200 <= response.status < 300:
                    raise ImageError(
                        ErrorType.FETCH_FAILED, f"the server answered HTTP {response.status}"
                    )
                return await _read_limited(response, self.settings.max_image_bytes)
        raise ImageError(
            ErrorType.FETCH_FAILED,
            f"more than {self.settings.fetch_max_redirects} redirects",
        )


async def _read_limited(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """Stream the body and stop as soon as it passes the limit; Content-Length is not trusted."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            raise ImageError(ErrorType.TOO_LARGE, f"the image is larger than {max_bytes} bytes")
    return bytes(body)


def check_url(url: str, settings: Settings) -> URL:
    """Apply the allow-list before any connection is made."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as error:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"invalid URL: {error}") from None
    scheme = (parsed.scheme or "").lower()
    host = (parsed.host or "").lower().rstrip(".")
    if scheme not in settings.fetch_allowed_schemes:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"URL scheme {scheme!r} is not allowed")
    if parsed.user is not None or parsed.password is not None:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, "URLs with user-info are not allowed")
    if host not in settings.fetch_allowed_hosts:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"host {host!r} is not allowed")
    port = parsed.explicit_port or _DEFAULT_PORTS.get(scheme)
    if port not in settings.fetch_allowed_ports:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"port {port} is not allowed")
    _check_literal_address(host, settings)
    return parsed


def _check_literal_address(host: str, settings: Settings) -> None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return
    if address.is_loopback and settings.fetch_allow_loopback:
        return
    if not address.is_global:
        raise ImageError(ErrorType.URL_NOT_ALLOWED, f"address {address} is not public")
