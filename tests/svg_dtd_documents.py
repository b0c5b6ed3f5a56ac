"""SVG documents with DTDs, generated here: what exporters write (each with its twin, the same
drawing without the DTD) and every DTD form Wikimedia Commons refuses."""

from __future__ import annotations

from dataclasses import dataclass

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
SVG11_PUBLIC = 'PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"'

# The namespace entities Adobe Illustrator (10 to CC) declares, in its order.
ILLUSTRATOR_NAMESPACES = {
    "ns_flows": "http://ns.adobe.com/Flows/1.0/",
    "ns_extend": "http://ns.adobe.com/Extensibility/1.0/",
    "ns_ai": "http://ns.adobe.com/AdobeIllustrator/10.0/",
    "ns_graphs": "http://ns.adobe.com/Graphs/1.0/",
    "ns_vars": "http://ns.adobe.com/Variables/1.0/",
    "ns_imrep": "http://ns.adobe.com/ImageReplacement/1.0/",
    "ns_sfw": "http://ns.adobe.com/SaveForWeb/1.0/",
    "ns_custom": "http://ns.adobe.com/GenericCustomNamespace/1.0/",
    "ns_adobe_xpath": "http://ns.adobe.com/XPath/1.0/",
    "ns_svg": SVG_NS,
    "ns_xlink": XLINK_NS,
}


@dataclass(frozen=True)
class DtdPair:
    """An SVG whose DTD Commons accepts, and the same drawing with the entities written out."""

    with_dtd: bytes
    without_dtd: bytes


def _pair(prolog: str, subset: str, template: str, values: dict[str, str]) -> DtdPair:
    """`template` names each entity as {name}: the DTD version refers to it (&name;), the twin
    holds its value. Aliases are given as values "&target;" and resolved for the twin."""

    def resolved(name: str) -> str:
        value = values[name]
        while value.startswith("&") and value.endswith(";") and value[1:-1] in values:
            value = values[value[1:-1]]
        return value

    with_dtd = prolog.replace("[SUBSET]", subset) + template.format(
        **{name: f"&{name};" for name in values}
    )
    without_dtd = prolog.replace(" [SUBSET]", "") + template.format(
        **{name: resolved(name) for name in values}
    )
    return DtdPair(with_dtd.encode(), without_dtd.encode())


def _illustrator_prolog(encoding: str, generator: str, doctype: str) -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f"<!-- Generator: Adobe Illustrator {generator}  -->\n"
        f"<!DOCTYPE svg {doctype} [SUBSET]>\n"
    )


def _declarations(values: dict[str, str], quote: str = '"') -> str:
    return "".join(f"\t<!ENTITY {name} {quote}{value}{quote}>\n" for name, value in values.items())


def illustrator_9(extra_styles: int = 0) -> DtdPair:
    """Illustrator 9: the 2000 SVG draft's DTD and styles as entities (style="&st0;"); a
    complex drawing declares hundreds, which pushes <svg> past the first 4 KiB."""
    styles = {
        "st0": "fill:#E2001A;stroke:none;",
        "st1": "fill:none;stroke:#1D1D1B;stroke-width:8;stroke-linejoin:round;",
        "st2": "fill:#FFD500;fill-rule:evenodd;",
    }
    unused = {
        f"st{i}": f"fill:#{i:06X};stroke:#000000;stroke-width:0.5;"
        for i in range(3, 3 + extra_styles)
    }
    prolog = _illustrator_prolog(
        "iso-8859-1",
        "9.0, SVG Export Plug-In",
        'PUBLIC "-//W3C//DTD SVG 20000303 Stylable//EN" '
        '"http://www.w3.org/TR/2000/03/WD-SVG-20000303/DTD/svg-20000303-stylable.dtd"',
    )
    template = (
        f'<svg xmlns="{SVG_NS}" width="240" height="160" viewBox="0 0 240 160" '
        'xml:space="preserve">\n<g id="Layer_x0020_1" style="{st0}">\n'
        '\t<rect x="10" y="10" width="140" height="140" rx="20"/>\n'
        '\t<path style="{st1}" d="M30 130 L120 30 L210 130 Z"/>\n'
        '\t<circle style="{st2}" cx="180" cy="60" r="40"/>\n</g>\n</svg>\n'
    )
    subset = "[\n" + _declarations(styles | unused) + "]"
    return _pair(prolog, subset, template, styles)


def illustrator_10() -> DtdPair:
    """Illustrator 10: SVG 1.0 DTD, every namespace as an entity, xmlns="&ns_svg;", the
    <switch> with the private-data <foreignObject requiredExtensions="&ns_ai;">."""
    prolog = _illustrator_prolog(
        "utf-8",
        "10.0, SVG Export Plug-In . SVG Version: 3.0.0 Build 76)",
        'PUBLIC "-//W3C//DTD SVG 1.0//EN" "http://www.w3.org/TR/2001/REC-SVG-20010904/DTD/svg10.dtd"',
    )
    template = (
        '<svg  xmlns:x="{ns_extend}" xmlns:i="{ns_ai}" xmlns:graph="{ns_graphs}" '
        'i:viewOrigin="0 160" i:rulerOrigin="0 0" i:pageBounds="0 792 612 0"\n'
        '\t xmlns="{ns_svg}" xmlns:xlink="{ns_xlink}" '
        'xmlns:a="http://ns.adobe.com/AdobeSVGViewerExtensions/3.0/"\n'
        '\t width="200" height="160" viewBox="0 0 200 160" overflow="visible" '
        'enable-background="new 0 0 200 160" xml:space="preserve">\n'
        "\t<switch>\n"
        '\t\t<foreignObject requiredExtensions="{ns_ai}" x="0" y="0" width="1" height="1">\n'
        '\t\t\t<i:pgfRef  xlink:href="#adobe_illustrator_pgf">\n\t\t\t</i:pgfRef>\n'
        "\t\t</foreignObject>\n"
        '\t\t<g i:extraneous="self">\n'
        '\t\t\t<defs><linearGradient id="grad" x1="0" y1="0" x2="1" y2="1">'
        '<stop offset="0" stop-color="#0057B8"/><stop offset="1" stop-color="#00A3E0"/>'
        "</linearGradient></defs>\n"
        '\t\t\t<ellipse fill="url(#grad)" cx="100" cy="80" rx="90" ry="70"/>\n'
        '\t\t\t<path id="wave" fill="#FFFFFF" d="M30 90 Q65 50 100 90 T170 90 V110 H30 Z"/>\n'
        '\t\t\t<use xlink:href="#wave" transform="translate(0 -40)" opacity="0.6"/>\n'
        "\t\t</g>\n\t</switch>\n"
        '\t<i:pgf  id="adobe_illustrator_pgf">\n\t\t<![CDATA[\n\t\teJzt1ctu2zAQBdD9\n\t\t]]>\n'
        "\t</i:pgf>\n</svg>\n"
    )
    subset = "[\n" + _declarations(ILLUSTRATOR_NAMESPACES) + "]"
    return _pair(prolog, subset, template, ILLUSTRATOR_NAMESPACES)


def illustrator_cs2() -> DtdPair:
    """Illustrator CS/CS2 (SVG Export 6.00): single-quoted DOCTYPE, ns_svg and ns_xlink only."""
    values = {"ns_svg": SVG_NS, "ns_xlink": XLINK_NS}
    prolog = _illustrator_prolog(
        "UTF-8",
        "12.0.1, SVG Export Plug-In . SVG Version: 6.00 Build 51448)",
        " PUBLIC '-//W3C//DTD SVG 1.1//EN'  'http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd'",
    )
    template = (
        '<svg id="Layer_1" xmlns="{ns_svg}" xmlns:xlink="{ns_xlink}" width="300" height="200" '
        'viewBox="0 0 300 200" overflow="visible" enable-background="new 0 0 300 200" '
        'xml:space="preserve">\n<g clip-rule="evenodd" fill-rule="evenodd">\n'
        '\t<path fill="#9B5F0D" d="M20 180 C60 20 240 20 280 180 Z"/>\n'
        '\t<path fill="#F4D27A" d="M60 170 C90 70 210 70 240 170 Z"/>\n'
        '\t<circle fill="#1D1D1B" cx="150" cy="120" r="18"/>\n</g>\n</svg>\n'
    )
    return _pair(prolog, "[\n" + _declarations(values) + "]", template, values)


def illustrator_cs6() -> DtdPair:
    """Illustrator CS6/CC (16.0+): Adobe namespaces as entities in xmlns:x/i/graph and the
    Save-for-Web metadata; the SVG namespace itself written out."""
    adobe = {k: v for k, v in ILLUSTRATOR_NAMESPACES.items() if k not in ("ns_flows", "ns_svg")}
    adobe.pop("ns_xlink")
    prolog = _illustrator_prolog(
        "utf-8", "16.0.0, SVG Export Plug-In . SVG Version: 6.00 Build 0)", SVG11_PUBLIC
    )
    template = (
        '<svg version="1.1" id="Layer_1" xmlns:x="{ns_extend}" xmlns:i="{ns_ai}" '
        'xmlns:graph="{ns_graphs}"\n\t '
        f'xmlns="{SVG_NS}" xmlns:xlink="{XLINK_NS}" x="0px" y="0px" width="256px" '
        'height="128px"\n\t viewBox="0 0 256 128" enable-background="new 0 0 256 128" '
        'xml:space="preserve">\n'
        '<metadata>\n\t<sfw  xmlns="{ns_sfw}">\n\t\t<slices></slices>\n'
        '\t\t<sliceSourceBounds  width="256" height="128" x="0" y="0" bottomLeftOrigin="true">'
        "</sliceSourceBounds>\n\t</sfw>\n</metadata>\n"
        '<rect x="4" y="4" fill="#00843D" width="248" height="120" rx="16"/>\n'
        '<polygon fill="#FFFFFF" points="40,100 128,20 216,100 "/>\n</svg>\n'
    )
    return _pair(prolog, "[\n" + _declarations(adobe) + "]", template, adobe)


def aliases() -> DtdPair:
    """An alias (an entity whose value is one reference to another), an alias of an alias,
    `&amp;`/`&quot;` in values, a comment, single quotes: all in Commons' rule."""
    values = {
        "ns_svg": SVG_NS,
        "svg_namespace": "&ns_svg;",
        "brand": "#7A1FA2",
        "fill_colour": "&brand;",
        "fill": "&fill_colour;",
        "title": "Fish &amp; Chips &quot;Ltd&quot;",
    }
    subset = (
        "[\n\t<!-- the namespace, then names for it -->\n"
        + _declarations({"ns_svg": SVG_NS, "svg_namespace": "&ns_svg;"})
        + _declarations({"brand": "#7A1FA2", "fill_colour": "&brand;"}, quote="'")
        + _declarations({"fill": "&fill_colour;", "title": values["title"]})
        + "]"
    )
    prolog = f'<?xml version="1.0" standalone="no"?>\n<!DOCTYPE svg {SVG11_PUBLIC} [SUBSET]>\n'
    template = (
        '<svg xmlns="{svg_namespace}" width="160" height="160" viewBox="0 0 16 16">'
        "<title>{title}</title>"
        '<rect width="16" height="16" fill="{fill}"/>'
        '<path d="M2 8 L8 2 L14 8 L8 14 Z" fill="#FFFFFF" stroke="{brand}"/></svg>'
    )
    return _pair(prolog, subset, template, values)


def graphviz() -> DtdPair:
    """Graphviz (2.2x): the xmlns:xlink ATTLIST, a root that leaves xlink to it, and xlink:href
    on a node's link. The twin declares xmlns:xlink on the root instead."""
    prolog = (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n'
        ' "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [SUBSET]>\n'
        "<!-- Generated by graphviz version 2.26.3 (20100126.1600)\n -->\n"
        "<!-- Title: G Pages: 1 -->\n"
    )
    subset = '[\n <!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlink">\n]'
    graph = (
        '<g id="graph1" class="graph" transform="scale(1 1) rotate(0) translate(4 112)">\n'
        "<title>G</title>\n"
        '<polygon fill="white" stroke="white" points="-4,5 -4,-112 131,-112 131,5 -4,5"/>\n'
        '<g id="node1" class="node"><title>a</title>\n'
        '<a xlink:href="#node2" xlink:title="a">\n'
        '<ellipse fill="lightblue" stroke="black" cx="27" cy="-90" rx="27" ry="18"/>\n</a>\n'
        "</g>\n"
        '<g id="node2" class="node"><title>b</title>\n'
        '<ellipse fill="none" stroke="black" cx="99" cy="-18" rx="27" ry="18"/>\n</g>\n'
        '<g id="edge1" class="edge"><title>a&#45;&gt;b</title>\n'
        '<path fill="none" stroke="black" d="M43.5,-75.5C53.7,-63.7 67.3,-50.1 78.8,-38.5"/>\n'
        '<polygon fill="black" stroke="black" points="81.4,-40.9 85.9,-31.3 76.4,-35.8 '
        '81.4,-40.9"/>\n</g>\n</g>\n</svg>\n'
    )
    root = '<svg width="134pt" height="116pt"\n viewBox="0.00 0.00 134.00 116.00" xmlns="{}"'
    with_dtd = prolog.replace("[SUBSET]", subset) + root.format(SVG_NS) + ">\n" + graph
    without_dtd = (
        prolog.replace(" [SUBSET]", "")
        + root.format(SVG_NS)
        + f' xmlns:xlink="{XLINK_NS}">\n'
        + graph
    )
    return DtdPair(with_dtd.encode(), without_dtd.encode())


def accepted_pairs() -> dict[str, DtdPair]:
    return {
        "illustrator 9 (style entities)": illustrator_9(),
        "illustrator 9 (200 styles: <svg> past the first 4 KiB)": illustrator_9(200),
        "illustrator 10 (&ns_svg; &ns_xlink;)": illustrator_10(),
        "illustrator CS2 (&ns_svg; &ns_xlink;)": illustrator_cs2(),
        "illustrator CS6 (&ns_extend; &ns_ai;)": illustrator_cs6(),
        "aliases": aliases(),
        "graphviz ATTLIST": graphviz(),
    }


# --- DTDs Commons refuses ---------------------------------------------------------------------

DRAWING = f'<svg xmlns="{SVG_NS}" width="40" height="40"><rect width="40" height="40"/>'


def with_subset(subset: str, body: str = DRAWING + "</svg>") -> bytes:
    return f'<?xml version="1.0"?>\n<!DOCTYPE svg {SVG11_PUBLIC} [\n{subset}\n]>\n{body}'.encode()


@dataclass(frozen=True)
class Refused:
    subset: str
    error_type: str
    reason: str  # part of the error message
    references: str = ""  # entity references in the body (attributes and text)

    def document(self, well_formed: bool = True) -> bytes:
        """The SVG; not `well_formed`, it says whether an XML parser ever read its body."""
        text = (
            f"<text>{self.references}</text></svg>" if well_formed else "<text>" + self.references
        )
        return with_subset(self.subset, DRAWING + text)


def billion_laughs_subset(levels: int = 10) -> str:
    return '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels)
    )


def alias_chain_subset(length: int, reverse: bool = False) -> str:
    """e_length -> ... -> e1 -> e0 (plain); declared from the plain end, or the other way."""
    declarations = ['<!ENTITY e0 "deep">'] + [
        f'<!ENTITY e{i} "&e{i - 1};">' for i in range(1, length + 1)
    ]
    return "".join(reversed(declarations) if reverse else declarations)


def refused_forms() -> dict[str, Refused]:
    external = "the DTD declares the external entity"
    other_entities = "refers to other entities"
    return {
        "SYSTEM entity (XXE)": Refused(
            '<!ENTITY xxe SYSTEM "file:///etc/passwd">', "decode_failed", external, "&xxe;"
        ),
        "PUBLIC entity": Refused(
            '<!ENTITY xxe PUBLIC "-//X//Y//EN" "http://127.0.0.1:9/x.ent">',
            "decode_failed",
            external,
            "&xxe;",
        ),
        "unparsed SYSTEM entity": Refused(
            '<!ENTITY pic SYSTEM "/dev/zero" NDATA png><!NOTATION png SYSTEM "image/png">',
            "decode_failed",
            external,
        ),
        "parameter entity": Refused(
            '<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;',
            "decode_failed",
            "parameter entity",
        ),
        "parameter entity reference": Refused(
            '<!ENTITY ok "fine"> %ok;', "decode_failed", "parameter entity (%name;)"
        ),
        "parameter reference in a value": Refused(
            '<!ENTITY v "50%;">', "decode_failed", "refers to a parameter entity (%)"
        ),
        "billion laughs": Refused(billion_laughs_subset(), "decode_failed", other_entities),
        "two references in a value": Refused(
            '<!ENTITY a "ha"><!ENTITY b "&a;&a;">', "decode_failed", other_entities, "&b;"
        ),
        "text around a reference": Refused(
            '<!ENTITY a "ha"><!ENTITY b "x&a;">', "decode_failed", other_entities, "&b;"
        ),
        "character reference in a value": Refused(
            '<!ENTITY lt2 "a&#60;">', "decode_failed", other_entities
        ),
        "value of 256 bytes": Refused(
            f'<!ENTITY big "{"x" * 256}">', "decode_failed", "is 256 bytes (at most 255)", "&big;"
        ),
        "<!ELEMENT>": Refused("<!ELEMENT svg ANY>", "decode_failed", "<!ELEMENT>"),
        "other <!ATTLIST>": Refused(
            '<!ATTLIST svg onload CDATA #FIXED "alert(1)">', "decode_failed", "<!ATTLIST>"
        ),
        "graphviz <!ATTLIST> with another value": Refused(
            '<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://127.0.0.1:9/x">',
            "decode_failed",
            "<!ATTLIST>",
        ),
        "<!NOTATION>": Refused('<!NOTATION gif SYSTEM "image/gif">', "decode_failed", "notation"),
        "processing instruction": Refused(
            '<?xml-stylesheet href="http://127.0.0.1:9/s.css"?>',
            "decode_failed",
            "processing instruction",
        ),
        "malformed comment": Refused(
            "<!-- a -- b -->", "decode_failed", "malformed or unterminated"
        ),
        "aliases 33 deep": Refused(
            alias_chain_subset(33), "decode_failed", "more than 32 deep", "&e33;"
        ),
        "aliases 33 deep, declared backwards": Refused(
            alias_chain_subset(33, reverse=True), "decode_failed", "more than 32 deep", "&e33;"
        ),
        "quadratic blow-up (255 bytes x 50,000)": Refused(
            f'<!ENTITY big "{"x" * 255}">', "too_large", "entities expand it past", "&big;" * 50_000
        ),
    }
