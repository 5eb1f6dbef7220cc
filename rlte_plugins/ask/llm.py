"""An optional OpenAI-compatible chat endpoint (``RLTE_LLM_URL``) that answers from the retrieved context.

Only the standard library talks to it (``urllib``). Whatever goes wrong (refused connection, HTTP error status,
timeout, a reply that is not a chat completion) is one :class:`LLMUnavailable` with the reason, and ``rlte ask``
answers offline.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

URL_VARIABLE = "RLTE_LLM_URL"
MODEL_VARIABLE = "RLTE_LLM_MODEL"
KEY_VARIABLE = "RLTE_LLM_API_KEY"
TIMEOUT_VARIABLE = "RLTE_LLM_TIMEOUT"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 30.0
SYSTEM_PROMPT = (
    "You answer questions about the rlte-plugins reinforcement-learning library. Answer only from the context "
    "given below the question. Use only the component names, arguments, recipes and documentation that the "
    "context lists; never invent a name or an argument. Prefer the offline snippet from the context and change it "
    "only where the question asks for something it does not do. If the context does not answer the question, "
    "say so."
)


class LLMUnavailable(Exception):
    """The endpoint gave no usable answer; ``str()`` is the reason."""


def endpoint() -> dict[str, Any] | None:
    """``{url, model, api_key, timeout}`` from the environment, or ``None`` when ``RLTE_LLM_URL`` is unset."""
    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    raw = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    try:
        timeout = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    return {
        "url": url.rstrip("/"),
        "model": os.environ.get(MODEL_VARIABLE, "").strip() or DEFAULT_MODEL,
        "api_key": os.environ.get(KEY_VARIABLE) or None,
        "timeout": timeout if timeout > 0 else DEFAULT_TIMEOUT,
    }


def chat(settings: dict[str, Any], question: str, context: str) -> str:
    """POST ``{url}/chat/completions`` with the system prompt and ``context`` + ``question``; the reply's text."""
    body = {
        "model": settings["model"],
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
        ],
        "temperature": 0,
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if settings.get("api_key"):
        headers["Authorization"] = f"Bearer {settings['api_key']}"
    request = urllib.request.Request(
        f"{settings['url']}/chat/completions", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=settings["timeout"]) as response:  # noqa: S310 - user's URL
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise LLMUnavailable(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = "timed out" if isinstance(reason, TimeoutError) else str(reason)
        raise LLMUnavailable(text) from exc
    except TimeoutError as exc:
        raise LLMUnavailable(f"timed out after {settings['timeout']:g} s") from exc
    except (OSError, ValueError) as exc:  # a malformed URL, a reset connection
        raise LLMUnavailable(f"{type(exc).__name__}: {exc}") from exc
    try:
        reply = json.loads(raw)
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMUnavailable("the reply is not an OpenAI chat completion") from exc
    if not isinstance(content, str) or not content.strip():
        raise LLMUnavailable("the reply holds no answer text")
    return content.strip()
