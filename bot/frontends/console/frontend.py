"""The console frontend (like errbot's text backend): alerts on stdout, commands on stdin.

It reads stdin also when it is a pipe or a file, and ends cleanly at end of input, so a
script can drive it. ``handle_line`` is the whole command interpreter, which tests call
directly as a scenario harness.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar, TextIO

from bot.app import Core
from bot.domain.models import Actor, Mention
from bot.domain.states import UNPOSTED, MentionState
from bot.errors import ConfigError, UserFacingError
from bot.events import Event, MentionAlert, MentionChanged, Notice
from bot.localtime import stamp
from bot.presentation import AlertView, alert_view, draft_note, triage_line, truncate
from bot.services.charts import chart_png
from bot.services.health import health_lines
from bot.services.review import NeedsConfirmation
from bot.services.review_commands import COMMANDS, Order, Outcome, Takes, Verb
from bot.services.stats import compute_stats, parse_period, stats_lines

log = logging.getLogger(__name__)

ALERT_TEXT_LIMIT = 600
"""Alert text is trimmed to this many characters; `show ID` prints it whole."""

HELP = """\
Commands (ID is the number after # in an alert):
  list [state]          open mentions, or those in a state (new, alerted, drafted, approved,
                        posted, rejected, ignored, backlog, all)
  show ID               one mention in full, with drafts, reply and history
  draft ID [how]        write new drafts (an instruction is passed to the LLM drafter)
  use ID N              choose draft variant N
  approve ID [N]        queue the selected draft (or variant N) for posting
  edit ID <text>        replace the reply with your own text (checked like a draft)
  edit! ID [text]       post anyway: keep a text the checks held back (recorded)
  reject ID [reason]    decide not to answer
  ignore ID [reason]    dismiss as noise
  retry ID              send a failed reply again
  confirm ID [url]      you posted a manual reply by hand
  queue                 replies waiting, sending, failed or to post by hand
  stats [24h|7d|30d] [brand] [chart FILE]
                        volume, mix, response times, outbox; 'chart FILE' also saves
                        them as a PNG chart, e.g. 'stats 7d acme chart stats.png'
  sources               health of every source
  pending [brand]       alerted mentions awaiting a decision, urgent first, then oldest
  watch [brand]         the watch rules, from parley.toml or added here
  watch add BRAND NAME QUERY
                        add a rule; start the query with ! to make it urgent
  watch remove BRAND NAME
                        remove a rule added here (parley.toml rules are edited there)
  pause                 hold new alerts; mentions are still collected
  resume                alert the held mentions, and new ones again
  reload                re-read the reply templates and prompt files after editing them
  help                  this text
  quit                  stop Parley"""

_LIST_DEFAULT = (MentionState.ALERTED, MentionState.DRAFTED, MentionState.APPROVED)
_VERBS = frozenset(Verb)


def _silent(done: Outcome) -> list[str]:
    return []  # the change's own line says what happened


_DONE: dict[Verb, Callable[[Outcome], list[str]]] = {
    Verb.APPROVE: lambda done: [
        f"Queued reply for #{done.order.mention_id} via "
        f"{done.reply.publisher if done.reply else '?'}."
    ],
    Verb.EDIT: lambda done: [f"Type 'approve {done.order.mention_id}' to post your text."],
    Verb.POST_ANYWAY: lambda done: [
        f"Kept as you wrote it (recorded). Type 'approve {done.order.mention_id}' to post it."
    ],
    Verb.RETRY: lambda done: [f"Reply for #{done.order.mention_id} queued again."],
}
"""What the console prints after a review command (the others print the change's line)."""


def copies(count: int) -> str:
    """'+1 copy', '+3 copies'."""
    return f"+{count} cop{'y' if count == 1 else 'ies'}"


def render_alert(view: AlertView, *, heading: str = "New mention") -> list[str]:
    """An alert as plain text lines."""
    flags = " · URGENT" if view.urgent else ""
    lines = [
        f"── {heading} #{view.mention_id} · {view.brand} · {view.platform} "
        f"({view.source}){flags} · {view.state}",
        f"   From: {view.author} ({view.reach}) · rule: {view.rule}"
        + (f" · intent: {view.intent}" if view.intent else "")
        + (f" · {copies(view.duplicates)}" if view.duplicates else ""),
    ]
    if view.triage:
        lines.append(f"   Triage: {view.triage}")
    lines += [f"   ⚠ {warning}" for warning in view.warnings]
    if view.title and view.title not in view.text:
        lines.append(f"   Title: {truncate(view.title, 200)}")
    lines.append(f"   Text: {truncate(view.text, ALERT_TEXT_LIMIT)}")
    if view.link:
        lines.append(f"   Link: {view.link}")
    for variant, text in view.variants:
        marker = "*" if text == view.draft else " "
        lines.append(f"  {marker}Draft {variant}: {text}")
    if view.draft_note:
        lines.append(f"   {view.draft_note}")
    if view.reply:
        lines.append(f"   Reply: {view.reply}")
    return lines


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
        self.quitting = False
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
        return self._render_change(event)

    def _render_change(self, event: MentionChanged) -> list[str]:
        m = event.mention
        who = event.actor.label
        match event.action:
            case "duplicate":
                return [f"   #{m.id} seen again elsewhere ({copies(m.duplicates)})"]
            case "sent" | "reconciled" | "confirm":
                where = event.reply.posted_url if event.reply else None
                by = f" by hand by {who}" if event.action == "confirm" else ""
                return [f"✔ #{m.id} posted{by}" + (f": {where}" if where else "")]
            case "ready_to_copy":
                text = event.reply.text if event.reply else ""
                return [
                    f"✎ #{m.id} is ready to post by hand at {m.url or 'the source'}:",
                    f"   {text}",
                    f"   then type: confirm {m.id} [link to your reply]",
                ]
            case "dead":
                error = event.reply.error if event.reply else "unknown error"
                return [f"✘ #{m.id} could not be posted: {error}. Type: retry {m.id}"]
            case "retry_scheduled":
                return [f"… #{m.id} failed, retrying later"]
            case "triaged":
                flag = "🚨 URGENT · " if m.urgent else ""
                return [f"{flag}#{m.id} triaged again: {triage_line(m)}"]
            case "drafted" if not event.drafts:
                note = draft_note(m, event.drafts)
                return [f"#{m.id}: {note or 'no draft was written'}"]
            case "draft" | "edit" | "select" | "drafted":
                drafts = [
                    f"  {'*' if d.selected else ' '}Draft {d.variant}: {d.text}"
                    for d in event.drafts
                ]
                done = "drafts ready" if event.action == "drafted" else f"{event.action} by {who}"
                return [f"#{m.id} {done}:", *drafts]
            case _:
                return [f"#{m.id} is now {m.state.value} ({event.action} by {who})"]

    async def handle_line(self, line: str) -> list[str]:
        """Run one command and return what it prints (errors included, never raised)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return []
        command, _, rest = line.partition(" ")
        word = command.lower()
        handler = self._commands.get(word)
        if handler is None and word not in _VERBS:
            return [f"Unknown command {truncate(command, 40)!r}. Type 'help' for the list."]
        try:
            if handler is None:
                return await self._review(Verb(word), rest.strip())
            return await handler(self, rest.strip())
        except UserFacingError as exc:
            return [f"Sorry: {exc}."]
        except Exception:
            log.exception("console command failed: %s", truncate(line, 200))
            return ["Sorry, that failed unexpectedly; the log has the details."]

    # ---- commands -----------------------------------------------------------------------

    @staticmethod
    def _id(arg: str) -> tuple[int, str]:
        head, _, rest = arg.partition(" ")
        try:
            return int(head.lstrip("#")), rest.strip()
        except ValueError:
            raise UserFacingError("give the mention's number, e.g. 'show 12'") from None

    async def _help(self, arg: str) -> list[str]:
        return HELP.splitlines()

    async def _list(self, arg: str) -> list[str]:
        states: list[MentionState] | None
        if not arg:
            states = list(_LIST_DEFAULT)
        elif arg == "all":
            states = None
        else:
            try:
                states = [MentionState(arg.lower())]
            except ValueError:
                names = ", ".join(s.value for s in MentionState)
                raise UserFacingError(f"unknown state {arg!r}; use one of {names} or all") from None
        mentions = await self.core.store.mentions.newest(states, limit=50)
        if not mentions:
            return ["Nothing here."]
        return [self._summary(m) for m in mentions]

    def _summary(self, m: Mention) -> str:
        flag = "!" if m.urgent else " "
        who = m.author.handle or m.author.display_name or "?"
        text = truncate(" ".join(m.text.split()), 70)
        return f"{flag}#{m.id:<4} {m.state.value:<9} {m.platform:<9} {who[:18]:<18} {text}"

    async def _show(self, arg: str) -> list[str]:
        mention_id, _ = self._id(arg)
        store = self.core.store
        await self.core.auto_drafts.shown(mention_id)  # opened: write its owed draft
        mention = await store.mentions.get(mention_id)
        drafts = await store.drafts.current(mention_id)
        reply = await store.replies.for_mention(mention_id)
        view = alert_view(mention, drafts, reply, self.core.brand_label(mention.brand))
        lines = render_alert(view, heading="Mention")
        lines[lines.index(f"   Text: {truncate(view.text, ALERT_TEXT_LIMIT)}")] = (
            f"   Text: {view.text}"
        )
        lines.append("   History:")
        for entry in await store.audit.trail("mention", mention_id):
            change = f"{entry.from_state} → {entry.to_state}" if entry.to_state else ""
            lines.append(
                f"     {stamp(entry.at)} {entry.actor}: {entry.action} {change}"
                + (f" ({entry.detail})" if entry.detail else "")
            )
        return lines

    async def _review(self, verb: Verb, arg: str) -> list[str]:
        """A review command of the core's table (bot/services/review_commands.py)."""
        mention_id, rest = self._id(arg)
        takes = COMMANDS[verb].takes
        variant: int | None = None
        if takes in (Takes.VARIANT, Takes.MAYBE_VARIANT):
            if takes is Takes.VARIANT and not rest.isdigit():
                raise UserFacingError(f"say which variant, e.g. '{verb} 12 2'")
            if rest and not rest.isdigit():
                raise UserFacingError(
                    f"{verb} takes an optional variant number, e.g. '{verb} 12 2'"
                )
            variant, rest = (int(rest) if rest else None), ""
        order = Order(verb, mention_id, self.actor, variant=variant, text=rest or None)
        try:
            done = await self.core.commands.run(order)
        except NeedsConfirmation as held:
            return [
                f"⚠ Your reply to #{mention_id} was held: {'; '.join(held.reasons)}.",
                f"   To post it anyway, type: edit! {mention_id}   (or send a corrected text)",
            ]
        return _DONE.get(verb, _silent)(done)

    async def _queue(self, arg: str) -> list[str]:
        replies = await self.core.store.replies.in_states(UNPOSTED, limit=50)
        if not replies:
            return ["The outbox is empty."]
        return [
            f"reply #{r.id} for #{r.mention_id}: {r.state.value} via {r.publisher}, "
            f"{r.attempts} tries" + (f" — {r.error}" if r.error else "")
            for r in replies
        ]

    async def _stats(self, arg: str) -> list[str]:
        words = shlex.split(arg) if arg else []
        chart: str | None = None
        if "chart" in words:
            at = words.index("chart")
            if at != len(words) - 2:
                raise UserFacingError(
                    "name the file after 'chart', e.g. 'stats 7d acme chart stats.png'"
                )
            chart, words = words[at + 1], words[:at]
        period = parse_period(words[0] if words else None)
        brand = words[1] if len(words) > 1 else None
        if brand and self.core.config.brand(brand) is None:
            raise UserFacingError(f"unknown brand {brand!r}")
        stats = await compute_stats(self.core.store, period, brand)
        lines = stats_lines(stats)
        if chart is None:
            return lines
        label = self.core.brand_label(brand) if brand else None
        try:
            png = await chart_png(self.core.store, stats, label=label)
        except Exception:
            log.exception("stats chart failed")
            return [*lines, "Sorry, the chart failed; the log has the details."]
        path = Path(chart)
        try:
            await asyncio.to_thread(path.write_bytes, png)
        except OSError as exc:
            return [*lines, f"Sorry: cannot write the chart to {path}: {exc.strerror or exc}."]
        return [*lines, f"Chart saved to {path} ({len(png) // 1024 or 1} KB PNG)."]

    async def _sources(self, arg: str) -> list[str]:
        lines = await health_lines(self.core.store, (r.source.name for r in self.core.runners))
        return lines or ["No sources configured."]

    async def _pending(self, arg: str) -> list[str]:
        brand = arg or None
        if brand and self.core.config.brand(brand) is None:
            raise UserFacingError(f"unknown brand {brand!r}")
        alerts = self.core.alerts
        mentions = await alerts.pending(brand=brand, limit=50)
        total = await alerts.pending_count(brand=brand)
        lines = [f"{total} awaiting a decision (urgent first, then oldest):"] if total else []
        lines += [self._summary(m) for m in mentions]
        if total > len(mentions):
            lines.append(f"… and {total - len(mentions)} more")
        if alerts.paused:
            lines.append(f"Alerts are paused: {await alerts.held()} held. Type 'resume'.")
        return lines or ["Nothing is waiting for a decision."]

    async def _watch(self, arg: str) -> list[str]:
        words = arg.split(None, 3)
        watch = self.core.watch
        match words:
            case ["add", brand, name, query]:
                urgent = query.startswith("!")
                rule = await watch.add(
                    brand, name, query.removeprefix("!").lstrip(), self.actor, urgent=urgent
                )
                kind = "urgent rule" if rule.urgent else "rule"
                return [f"Added {kind} {rule.brand}/{rule.name}; it applies from the next poll."]
            case ["add", *_]:
                raise UserFacingError(
                    "type 'watch add BRAND NAME QUERY', e.g. 'watch add acme billing invoice*'"
                )
            case ["remove" | "rm", brand, name]:
                rule = await watch.remove(brand, name, self.actor)
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

    async def _pause(self, arg: str) -> list[str]:
        alerts = self.core.alerts
        if alerts.paused:
            return [f"Alerts were already paused ({await alerts.held()} held). Type 'resume'."]
        await alerts.pause(self.actor)
        return ["Alerts paused. Mentions are still collected; type 'resume' to see them."]

    async def _resume(self, arg: str) -> list[str]:
        was_paused = self.core.alerts.paused
        count = await self.core.alerts.resume(self.actor)
        if not was_paused and not count:
            return ["Alerts were not paused; nothing was held."]
        return [f"Alerts resumed: {count} held mention{'' if count == 1 else 's'} alerted."]

    async def _reload(self, arg: str) -> list[str]:
        try:
            await self.core.reload_prompts(self.actor)
        except ConfigError as exc:
            return [f"Sorry: {problem}" for problem in exc.problems] + [
                "The previous prompts stay in use; fix the file and type 'reload' again."
            ]
        return ["Prompts and templates reloaded."]

    async def _quit(self, arg: str) -> list[str]:
        self.quitting = True
        return ["Bye."]

    _commands: ClassVar[dict[str, Callable[[ConsoleFrontend, str], Awaitable[list[str]]]]] = {
        "help": _help,
        "?": _help,
        "list": _list,
        "ls": _list,
        "show": _show,
        "queue": _queue,
        "stats": _stats,
        "sources": _sources,
        "pending": _pending,
        "watch": _watch,
        "pause": _pause,
        "resume": _resume,
        "reload": _reload,
        "quit": _quit,
        "exit": _quit,
    }

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
            if self.quitting:
                stop.set()
