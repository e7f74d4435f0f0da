"""`parley check` catches what would fail, in plain words; `parley run` refuses exactly the same.

Each case is one row of issue #11's list. The CLI runs in-process from a temporary folder with
its own `.env` and an environment holding none of Parley's names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.preflight import OWN_PREFIXES
from tests.cli_harness import BRAND, parley, refused, run_cli


@pytest.fixture(autouse=True)
def own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A private copy of the environment (the CLI loads .env into it), run from tmp_path."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "parley.toml").write_text(BRAND, encoding="utf-8")
    yield environ


def test_the_base_configuration_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_cli("check", capsys)
    assert (code, lines) == (0, [])


def test_a_mistyped_name_in_dotenv_gets_a_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    lines = refused(capsys, dotenv="TELEGRAM_APPROVER_ID=123456\nCOMPOSE_PROJECT_NAME=parley\n")
    assert lines == [
        ".env: TELEGRAM_APPROVER_ID is not a setting Parley knows: "
        "did you mean TELEGRAM_APPROVER_IDS?"
    ]


def test_a_mistyped_name_in_the_environment_is_named(
    capsys: pytest.CaptureFixture[str], own_environment: dict[str, str]
) -> None:
    own_environment["PARLEY_LOOKBAK_HOURS"] = "12"
    own_environment["OPENAI_ORG_ID"] = "org-1"  # read by the openai library: fine
    own_environment["PARLEY_NOTHING_LIKE_IT"] = "1"
    assert refused(capsys) == [
        "environment: PARLEY_LOOKBAK_HOURS is not a setting Parley knows: "
        "did you mean PARLEY_LOOKBACK_HOURS?",
        "environment: PARLEY_NOTHING_LIKE_IT is not a setting Parley knows: "
        "check its spelling against .env.example",
    ]


@pytest.mark.parametrize(
    "value", ["paste-your-token-here", "changeme", "xxx", "123456789:AA...", "<your token>"]
)
def test_a_placeholder_value_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    lines = refused(capsys, dotenv=f"TELEGRAM_BOT_TOKEN={value}\nTELEGRAM_ALERT_CHAT_ID=-1001\n")
    assert lines == [
        ".env: TELEGRAM_BOT_TOKEN still holds a placeholder: put the real value or remove the line"
    ]


def test_a_telegram_token_needs_an_alert_chat(capsys: pytest.CaptureFixture[str]) -> None:
    lines = refused(capsys, dotenv="TELEGRAM_BOT_TOKEN=123456:real-looking-token\n")
    assert len(lines) == 1 and "TELEGRAM_ALERT_CHAT_ID is not" in lines[0]
    routed = BRAND + '[brands.route]\ntelegram_chat_id = "@acme_team"\n'
    code, _ = run_cli("check", capsys, dotenv="TELEGRAM_BOT_TOKEN=123456:tok\n", toml=routed)
    assert code == 0  # every brand has its own chat


def test_discord_needs_approver_roles(capsys: pytest.CaptureFixture[str]) -> None:
    lines = refused(capsys, dotenv="DISCORD_BOT_TOKEN=abc.def.ghi\nDISCORD_GUILD_ID=42\n")
    assert len(lines) == 1 and "DISCORD_APPROVER_ROLE_IDS is not" in lines[0]
    assert "nobody could approve" in lines[0]
    own = BRAND + "[brands.approvers]\ndiscord_role_ids = [77]\n"
    dotenv = "DISCORD_BOT_TOKEN=abc.def.ghi\nDISCORD_GUILD_ID=42\n"
    code, _ = run_cli("check", capsys, dotenv=dotenv, toml=own)
    assert code == 0  # the only brand has approvers of its own


def test_a_telegram_route_that_is_not_a_chat_id(capsys: pytest.CaptureFixture[str]) -> None:
    toml = BRAND + '[brands.route]\ntelegram_chat_id = "acme team chat"\n'
    assert refused(capsys, toml=toml) == [
        "parley.toml: brands[0].route.telegram_chat_id: use the chat's numeric id "
        "(e.g. -1001234567890: send /start in the group to see it) or a public '@channelname'"
    ]


def test_a_negative_discord_channel_id(capsys: pytest.CaptureFixture[str]) -> None:
    lines = refused(capsys, toml=BRAND + "[brands.route]\ndiscord_channel_id = -5\n")
    assert len(lines) == 1
    assert lines[0].startswith("parley.toml: brands[0].route.discord_channel_id: an id is a ")


def test_an_llm_address_without_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(capsys, dotenv="OPENAI_BASE_URL=localhost:11434\n") == [
        "environment/.env: OPENAI_BASE_URL: write the whole address with http:// or https://, "
        "e.g. http://localhost:11434/v1"
    ]


def test_an_approver_username_is_answered_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = refused(capsys, dotenv="TELEGRAM_APPROVER_IDS=@alice\n")
    assert line.startswith("environment/.env: TELEGRAM_APPROVER_IDS: use numeric Telegram user ids")
    assert "an @username is not an id" in line
    assert not any(sign in line for sign in ("^", "\\d", "pattern", "*)"))


def test_single_brackets_get_the_double_bracket_hint(capsys: pytest.CaptureFixture[str]) -> None:
    toml = '[brands]\nname = "acme"\n[[brands.rules]]\nname = "r"\nquery = "acme"\n'
    assert refused(capsys, toml=toml) == [
        "parley.toml: brands: write [[brands]] with two brackets for each entry "
        "([brands] is a single table)"
    ]


def test_a_missing_voice_file(capsys: pytest.CaptureFixture[str]) -> None:
    toml = BRAND.replace('name = "acme"\n', 'name = "acme"\nvoice_file = "brands/acme-x.md"\n', 1)
    (line,) = refused(capsys, toml=toml)
    assert line.startswith("parley.toml: brands[0].voice_file: ")
    assert line.endswith("brands/acme-x.md does not exist")


def test_a_missing_feed_file(capsys: pytest.CaptureFixture[str]) -> None:
    toml = BRAND + '[[sources]]\ntype = "rss"\nname = "clips"\npath = "feeds/gone.xml"\n'
    assert refused(capsys, toml=toml) == [
        "parley.toml: sources[0].path: feeds/gone.xml does not exist"
    ]


def test_no_chat_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = refused(capsys, dotenv="PARLEY_CONSOLE=off\n")
    assert line.startswith("no chat frontend is enabled")


def test_the_real_run_exits_78_with_one_line_per_problem(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TELEGRAM_APPROVER_ID=1\nOPENAI_BASE_URL=localhost:11434\n")
    result = parley("run", cwd=tmp_path)
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2, result.stderr


def test_a_time_zone_that_does_not_exist(capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(capsys, dotenv="PARLEY_TIMEZONE=Europe/Pariss\n") == [
        "environment/.env: PARLEY_TIMEZONE: not a time zone name: use an IANA name such as "
        "Europe/Paris or America/New_York"
    ]
