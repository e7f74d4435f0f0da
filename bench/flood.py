"""Flood benchmark: 50,000 mentions against a chat that accepts 20 messages a minute.

Realistic multilingual social posts (English, French, German, Spanish, Portuguese, Italian,
Japanese: complaints, questions, praise, reposts) go through the real pipeline (match → dedupe
→ store → triage → auto-draft → alert) into a real SQLite file, while the real alert-delivery
service posts them to one chat through a fake chat adapter that enforces Telegram's group limit
itself (20 messages in any 60 s, 1 a second; a message beyond that gets a 429 with its
``retry_after``). Time is virtual for the delivery side only: during the flood the clock runs at
``--flood-speed`` (default: real time, so the backlog builds up as it would against a real chat);
once every mention is stored it runs at ``--catchup-speed``, so the ~4 hours the chat needs to
take the backlog pass in seconds. The rate enforcement is real in virtual time.

At the end every mention was either alerted (alone or in a digest) or is reachable with
``/pending``; ``lost`` counts those that are neither. The last line is
``mentions=50000 lost=0 peak_rss_mb=<m>``; target ≤ 150 MB.

Run: ``python bench/flood.py [--mentions N] [--batch N] [--flood-speed X] [--catchup-speed Y]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from collections import deque
from collections.abc import Hashable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import Core, build_core
from bot.config import parse_config
from bot.domain.models import SYSTEM, Author, Draft, Mention, RawMention, Reply
from bot.domain.states import MentionState
from bot.services.alert_delivery import AlertDelivery, Destination
from bot.services.throttle import TELEGRAM_LIMITS, OutgoingAlert, Rate, RateLimited
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

BRANDS = ("acme", "globex", "initech", "umbrella", "hooli")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_TEXTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # language: (templates with {b} for the brand, filler words)
    "en": (
        (
            "{b} is down again and support is not answering",
            "anyone else getting charged twice by {b} this month? I want a refund",
            "how do I export my notes from {b} to markdown",
            "honestly {b} sync is the best thing that happened to our team",
            "switched from {b} last week, the new pricing is a joke",
            "is {b} having an outage right now or is it just me",
        ),
        _words(
            "today really again still never always maybe team work app phone laptop update "
            "week morning night help please thanks love hate slow fast login page files "
            "folder share price plan billing support ticket reply waiting hours days"
        ),
    ),
    "fr": (
        (
            "{b} est encore en panne depuis ce matin, le support ne répond pas",
            "quelqu'un sait comment exporter ses notes depuis {b} ?",
            "franchement la synchro de {b} est top, merci l'équipe",
            "{b} m'a facturé deux fois ce mois-ci, je veux un remboursement",
            "impossible de me connecter à {b} depuis hier soir",
        ),
        _words(
            "aujourd'hui encore toujours jamais peut-être équipe travail appli téléphone "
            "mise à jour semaine matin soir aide merci adore déteste lent rapide page "
            "fichiers dossier partage prix abonnement facture ticket réponse attente heures"
        ),
    ),
    "de": (
        (
            "{b} ist schon wieder down und der Support antwortet nicht",
            "wie exportiere ich meine Notizen aus {b}?",
            "die Synchronisierung von {b} ist echt super",
            "{b} hat mir zweimal abgebucht, ich will eine Rückerstattung",
            "Anmeldung bei {b} geht seit gestern nicht mehr",
        ),
        _words(
            "heute wieder immer noch nie vielleicht Team Arbeit App Handy Update Woche "
            "Morgen Abend Hilfe bitte danke liebe hasse langsam schnell Seite Dateien "
            "Ordner teilen Preis Abo Rechnung Ticket Antwort warten Stunden Tage"
        ),
    ),
    "es": (
        (
            "{b} está caído otra vez y soporte no contesta",
            "¿cómo exporto mis notas de {b}?",
            "la sincronización de {b} es una maravilla",
            "{b} me cobró dos veces este mes, quiero un reembolso",
        ),
        _words(
            "hoy otra vez todavía nunca siempre quizás equipo trabajo aplicación móvil "
            "semana mañana noche ayuda gracias encanta odio lento rápido página archivos "
            "carpeta compartir precio plan factura ticket respuesta espera horas días"
        ),
    ),
    "pt": (
        (
            "o {b} caiu de novo e o suporte não responde",
            "alguém sabe exportar as notas do {b}?",
            "adoro a sincronização do {b}, muito bom",
        ),
        _words(
            "hoje de novo ainda nunca sempre talvez equipe trabalho aplicativo celular "
            "semana manhã noite ajuda obrigado amo odeio lento rápido página arquivos "
            "pasta compartilhar preço plano fatura resposta espera horas dias"
        ),
    ),
    "it": (
        (
            "{b} è di nuovo giù e il supporto non risponde",
            "come esporto le note da {b}?",
            "la sincronizzazione di {b} è fantastica",
        ),
        _words(
            "oggi ancora sempre mai forse squadra lavoro app telefono settimana mattina "
            "sera aiuto grazie adoro odio lento veloce pagina file cartella prezzo piano "
            "fattura risposta attesa ore giorni"
        ),
    ),
    "ja": (
        (
            "{b} がまた落ちてる、サポートも返事がない",
            "{b} のノートをエクスポートする方法ありますか",
            "{b} の同期ほんとに便利",
        ),
        _words("今日 また まだ 全然 いつも たぶん チーム 仕事 アプリ スマホ 更新 朝 夜 助けて"),
    ),
}
_LANGS = tuple(_TEXTS)
_WEIGHTS = (40, 15, 12, 12, 8, 6, 7)


def config_data() -> dict[str, object]:
    """Five brands, each with an urgent outage rule and a catch-all product rule; every brand's
    alerts go to the one default chat."""
    outage = "(down OR outage OR refund OR panne OR remboursement OR caído OR reembolso OR caiu)"
    return {
        "brands": [
            {
                "name": name,
                "rules": [
                    {"name": "outage", "query": f"{name} {outage}", "urgent": True},
                    {"name": "product", "query": name},
                ],
            }
            for name in BRANDS
        ]
    }


def make_batches(batch: int, seed: int = 11) -> Iterator[list[RawMention]]:
    """Endless batches of social posts, the same for the same seed: most name a brand (a
    template in the post's language with its own words around it), ~3% repost an earlier post,
    ~10% name nothing watched. Generated lazily, so the memory measured is the bot's."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=1)
    recent: deque[str] = deque(maxlen=500)
    n = 0
    while True:
        items = []
        for _ in range(batch):
            lang = rng.choices(_LANGS, _WEIGHTS)[0]
            templates, words = _TEXTS[lang]
            roll = rng.random()
            if recent and roll < 0.03:
                text = "RT " + rng.choice(recent)
            else:
                core = rng.choice(templates).format(b=rng.choice(BRANDS))
                if roll > 0.90:
                    core = " ".join(rng.choices(words, k=6))  # about nothing watched
                before = " ".join(rng.choices(words, k=rng.randint(2, 14)))
                after = " ".join(rng.choices(words, k=rng.randint(2, 14)))
                text = f"{before} {core} {after} #{rng.randint(1, 99_999)}"
                recent.append(text)
            items.append(
                RawMention(
                    source=f"social{n % 4}",
                    platform=("mastodon", "reddit", "rss", "bluesky")[n % 4],
                    external_id=f"post-{n}",
                    url=f"https://social.example/@user{n % 4099}/{n}",
                    author=Author(handle=f"user{n % 4099}", reach=rng.randint(0, 5_000)),
                    text=text,
                    language=lang,
                    created_at=start + timedelta(milliseconds=n),
                )
            )
            n += 1
        yield items


class ScaledClock:
    """Monotonic time running ``speed`` times faster than real time; the speed may change."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._real = time.monotonic()
        self._virtual = 0.0

    def now(self) -> float:
        """Virtual seconds since the clock was made."""
        return self._virtual + (time.monotonic() - self._real) * self.speed

    def set_speed(self, speed: float) -> None:
        """Run at another speed from now on (virtual time stays continuous)."""
        self._virtual, self._real, self.speed = self.now(), time.monotonic(), speed

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time (in short steps, so a change of speed applies)."""
        until = self.now() + seconds
        while (left := until - self.now()) > 0:  # noqa: ASYNC110 - the speed may change meanwhile
            await asyncio.sleep(min(left / self.speed, 0.1))


class SlowChat:
    """A chat adapter with Telegram's group limit enforced by the chat itself: a message beyond
    20 in any 60 s or 1 a second is refused with a 429 and its ``retry_after``."""

    def __init__(self, clock: ScaledClock, rates: tuple[Rate, ...]) -> None:
        self.clock = clock
        self.rates = rates
        self._sent: deque[float] = deque()
        self.messages = 0
        self.digests = 0
        self.refused = 0
        self.alerted = 0
        """Alerts delivered, alone or in a digest."""
        self.delivered = bytearray()
        """1 at a mention id that was delivered (a bitmap: the bench's own memory stays small)."""

    def _mark(self, alerts: list[OutgoingAlert]) -> None:
        for alert in alerts:
            mention_id = alert.mention.id
            if mention_id >= len(self.delivered):
                self.delivered.extend(bytes(mention_id + 1 - len(self.delivered) + 4096))
            self.delivered[mention_id] = 1
        self.alerted += len(alerts)

    def route(self, brand: str) -> Destination | None:
        """Every brand to the one chat."""
        return "chat"

    def _admit(self) -> None:
        now = self.clock.now()
        longest = max(r.per for r in self.rates)
        while self._sent and self._sent[0] <= now - longest:
            self._sent.popleft()
        for rate in self.rates:
            inside = [t for t in self._sent if t > now - rate.per]
            if len(inside) >= rate.count:
                self.refused += 1
                raise RateLimited(inside[-rate.count] + rate.per - now)
        self._sent.append(now)
        self.messages += 1

    async def send(self, dest: Hashable, alert: OutgoingAlert) -> str | None:
        """Post one alert; its reference is its message number."""
        self._admit()
        self._mark([alert])
        return f"{dest}:{self.messages}"

    async def send_digest(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        """Post several alerts as one message."""
        self._admit()
        self.digests += 1
        self._mark(alerts)

    async def edit(
        self, ref: str, mention: Mention, drafts: list[Draft], reply: Reply | None
    ) -> None:
        """Alerts are not edited in this bench."""

    async def notice(self, text: str) -> None:
        """Notices are not shown in this bench."""


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def ingest(core: Core, mentions: int, batch: int) -> int:
    """Poll batches through the real pipeline until ``mentions`` mentions are stored and
    alerted; returns how many items were read (copies and unrelated posts included)."""
    stored = read = 0
    for items in make_batches(batch):
        read += len(items)
        result = await core.ingestor.store_batch(items)
        if stored + len(result.new) > mentions:  # the last poll: keep the count exact
            extra = result.new[mentions - stored :]
            await core.store.mentions.mark_many(
                [n.id for n in extra], MentionState.IGNORED, SYSTEM, "bench"
            )
            del result.new[mentions - stored :]
        stored += len(result.new)
        await core.alerter.alert(result, first_poll=False)
        if stored >= mentions:
            return read
    raise AssertionError("unreachable")  # pragma: no cover


async def count_lost(core: Core, delivered: bytearray) -> int:
    """Stored mentions (the bench's extras set aside) neither delivered to the chat nor listed
    by /pending (alerted or drafted, awaiting a decision)."""
    lost = last = 0
    while rows := await core.store.db.fetchall(
        "SELECT id, state FROM mentions WHERE id > ? ORDER BY id LIMIT 5000", (last,)
    ):
        for mention_id, state in rows:
            if state in _SET_ASIDE or state in _PENDING:
                continue
            if mention_id >= len(delivered) or not delivered[mention_id]:
                lost += 1
        last = rows[-1][0]
    return lost


_PENDING = {MentionState.ALERTED.value, MentionState.DRAFTED.value}
_SET_ASIDE = {MentionState.IGNORED.value}


async def run(args: argparse.Namespace) -> None:
    """Ingest the flood while the delivery service posts it, then let the chat catch up."""
    clock = ScaledClock(args.flood_speed)
    chat = SlowChat(clock, TELEGRAM_LIMITS.per_destination)
    with tempfile.TemporaryDirectory(prefix="parley-flood-") as tmp:
        settings = Settings(
            _env_file=None,
            parley_db_path=Path(tmp) / "flood.db",
            parley_prompts_dir=ROOT / "prompts",
            parley_default_publisher="log",
        )
        config = parse_config(config_data(), "flood.toml")
        async with build_core(settings, config) as core:
            delivery = AlertDelivery(core.store, "telegram", chat, TELEGRAM_LIMITS, clock=clock)
            core.deliveries.register(delivery)
            stop = asyncio.Event()
            began = time.monotonic()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(core.bus.run(stop))
                tg.create_task(delivery.run(stop))
                read = await ingest(core, args.mentions, args.batch)
                flood = time.monotonic() - began
                during = chat.alerted
                clock.set_speed(args.catchup_speed)
                await delivery.drain()
                stop.set()
            lost = await count_lost(core, chat.delivered)
    print(
        f"read {read} posts, stored {args.mentions} mentions in {flood:.0f}s "
        f"({during} alerted meanwhile); chat: {chat.messages} messages ({chat.digests} "
        f"digests), {chat.refused} 429s, {clock.now() / 3600:.1f} virtual hours, "
        f"{time.monotonic() - began:.0f}s real",
        file=sys.stderr,
    )
    print(f"mentions={args.mentions} lost={lost} peak_rss_mb={peak_rss_mb():.0f}")


def main() -> None:
    """Parse the arguments and run the bench."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mentions", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500, help="posts per poll")
    parser.add_argument(
        "--flood-speed", type=float, default=1.0, help="virtual seconds per second while storing"
    )
    parser.add_argument(
        "--catchup-speed", type=float, default=3000.0, help="virtual seconds per second after"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
