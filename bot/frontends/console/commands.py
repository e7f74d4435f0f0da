"""The console's command words: one line in, the lines it prints out (errors included).

The review words are the core's verbs (review.py); the others are read-only reports
(reports.py) or controls (controls.py), plus help and quit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.app import Core
from bot.domain.models import Actor
from bot.errors import UserFacingError
from bot.frontends.console.controls import Controls
from bot.frontends.console.reports import Reports
from bot.frontends.console.review import review
from bot.presentation import truncate
from bot.services.review_commands import Verb

log = logging.getLogger(__name__)

Command = Callable[[str, Actor], Awaitable[list[str]]]
"""A command word's action: the text after the word, and who typed it."""

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

_VERBS = frozenset(Verb)


class ConsoleCommands:
    """The command words table and the interpreter of one line."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.quitting = False
        """Set by quit: the frontend stops after printing its answer."""
        reports = Reports(core)
        controls = Controls(core)
        self.words: dict[str, Command] = {
            "help": self._help,
            "?": self._help,
            "list": reports.newest,
            "ls": reports.newest,
            "show": reports.show,
            "queue": reports.queue,
            "stats": reports.stats,
            "sources": reports.sources,
            "pending": reports.pending,
            "watch": controls.watch,
            "pause": controls.pause,
            "resume": controls.resume,
            "reload": controls.reload,
            "quit": self._quit,
            "exit": self._quit,
        }

    async def run(self, line: str, actor: Actor) -> list[str]:
        """Run one command and return what it prints (errors included, never raised)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return []
        command, _, rest = line.partition(" ")
        word = command.lower()
        handler = self.words.get(word)
        if handler is None and word not in _VERBS:
            return [f"Unknown command {truncate(command, 40)!r}. Type 'help' for the list."]
        try:
            if handler is None:
                return await review(self.core, Verb(word), rest.strip(), actor)
            return await handler(rest.strip(), actor)
        except UserFacingError as exc:
            return [f"Sorry: {exc}."]
        except Exception:
            log.exception("console command failed: %s", truncate(line, 200))
            return ["Sorry, that failed unexpectedly; the log has the details."]

    async def _help(self, arg: str, actor: Actor) -> list[str]:
        return HELP.splitlines()

    async def _quit(self, arg: str, actor: Actor) -> list[str]:
        self.quitting = True
        return ["Bye."]
