"""Bounded fuzzing (issue: hostile input): the decoder only ever raises ImageError, and the real
server's request parser only ever answers 200/400/413 with one result per instance, never 500.

Example counts are fixed and small so CI stays fast and deterministic (derandomized); raise
FUZZ_EXAMPLES locally for a longer run.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import urllib.error
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kserve.errors import InvalidInput
from PIL import Image

from model_server.logo_detection.contract import decode_base64
from model_server.logo_detection.decoding import DecodeLimits, image_to_model_input
from model_server.logo_detection.decoding.svg import SvgLimits
from model_server.logo_detection.decoding.svg_dtd import read_dtd
from model_server.logo_detection.errors import ErrorType, ImageError

from .hostile_support import gif_bomb, jpeg, png, svg
from .svg_dtd_documents import graphviz, illustrator_10, with_subset

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ERROR_TYPES = {error.value for error in ErrorType}


def _pillow(image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((40, 30)).save(buffer, image_format, **options)
    return buffer.getvalue()


SEEDS = [
    png(),
    jpeg(),
    jpeg(progressive=True),
    gif_bomb(16, 3),
    _pillow("BMP"),
    _pillow("WEBP"),
    _pillow("TIFF", compression="tiff_lzw"),
    svg('<rect width="80" height="40" fill="#c00"/><use href="#a"/><circle id="a" r="5"/>'),
    illustrator_10().with_dtd,
    graphviz().with_dtd,
]
LIMITS = DecodeLimits(max_pixels=4_000_000, svg=SvgLimits(timeout_s=3))


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A real image of each supported format with bytes flipped, inserted or cut off."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif len(data) > 1:
            del data[position]
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    return bytes(data if cut is None else data[:cut])


def assert_decodes_or_image_error(data: bytes) -> None:
    try:
        array = image_to_model_input(data, LIMITS)
    except ImageError as error:
        assert error.error_type in ERROR_TYPES and error.message
        event(error.error_type)
        return
    event("decoded")
    assert array.shape == (224, 224, 3) and array.dtype == np.float32
    assert np.isfinite(array).all() and array.min() >= 0 and array.max() <= 255


@pytest.mark.timeout(600)
@settings(FUZZ, max_examples=2 * EXAMPLES)  # in-process and fast: twice the HTTP count
@given(data=st.one_of(mutated_images(), mutated_images(), st.binary(max_size=2048)))
def test_decoder_only_raises_image_error(data: bytes) -> None:
    assert_decodes_or_image_error(data)


def test_decoder_seeds_decode() -> None:
    """The fuzz seeds themselves are valid, so mutations start from every decoder's happy path."""
    for seed in SEEDS:
        assert image_to_model_input(seed, LIMITS).shape == (224, 224, 3)


# --- SVG DTDs: the reader applies exactly Commons' rule -------------------------------------

# Commons' rule for an internal DTD subset (MediaWiki's XmlTypeCheck::checkDTDIsSafe), written
# out independently of the reader as one pattern over the whole subset.
_S = rb"[ \t\n\r\f\v]"
_ALIAS_VALUE = rb"&[^\"%&;]{1,64};"
_RULE_ENTITY = (
    rb"<!ENTITY" + _S + rb"+[^ \t\n\r\f\v]+" + _S + rb"+(?:"
    rb'"(?:' + _ALIAS_VALUE + rb'|(?:[^"%&]|&amp;|&quot;){0,255})"'
    rb"|'(?:" + _ALIAS_VALUE + rb"|(?:[^'%&]|&amp;|&apos;){0,255})'"
    rb")" + _S + rb"*>"
)
_RULE_COMMENT = rb"<!--(?:[^-]|-[^-])*-->"
_RULE_GRAPHVIZ = rb'<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www\.w3\.org/1999/xlink">'
COMMONS_RULE = re.compile(
    rb"(?:" + _S + rb"*(?:" + _RULE_ENTITY + rb"|" + _RULE_COMMENT + rb"|" + _RULE_GRAPHVIZ
    + rb"))*" + _S + rb"*"
)  # fmt: skip

NAMES = st.sampled_from(["a", "b", "ns_svg", "st0", "x.y", "%p", "é"])
VALUE_PIECES = st.sampled_from(
    ["x", "#c00", " ", "é", "<", ">", "'", '"', "%", "&", ";", "&amp;", "&quot;", "&apos;",
     "&a;", "&#60;", "&lt;", "]>", "--", "\r\n"]
)  # fmt: skip


@st.composite
def entity_values(draw: st.DrawFn, quote: str) -> str:
    """Plain text around the 255-byte limit, aliases, and values built from references (never
    the enclosing quote: a value that closes early leaves the subset where XML says it ends)."""
    kind = draw(st.sampled_from(["pieces", "long", "alias"]))
    if kind == "alias":
        return f"&{draw(NAMES)};"
    if kind == "long":
        return draw(st.sampled_from(["x", "é", "&amp;"])) * draw(st.integers(120, 260))
    return "".join(draw(st.lists(VALUE_PIECES.filter(lambda piece: piece != quote), max_size=8)))


@st.composite
def subset_tokens(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["entity", "entity", "entity", "comment", "other"]))
    if kind == "entity":
        quote = draw(st.sampled_from(['"', "'"]))
        space = draw(st.sampled_from([" ", "\t", "\n ", "  "]))
        return f"<!ENTITY{space}{draw(NAMES)}{space}{quote}{draw(entity_values(quote))}{quote}>"
    if kind == "comment":
        return (
            "<!--"
            + "".join(draw(st.lists(st.sampled_from(["-", " ", "x", ">"]), max_size=6)))
            + "-->"
        )
    return draw(
        st.sampled_from(
            [
                '<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlink">',
                '<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlinks">',
                "<!ATTLIST svg  xmlns:xlink CDATA #FIXED 'http://www.w3.org/1999/xlink'>",
                '<!ENTITY % p "x">',
                '<!ENTITY s SYSTEM "file:///etc/passwd">',
                '<!ENTITY s PUBLIC "-//X//EN" "http://127.0.0.1:9/x">',
                "%p;",
                "<!ELEMENT svg ANY>",
                '<!NOTATION n SYSTEM "x">',
                "<?pi x?>",
                "<!-- unterminated",
            ]
        )
    )


SUBSETS = st.lists(
    st.tuples(st.sampled_from(["", " ", "\n\t", "\r\n"]), subset_tokens()), max_size=6
).map(lambda tokens: "".join(space + token for space, token in tokens))


@settings(FUZZ, max_examples=10 * EXAMPLES)  # no rendering: fast
@given(subset=SUBSETS)
def test_dtd_reader_accepts_exactly_what_commons_accepts(subset: str) -> None:
    """Within the reader's two added bounds (alias depth, subset size: far from these few
    tokens), a subset is accepted if and only if Commons' rule accepts it."""
    document = with_subset(subset)
    commons_accepts = (
        COMMONS_RULE.fullmatch(document[document.index(b"[") + 1 : document.rindex(b"]")])
        is not None
    )
    try:
        read_dtd(document)
    except ImageError as error:
        event("refused")
        assert not commons_accepts, (subset, error.message)
        assert error.error_type is ErrorType.DECODE_FAILED and "unsafe SVG refused" in error.message
        return
    event("accepted")
    assert commons_accepts, subset


@pytest.mark.timeout(600)
@FUZZ
@given(
    subset=SUBSETS,
    references=st.lists(st.sampled_from(["&a;", "&b;", "&ns_svg;", "&st0;", "&amp;"]), max_size=6),
)
def test_svgs_with_any_dtd_decode_or_get_an_image_error(subset: str, references: list[str]) -> None:
    """Entities used in attributes and text: the whole decoder only ever raises ImageError."""
    refs = "".join(references)
    body = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
        f'<rect width="40" height="20" fill="#c00"/><text id="{refs}">{refs}</text></svg>'
    )
    assert_decodes_or_image_error(with_subset(subset, body))


# --- The request parser, over HTTP against the real server ---------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)
VALID_IMAGE = base64.b64encode(png((8, 8))).decode()
FIELD_VALUES = (
    JSON_VALUES
    | st.sampled_from(["logo", "", "x.png", VALID_IMAGE, "aGk=", "!!", "http://127.0.0.1/x"])
    | st.text(max_size=40)
)
INSTANCES = st.dictionaries(
    st.sampled_from(["filename", "target", "url", "image", "extra"]), FIELD_VALUES, max_size=5
)
GOOD_INSTANCE = st.builds(
    lambda name: {"filename": name or "f", "target": "logo", "image": VALID_IMAGE},
    st.text(max_size=12),
)
BODIES = st.one_of(
    st.fixed_dictionaries(
        {"instances": st.lists(GOOD_INSTANCE | INSTANCES, max_size=6)},
        optional={"debug": JSON_VALUES},
    ).map(lambda body: json.dumps(body).encode()),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=512),
)


def post(url: str, body: bytes) -> tuple[int, object]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.mark.timeout(600)
@FUZZ
@given(body=BODIES)
def test_request_parser_never_answers_500(server, body: bytes) -> None:
    status, answer = post(server.predict_url, body)
    assert status in (200, 400), (status, answer, body[:300])
    if status == 400:
        assert isinstance(answer["error"], str) and answer["error"]
        return
    sent = json.loads(body)["instances"]
    results = answer["predictions"]
    assert [r["filename"] for r in results] == [i["filename"] for i in sent]
    for result in results:
        assert ("prediction" in result) != ("error" in result), result
        if "error" in result:
            assert result["error"]["type"] in ERROR_TYPES, result


BASE64_ISH = st.text(alphabet="AQgw09+/=\n -_\u00e9", max_size=24) | st.binary(max_size=18).map(
    lambda data: base64.b64encode(data).decode("ascii")
)


@settings(FUZZ, max_examples=20 * EXAMPLES)  # microseconds each
@given(text=BASE64_ISH)
def test_base64_is_decoded_exactly_as_the_standard_library_does(text: str) -> None:
    """The fast decoder accepts, refuses and explains what `b64decode(validate=True)` does."""
    try:
        expected = base64.b64decode(text, validate=True)
    except ValueError as error:  # binascii.Error is a ValueError
        event("refused")
        with pytest.raises(InvalidInput) as refused:
            decode_base64(text, 3)
        assert refused.value.reason == f"instances[3].image: invalid base64: {error}"
        return
    event("accepted")
    assert decode_base64(text, 3) == expected
