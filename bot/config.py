"""Watch rules and sources from ``parley.toml``, validated by pydantic (each source section by
its connector's own model, listed in :mod:`bot.connectors.catalog`).

Errors are collected into :class:`ConfigError` with one line per problem:
``parley.toml: brands[0].rules[1].query: unbalanced ')' at position 7``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeAlias, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.connectors.catalog import CONNECTORS, SOURCE_TYPES
from bot.connectors.spec import SourceSection
from bot.errors import ConfigError, QuerySyntaxError
from bot.matching.query import parse_query


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleConfig(_Strict):
    """One keyword rule of a brand."""

    name: str = Field(min_length=1, max_length=64)
    query: str = Field(min_length=1, max_length=2000)
    urgent: bool = False

    @field_validator("query")
    @classmethod
    def _query_parses(cls, value: str) -> str:
        try:
            parse_query(value)
        except QuerySyntaxError as exc:
            raise ValueError(str(exc)) from None
        return value


class RouteConfig(_Strict):
    """Where a brand's alerts go on each frontend (unset: the frontend's default)."""

    console: bool = True
    telegram_chat_id: int | str | None = None
    telegram_topic_id: int | None = None
    discord_channel_id: int | None = None

    @field_validator("telegram_chat_id")
    @classmethod
    def _telegram_chat(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not re.fullmatch(
            r"\s*(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})\s*", value
        ):
            raise ValueError(
                "use the chat's numeric id (e.g. -1001234567890: send /start in the group to see "
                "it) or a public '@channelname'"
            )
        return value

    @field_validator("telegram_topic_id", "discord_channel_id")
    @classmethod
    def _positive_id(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(
                "an id is a positive number: copy it from the app (Discord: right-click the "
                "channel → Copy Channel ID, with Developer Mode on)"
            )
        return value


class ApproversConfig(_Strict):
    """A brand's own approvers, on top of the global ones (TELEGRAM_APPROVER_IDS,
    DISCORD_APPROVER_ROLE_IDS): they may decide on this brand's mentions only."""

    telegram_user_ids: list[int] = Field(
        default_factory=list, description="Telegram user ids (send /start to the bot to see one)"
    )
    discord_role_ids: list[int] = Field(
        default_factory=list, description="Discord role ids (right-click a role → Copy Role ID)"
    )

    @field_validator("telegram_user_ids", "discord_role_ids")
    @classmethod
    def _positive_ids(cls, value: list[int]) -> list[int]:
        if any(i < 1 for i in value):
            raise ValueError(
                "an id is a positive number: a Telegram user id is what /start shows you; "
                "a Discord role id is copied with right-click → Copy Role ID"
            )
        return value


class BrandConfig(_Strict):
    """A brand (or client, for agencies) with its own rules, voice and alert route."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    display_name: str = ""
    language: str = Field(default="en", min_length=2, max_length=8)
    voice_file: str | None = Field(
        default=None, description="brand-voice file under prompts/, e.g. 'brands/acme.md'"
    )
    signature: str = ""
    allowed_links: list[str] = Field(
        default_factory=list,
        description="domains or URL prefixes a draft may link to, e.g. 'status.acme.com'",
    )
    rules: list[RuleConfig] = Field(min_length=1)
    route: RouteConfig = RouteConfig()
    approvers: ApproversConfig = ApproversConfig()

    @property
    def label(self) -> str:
        """The brand's human name."""
        return self.display_name or self.name

    @model_validator(mode="after")
    def _unique_rule_names(self) -> BrandConfig:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique within a brand: {', '.join(dupes)}")
        return self


# A ``[[sources]]`` section: pydantic validates against every connector's model in the catalog,
# told apart by ``type``; a union built at run time is opaque to the type checker, which sees
# the protocol all of them satisfy.
if TYPE_CHECKING:
    SourceConfig: TypeAlias = SourceSection
else:
    SourceConfig = Annotated[
        Union[tuple(spec.config for spec in CONNECTORS)],  # noqa: UP007 (built from a list)
        Field(discriminator="type"),
    ]


class ParleyConfig(_Strict):
    """The whole of ``parley.toml``."""

    brands: list[BrandConfig] = Field(min_length=1)
    sources: list[SourceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> ParleyConfig:
        for kind, names in (
            ("brand", [b.name for b in self.brands]),
            ("source", [s.name for s in self.sources]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind} names must be unique: {', '.join(dupes)}")
        return self

    def brand(self, name: str) -> BrandConfig | None:
        """The brand called ``name``, if configured."""
        return next((b for b in self.brands if b.name == name), None)


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in SOURCE_TYPES:
            continue  # the discriminator tag pydantic inserts into the path
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(err: dict[str, object]) -> str:
    kind = err.get("type")
    msg = str(err.get("msg", "invalid"))
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        tag = ctx.get("tag") if isinstance(ctx, dict) else None
        return f"unknown source type {tag!r} (known: {', '.join(SOURCE_TYPES)})"
    if kind == "union_tag_not_found":
        return f"missing 'type' (one of: {', '.join(SOURCE_TYPES)})"
    if kind == "extra_forbidden":
        return "unknown setting (check its spelling)"
    if kind == "list_type" and isinstance(err.get("input"), dict):
        loc = err.get("loc")
        table = ".".join(p for p in loc if isinstance(p, str)) if isinstance(loc, tuple) else ""
        return f"write [[{table}]] with two brackets for each entry ([{table}] is a single table)"
    return msg.removeprefix("Value error, ")


def parse_config(data: dict[str, object], origin: str) -> ParleyConfig:
    """Validate already-parsed TOML data; ``origin`` names the file in error lines."""
    try:
        return ParleyConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{origin}: {_field_path(tuple(e['loc']))}: {_describe(dict(e))}" for e in exc.errors()
        ]
        raise ConfigError(problems) from None


def load_config(path: Path) -> ParleyConfig:
    """Read and validate ``parley.toml``; every problem becomes one line of a ConfigError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: file not found (copy parley.example.toml to {path} or set PARLEY_CONFIG)"]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read it ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_config(data, str(path))
