"""Online check of the LLM server: one one-token chat completion per configured model.

Plain HTTP to the OpenAI-compatible ``/chat/completions`` at OPENAI_BASE_URL (OpenAI itself when
unset). A model the server does not know is said plainly, with the ``ollama pull`` to run.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.services.online_runner import Verdict, ok, refused

SERVICE = "LLM"
OPENAI_URL = "https://api.openai.com/v1"


async def check_llm(
    http: httpx.AsyncClient, *, base_url: str | None, api_key: str | None, models: list[str]
) -> list[Verdict]:
    """One line per distinct model: does the server answer a one-token request with it?"""
    verdicts = []
    for model in dict.fromkeys(models):
        verdicts.append(await _ask(http, base_url or OPENAI_URL, api_key, model))
    return verdicts


async def _ask(http: httpx.AsyncClient, base_url: str, api_key: str | None, model: str) -> Verdict:
    service = f"LLM model {model!r}"
    response = await http.post(
        base_url.rstrip("/") + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1},
        headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
    )
    if response.status_code == 200:
        return ok(service, f"{_host(base_url)} answered")
    message = _message(response)
    if response.status_code in (401, 403):
        return refused(
            service,
            f"the server refused OPENAI_API_KEY ({message}): create a new key and put it in .env",
        )
    if response.status_code == 404 and "model" in message.lower():
        return refused(
            service,
            f"the server does not know this model ({message}): with Ollama run "
            f"'ollama pull {model}' on the server, or set OPENAI_MODEL to a model it serves",
        )
    if response.status_code == 404:
        return refused(
            service,
            f"no chat API at {base_url}: check OPENAI_BASE_URL (Ollama: http://HOST:11434/v1)",
        )
    return refused(service, f"the server answered HTTP {response.status_code} ({message})")


def _message(response: httpx.Response) -> str:
    """The server's own error message, short."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text.strip()[:200] or f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or f"HTTP {response.status_code}")[:200]


def _host(base_url: str) -> str:
    return httpx.URL(base_url).host or base_url
