"""The Telegram commands that change how Parley runs: /watch, /reload, /pause and /resume."""

from __future__ import annotations

from telegram import Update

from bot.app import Core
from bot.errors import ConfigError, UserFacingError
from bot.frontends.telegram.access import Access
from bot.frontends.telegram.render import esc, fit_lines, safe
from bot.services.tenancy import Scope


class Controls:
    """Watch rules, prompt reloads, and holding or releasing alerts."""

    def __init__(self, core: Core, access: Access) -> None:
        self.core = core
        self.access = access

    async def watch(self, update: Update, args: list[str], rest: str) -> str:
        """/watch list [brand] | add [--urgent] <brand> <name> <query> | remove <brand> <name>."""
        actor, scope = await self.access.seen(update)
        sub = args[0].lower() if args else "list"
        watch = self.core.watch
        tenancy = self.core.tenancy
        if sub == "list":
            return await self._list(scope, args[1] if len(args) > 1 else None)
        if sub == "add":
            words = rest.split(None, 1)[1] if len(args) > 1 else ""
            urgent = words.startswith("--urgent")
            words = words.removeprefix("--urgent").strip()
            parts = words.split(None, 2)
            if len(parts) < 3:
                raise UserFacingError(
                    "use /watch add [--urgent] <brand> <name> <query>, "
                    "e.g. /watch add acme pricing acme (price OR pricing)"
                )
            tenancy.brand(scope, parts[0])
            rule = await watch.add(parts[0], parts[1], parts[2], actor, urgent=urgent)
            return (
                f"Added {'urgent ' if rule.urgent else ''}rule <b>{safe(rule.brand, 64)}/"
                f"{safe(rule.name, 64)}</b>: <code>{esc(rule.query)}</code>"
            )
        if sub == "remove":
            if len(args) != 3:
                raise UserFacingError("use /watch remove <brand> <name>")
            tenancy.brand(scope, args[1])
            rule = await watch.remove(args[1], args[2], actor)
            return f"Removed rule <b>{safe(rule.brand, 64)}/{safe(rule.name, 64)}</b>."
        raise UserFacingError("use /watch list, /watch add … or /watch remove …")

    async def _list(self, scope: Scope, asked: str | None) -> str:
        """/watch list: the rules of the brands this chat may see."""
        tenancy = self.core.tenancy
        brand = tenancy.brand(scope, asked)
        rules = [r for r in await self.core.watch.rules(brand) if tenancy.sees(scope, r.brand)]
        if not rules:
            return "No watch rules."
        return fit_lines(
            [
                f"{'🚨 ' if r.urgent else ''}<b>{safe(r.brand, 64)}/{safe(r.name, 64)}</b>"
                f" ({r.origin}): <code>{esc(r.query)}</code>"
                for r in rules
            ]
        )

    async def reload(self, update: Update, args: list[str], rest: str) -> str:
        """/reload: re-read the reply templates and prompt files."""
        actor = await self.access.reader(update)
        try:
            await self.core.reload_prompts(actor)
        except ConfigError as exc:
            problems = "\n".join(esc(p) for p in exc.problems)
            return f"Sorry: {problems}\nThe previous prompts stay in use."
        return "Prompts and templates reloaded."

    async def pause(self, update: Update, args: list[str], rest: str) -> str:
        """/pause: hold new alerts."""
        actor = await self.access.reader(update)
        await self.core.alerts.pause(actor)
        return "⏸ Alerts paused. Mentions are still collected; /resume shows them."

    async def resume(self, update: Update, args: list[str], rest: str) -> str:
        """/resume: show the held alerts and continue."""
        actor = await self.access.reader(update)
        count = await self.core.alerts.resume(actor)
        return f"▶️ Alerts resumed; {count} held mention{'s' if count != 1 else ''} on the way."
