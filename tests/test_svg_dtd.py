"""SVG DTDs (issue: score every SVG that Commons accepts): what Illustrator and Graphviz write is
scored exactly as the same drawing without a DTD; every form Commons refuses is refused with its
reason, before any XML parser reads the document, within bounded memory; the server stays up."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from model_server.logo_detection.decoding.svg import SvgLimits, parse_svg, rasterize_svg
from model_server.logo_detection.decoding.svg_dtd import (
    MAX_ALIAS_DEPTH,
    MAX_PROLOG_BYTES,
    MAX_SUBSET_BYTES,
    Dtd,
    check_expansion,
    read_dtd,
)
from model_server.logo_detection.errors import ErrorType, ImageError

from .conftest import instance, post_predict
from .hostile_support import MIB, PeakRss, assert_healthy, png
from .svg_dtd_documents import (
    DRAWING,
    SVG_NS,
    Refused,
    accepted_pairs,
    alias_chain_subset,
    billion_laughs_subset,
    refused_forms,
    with_subset,
)

ACCEPTED = accepted_pairs()
REFUSED = refused_forms()
MAX_BYTES = SvgLimits().max_bytes
MEMORY_BOUND = 10 * MIB


def refused_in_bounded_memory(data: bytes) -> tuple[ImageError, float, float]:
    """The refusal, the Python memory it allocated at its peak (MiB), and its time (ms)."""
    tracemalloc.start()
    try:
        started = time.perf_counter()
        with pytest.raises(ImageError) as refused:
            rasterize_svg(data)
        elapsed_ms = (time.perf_counter() - started) * 1000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"refusing allocated {peak / MIB:.1f} MiB"
    return refused.value, peak / MIB, elapsed_ms


# --- The svg stage, in process -------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_dtds_commons_accepts_render_exactly_as_the_drawing_without_them(name):
    pair = ACCEPTED[name]
    assert read_dtd(pair.with_dtd).has_internal_subset
    assert not read_dtd(pair.without_dtd).has_internal_subset
    assert rasterize_svg(pair.with_dtd) == rasterize_svg(pair.without_dtd)


def test_aliases_up_to_the_depth_bound_are_expanded():
    chain = alias_chain_subset(MAX_ALIAS_DEPTH).replace('"deep"', '"#1565C0"')
    deepest = f"&e{MAX_ALIAS_DEPTH};"
    with_aliases = with_subset(chain, DRAWING.replace("/>", f' fill="{deepest}"/>') + "</svg>")
    plain = (DRAWING.replace("/>", ' fill="#1565C0"/>') + "</svg>").encode()
    assert read_dtd(with_aliases).expansions[deepest[1:-1].encode()] == len("#1565C0")
    assert rasterize_svg(with_aliases) == rasterize_svg(plain)


@pytest.mark.parametrize("name", list(REFUSED))
def test_dtds_commons_refuses_are_refused_before_parsing_in_bounded_memory(name):
    form = REFUSED[name]
    for well_formed in (True, False):
        error, peak_mib, elapsed_ms = refused_in_bounded_memory(form.document(well_formed))
        assert error.error_type == form.error_type, error.message
        # the same reason when the body is not even XML: no XML parser read the document
        assert form.reason in error.message, error.message
    print(f"{name}: refused in {elapsed_ms:.2f} ms, {peak_mib:.2f} MiB")


def _declarations_filling(size: int) -> str:
    declaration = '<!ENTITY st{} "fill:#C00000;stroke:#000000;stroke-width:0.5;">\n'
    count = size // len(declaration.format(99999))
    return "".join(declaration.format(i) for i in range(count))


@pytest.mark.parametrize(
    ("name", "document", "reason"),
    [
        (
            "an <!ELEMENT> after a subset of almost the bound",
            with_subset(_declarations_filling(MAX_SUBSET_BYTES - 1024) + "<!ELEMENT svg ANY>"),
            "<!ELEMENT>",
        ),
        (
            "9 MiB of entity declarations",
            with_subset(_declarations_filling(9 * MIB)),
            f"internal subset is over {MAX_SUBSET_BYTES} bytes",
        ),
        (
            "a 10 MiB prolog of comments, then a parameter entity",
            b"<!---->" * (MAX_BYTES // 7 - 100) + with_subset("<!ENTITY % p 'x'>"),
            f"after over {MAX_PROLOG_BYTES} bytes of comments",
        ),
        (
            "billion laughs referenced 1.5 million times",
            Refused(billion_laughs_subset(), "", "", "&lol9;" * 1_500_000).document(),
            "refers to other entities",
        ),
        (
            "255 bytes referenced 3 million times",
            Refused(f'<!ENTITY x "{"x" * 255}">', "", "", "&x;" * 3_000_000).document(),
            "entities expand it past",
        ),
    ],
)
def test_refusing_any_dtd_up_to_the_size_limit_is_bounded(name, document, reason):
    """The reader never looks past MAX_SUBSET_BYTES of DTD, and the expansion bound counts
    references without expanding them: memory stays small whatever the document's size."""
    assert len(document) <= MAX_BYTES
    error, peak_mib, elapsed_ms = refused_in_bounded_memory(document)
    assert reason in error.message, error.message
    print(f"{name} ({len(document) / MIB:.1f} MiB): {elapsed_ms:.1f} ms, {peak_mib:.2f} MiB")


def test_a_dtd_after_long_comments_within_the_bound_is_read():
    comments = b"<!-- Generator: a very talkative exporter -->\n" * (MAX_PROLOG_BYTES // 60)
    dtd = read_dtd(comments + ACCEPTED["aliases"].with_dtd.split(b"?>", 1)[1])
    assert dtd.expansions[b"fill"] == len("#7A1FA2")


def test_the_parser_refuses_declarations_the_reader_did_not_accept():
    """Defence in depth: expat itself refuses any declaration the DTD reader did not pass."""
    cases = {
        '<!ENTITY a "x">': "which was not checked",
        '<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlink">': "<!ATTLIST>",
        "<!ELEMENT svg ANY>": "<!ELEMENT>",
        '<!NOTATION n SYSTEM "x">': "<!NOTATION>",
    }
    for subset, reason in cases.items():
        with pytest.raises(ImageError) as refused:
            parse_svg(with_subset(subset), Dtd(has_internal_subset=True))
        assert reason in refused.value.message, (subset, refused.value.message)
    checked_another_value = Dtd(has_internal_subset=True, values={b"a": b"&b;"})
    with pytest.raises(ImageError) as refused:
        parse_svg(with_subset('<!ENTITY a "&b;&b;">'), checked_another_value)
    assert "which was not checked" in refused.value.message
    with pytest.raises(ImageError) as refused:
        parse_svg(with_subset(""), Dtd())
    assert "could not be read" in refused.value.message


def test_values_reach_the_tree_as_xml_reads_them():
    """Line ends, non-ASCII text, &amp; and a character reference as an alias: the parser's own
    reading of each value matches the reader's (else the parser would refuse the declaration)."""
    subset = (
        '<!ENTITY t "Caf\u00e9 &amp; co\r\nline\rtwo">'
        '<!ENTITY greater "&#62;"><!ENTITY hex \'&#x3E;\'><!ENTITY r "&greater;">'
    )
    body = f'<svg xmlns="{SVG_NS}"><title>&t;</title><desc a="&hex;">&r;</desc></svg>'
    document = with_subset(subset, body)
    title, desc = parse_svg(document, read_dtd(document))
    assert title.text == "Caf\u00e9 & co\nline\ntwo"
    assert desc.text == ">" and desc.get("a") == ">"


def test_the_expansion_bound_counts_references_not_ampersands():
    """Text full of &amp; is not mistaken for expansion; references to the big entity are."""
    subset = f'<!ENTITY big "{"x" * 255}"><!ENTITY small "x">'
    body = "<text>" + "&amp;&small;" * 200_000 + "&big;" * 1000 + "</text></svg>"
    document = with_subset(subset, DRAWING + body)
    dtd = read_dtd(document)
    check_expansion(document, dtd, MAX_BYTES)  # 2.4 MB + 250 kB: under the bound
    with pytest.raises(ImageError) as refused:
        check_expansion(document, dtd, len(document) + 200_000)
    assert refused.value.error_type is ErrorType.TOO_LARGE


# --- Through the real server ----------------------------------------------------------------


async def test_svgs_with_dtds_commons_accepts_score_as_without_them(http, server):
    names = list(ACCEPTED)
    instances = []
    for name in names:
        instances.append(instance(f"{name} (DTD)", data=ACCEPTED[name].with_dtd))
        instances.append(instance(f"{name} (no DTD)", data=ACCEPTED[name].without_dtd))
    status, answer = await post_predict(http, server, {"instances": instances})
    assert status == 200, answer
    results = answer["predictions"]
    assert [r["filename"] for r in results] == [i["filename"] for i in instances]
    for name, with_dtd, without_dtd in zip(names, results[::2], results[1::2], strict=True):
        assert "error" not in with_dtd and "error" not in without_dtd, (name, with_dtd)
        assert with_dtd["prediction"] == without_dtd["prediction"], (name, with_dtd, without_dtd)
        assert with_dtd["out_of_domain"] == without_dtd["out_of_domain"], name


async def test_dtds_commons_refuses_get_their_reason_and_the_server_stays_healthy(
    http, server, samples
):
    names = list(REFUSED)
    logo = samples["Cambia_logo.png"]
    instances = [instance(name, data=REFUSED[name].document()) for name in names]
    instances = [instance("logo first", data=logo), *instances, instance("logo last", data=logo)]
    await post_predict(http, server, {"instances": [instance("warm", data=png())]})
    with PeakRss(server) as memory:
        status, answer = await post_predict(http, server, {"instances": instances})
    assert status == 200, answer
    results = answer["predictions"]
    assert [r["filename"] for r in results] == [i["filename"] for i in instances]
    first, last = results.pop(0), results.pop()
    assert "error" not in first and first["prediction"] == last["prediction"], (first, last)
    for name, result in zip(names, results, strict=True):
        assert result.get("error", {}).get("type") == REFUSED[name].error_type, (name, result)
        assert REFUSED[name].reason in result["error"]["message"], (name, result)
    print(f"peak RSS growth {memory.growth_mib:.0f} MiB")
    # expanding any of these would take from megabytes (XXE of /dev/zero) to gigabytes
    assert memory.growth_mib < 100, f"server memory grew by {memory.growth_mib:.0f} MiB"
    await assert_healthy(http, server)
