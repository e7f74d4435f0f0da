"""Finds concrete offers in a reply: percentages off, promo or discount codes and gift cards.

Written for English, French, Spanish and German (plus a few Italian and Dutch words), all checked
whatever the brand's language, since an injected reply may switch language. The text is read
through :func:`bot.drafting.textscan.normalise` and without accents, so full-width digits match, and
``réduction`` spelled ``reduction`` too.
"""

from __future__ import annotations

import functools
import re

from bot.drafting.textscan import normalise, unaccent

_NUMBER = r"\d{1,3}(?:[.,]\d{1,2})?"
_PERCENT = rf"{_NUMBER}\s*(?:%|percent|per\s*cent|pour\s*cent|por\s*ciento|prozent)"
_OFF_WORDS = (
    r"off|discount|de\s+(?:reduction|remise|rabais|descuento|reduccion)|reduction|remise|rabais"
    r"|descuento|rabatt|nachlass|gunstiger|billiger|sconto|di\s+sconto|korting|en\s+moins"
    r"|de\s+moins|offerts?|gratis"
)
_BEFORE_WORDS = (
    r"moins|menos|minus|save|saving|savings\s+of|economisez|economise[rz]?|ahorra|ahorre|spare"
    r"|sparen\s+sie|sparen|reduction\s+de|remise\s+de|rabais\s+de|descuento\s+del?|rabatt\s+von"
    r"|discount\s+of|sconto\s+del"
)
_PERCENT_OFF_RE = re.compile(
    rf"(?<![\w%])(?:{_PERCENT}\s*(?:{_OFF_WORDS})\b"
    rf"|(?:{_BEFORE_WORDS})\s+(?:de\s+|d'|un\s+|une\s+|el\s+|la\s+)?(?:jusqu'a\s+)?{_PERCENT}"
    rf"|[-\u2212\u2013]\s?{_PERCENT})",
    re.IGNORECASE,
)
_CODE_WORDS = (
    r"promo(?:tional)?\s*codes?|promo|coupons?(?:\s*codes?)?|discount\s*codes?|voucher(?:\s*codes?)?"
    r"|codes?(?:\s*(?:promo(?:tionnel)?|de\s+(?:reduction|remise|reduc)|reduc|cadeau)(?!\w))?"
    r"|codigos?(?:\s+(?:promocional|de\s+descuento|descuento))?|cupon(?:es)?"
    r"|(?:gutschein|rabatt|aktions|promo)code|gutschein|codice\s+sconto"
)
_CODE_RE = re.compile(
    rf"(?<!\w)(?P<word>(?i:{_CODE_WORDS}))\s*[:=]?\s*[\"'«“]?\s*"
    r"(?P<code>[A-Z0-9][A-Z0-9_-]{2,23})(?![\w-])"
)
_NOT_PROMO_BEFORE = re.compile(
    r"(?:error|erreur|fehler|status|postal|zip|country|area|source|http|tracking|suivi"
    r"|verification|confirmation|security|securite|access|acces|order|commande|pedido|bestell)"
    r"[\s-]*$",
    re.IGNORECASE,
)
_GIFT_CARD_RE = re.compile(
    r"(?<!\w)(?:e-?gift\s*cards?|gift\s*-?\s*(?:cards?|vouchers?|certificates?|codes?)"
    r"|cartes?\s*-?\s*cadeaux?|cheques?\s*-?\s*cadeaux?|bons?\s+(?:d'achat|cadeaux?)"
    r"|e-?cartes?\s+cadeaux?|tarjetas?\s+(?:de\s+)?regalo|cheques?\s+regalo|vales?\s+(?:de\s+)?regalo"
    r"|geschenk(?:karte|gutschein)(?:n|s)?|gutscheinkarten?|einkaufsgutscheine?|buoni?\s+regalo"
    r"|carta\s+regalo|cadeaukaart(?:en)?|cadeaubon(?:nen)?"
    r"|(?:steam|itunes|apple|google\s+play|amazon)\s+(?:gift\s+)?cards?)(?!\w)",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=64)
def _readable(text: str) -> str:
    return unaccent(normalise(text)).replace("\u2019", "'")


def percents_off(text: str) -> list[str]:
    """Every percentage off (``50% off``, ``-50 %``, ``moins 50 %``, ``20 % Rabatt``…)."""
    return [m.group().strip() for m in _PERCENT_OFF_RE.finditer(_readable(text))]


def promo_codes(text: str) -> list[str]:
    """Every code given after a promo/discount/voucher word (``code PROMO2024``, ``código
    DESCUENTO10``, ``Gutscheincode: SOMMER20``); a code has a digit or is in capitals. Error,
    postal, tracking or order codes are not promo codes."""
    found = []
    readable = _readable(text)
    for match in _CODE_RE.finditer(readable):
        code = match.group("code")
        if not (any(c.isdigit() for c in code) or (code.isupper() and len(code) >= 4)):
            continue
        if _NOT_PROMO_BEFORE.search(readable[: match.start()]):
            continue
        found.append(code)
    return found


def gift_cards(text: str) -> list[str]:
    """Every mention of a gift card or voucher (``gift card``, ``carte cadeau``, ``tarjeta
    regalo``, ``Geschenkkarte``…)."""
    return [m.group() for m in _GIFT_CARD_RE.finditer(_readable(text))]
