"""Generated logos in the design families the icon sets lack: wordmarks, lettermarks, emblems.

Every logo in the source collection is an icon from four sets (a glyph, a disc with a glyph, a
crest). Commons' logos are also wordmarks (a name set in type), lettermarks (initials in a
shape), combination marks (glyph beside or above a name) and emblems (a shield, seal or roundel
with bands, stars and lettering around the edge). Without them the model can take any framed
flat-colour design with text for a flag or a diagram. Each is built from a brand of
simple-icons (its glyph, colour and name), so it shares that brand's train/validation/test split.
"""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw, ImageFont

from training.synthetic.graphics import FONT_DIR

Colour = tuple[int, int, int]
SIDE = 512  # drawing size; the caller scales the result to the file's size
FONTS = [
    "DejaVuSans-Bold.ttf",
    "DejaVuSans.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneralBol.ttf",
    "cmss10.ttf",
]
KINDS = ["wordmark", "combination", "lettermark", "emblem"]


def _font(rng: random.Random, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / rng.choice(FONTS)), max(6, size))


def _contrast(colour: Colour) -> Colour:
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (20, 20, 20) if luma > 150 else (255, 255, 255)


def _palette(rng: random.Random, brand: Colour) -> list[Colour]:
    """The brand colour plus one to two others: logos use few colours."""
    others = [(255, 255, 255), (20, 20, 20), (200, 16, 46), (0, 56, 147), (255, 205, 0)]
    others += [tuple(rng.randint(0, 255) for _ in range(3)) for _ in range(2)]  # type: ignore[misc]
    return [brand, *rng.sample(others, 2)]


def _initials(name: str, rng: random.Random) -> str:
    words = [w for w in name.replace("-", " ").split() if w[:1].isalnum()]
    letters = "".join(w[0] for w in words[:3]).upper() or name[:2].upper()
    return letters if len(letters) > 1 or rng.random() < 0.5 else name[:3].upper()


def _fit_text(rng: random.Random, text: str, width: int, height: int) -> ImageFont.FreeTypeFont:
    """The largest font of a random face whose rendering of ``text`` fits width x height."""
    font = _font(rng, height)
    box = font.getbbox(text)
    scale = min(width / max(1, box[2] - box[0]), height / max(1, box[3] - box[1]), 1.0)
    font = font.font_variant(size=max(6, int(font.size * scale)))
    return font


def _text(draw: ImageDraw.ImageDraw, centre: tuple[int, int], text: str, font, fill) -> None:
    box = font.getbbox(text)
    x = centre[0] - (box[0] + box[2]) // 2
    y = centre[1] - (box[1] + box[3]) // 2
    draw.text((x, y), text, font=font, fill=fill)


def _glyph(glyph: Image.Image, colour: Colour, side: int) -> Image.Image:
    """The glyph recoloured (its alpha kept) and scaled to fit a side x side box."""
    solid = Image.new("RGBA", glyph.size, (*colour, 255))
    solid.putalpha(glyph.getchannel("A"))
    scale = side / max(glyph.size)
    return solid.resize((max(1, int(glyph.width * scale)), max(1, int(glyph.height * scale))))


def _shape_mask(rng: random.Random, kind: str) -> Image.Image:
    mask = Image.new("L", (SIDE, SIDE), 0)
    draw = ImageDraw.Draw(mask)
    m = SIDE // 16
    if kind == "circle":
        draw.ellipse((m, m, SIDE - m, SIDE - m), fill=255)
    elif kind == "rounded":
        draw.rounded_rectangle(
            (m, m, SIDE - m, SIDE - m), radius=rng.randint(0, SIDE // 4), fill=255
        )
    elif kind == "hexagon":
        draw.regular_polygon(
            (SIDE // 2, SIDE // 2, SIDE // 2 - m), 6, rotation=rng.choice([0, 30]), fill=255
        )
    else:  # shield: flat (or notched) top, straight sides, curving to a point
        top, waist = m, int(SIDE * rng.uniform(0.45, 0.6))
        points = [
            (m, top),
            (SIDE // 2, top + rng.choice([0, 0, m])),
            (SIDE - m, top),
            (SIDE - m, waist),
        ]
        for i in range(1, 11):
            t = i / 10
            x = (SIDE - m) + (SIDE // 2 - (SIDE - m)) * t
            y = waist + (SIDE - m - waist) * math.sin(t * math.pi / 2)
            points.append((x, y))
        points += [(SIDE - p[0], p[1]) for p in reversed(points[4:-1])] + [(m, waist)]
        draw.polygon(points, fill=255)
    return mask


def _bands(rng: random.Random, colours: list[Colour]) -> Image.Image:
    """Stripes, quarters or a plain field: what fills a shield or a seal."""
    field = Image.new("RGBA", (SIDE, SIDE), (*colours[0], 255))
    draw = ImageDraw.Draw(field)
    style = rng.choice(["plain", "plain", "vertical", "horizontal", "diagonal", "quarters"])
    n = rng.randint(2, 5)
    step = SIDE / n
    for i in range(n):
        c = (*colours[i % len(colours)], 255)
        if style == "vertical":
            draw.rectangle((i * step, 0, (i + 1) * step, SIDE), fill=c)
        elif style == "horizontal":
            draw.rectangle((0, i * step, SIDE, (i + 1) * step), fill=c)
        elif style == "diagonal":
            w = SIDE / n
            draw.polygon(
                [
                    (i * 2 * w - SIDE, SIDE),
                    (i * 2 * w, 0),
                    ((i * 2 + 1) * w, 0),
                    ((i * 2 + 1) * w - SIDE, SIDE),
                ],
                fill=c,
            )
    if style == "quarters":
        draw.rectangle((0, 0, SIDE // 2, SIDE // 2), fill=(*colours[1], 255))
        draw.rectangle((SIDE // 2, SIDE // 2, SIDE, SIDE), fill=(*colours[1], 255))
    return field


def _star(draw: ImageDraw.ImageDraw, centre: tuple[float, float], r: float, fill) -> None:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.4
        a = -math.pi / 2 + i * math.pi / 5
        points.append((centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a)))
    draw.polygon(points, fill=fill)


def _ring_text(img: Image.Image, text: str, radius: float, font, fill, top: bool = True) -> None:
    """Letters set along a circle, upright at the top (or the bottom) as seals have them."""
    widths = [font.getlength(ch) for ch in text]
    total = sum(widths) / radius  # radians the text spans
    angle = -math.pi / 2 - total / 2 if top else math.pi / 2 + total / 2
    for ch, w in zip(text, widths, strict=True):
        half = w / 2 / radius
        angle += half if top else -half
        size = int(font.size * 1.6)
        tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        _text(ImageDraw.Draw(tile), (size // 2, size // 2), ch, font, fill)
        turn = -math.degrees(angle + math.pi / 2) if top else -math.degrees(angle - math.pi / 2)
        tile = tile.rotate(turn, resample=Image.Resampling.BICUBIC)
        x = SIDE / 2 + radius * math.cos(angle) - size / 2
        y = SIDE / 2 + radius * math.sin(angle) - size / 2
        img.alpha_composite(tile, (int(x), int(y)))
        angle += half if top else -half


def wordmark(
    rng: random.Random, name: str, colours: list[Colour], glyph: Image.Image | None
) -> Image.Image:
    """A name set in type, alone or beside/above its glyph (a combination mark), maybe with a
    tagline or a box."""
    img = Image.new("RGBA", (SIDE * 2, SIDE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    text = rng.choice([name, name.upper(), name.lower()])
    ink = (*colours[0], 255)
    if glyph is not None and rng.random() < 0.5:  # glyph above the name
        g = _glyph(
            glyph,
            colours[rng.randrange(len(colours))] if rng.random() < 0.3 else colours[0],
            SIDE // 2,
        )
        img.alpha_composite(g, (SIDE - g.width // 2, SIDE // 16))
        font = _fit_text(rng, text, int(SIDE * 1.8), SIDE // 4)
        _text(draw, (SIDE, int(SIDE * 0.8)), text, font, ink)
    else:
        left = 0
        if glyph is not None:
            g = _glyph(glyph, colours[0], int(SIDE * 0.6))
            img.alpha_composite(g, (SIDE // 16, (SIDE - g.height) // 2))
            left = g.width + SIDE // 8
        font = _fit_text(
            rng, text, SIDE * 2 - left - SIDE // 8, int(SIDE * rng.uniform(0.25, 0.45))
        )
        _text(draw, (left + SIDE // 16 + (SIDE * 2 - left) // 2, SIDE // 2), text, font, ink)
        if rng.random() < 0.3:
            tag = rng.choice(
                ["INC.", "GROUP", "FOUNDATION", "SOFTWARE", "CLUB", "SINCE 1998", "LABS"]
            )
            tfont = _fit_text(rng, tag, SIDE, SIDE // 10)
            _text(
                draw,
                (left + SIDE // 16 + (SIDE * 2 - left) // 2, int(SIDE * 0.8)),
                tag,
                tfont,
                (*colours[1], 255),
            )
        if rng.random() < 0.2:
            draw.rectangle(
                (4, SIDE // 5, SIDE * 2 - 4, SIDE * 4 // 5), outline=ink, width=SIDE // 40
            )
    return img.crop(img.getbbox() or (0, 0, 1, 1))


def lettermark(rng: random.Random, name: str, colours: list[Colour]) -> Image.Image:
    """Initials inside a filled shape."""
    shape = rng.choice(["circle", "rounded", "hexagon", "shield"])
    img = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0))
    img.paste(Image.new("RGBA", (SIDE, SIDE), (*colours[0], 255)), mask=_shape_mask(rng, shape))
    text = _initials(name, rng)
    font = _fit_text(rng, text, int(SIDE * 0.6), int(SIDE * 0.45))
    _text(ImageDraw.Draw(img), (SIDE // 2, SIDE // 2), text, font, (*_contrast(colours[0]), 255))
    return img


def emblem(
    rng: random.Random, name: str, colours: list[Colour], glyph: Image.Image | None
) -> Image.Image:
    """A shield or seal: banded field, outline, glyph or initials, stars, lettering on a ring."""
    shape = rng.choice(["shield", "shield", "circle", "hexagon", "rounded"])
    img = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0))
    mask = _shape_mask(rng, shape)
    img.paste(_bands(rng, colours), mask=mask)
    draw = ImageDraw.Draw(img)
    line = (*rng.choice([(255, 255, 255), (20, 20, 20), colours[1], (212, 175, 55)]), 255)
    outline = Image.new("RGBA", (SIDE, SIDE), line)
    edge = mask.point(lambda v: 255 if v else 0)
    inner = edge.resize((int(SIDE * 0.93),) * 2)
    ring_mask = edge.copy()
    ring_mask.paste(0, (int(SIDE * 0.035),) * 2, inner)
    img.paste(outline, mask=ring_mask)
    centre_side = int(SIDE * 0.42)
    if shape == "circle" and rng.random() < 0.6:  # a seal: the name around a ring
        draw.ellipse(
            (SIDE * 0.2, SIDE * 0.2, SIDE * 0.8, SIDE * 0.8),
            fill=(*colours[2], 255),
            outline=line,
            width=SIDE // 60,
        )
        font = _font(rng, SIDE // 12)
        _ring_text(img, name.upper()[:24], SIDE * 0.37, font, line)
        if rng.random() < 0.5:
            _ring_text(
                img,
                rng.choice(["EST. 1901", "FOUNDED 1923", "SINCE 1987", "* * *"]),
                SIDE * 0.37,
                font,
                line,
                top=False,
            )
        centre_side = int(SIDE * 0.34)
    elif shape == "shield" and rng.random() < 0.5:  # a banner with the name across the shield
        y = int(SIDE * rng.uniform(0.15, 0.25))
        draw.rectangle((SIDE * 0.1, y, SIDE * 0.9, y + SIDE // 8), fill=line)
        font = _fit_text(rng, name.upper()[:16], int(SIDE * 0.7), SIDE // 11)
        _text(
            draw, (SIDE // 2, y + SIDE // 16), name.upper()[:16], font, (*_contrast(line[:3]), 255)
        )
    content = _contrast(colours[0]) if rng.random() < 0.7 else colours[1]
    if glyph is not None and rng.random() < 0.7:
        g = _glyph(glyph, content, centre_side)
        img.alpha_composite(g, ((SIDE - g.width) // 2, int(SIDE * 0.55) - g.height // 2))
    else:
        text = _initials(name, rng)
        font = _fit_text(rng, text, centre_side, centre_side // 2)
        _text(draw, (SIDE // 2, int(SIDE * 0.55)), text, font, (*content, 255))
    if rng.random() < 0.4:
        n = rng.randint(1, 5)
        for i in range(n):
            x = SIDE / 2 + (i - (n - 1) / 2) * SIDE * 0.09
            _star(draw, (x, SIDE * 0.1 if shape == "shield" else SIDE * 0.08), SIDE * 0.035, line)
    return img


def generated_logo(
    rng: random.Random, name: str, brand: Colour, glyph: Image.Image | None
) -> Image.Image:
    """One logo of a random design family for one brand (RGBA, transparent around it)."""
    colours = _palette(rng, brand)
    kind = rng.choice(KINDS)
    if kind in ("wordmark", "combination"):
        return wordmark(rng, name, colours, glyph if kind == "combination" else None)
    if kind == "lettermark":
        return lettermark(rng, name, colours)
    return emblem(rng, name, colours, glyph)
