"""Runtime settings from the environment and ``.env`` (pydantic-settings).

Built once in the CLI and passed down; never read at import time. Watch rules and sources
live in ``parley.toml`` instead (see bot/config.py).
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError
from bot.localtime import machine_zone, parse_zone


class Settings(BaseSettings):
    """Every setting Parley reads; each is documented in .env.example and the README."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    parley_config: Path = Field(default=Path("parley.toml"))
    parley_db_path: Path = Field(default=Path("parley.db"))
    parley_prompts_dir: Path | None = None
    parley_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    parley_lookback_hours: float = Field(default=24.0, ge=0.0, le=24.0 * 365)
    parley_auto_draft: bool = True
    parley_draft_variants: int = Field(default=3, ge=1, le=5)
    parley_console: Literal["auto", "on", "off"] = "auto"
    parley_console_approver: bool = True
    parley_default_publisher: Literal["manual", "log"] = "manual"
    parley_outbox_max_attempts: int = Field(default=5, ge=1, le=50)
    parley_reply_limit: int = Field(default=5_000, ge=100, le=100_000)
    parley_urgent_reach: int = Field(default=10_000, ge=0)
    parley_timezone: str | None = None
    # LLM drafting and triage (bot/llm/, bot/drafting/, bot/triage/; docs/llm.md).
    # No key and no base URL: offline.
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    openai_model: str = "gpt-4o-mini"
    openai_triage_model: str | None = None
    parley_llm_timeout: float = Field(default=30.0, gt=0.0, le=600.0)
    parley_llm_max_retries: int = Field(default=3, ge=0, le=10)
    parley_llm_concurrency: int = Field(default=4, ge=1, le=64)
    parley_llm_daily_tokens: int = Field(default=500_000, ge=0)
    parley_llm_triage_batch: int = Field(default=20, ge=1, le=100)
    parley_triage_window_seconds: float = Field(default=1.0, ge=0.0, le=60.0)
    parley_llm_json_schema: Literal["auto", "on", "off"] = "auto"
    parley_llm_breaker_failures: int = Field(default=3, ge=1, le=100)
    parley_llm_cooldown_seconds: float = Field(default=60.0, ge=1.0, le=3600.0)
    parley_llm_max_cooldown_seconds: float = Field(default=600.0, ge=1.0, le=86_400.0)
    # Telegram frontend (bot/frontends/telegram/; docs/telegram.md). No token: Telegram off.
    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = Field(
        default="https://api.telegram.org", pattern=r"^https?://[^\s/]+(/[^\s]*)?$"
    )
    telegram_alert_chat_id: str | None = Field(
        default=None, pattern=r"^\s*(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})\s*$"
    )
    telegram_approver_ids: str = Field(
        default="", pattern=r"^\s*((admins|\d{1,20})\s*(,\s*(admins|\d{1,20})\s*)*)?$"
    )
    telegram_webhook_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    telegram_webhook_listen: str = "0.0.0.0"
    telegram_webhook_port: int = Field(default=8443, ge=1, le=65535)
    telegram_webhook_secret: SecretStr | None = None
    # Discord frontend (bot/frontends/discord/, cogs/). No token: Discord off.
    discord_bot_token: SecretStr | None = None
    discord_guild_id: int | None = Field(default=None, ge=1)
    discord_alert_channel_id: int | None = Field(default=None, ge=1)
    discord_approver_role_ids: str = Field(
        default="", pattern=r"^\s*(\d{1,20}\s*(,\s*\d{1,20}\s*)*)?$"
    )
    discord_alert_threads: bool = False
    discord_api_base_url: str = Field(
        default="https://discord.com/api/v10", pattern=r"^https?://[^\s/]+(/[^\s]*)?$"
    )
    discord_gateway_url: str = Field(
        default="wss://gateway.discord.gg/", pattern=r"^wss?://[^\s/]+(/[^\s]*)?$"
    )

    @field_validator("parley_timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_zone(value)
        return value

    def display_zone(self) -> tzinfo:
        """The zone times are shown in: PARLEY_TIMEZONE, else the machine's."""
        name = (self.parley_timezone or "").strip()
        return parse_zone(name) if name else machine_zone()

    def telegram_configured(self) -> bool:
        """Whether the Telegram frontend should run (a bot token is set)."""
        token = self.telegram_bot_token
        return token is not None and bool(token.get_secret_value().strip())

    def telegram_alert_chat(self) -> int | str | None:
        """The default alert chat: a numeric id, or a public '@channelname'."""
        value = (self.telegram_alert_chat_id or "").strip()
        if not value:
            return None
        return value if value.startswith("@") else int(value)

    def telegram_approvers(self) -> tuple[frozenset[str], bool]:
        """Approver user ids, and whether every admin of the alert chat is an approver."""
        items = {i.strip() for i in self.telegram_approver_ids.split(",") if i.strip()}
        return frozenset(items - {"admins"}), "admins" in items

    def discord_configured(self) -> bool:
        """Whether the Discord frontend should run (a bot token is set)."""
        token = self.discord_bot_token
        return token is not None and bool(token.get_secret_value().strip())

    def discord_approver_roles(self) -> frozenset[str]:
        """Discord role ids whose members may approve, as strings."""
        return frozenset(i.strip() for i in self.discord_approver_role_ids.split(",") if i.strip())

    def llm_configured(self) -> bool:
        """Whether an OpenAI-compatible server is configured (a key or a base URL)."""
        has_key = self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())
        return has_key or bool(self.openai_base_url)

    def prompts_dir(self) -> Path:
        """The prompts folder: the setting, else ./prompts, else the defaults Parley ships."""
        if self.parley_prompts_dir is not None:
            return self.parley_prompts_dir
        local = Path("prompts")
        if local.is_dir():
            return local
        return default_prompts_dir()


def default_prompts_dir() -> Path:
    """The default prompts: ``bot/_prompts`` in an installed wheel, else the source tree's prompts/.

    setup.py copies the top-level prompts/ folder into the wheel; an editable install or a
    checkout reads the folder itself.
    """
    package = Path(__file__).resolve().parent
    bundled = package / "_prompts"
    return bundled if bundled.is_dir() else package.parent / "prompts"


def load_settings(**overrides: object) -> Settings:
    """Read settings; every invalid value becomes one line of a ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            # The offending value is not echoed: it could be a secret.
            problems.append(f"environment/.env: {name}: {_plain(name, err['type'], err['msg'])}")
        raise ConfigError(problems) from None


_FORMATS = {
    "TELEGRAM_ALERT_CHAT_ID": "use the group's numeric id (e.g. -1001234567890: send /start in "
    "the group to see it) or a public @channelname",
    "TELEGRAM_APPROVER_IDS": "use numeric Telegram user ids separated by commas, and the word "
    "admins if you like; an @username is not an id (each approver sends /start to the bot to "
    "see theirs)",
    "DISCORD_APPROVER_ROLE_IDS": "use numeric role ids separated by commas (Server Settings → "
    "Roles → ⋯ → Copy Role ID, with Developer Mode on)",
    "OPENAI_BASE_URL": "write the whole address with http:// or https://, e.g. "
    "http://localhost:11434/v1",
    "TELEGRAM_WEBHOOK_URL": "write the whole public address, starting with https://",
    "DISCORD_GATEWAY_URL": "write the whole address, starting with wss://",
}
"""What a well-formed value looks like, for settings checked against a pattern."""


def _plain(name: str, kind: str, message: str) -> str:
    """A validation message in words: never the regular expression a pattern check quotes."""
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind != "string_pattern_mismatch":
        return message
    if name.endswith("_BASE_URL"):
        return _FORMATS.get(name, "write the whole address, starting with https://")
    return _FORMATS.get(name, "has an unexpected form: see .env.example")
