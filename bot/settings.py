"""Runtime settings from the environment and ``.env`` (pydantic-settings).

Built once in the CLI and passed down; never read at import time. Watch rules and sources
live in ``parley.toml`` instead (see bot/config.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError


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

    def prompts_dir(self) -> Path:
        """The prompts folder: the setting, else ./prompts, else the one beside the package."""
        if self.parley_prompts_dir is not None:
            return self.parley_prompts_dir
        local = Path("prompts")
        if local.is_dir():
            return local
        return Path(__file__).resolve().parent.parent / "prompts"


def load_settings(**overrides: object) -> Settings:
    """Read settings; every invalid value becomes one line of a ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            # The offending value is not echoed: it could be a secret.
            problems.append(f"environment/.env: {name}: {err['msg']}")
        raise ConfigError(problems) from None
