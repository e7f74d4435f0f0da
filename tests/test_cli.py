"""The `parley` command: check reports one line per problem, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_harness import parley
from tests.conftest import ROOT


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "parley.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_accepts_the_example_config_as_shipped(tmp_path: Path) -> None:
    # From an empty folder: the prompts are Parley's defaults, the feed sits beside the example.
    config = ROOT / "parley.example.toml"
    result = parley("check", env={"PARLEY_CONFIG": str(config)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Configuration OK")


@pytest.mark.parametrize(
    "toml,expected",
    [
        ("brands = [", "not valid TOML"),
        (
            '[[brands]]\nname = "acme"\n[[brands.rules]]\nname = "r"\nquery = "acme)"\n',
            "brands[0].rules[0].query: ')' ",
        ),
        (
            '[[brands]]\nname = "acme"\n[[brands.rules]]\nname = "r"\nquery = "acme"\n'
            '[[sources]]\ntype = "myspace"\nname = "m"\n',
            "sources[0]: unknown source type 'myspace'",
        ),
        (
            '[[brands]]\nname = "acme"\n[[brands.rules]]\nname = "r"\nquery = "acme"\n'
            '[[sources]]\ntype = "rss"\nname = "f"\nurl = "ftp://x"\ninterval = 1\n',
            "sources[0].interval",
        ),
        ('[[brands]]\nname = "acme"\nrules = []\n', "brands[0].rules"),
    ],
)
def test_check_names_file_field_and_problem(tmp_path: Path, toml: str, expected: str) -> None:
    config = _write(tmp_path, toml)
    result = parley("check", env={"PARLEY_CONFIG": str(config)}, cwd=tmp_path)
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr
    for line in result.stderr.strip().splitlines():
        assert line.startswith(str(config)), line


def test_check_reports_every_problem_and_bad_settings_without_echoing_them(
    tmp_path: Path,
) -> None:
    config = _write(
        tmp_path,
        '[[brands]]\nname = "acme"\nvoice_file = "brands/missing.md"\n'
        '[[brands.rules]]\nname = "r"\nquery = "acme"\n'
        '[[sources]]\ntype = "rss"\nname = "f"\npath = "nowhere.xml"\n',
    )
    result = parley("check", env={"PARLEY_CONFIG": str(config)}, cwd=tmp_path)
    assert result.returncode == 78
    assert "brands[0].voice_file" in result.stderr
    assert "sources[0].path: nowhere.xml does not exist" in result.stderr
    bad = parley("check", env={"PARLEY_LOOKBACK_HOURS": "s3cr3t-token"}, cwd=tmp_path)
    assert bad.returncode == 78 and "PARLEY_LOOKBACK_HOURS" in bad.stderr
    assert "s3cr3t-token" not in bad.stderr and "Traceback" not in bad.stderr


def test_check_names_each_missing_connector_secret(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        '[[brands]]\nname = "acme"\n[[brands.rules]]\nname = "r"\nquery = "acme"\n'
        '[[sources]]\ntype = "x"\nname = "xsrc"\nusername = "acme"\n'
        '[[sources]]\ntype = "mastodon"\nname = "masto"\nbase_url = "https://m.example"\n',
    )
    secrets = ("X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET")
    env = {name: "" for name in (*secrets, "MASTODON_ACCESS_TOKEN")}
    result = parley("check", env={"PARLEY_CONFIG": str(config), **env}, cwd=tmp_path)
    assert result.returncode == 78
    assert result.stderr.splitlines() == [
        "source 'xsrc' (x): set X_API_KEY (the app's API key) in .env",
        "source 'masto' (mastodon): set MASTODON_ACCESS_TOKEN (the account's access token) in .env",
    ]
    filled = {name: "value-1234" for name in secrets} | {"MASTODON_ACCESS_TOKEN": "tok"}
    result = parley("check", env={"PARLEY_CONFIG": str(config), **filled}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_missing_config_says_what_to_do(tmp_path: Path) -> None:
    result = parley("run", cwd=tmp_path)
    assert result.returncode == 78
    assert "parley.toml: file not found" in result.stderr
    assert "PARLEY_CONFIG" in result.stderr


def test_status_before_first_run(tmp_path: Path) -> None:
    result = parley("status", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "parley: no database at parley.db yet; start Parley with 'parley run' first"
    )
