"""The console frontend (like errbot's text backend): alerts on stdout, commands on stdin.

It reads stdin also when it is a pipe or a file, and ends cleanly at end of input, so a
script can drive it. ``handle_line`` is the whole command interpreter (commands.py), which
tests call directly as a scenario harness.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TextIO

from bot.app import Core
from bot.domain.models import Actor
from bot.events import Event, MentionAlert, Notice
from bot.frontends.console.commands import ConsoleCommands
from bot.frontends.console.render import render_alert, render_change
from bot.presentation import alert_view


class ConsoleFrontend:
    """Plain-text chat on stdin/stdout; the console user is an approver by default."""

    name = "console"

    def __init__(
        self,
        core: Core,
        *,
        out: TextIO | None = None,
        actor: Actor | None = None,
        on_end_of_input: Callable[[], Awaitable[None]] | None = None,
        greeting: Callable[[], Awaitable[list[str]]] | None = None,
    ) -> None:
        self.core = core
        self.out = out or sys.stdout
        self.actor = actor or Actor(platform="console", user_id="console", display_name="you")
        self.on_end_of_input = on_end_of_input
        self.commands = ConsoleCommands(core)
        self.greeting = greeting
        """Its lines are printed once the start-up alerts are shown, before the first command."""
        core.bus.subscribe(self.name, self.on_event, coalesce=False)  # a line per change

    def write(self, lines: list[str]) -> None:
        """Print lines and flush (stdout may be a pipe)."""
        for line in lines:
            print(line, file=self.out)
        self.out.flush()

    async def on_event(self, event: Event) -> None:
        """Print core events as they happen."""
        self.write(self.render_event(event))

    def render_event(self, event: Event) -> list[str]:
        """The lines an event prints."""
        if isinstance(event, Notice):
            return [f"!! {event.text}"]
        if isinstance(event, MentionAlert):
            brand = self.core.config.brand(event.mention.brand)
            if brand is not None and not brand.route.console:
                return []  # this brand's alerts are routed to other chats only
            view = alert_view(
                event.mention, event.drafts, None, self.core.brand_label(event.mention.brand)
            )
            return [*render_alert(view), ""]
        return render_change(event)

    async def handle_line(self, line: str) -> list[str]:
        """Run one command and return what it prints (errors included, never raised)."""
        return await self.commands.run(line, self.actor)

    # ---- loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Read commands until quit, end of input, or ``stop``."""
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def reader() -> None:
            # A daemon thread: a blocking readline must not keep the process alive at exit.
            for raw in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, raw)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=reader, name="console-stdin", daemon=True).start()
        await self.core.bus.drain(self.name)
        if self.greeting is not None:
            self.write(await self.greeting())
        while not stop.is_set():
            get = asyncio.ensure_future(lines.get())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({get, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not get.done():
                get.cancel()
                break
            line = get.result()
            if line is None:
                if self.on_end_of_input is not None:
                    await self.on_end_of_input()
                stop.set()
                break
            self.write(await self.handle_line(line))
            await self.core.bus.drain(self.name)
            if self.commands.quitting:
                stop.set()
