"""The DTD rule Wikimedia Commons applies to SVG uploads, so that every SVG it accepts is scored.

Adobe Illustrator writes entity declarations into its SVG exports (`<!ENTITY ns_svg "...">`, then
`xmlns="&ns_svg;"`) and Graphviz an `<!ATTLIST>`. MediaWiki's upload check
(`XmlTypeCheck::checkDTDIsSafe`) accepts an internal DTD subset made only of:
- general entities whose value is plain text of at most 255 bytes, where the only `&` are `&amp;`
  and the entity of the other quote (`&quot;` in "...", `&apos;` in '...'), or whose value is
  exactly one reference to another entity (an alias);
- comments;
- Graphviz's `<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlink">`.
Everything else is refused: SYSTEM/PUBLIC and parameter (`%`) entities, values built from other
entities (billion laughs), `<!ELEMENT>`, other `<!ATTLIST>`, `<!NOTATION>`, processing
instructions. Bounds are added to the rule, far above what exporters write: aliases may chain
at most `MAX_ALIAS_DEPTH` deep (expat recurses once per level: a chain of 100,000 aliases, 2.5
MB, overflows its stack and kills the process), and the internal subset and the comments before
the DOCTYPE may each hold at most 256 KiB (reading, or refusing, any DTD then takes milliseconds
and little memory, however large the document).

`read_dtd` applies the rule to the raw bytes with a strict tokenizer before any XML parser sees
the document; `DtdEnforcingParser` then has expat refuse any declaration `read_dtd` did not
accept with that very value, so the two cannot silently disagree. No reference expands to more
than 255 bytes, and `check_expansion` bounds the whole document after expansion (no quadratic
blow-up).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.etree.ElementTree import TreeBuilder

from defusedxml.ElementTree import DefusedXMLParser

from ..errors import ErrorType, ImageError

MAX_VALUE_BYTES = 255
MAX_ALIAS_DEPTH = 32
MAX_SUBSET_BYTES = 256 * 1024
MAX_PROLOG_BYTES = 256 * 1024  # comments and processing instructions before the DOCTYPE
GRAPHVIZ_ATTLIST = b'<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlink">'
_GRAPHVIZ_DECLARATION = ("svg", "xmlns:xlink", "CDATA", "http://www.w3.org/1999/xlink", 1)
_PREDEFINED_ENTITIES = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})
_CHARACTER_REFERENCE_BYTES = 4  # `&#...;` in an alias: one character, at most 4 bytes of UTF-8

_LITERAL = rb"(?:\"[^\"]*\"|'[^']*')"
# XML's comment: no "--" inside, no "-" before the end. One character (or a dash and the one
# after it) per repetition: Python 3.11.2 (Debian bookworm's, the production image's) matches
# a possessive repeat of a group that holds another repeat wrongly, e.g. no comment at all.
_COMMENT = rb"<!--(?:[^-]|-[^-])*+-->"
# One of the spaces, comments and processing instructions (the XML declaration too) before the
# DOCTYPE; possessive: one pass, no backtracking state kept, however long. The prolog is matched
# an item at a time (3.11.2 also mis-repeats this pattern as a possessive group).
_ONE_PROLOG_ITEM = re.compile(rb"\s*+(?:" + _COMMENT + rb"|<\?.*?\?>)", re.DOTALL)
_SPACES = re.compile(rb"\s*+")
_DOCTYPE = re.compile(
    rb"<!DOCTYPE\s+[^\s\[>]+(?:\s+(?:SYSTEM\s*" + _LITERAL
    + rb"|PUBLIC\s*" + _LITERAL + rb"\s*" + _LITERAL + rb"))?\s*(\[)?"
)  # fmt: skip
# One token of the internal subset after optional spaces, named by its outer group; `other`
# (empty) matches where nothing allowed starts, so successive matches leave no gap.
_SUBSET_TOKEN = re.compile(
    rb"\s*(?:(?P<entity><!ENTITY\s+(\S+)\s+(?:\"([^\"]*)\"|'([^']*)')\s*>)"
    rb"|(?P<comment>" + _COMMENT + rb")"
    rb"|(?P<graphviz>" + re.escape(GRAPHVIZ_ATTLIST) + rb")"
    rb"|(?P<end>\]\s*>)"
    rb"|(?P<other>))",
    re.DOTALL,
)
_PARAMETER_ENTITY = re.compile(rb"<!ENTITY\s+%")
_EXTERNAL_ENTITY = re.compile(rb"<!ENTITY\s+(\S+)\s+(SYSTEM|PUBLIC)\b")
_ALIAS = re.compile(rb"&([^\"%&;]{1,64});")
_PLAIN_DOUBLE_QUOTED = re.compile(rb'(?:[^"%&]|&amp;|&quot;)*')
_PLAIN_SINGLE_QUOTED = re.compile(rb"(?:[^'%&]|&amp;|&apos;)*")
_CHARACTER_ALIAS = re.compile(rb"&#(x[0-9a-fA-F]+|[0-9]+);")
_REFERENCE = re.compile(rb"&([^&;\s]+);")  # every entity reference; also some non-names
_COUNT_CHUNK_BYTES = 64 * 1024  # references are counted a chunk at a time: bounded memory


class UnsafeDtd(ImageError):
    """The SVG's DTD does something Commons refuses."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorType.DECODE_FAILED, f"unsafe SVG refused: {reason}")


@dataclass(frozen=True)
class Dtd:
    """What an accepted DOCTYPE declares."""

    has_internal_subset: bool = False
    # entity name (raw UTF-8) -> the most bytes one reference expands to, aliases followed
    expansions: Mapping[bytes, int] = field(default_factory=dict)
    values: Mapping[bytes, bytes] = field(default_factory=dict)  # entity name -> value, raw
    graphviz_xlink: bool = False
    end: int = 0  # offset just past the DOCTYPE declaration (0: none found)


def read_dtd(data: bytes) -> Dtd:
    """The document's DOCTYPE, read with Commons' rule; raises UnsafeDtd for anything else.

    Returns an empty Dtd when the prolog holds no DOCTYPE this reader understands; the
    enforcing parser then refuses any declaration expat finds.
    """
    position = _skip_prolog(data)
    doctype = _DOCTYPE.match(data, position)
    if doctype is None:
        if _ONE_PROLOG_ITEM.match(data, position) and data.find(b"<!DOCTYPE", position) >= 0:
            raise UnsafeDtd(f"the DOCTYPE comes after over {MAX_PROLOG_BYTES} bytes of comments")
        return Dtd()
    if doctype.group(1) is None:
        return Dtd(end=doctype.end())
    sizes: dict[bytes, int] = {}  # plain entities
    aliases: dict[bytes, bytes] = {}  # alias -> the entity it refers to
    values: dict[bytes, bytes] = {}
    graphviz_xlink = False
    limit = doctype.end() + MAX_SUBSET_BYTES
    for token in _SUBSET_TOKEN.finditer(data, doctype.end(), limit):  # comments: nothing to do
        kind = token.lastgroup
        if kind == "entity":
            name, double_quoted, single_quoted = token.group(2, 3, 4)
            meaning = _entity_value(name, double_quoted, single_quoted)
            if name not in values:  # XML: the first declaration binds
                values[name] = double_quoted if double_quoted is not None else single_quoted
                if isinstance(meaning, int):
                    sizes[name] = meaning
                else:
                    aliases[name] = meaning
        elif kind == "graphviz":
            graphviz_xlink = True
        elif kind == "end":
            return Dtd(
                has_internal_subset=True,
                expansions=_expansions(sizes, aliases),
                values=values,
                graphviz_xlink=graphviz_xlink,
                end=token.end(),
            )
        elif kind == "other":  # nothing this rule allows starts here, or the subset is too long
            position = token.start("other")
            following = _SUBSET_TOKEN.match(data, position)
            assert following is not None  # its "other" alternative matches any byte
            if following.lastgroup != "other":
                raise UnsafeDtd(f"the DTD's internal subset is over {MAX_SUBSET_BYTES} bytes")
            raise UnsafeDtd(_refusal_reason(data, position))
    raise AssertionError("unreachable: the empty alternative matches anywhere")


def check_expansion(data: bytes, dtd: Dtd, max_bytes: int) -> None:
    """Refuse documents that would grow past `max_bytes` once entities are expanded.

    Counts the references after the DOCTYPE (including any in comments or CDATA: an upper
    bound) without expanding anything, in time linear in len(data) and bounded memory.
    """
    growth = {
        name: size - len(name) - 2  # `&name;` is replaced by `size` bytes
        for name, size in dtd.expansions.items()
        if size > len(name) + 2
    }
    if not growth:
        return
    expanded = len(data)
    if expanded + data.count(b"&", dtd.end) * max(growth.values()) <= max_bytes:
        return  # even were every '&' the largest entity
    start = dtd.end
    while start < len(data):
        stop = data.find(b"&", start + _COUNT_CHUNK_BYTES)  # a reference never straddles
        stop = len(data) if stop < 0 else stop
        references = Counter(_REFERENCE.findall(data, start, stop))
        expanded += sum(count * growth.get(name, 0) for name, count in references.items())
        if expanded > max_bytes:
            raise ImageError(
                ErrorType.TOO_LARGE, f"the SVG's entities expand it past {max_bytes} bytes"
            )
        start = stop


class DtdEnforcingParser(DefusedXMLParser):
    """defusedxml's expat parser (no external entities, no DTD fetch), reading UTF-8 and
    allowing exactly the declarations `read_dtd` accepted: defence in depth, should the two
    ever read a DTD differently."""

    def __init__(self, dtd: Dtd) -> None:
        super().__init__(
            target=TreeBuilder(),
            encoding="utf-8",  # whatever the XML declaration says: the bytes read_dtd read
            forbid_dtd=False,
            forbid_entities=True,
            forbid_external=True,
        )
        self._dtd = dtd
        self.parser.StartDoctypeDeclHandler = self._start_doctype
        self.parser.AttlistDeclHandler = self._attlist_declaration
        self.parser.ElementDeclHandler = self._element_declaration
        self.parser.NotationDeclHandler = self._notation_declaration

    def _start_doctype(self, _name: str, _sysid: object, _pubid: object, internal: int) -> None:
        if internal and not self._dtd.has_internal_subset:
            raise UnsafeDtd("the DTD's internal subset could not be read")

    def defused_entity_decl(
        self,
        name: str,
        is_parameter_entity: bool,
        value: str | None,
        base: str | None,
        sysid: str | None,
        pubid: str | None,
        notation_name: str | None,
    ) -> None:
        if is_parameter_entity or sysid or pubid or notation_name or value is None:
            raise UnsafeDtd(f"the DTD declares the external or parameter entity {name!r}")
        checked = self._dtd.values.get(name.encode())
        if checked is None or value != _replacement_text(checked):
            raise UnsafeDtd(f"the DTD declares the entity {name!r}, which was not checked")

    def _attlist_declaration(self, *declaration: object) -> None:
        if declaration != _GRAPHVIZ_DECLARATION or not self._dtd.graphviz_xlink:
            raise UnsafeDtd("the DTD declares an attribute list (<!ATTLIST>)")

    def _element_declaration(self, name: str, _model: object) -> None:
        raise UnsafeDtd(f"the DTD declares the element {name!r} (<!ELEMENT>)")

    def _notation_declaration(self, name: str, *_ids: object) -> None:
        raise UnsafeDtd(f"the DTD declares the notation {name!r} (<!NOTATION>)")


def _skip_prolog(data: bytes) -> int:
    """Offset past the BOM, XML declaration, comments, processing instructions and spaces,
    within the first MAX_PROLOG_BYTES."""
    position = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    end = position + MAX_PROLOG_BYTES
    while (item := _ONE_PROLOG_ITEM.match(data, position, end)) is not None:
        position = item.end()
    spaces = _SPACES.match(data, position, end)
    assert spaces is not None  # it matches the empty string
    return spaces.end()


def _entity_value(
    name: bytes, double_quoted: bytes | None, single_quoted: bytes | None
) -> int | bytes:
    """The bytes a plain value expands to, or the name an alias refers to; else UnsafeDtd."""
    value = double_quoted if double_quoted is not None else single_quoted
    assert value is not None  # the token pattern has one or the other
    if b"&" not in value and b"%" not in value:  # plain text, the common case
        size = len(value)
    elif alias := _ALIAS.fullmatch(value):
        return alias.group(1)
    elif b"%" in value:
        raise UnsafeDtd(f"the value of entity {_text(name)} refers to a parameter entity (%)")
    elif double_quoted is not None and _PLAIN_DOUBLE_QUOTED.fullmatch(value):
        size = len(value) - 4 * value.count(b"&amp;") - 5 * value.count(b"&quot;")
    elif single_quoted is not None and _PLAIN_SINGLE_QUOTED.fullmatch(value):
        size = len(value) - 4 * value.count(b"&amp;") - 5 * value.count(b"&apos;")
    else:
        raise UnsafeDtd(
            f"the value of entity {_text(name)} refers to other entities (only &amp;, &quot; "
            "or &apos;, or a value that is exactly one reference, an alias, are allowed)"
        )
    if size > MAX_VALUE_BYTES:
        raise UnsafeDtd(
            f"the value of entity {_text(name)} is {size} bytes (at most {MAX_VALUE_BYTES})"
        )
    return size


def _replacement_text(value: bytes) -> str | None:
    """The value as expat reports it: a character reference (only as an alias here) replaced."""
    reference = _CHARACTER_ALIAS.fullmatch(value)
    if reference is None:  # XML reads every line end as a line feed
        return value.replace(b"\r\n", b"\n").replace(b"\r", b"\n").decode("utf-8", "replace")
    digits = reference.group(1)
    try:
        return chr(int(digits[1:], 16) if digits.startswith(b"x") else int(digits))
    except ValueError:  # not a number, or out of range: expat refuses it as well
        return None


def _text(name: bytes) -> str:
    return repr(name.decode("utf-8", "replace"))


def _refusal_reason(data: bytes, position: int) -> str:
    """Why the internal subset cannot be read past `position`, in words."""
    head = data[position : position + 200]
    if head.startswith(b"<!ENTITY"):
        if _PARAMETER_ENTITY.match(head):
            return "the DTD declares a parameter entity (<!ENTITY % ...>)"
        if external := _EXTERNAL_ENTITY.match(head):
            name, kind = (part.decode("utf-8", "replace") for part in external.groups())
            return f"the DTD declares the external entity {name!r} ({kind})"
        return "the DTD holds a malformed entity declaration"
    for keyword, reason in (
        (b"<!ELEMENT", "the DTD declares an element (<!ELEMENT>)"),
        (b"<!ATTLIST", "the DTD declares an attribute list (<!ATTLIST>) other than Graphviz's"),
        (b"<!NOTATION", "the DTD declares a notation (<!NOTATION>)"),
        (b"<!--", "the DTD holds a malformed or unterminated comment"),
        (b"<?", "the DTD holds a processing instruction"),
        (b"%", "the DTD refers to a parameter entity (%name;)"),
    ):
        if head.startswith(keyword):
            return reason
    if not head:
        return "the DTD's internal subset is not closed"
    return f"the DTD holds {head[:40].decode('utf-8', 'replace')!r}, which Commons refuses"


def _expansions(sizes: dict[bytes, int], aliases: Mapping[bytes, bytes]) -> dict[bytes, int]:
    """`sizes` (plain entities) extended with what each alias expands to; linear time."""
    depths: dict[bytes, int] = {}  # aliases followed from an entity to its text (absent: 0)
    ends: dict[bytes, int] = {}  # where a chain ends on no plain entity: undeclared, or a loop
    for name in aliases:
        chain: list[bytes] = []
        on_chain: set[bytes] = set()
        current = name
        while current not in sizes and current not in ends:
            if current not in aliases or current in on_chain:
                ends[current] = _end_of_chain_size(current, looped=current in on_chain)
                break
            if len(chain) == MAX_ALIAS_DEPTH:
                raise _too_deep(name)
            chain.append(current)
            on_chain.add(current)
            current = aliases[current]
        size = sizes[current] if current in sizes else ends[current]
        for depth, link in enumerate(reversed(chain), start=depths.get(current, 0) + 1):
            if depth > MAX_ALIAS_DEPTH:
                raise _too_deep(link)
            sizes[link], depths[link] = size, depth
    return sizes


def _too_deep(name: bytes) -> UnsafeDtd:
    return UnsafeDtd(
        f"the aliases from entity {_text(name)} chain more than {MAX_ALIAS_DEPTH} deep"
    )


def _end_of_chain_size(name: bytes, looped: bool) -> int:
    """What a reference to an entity with no plain value of its own expands to."""
    if looped:
        return 0  # aliases in a loop: expat refuses the document if one is ever referenced
    if name in _PREDEFINED_ENTITIES:
        return 1
    if name.startswith(b"#"):
        return _CHARACTER_REFERENCE_BYTES
    return 0  # undeclared: expat refuses (or, with an external DTD, drops) the reference
