"""An optional OpenAI-compatible chat endpoint (``RLTE_LLM_URL``) that answers from the retrieved context.

Only the standard library talks to it (``urllib``). Whatever goes wrong (refused connection, HTTP error status,
timeout, a redirect, a reply over :data:`MAX_REPLY_BYTES` or that is not a chat completion) is one
:class:`LLMUnavailable` with the reason, and ``rlte ask`` answers offline. Redirects are refused, not followed:
the request carries the API key, and only the configured URL may receive it. Credentials in the URL (userinfo,
the query string) are never printed: :func:`public_url` is the URL that warnings and ``--json`` show.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NoReturn

URL_VARIABLE = "RLTE_LLM_URL"
MODEL_VARIABLE = "RLTE_LLM_MODEL"
KEY_VARIABLE = "RLTE_LLM_API_KEY"
TIMEOUT_VARIABLE = "RLTE_LLM_TIMEOUT"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 30.0
#: the most bytes of a reply read: a chat completion is far smaller, a larger reply is not one
MAX_REPLY_BYTES = 4 * 1024 * 1024
SYSTEM_PROMPT = (
    "You answer questions about the rlte-plugins reinforcement-learning library. Answer only from the context "
    "given below the question. Use only the component names, arguments, recipes and documentation that the "
    "context lists; never invent a name or an argument. Prefer the offline snippet from the context and change it "
    "only where the question asks for something it does not do. If the context does not answer the question, "
    "say so."
)


class LLMUnavailable(Exception):
    """The endpoint gave no usable answer; ``str()`` is the reason."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Stops at the first redirect: following it would send the request, API key included, to another URL."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> NoReturn:
        fp.close()
        host = urllib.parse.urlsplit(newurl).hostname or public_url(newurl)
        raise LLMUnavailable(f"redirected to {host}; set {URL_VARIABLE} to the final URL")


def public_url(url: str) -> str:
    """``url`` without userinfo, query string or fragment: safe to print.

    Examples:
        >>> public_url("https://user:sk-secret@llm.example.com:8443/v1?api_key=sk-secret")
        'https://llm.example.com:8443/v1'
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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
    parts = urllib.parse.urlsplit(settings["url"])
    if parts.username is not None:  # userinfo is HTTP basic auth (as curl reads it), never part of the host
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if settings.get("api_key"):
        headers["Authorization"] = f"Bearer {settings['api_key']}"
    host = public_url(urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", "")))
    url = f"{host}{parts.path.rstrip('/')}/chat/completions" + (f"?{parts.query}" if parts.query else "")
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    opener = urllib.request.build_opener(_RefuseRedirects)
    try:
        with opener.open(request, timeout=settings["timeout"]) as response:
            raw = response.read(MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise LLMUnavailable(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = "timed out" if isinstance(reason, TimeoutError) else str(reason)
        raise LLMUnavailable(text) from exc
    except TimeoutError as exc:
        raise LLMUnavailable(f"timed out after {settings['timeout']:g} s") from exc
    except (OSError, ValueError) as exc:  # a malformed URL, a reset connection
        # the message may quote the URL, so it is left out when the URL holds a credential
        secret = parts.password or parts.query
        raise LLMUnavailable(type(exc).__name__ if secret else f"{type(exc).__name__}: {exc}") from exc
    if len(raw) > MAX_REPLY_BYTES:
        raise LLMUnavailable(f"the reply is larger than {MAX_REPLY_BYTES // 2**20} MB")
    try:
        reply = json.loads(raw)
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMUnavailable("the reply is not an OpenAI chat completion") from exc
    if not isinstance(content, str) or not content.strip():
        raise LLMUnavailable("the reply holds no answer text")
    return content.strip()
