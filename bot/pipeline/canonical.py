"""Canonical URLs: one spelling per link, so the same article found twice is stored once.

:func:`canonical_url` is an identity key first and a link second:

* redirect wrappers are unwrapped (Google ``/url?q=`` and ``?url=`` as in Google Alerts,
  Facebook ``l.php?u=``, YouTube ``/redirect?q=``, Outlook Safe Links …; see ``REDIRECTORS``);
* scheme and host are lower-cased, a trailing dot, user info, default ports and the fragment
  are dropped; the scheme itself is kept (``http`` and ``https`` stay distinct, since a site
  may serve only one of them);
* a leading ``www.`` is always removed from the host: practically every site serves the same
  page on both names (one redirects to the other), and copies of one article are linked both
  ways;
* well-known tracking parameters are removed (see ``TRACKING_PARAMS`` and
  ``TRACKING_PREFIXES``) and the remaining ones sorted by name (values of a repeated name keep
  their order);
* percent-escapes are normalised (upper-case hex, unreserved characters decoded, non-ASCII
  characters encoded), dot segments resolved, and a trailing slash dropped except for the root.

Anything that is not an absolute http(s) URL gives ``None``; no input makes it raise.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

TRACKING_PARAMS = frozenset(
    {
        # Ads and analytics click ids
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
        "ttclid", "li_fat_id", "epik", "_ga", "_gl",
        # Mailchimp, HubSpot, Marketo, Vero, Oly
        "mc_cid", "mc_eid", "_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp", "hsctatracking",
        "mkt_tok", "vero_id", "vero_conv", "oly_anon_id", "oly_enc_id",
        # Social share ids (Instagram, YouTube/Spotify, Twitter, Facebook)
        "igshid", "igsh", "si", "ref_src", "ref_url", "fb_action_ids",
        "fb_action_types", "fb_ref", "fb_source", "action_object_map", "action_type_map",
        "action_ref_map", "__tn__", "__cft__",
        # Feed readers and newsletters
        "wt_mc", "wt.mc_id", "cmpid", "sr_share", "spm", "share_source",
    }
)  # fmt: skip
"""Query parameter names (compared lower-cased) that identify a click, not the content."""

TRACKING_PREFIXES = ("utm_", "__cft__[", "pk_", "mtm_", "hsa_")
"""Parameter name prefixes of campaign tags (Google/Matomo/Piwik/HubSpot ads)."""

# X/Twitter share links carry "s" (share channel) and "t" (sharer token); elsewhere those names
# often mean search or time, so they only count as tracking on these hosts.
_X_HOSTS = ("twitter.com", "mobile.twitter.com", "x.com", "mobile.x.com")
_HOST_ONLY_PARAMS = {"s": _X_HOSTS, "t": _X_HOSTS}

REDIRECTORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "l.facebook.com": ("/l.php", ("u",)),
    "lm.facebook.com": ("/l.php", ("u",)),
    "m.facebook.com": ("/l.php", ("u",)),
    "facebook.com": ("/l.php", ("u",)),
    "l.instagram.com": ("/", ("u",)),
    "l.messenger.com": ("/l.php", ("u",)),
    "youtube.com": ("/redirect", ("q",)),
    "m.youtube.com": ("/redirect", ("q",)),
    "out.reddit.com": ("*", ("url",)),
    "t.umblr.com": ("/redirect", ("z",)),
    "href.li": ("/", ()),
    "away.vk.com": ("/away.php", ("to",)),
    "vk.com": ("/away.php", ("to",)),
    "slack-redir.net": ("/link", ("url",)),
    "steamcommunity.com": ("/linkfilter", ("url", "u")),
    "linkedin.com": ("/redir/redirect", ("url",)),
    "news.google.com": ("/url", ("url", "q")),
}
"""Host (without ``www.``) → (path, query parameters holding the target). Path ``*`` is any;
an empty parameter tuple means the whole query string is the target (``href.li/?https://…``).
Google's ``/url`` on any ``google.<tld>`` and Outlook Safe Links are matched separately."""

_GOOGLE_HOST = re.compile(r"(?:www\.)?google(?:\.com?)?\.[a-z]{2,3}")
_SAFELINKS_SUFFIX = ".safelinks.protection.outlook.com"
_MAX_UNWRAP = 4
_MAX_URL_CHARS = 8192

_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = "/%:@!$&'()*+,;="
_QUERY_SAFE = "/%:@!$&'()*+,;=?"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_VALID_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*|[0-9a-f.]*:[0-9a-f:.]*")


def canonical_url(url: str | None) -> str | None:
    """The canonical form of an http(s) URL, or ``None`` if ``url`` is not one."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    for _ in range(_MAX_UNWRAP + 1):
        if len(url) > _MAX_URL_CHARS or _BAD_CHARS.search(url):
            return None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")
        if scheme not in _DEFAULT_PORTS or not host:
            return None
        target = _unwrap(host, parts.path, parts.query)
        if target is None:
            return _rebuild(scheme, host, port, parts.path, parts.query)
        url = target.strip()
    return None  # a chain of wrappers this long is not a link anyone should follow


def _unwrap(host: str, path: str, query: str) -> str | None:
    """The URL a redirect wrapper points to, if this is one."""
    bare = host.removeprefix("www.")
    params: tuple[str, ...]
    if _GOOGLE_HOST.fullmatch(host) and path == "/url":
        params = ("q", "url")
    elif bare.endswith(_SAFELINKS_SUFFIX):
        params = ("url",)
    elif bare in REDIRECTORS:
        wrapper_path, params = REDIRECTORS[bare]
        if wrapper_path not in ("*", path.rstrip("/") or "/"):
            return None
        if not params:
            target = unquote(query)
            return target if target.lower().startswith(("http://", "https://")) else None
    else:
        return None
    values = _query_values(query)
    for name in params:
        value = values.get(name)
        if value and value.lower().startswith(("http://", "https://")):
            return value
    return None


def _query_values(query: str) -> dict[str, str]:
    """First value of each parameter, decoded like a form (``+`` is a space)."""
    out: dict[str, str] = {}
    for piece in query.split("&"):
        name, _, value = piece.partition("=")
        out.setdefault(unquote(name), unquote(value.replace("+", " ")))
    return out


def _rebuild(scheme: str, host: str, port: int | None, path: str, query: str) -> str | None:
    try:
        # IDNA turns "bücher.de" and "xn--bcher-kva.de" into one spelling.
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    host = host.lower()
    if not _VALID_HOST.fullmatch(host):
        return None
    if host.startswith("www.") and "." in host[4:]:
        host = host[4:]
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    path = _normalise_escapes(quote(path, safe=_PATH_SAFE))
    path = _remove_dot_segments(path) if "." in path else path
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return urlunsplit((scheme, netloc, path or "/", _clean_query(host, query), ""))


def _clean_query(host: str, query: str) -> str:
    if not query:
        return ""
    kept: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if not piece:
            continue
        name = unquote(piece.partition("=")[0].replace("+", " ")).lower()
        if _is_tracking(name, host):
            continue
        kept.append((name, _normalise_escapes(quote(piece, safe=_QUERY_SAFE))))
    kept.sort(key=lambda item: item[0])  # stable: a repeated name keeps its values' order
    return "&".join(piece for _, piece in kept)


def _is_tracking(name: str, host: str) -> bool:
    if name in _HOST_ONLY_PARAMS:
        return host in _HOST_ONLY_PARAMS[name]
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def _normalise_escapes(text: str) -> str:
    """Upper-case percent-escapes and decode the ones that stand for unreserved characters."""
    if "%" not in text:
        return text

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    return _PCT.sub(fix, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4: ``/a/./b/../c`` → ``/a/c``."""
    out: list[str] = []
    segments = path.split("/")
    for segment in segments[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")  # "/a/b/.." names the directory "/a/"
    return "/" + "/".join(out)
