"""LLM drafting and triage through any OpenAI-compatible server (OpenAI, Ollama, vLLM…).

``client`` talks to the server (budget, retries, JSON), ``prompts`` loads the prompt files and
fences untrusted text, ``drafter`` and ``triage`` use them, ``guards`` checks every draft before
it is offered and every edit before it is kept (``textscan`` and ``offers`` find links, phone
numbers and offers for it), ``tweaks`` is the vocabulary of redraft buttons. See docs/llm.md.
"""
