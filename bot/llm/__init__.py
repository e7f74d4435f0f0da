"""The model client and its prompts, for any OpenAI-compatible server (OpenAI, Ollama, vLLM…).

``client`` talks to the server (budget, retries, JSON, usage recorded), ``breaker`` is its
circuit breaker, ``prompts`` loads the prompt and brand-voice files and fences untrusted text.
Only this package imports ``openai``. What the model is used for lives elsewhere: drafting in
bot/drafting/llm.py, triage in bot/triage/model.py; both fall back to model-free code
(templates, keyword rules). See docs/llm.md.
"""
