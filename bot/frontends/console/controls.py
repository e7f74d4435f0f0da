"""The console's commands that change how Parley runs: watch, pause, resume and reload."""

from __future__ import annotations

from bot.app import Core
from bot.domain.models import Actor
from bot.errors import ConfigError, UserFacingError
from bot.presentation import truncate


class Controls:
    """Watch rules, holding or releasing alerts, and prompt reloads."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def watch(self, arg: str, actor: Actor) -> list[str]:
        """watch [brand] | watch add BRAND NAME QUERY | watch remove BRAND NAME."""
        words = arg.split(None, 3)
        watch = self.core.watch
        match words:
            case ["add", brand, name, query]:
                urgent = query.startswith("!")
                rule = await watch.add(
                    brand, name, query.removeprefix("!").lstrip(), actor, urgent=urgent
                )
                kind = "urgent rule" if rule.urgent else "rule"
                return [f"Added {kind} {rule.brand}/{rule.name}; it applies from the next poll."]
            case ["add", *_]:
                raise UserFacingError(
                    "type 'watch add BRAND NAME QUERY', e.g. 'watch add acme billing invoice*'"
                )
            case ["remove" | "rm", brand, name]:
                rule = await watch.remove(brand, name, actor)
                return [f"Removed rule {rule.brand}/{rule.name}."]
            case ["remove" | "rm", *_]:
                raise UserFacingError("type 'watch remove BRAND NAME'")
            case [] | [_]:
                rules = await watch.rules(words[0] if words else None)
            case _:
                raise UserFacingError(
                    "type 'watch', 'watch BRAND', 'watch add …' or 'watch remove …'"
                )
        return [
            f"{'!' if r.urgent else ' '}{r.brand}/{r.name} "
            + ("[parley.toml]" if r.origin == "config" else f"[chat, by {r.added_by}]")
            + f": {truncate(r.query, 120)}"
            for r in rules
        ]

    async def pause(self, arg: str, actor: Actor) -> list[str]:
        """pause: hold new alerts; mentions are still collected."""
        alerts = self.core.alerts
        if alerts.paused:
            return [f"Alerts were already paused ({await alerts.held()} held). Type 'resume'."]
        await alerts.pause(actor)
        return ["Alerts paused. Mentions are still collected; type 'resume' to see them."]

    async def resume(self, arg: str, actor: Actor) -> list[str]:
        """resume: alert the held mentions, and new ones again."""
        was_paused = self.core.alerts.paused
        count = await self.core.alerts.resume(actor)
        if not was_paused and not count:
            return ["Alerts were not paused; nothing was held."]
        return [f"Alerts resumed: {count} held mention{'' if count == 1 else 's'} alerted."]

    async def reload(self, arg: str, actor: Actor) -> list[str]:
        """reload: re-read the reply templates and prompt files."""
        try:
            await self.core.reload_prompts(actor)
        except ConfigError as exc:
            return [f"Sorry: {problem}" for problem in exc.problems] + [
                "The previous prompts stay in use; fix the file and type 'reload' again."
            ]
        return ["Prompts and templates reloaded."]
