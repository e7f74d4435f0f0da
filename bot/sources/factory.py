"""Builds a source object from its validated config section."""

from __future__ import annotations

from pathlib import Path

from bot.config import SourceConfig
from bot.sources.base import Source
from bot.sources.rss import RssSource


def build_source(config: SourceConfig, *, base_dir: Path | None = None) -> Source:
    """The connector for a config section; relative file paths resolve against ``base_dir``."""
    if config.path is not None and base_dir is not None and not Path(config.path).is_absolute():
        config = config.model_copy(update={"path": str(base_dir / config.path)})
    return RssSource(config)
