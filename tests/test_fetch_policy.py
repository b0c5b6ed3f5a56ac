"""The URL and address policy of fetch.py in process (SSRF protection): which addresses are
refused and why, the scheme/host/port allow-lists from Settings, IP literals, the resolver that
filters what DNS returns, and the same checks on every redirect hop.

DNS is a stand-in resolver (a table in the test): the policy is pure logic. The only sockets are
on loopback, to the local image server, to show that a refused hop is never requested. The real
server's answers (per-instance errors, staying healthy, the real resolver) stay end to end in
test_hostile_fetch.py."""

from __future__ import annotations

import ipaddress
import itertools
import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from bench.harness.image_server import ImageServer
from model_server.logo_detection import fetch
from model_server.logo_detection.errors import ErrorType, ImageError
from model_server.logo_detection.fetch import (
    AddressRefused,
    ImageFetcher,
    PublicAddressResolver,
    address_refusal,
    check_url,
)
from model_server.logo_detection.settings import Settings


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def teredo(client: str) -> str:
    """A Teredo address (2001::/32) whose client, the IPv4 host it reaches, is `client`."""
    server = int(ip("65.54.227.120"))
    flags_and_port = 0x8000_F227
    obscured = int(ip(client)) ^ 0xFFFFFFFF
    return str(
        ipaddress.IPv6Address((0x20010000 << 96) | server << 64 | flags_and_port << 32 | obscured)
    )


# --- Which addresses are refused -------------------------------------------------------------

# Refused whatever FETCH_ALLOW_LOOPBACK says, with the reason the error message gives.
REFUSED = {
    "10.0.0.7": "a private address",
    "172.16.5.4": "a private address",
    "192.168.1.1": "a private address",
    "169.254.169.254": "a link-local address",  # cloud metadata
    "169.254.0.1": "a link-local address",
    "fe80::1": "a link-local address",
    "fe80::1%eth0": "a link-local address",  # a scoped address, as getaddrinfo returns it
    "224.0.0.1": "a multicast address",
    "239.255.255.250": "a multicast address",
    "ff02::1": "a multicast address",
    "0.0.0.0": "the unspecified address",
    "::": "the unspecified address",
    "fd00::1": "a private address",  # unique local
    "fc00::1": "a private address",
    "fec0::1": "a site-local address",
    # IPv4 carried in IPv6 is judged by the IPv4 address it reaches
    "::ffff:169.254.169.254": "a link-local address (via ::ffff:a9fe:a9fe)",
    "::ffff:10.0.0.7": "a private address (via ::ffff:a00:7)",
    "2002:a9fe:a9fe::1": "a link-local address (via 2002:a9fe:a9fe::1)",  # 6to4
    "2002:a00:7::1": "a private address (via 2002:a00:7::1)",
    teredo("10.0.0.7"): f"a private address (via {teredo('10.0.0.7')})",
    "64:ff9b::a9fe:a9fe": "a link-local address (via 64:ff9b::a9fe:a9fe)",  # NAT64
    "64:ff9b::a00:7": "a private address (via 64:ff9b::a00:7)",
}

# Not public either; which flag names them moved between Python releases, so only the refusal
# is asserted: shared address space, class E, broadcast, documentation and benchmark ranges,
# the deprecated IPv4-compatible form, discard-only.
ALSO_REFUSED = [
    "100.64.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
    "2001:db8::1",
    "::7f00:1",
    "100::1",
]

LOOPBACK = [
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "::ffff:127.0.0.1",
    "2002:7f00:1::1",
    teredo("127.0.0.1"),
    "64:ff9b::7f00:1",
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "208.80.154.240",  # upload.wikimedia.org
    "2620:0:861:ed1a::2:b",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "2002:808:808::1",
    teredo("8.8.8.8"),
    "64:ff9b::808:808",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED.items())
@pytest.mark.parametrize("allow_loopback", [False, True])
def test_internal_addresses_are_refused_with_their_class(address, reason, allow_loopback):
    assert address_refusal(ip(address), allow_loopback) == reason


@pytest.mark.parametrize("address", ALSO_REFUSED)
@pytest.mark.parametrize("allow_loopback", [False, True])
def test_other_non_public_addresses_are_refused(address, allow_loopback):
    assert address_refusal(ip(address), allow_loopback) is not None


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_is_refused_unless_allowed(address):
    refusal = address_refusal(ip(address))
    assert refusal is not None and refusal.startswith("a loopback address"), refusal
    assert address_refusal(ip(address), allow_loopback=True) is None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert address_refusal(ip(address)) is None


# --- The URL allow-lists ---------------------------------------------------------------------

DEFAULTS = Settings(_env_file=None)  # https, the two Wikimedia hosts, port 443


def refused_url(url: str, settings: Settings = DEFAULTS) -> str:
    with pytest.raises(ImageError) as refused:
        check_url(url, settings)
    assert refused.value.error_type == ErrorType.URL_NOT_ALLOWED
    return refused.value.message


def test_the_defaults_allow_only_wikimedia_over_https():
    assert DEFAULTS.fetch_allowed_schemes == ("https",)
    assert DEFAULTS.fetch_allowed_hosts == ("upload.wikimedia.org", "commons.wikimedia.org")
    assert DEFAULTS.fetch_allowed_ports == (443,)
    assert DEFAULTS.fetch_allow_loopback is False


@pytest.mark.parametrize(
    "url",
    [
        "https://upload.wikimedia.org/wikipedia/commons/a/ab/Cambia_logo.png",
        "https://commons.wikimedia.org/w/index.php?title=File:X.png",
        "https://upload.wikimedia.org:443/x.png",
        "HTTPS://Upload.Wikimedia.ORG/x.png",
        "https://upload.wikimedia.org./x.png",
    ],
)
def test_allowed_urls_pass_and_come_back_parsed(url):
    parsed = check_url(url, DEFAULTS)
    assert parsed.host.rstrip(".") in DEFAULTS.fetch_allowed_hosts
    assert parsed.port == 443


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://upload.wikimedia.org/x.png", "URL scheme 'http' is not allowed"),
        ("file:///etc/passwd", "URL scheme 'file' is not allowed"),
        ("ftp://upload.wikimedia.org/x.png", "URL scheme 'ftp' is not allowed"),
        ("data:image/png;base64,aGk=", "URL scheme 'data' is not allowed"),
        ("gopher://upload.wikimedia.org:443/x", "URL scheme 'gopher' is not allowed"),
        ("//upload.wikimedia.org/x.png", "URL scheme '' is not allowed"),
        ("not a url", "URL scheme '' is not allowed"),
        ("", "URL scheme '' is not allowed"),
        ("https://example.org/x.png", "host 'example.org' is not allowed"),
        ("https://wikimedia.org/x.png", "host 'wikimedia.org' is not allowed"),
        (
            "https://upload.wikimedia.org.evil.example/x.png",
            "host 'upload.wikimedia.org.evil.example' is not allowed",
        ),
        ("https://evil.example#@upload.wikimedia.org/x", "host 'evil.example' is not allowed"),
        ("https://upload%2ewikimedia.org/x", "host 'upload%2ewikimedia.org' is not allowed"),
        ("https:upload.wikimedia.org/x.png", "host '' is not allowed"),
        ("https://upload.wikimedia.org:8443/x.png", "port 8443 is not allowed"),
        ("https://upload.wikimedia.org:80/x.png", "port 80 is not allowed"),
        ("https://user:secret@upload.wikimedia.org/x.png", "URLs with user-info are not allowed"),
        ("https://user@upload.wikimedia.org/x.png", "URLs with user-info are not allowed"),
        ("https://:secret@upload.wikimedia.org/x.png", "URLs with user-info are not allowed"),
        ("https://upload.wikimedia.org@evil.example/x", "URLs with user-info are not allowed"),
    ],
)
def test_urls_outside_the_allow_lists_are_refused(url, message):
    assert refused_url(url) == message


@pytest.mark.parametrize(
    "url",
    [
        "https://[::1/x.png",
        "https://upload.wikimedia.org:99999/x.png",
        "https://upload.wikimedia.org:abc/x.png",
        "https://evil.example\\@upload.wikimedia.org/x",
    ],
)
def test_unparseable_urls_are_refused_not_crashed_on(url):
    assert refused_url(url).startswith("invalid URL: ")


def test_an_explicit_port_zero_is_judged_as_port_zero():
    assert refused_url("https://upload.wikimedia.org:0/x.png") == "port 0 is not allowed"


def test_the_allow_lists_are_read_from_comma_separated_settings():
    settings = Settings(
        _env_file=None,
        fetch_allowed_schemes="HTTP, https",
        fetch_allowed_hosts=" Images.Example ,cdn.example,",
        fetch_allowed_ports="80, 8080",
    )
    assert settings.fetch_allowed_schemes == ("http", "https")
    assert settings.fetch_allowed_hosts == ("images.example", "cdn.example")
    assert settings.fetch_allowed_ports == (80, 8080)
    assert check_url("http://IMAGES.example/a.png", settings).port == 80  # the scheme's default
    assert check_url("https://cdn.example:8080/a.png", settings).port == 8080
    assert refused_url("https://cdn.example/a.png", settings) == "port 443 is not allowed"
    assert refused_url("https://upload.wikimedia.org:80/x", settings) == (
        "host 'upload.wikimedia.org' is not allowed"
    )


# Every address class on the allow-list on purpose, as the strict test server has it: only the
# literal-address check stands between these URLs and a connection.
LITERALS = Settings(
    _env_file=None,
    fetch_allowed_schemes="http",
    fetch_allowed_hosts="127.0.0.1,::1,::ffff:127.0.0.1,169.254.169.254,10.0.0.7,192.168.1.1,"
    "0.0.0.0,224.0.0.1,::ffff:169.254.169.254,fd00::1,fe80::1,64:ff9b::a9fe:a9fe,2002:a00:7::1,"
    "8.8.8.8,2606:4700:4700::1111",
    fetch_allowed_ports="80",
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/x", "address 127.0.0.1 is a loopback address"),
        ("http://127.0.0.1./x", "address 127.0.0.1 is a loopback address"),
        ("http://[::1]/x", "address ::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 is a link-local"),
        ("http://10.0.0.7/x", "address 10.0.0.7 is a private address"),
        ("http://192.168.1.1/x", "address 192.168.1.1 is a private address"),
        ("http://0.0.0.0/x", "address 0.0.0.0 is the unspecified address"),
        ("http://224.0.0.1/x", "address 224.0.0.1 is a multicast address"),
        ("http://[fd00::1]/x", "address fd00::1 is a private address"),
        ("http://[fe80::1]/x", "address fe80::1 is a link-local address"),
        ("http://[::ffff:127.0.0.1]/x", "address ::ffff:7f00:1 is a loopback address (via"),
        ("http://[::ffff:a9fe:a9fe]/x", "address ::ffff:a9fe:a9fe is a link-local address (via"),
        ("http://[64:ff9b::a9fe:a9fe]/x", "address 64:ff9b::a9fe:a9fe is a link-local address"),
        ("http://[2002:a00:7::1]/x", "address 2002:a00:7::1 is a private address (via"),
    ],
)
def test_allow_listed_ip_literals_still_get_the_address_check(url, message):
    assert refused_url(url, LITERALS).startswith(message)


@pytest.mark.parametrize(
    "url",
    [
        "http://[0:0:0:0:0:ffff:7f00:1]/x",  # ::ffff:127.0.0.1 spelled out
        "http://[::FFFF:127.0.0.1]/x",
        "http://[::ffff:7f00:1]/x",
    ],
)
def test_ip_literals_are_compared_by_value(url):
    assert refused_url(url, LITERALS).startswith("address ::ffff:7f00:1 is a loopback address")


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "017700000001"])
def test_other_spellings_of_an_allowed_address_are_not_allowed(host):
    """Legacy inet_aton forms of 127.0.0.1 are names, not IPs, to the URL check: not listed."""
    assert refused_url(f"http://{host}/x", LITERALS) == f"host {host!r} is not allowed"


def test_public_literals_pass_and_loopback_only_when_allowed():
    assert check_url("http://8.8.8.8/x", LITERALS).host == "8.8.8.8"
    assert check_url("http://[2606:4700:4700::1111]/x", LITERALS).port == 80
    loopback = LITERALS.model_copy(update={"fetch_allow_loopback": True})
    assert check_url("http://127.0.0.1/x", loopback).host == "127.0.0.1"
    assert check_url("http://[::1]/x", loopback).host == "::1"
    assert refused_url("http://169.254.169.254/x", loopback).endswith("a link-local address")


# --- The resolver: what DNS returns is checked -----------------------------------------------


class StubResolver(AbstractResolver):
    """DNS from a table: host -> addresses, in order; unknown names fail like getaddrinfo."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        self.closed = True


DNS = {
    "metadata.test": ["169.254.169.254"],
    "loopback.test": ["127.0.0.1", "::1"],
    "images.test": ["127.0.0.1"],
    "internal.test": ["10.0.0.7", "fd00::1", "fe80::1%eth0"],
    "public.test": ["8.8.8.8", "2606:4700:4700::1111"],
    "rebind.test": ["10.0.0.7", "8.8.8.8", "169.254.169.254", "1.1.1.1"],
    "mapped.test": ["::ffff:169.254.169.254"],
    "proxy.internal": ["10.0.0.9"],
}


@pytest.fixture
def stub_dns(monkeypatch: pytest.MonkeyPatch) -> StubResolver:
    """The stand-in DNS under PublicAddressResolver (and so under every ImageFetcher)."""
    stub = StubResolver(DNS)
    monkeypatch.setattr(fetch, "DefaultResolver", lambda: stub)
    return stub


def addresses(records: list[ResolveResult]) -> list[str]:
    return [record["host"] for record in records]


async def test_a_name_that_resolves_only_to_refused_addresses_is_refused(stub_dns):
    resolver = PublicAddressResolver(allow_loopback=True)
    with pytest.raises(AddressRefused) as refused:
        await resolver.resolve("metadata.test", 80, socket.AF_UNSPEC)
    assert str(refused.value) == (
        "host 'metadata.test' resolves only to refused addresses: "
        "169.254.169.254 is a link-local address"
    )
    with pytest.raises(AddressRefused) as refused:
        await resolver.resolve("internal.test", 80)
    assert str(refused.value).split(": ", 1)[1].split("; ") == [
        "10.0.0.7 is a private address",
        "fd00::1 is a private address",
        "fe80::1 is a link-local address",
    ]
    with pytest.raises(AddressRefused, match="via ::ffff:a9fe:a9fe"):
        await resolver.resolve("mapped.test", 80)
    assert stub_dns.asked == ["metadata.test", "internal.test", "mapped.test"]


def test_a_refusal_is_not_an_os_error():
    """aiohttp would turn an OSError into a DNS failure (fetch_failed), losing the reason."""
    assert not issubclass(AddressRefused, OSError)


async def test_only_the_allowed_addresses_are_handed_to_the_connector(stub_dns):
    """DNS rebinding: a name with public and internal addresses connects only to the public
    ones, in the order DNS gave them, with the records as DNS gave them."""
    resolver = PublicAddressResolver(allow_loopback=False)
    records = await resolver.resolve("rebind.test", 443)
    assert addresses(records) == ["8.8.8.8", "1.1.1.1"]
    assert all(record["port"] == 443 and record["hostname"] == "rebind.test" for record in records)
    assert addresses(await resolver.resolve("public.test")) == DNS["public.test"]


async def test_a_name_for_loopback_is_refused_unless_loopback_is_allowed(stub_dns):
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1 is a loopback address; ::1 is a loop"):
        await PublicAddressResolver(allow_loopback=False).resolve("loopback.test")
    allowed = await PublicAddressResolver(allow_loopback=True).resolve("loopback.test")
    assert addresses(allowed) == ["127.0.0.1", "::1"]


@pytest.mark.parametrize("host", ["proxy.internal", "PROXY.internal", "proxy.internal."])
async def test_the_egress_proxy_host_is_exempt_and_nothing_else(stub_dns, host):
    resolver = PublicAddressResolver(False, exempt_hosts=frozenset({"proxy.internal"}))
    stub_dns.table = {**DNS, host: DNS["proxy.internal"]}
    assert addresses(await resolver.resolve(host)) == ["10.0.0.9"]
    with pytest.raises(AddressRefused):
        await resolver.resolve("internal.test")


async def test_closing_the_resolver_closes_the_dns_under_it(stub_dns):
    await PublicAddressResolver(allow_loopback=False).close()
    assert stub_dns.closed


# --- The fetcher: refused before connecting, and on every redirect hop -----------------------


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


_routes = itertools.count()


def counted(images: ImageServer, body: bytes = b"\x89PNG\r\n\x1a\n") -> tuple[str, list[str]]:
    """A fresh route on the image server: (its path, the list of requests it received)."""
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.host)
        return web.Response(body=body, content_type="image/png")

    path = f"policy/target-{next(_routes)}"
    images.add_route(path, handler)
    return f"/{path}", hits


def redirecting(images: ImageServer, location: str) -> str:
    async def handler(_request: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    return images.add_route(f"policy/redirect-{next(_routes)}", handler)


def fetch_settings(images: ImageServer, **overrides: object) -> Settings:
    """http to the image server's port, by its IP or by names the stub DNS knows."""
    values: dict[str, object] = {
        "fetch_allowed_schemes": "http",
        "fetch_allowed_hosts": "127.0.0.1,images.test,loopback.test,metadata.test,169.254.169.254",
        "fetch_allowed_ports": str(images.port),
        "fetch_allow_loopback": True,
        "fetch_connect_timeout_s": 5,
        "fetch_total_timeout_s": 10,
    }
    return Settings(_env_file=None, **(values | overrides))


async def fetched(settings: Settings, url: str) -> bytes | ImageError:
    fetcher = ImageFetcher(settings)
    try:
        return await fetcher.fetch(url)
    except ImageError as error:
        return error
    finally:
        await fetcher.close()


async def test_a_name_resolving_to_a_refused_address_is_never_connected_to(stub_dns, image_server):
    path, hits = counted(image_server)
    port = image_server.port
    strict = fetch_settings(image_server, fetch_allow_loopback=False)
    refused = await fetched(strict, f"http://loopback.test:{port}{path}")
    assert isinstance(refused, ImageError), refused
    assert refused.error_type == ErrorType.URL_NOT_ALLOWED
    assert refused.message.startswith("host 'loopback.test' resolves only to refused addresses")
    assert stub_dns.asked == ["loopback.test"]
    assert hits == []
    # the control: the same name and route, with loopback allowed, is fetched
    body = await fetched(fetch_settings(image_server), f"http://loopback.test:{port}{path}")
    assert body == b"\x89PNG\r\n\x1a\n"
    assert hits == [f"loopback.test:{port}"]


async def test_a_url_the_allow_list_refuses_is_never_even_resolved(stub_dns, image_server):
    refused = await fetched(fetch_settings(image_server), "http://public.test/x.png")
    assert isinstance(refused, ImageError) and refused.error_type == ErrorType.URL_NOT_ALLOWED
    assert refused.message == "host 'public.test' is not allowed"
    assert stub_dns.asked == []


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("file:///etc/passwd", "URL scheme 'file' is not allowed"),
        ("https://127.0.0.1:{port}{target}", "URL scheme 'https' is not allowed"),
        ("http://localhost:{port}{target}", "host 'localhost' is not allowed"),
        ("//localhost:{port}{target}", "host 'localhost' is not allowed"),
        ("http://127.0.0.1{target}", "port 80 is not allowed"),
        ("http://user:secret@127.0.0.1:{port}{target}", "URLs with user-info are not allowed"),
        (
            "http://169.254.169.254:{port}/latest/meta-data/",
            "address 169.254.169.254 is a link-local address",
        ),
        (
            "http://metadata.test:{port}/latest/meta-data/",
            "host 'metadata.test' resolves only to refused addresses: "
            "169.254.169.254 is a link-local address",
        ),
    ],
)
async def test_every_redirect_hop_gets_the_whole_policy(stub_dns, image_server, location, message):
    target, hits = counted(image_server)
    first = redirecting(image_server, location.format(port=image_server.port, target=target))
    refused = await fetched(fetch_settings(image_server), first)
    assert isinstance(refused, ImageError), refused
    assert (refused.error_type, refused.message) == (ErrorType.URL_NOT_ALLOWED, message)
    assert hits == []


@pytest.mark.parametrize(
    "location", ["{target}", "http://images.test:{port}{target}", "http://127.0.0.1:{port}{target}"]
)
async def test_an_allowed_redirect_is_followed(stub_dns, image_server, location):
    target, hits = counted(image_server, b"GIF89a")
    first = redirecting(image_server, location.format(port=image_server.port, target=target))
    assert await fetched(fetch_settings(image_server), first) == b"GIF89a"
    assert len(hits) == 1


async def test_the_redirect_limit_comes_from_the_settings(stub_dns, image_server):
    target, hits = counted(image_server, b"GIF89a")
    one_hop = redirecting(image_server, target)
    two_hops = redirecting(image_server, one_hop)
    settings = fetch_settings(image_server, fetch_max_redirects=1)
    assert await fetched(settings, one_hop) == b"GIF89a"
    too_many = await fetched(settings, two_hops)
    assert isinstance(too_many, ImageError), too_many
    assert (too_many.error_type, too_many.message) == (
        ErrorType.FETCH_FAILED,
        "more than 1 redirects",
    )
    assert len(hits) == 1
    no_redirects = fetch_settings(image_server, fetch_max_redirects=0)
    assert (await fetched(no_redirects, one_hop)).message == "more than 0 redirects"
