"""RSS and Atom feeds (Google Alerts, Talkwalker Alerts, blogs): a source only, replies by hand
or through the default publisher."""

from __future__ import annotations

from pathlib import Path

from bot.connectors.rss.connector import RssSource, RssSourceConfig
from bot.connectors.spec import Built, ConnectorSpec, SecretValues, no_secrets


def _build(config: RssSourceConfig, secrets: SecretValues, base_dir: Path | None) -> Built:
    """A feed; a relative ``path`` resolves against the config's directory."""
    if config.path is not None and base_dir is not None and not Path(config.path).is_absolute():
        config = config.model_copy(update={"path": str(base_dir / config.path)})
    return Built(RssSource(config))


CONNECTOR = ConnectorSpec(
    type="rss",
    display_name="RSS",
    config=RssSourceConfig,
    secrets=no_secrets,
    build=_build,
    accent_colour=0xF26522,
)
