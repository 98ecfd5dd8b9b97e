"""Environment values of a resource config: references to secrets, and literals that look like one.

A resource's `env={...}` is stored in `flash_manifest.json`, inside the archive. A secret must
not be: it is written as a reference instead, `env={"HF_TOKEN": "${HF_TOKEN}"}`, and filled in
when the endpoint is deployed, from the deploying shell or the project's `.env` (the shell wins,
as with python-dotenv). `$${` writes a literal `${`.

    looks_secret   a literal value the build warns about (by its name or by its shape)
    references     the variables a value refers to
    substitute     a value with its references filled in, or the names that nothing sets
    read_dotenv    a `.env` file's variables (KEY=VALUE lines, `export`, quotes, comments)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping

__all__ = ["looks_secret", "read_dotenv", "references", "substitute"]

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")
# Words of a variable's name that make it a credential (HF_TOKEN, DB_PASSWORD, OPENAI_API_KEY), whole
# words only: TOKENIZER_NAME and AUTHOR are not. Pairs count only together (API_KEY, not KEY_PATH).
_SECRET_WORDS = frozenset(
    {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "APIKEY", "CREDENTIAL", "CREDENTIALS", "AUTH"}
)
_SECRET_PAIRS = frozenset({("API", "KEY"), ("ACCESS", "KEY"), ("PRIVATE", "KEY"), ("SECRET", "KEY")})
_PLACEHOLDER = re.compile(r"^(<.*>|your[_-].*|.*change.?me.*|x+|\*+|.*placeholder.*|dummy|example|none|null)$", re.I)
# Shapes of well-known credentials: Hugging Face, OpenAI-style, GitHub, GitLab, AWS, Slack, Runpod, a JWT.
_SECRET_VALUE = re.compile(
    r"^(hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|glpat-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|rpa_[A-Za-z0-9]{20,}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+"
    r"|sk_(live|test)_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{30,}"  # Stripe, Google
    r"|[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@\S+)$"  # a URL with a password: postgres://user:pw@host/db
)
# A name ending so holds where a secret is or what it is called, not the secret (HF_TOKEN_PATH, TOKEN_URL).
_NOT_A_SECRET_END = frozenset({"NAME", "URL", "URI", "FILE", "PATH", "DIR", "MODE", "TYPE", "ID", "HOST", "PORT"})
_MIN_SECRET = 8  # shorter values named like a secret are placeholders ("changeme" is 8)


def references(value: str) -> tuple[str, ...]:
    """The names of the variables `value` refers to, in order, each once."""
    return tuple(dict.fromkeys(m[1] for m in _REFERENCE.finditer(value) if m[1]))


def substitute(value: str, variables: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """`value` with each `${NAME}` replaced from `variables` (and `$${` made `${`); the names not set.
    `${NAME:-default}` takes the default when NAME is unset or empty, `${NAME-default}` when unset."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name, operator, default = match[1], match[2], match[3]
        if name is None:
            return "${"
        value = variables.get(name)
        if (operator == ":-" and not value) or (operator == "-" and value is None):
            return default  # ${NAME:-default}: when unset or empty; ${NAME-default}: when unset
        if value is None:
            missing.append(name)
            return match[0]
        return value

    return _REFERENCE.sub(fill, value), tuple(dict.fromkeys(missing))


def looks_secret(name: str, value: str) -> bool:
    """Whether a literal env value looks like a credential: by the shape of the value, or by a
    name such as HF_TOKEN or DB_PASSWORD with a value that is neither short nor a reference."""
    if references(value):
        return False
    if _SECRET_VALUE.match(value.strip()):
        return True
    if len(value) < _MIN_SECRET or " " in value.strip() or _PLACEHOLDER.match(value.strip()):
        return False
    if value.startswith(("/", "./", "~/")):  # a path to a secret is no secret
        return False
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name.upper()) if w]
    if words and words[-1] in _NOT_A_SECRET_END:
        return False
    return bool(_SECRET_WORDS & set(words)) or any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def read_dotenv(text: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of a `.env` file, read as python-dotenv reads them: `KEY=VALUE`, optionally after
    `export`; `#` starts a comment outside quotes; single quotes keep the text as it is, double
    quotes understand \\n, \\t, \\" and \\\\ and may span lines (a PEM key, say); `${NAME}` in an
    unquoted or double-quoted value is filled in from `environ` (the shell, first) or an earlier
    line. Anything else is skipped, as python-dotenv skips it."""
    shell = environ or {}
    found: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _DOTENV_KEY.match(text, pos)
        if match is None:  # not an assignment: skip the line
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end + 1
            continue
        name, pos = match[1], match.end()
        value, pos, expand = _dotenv_value(text, pos)
        if expand:
            value, _ = substitute(value, {**found, **shell})
        found[name] = value
    return found


_DOTENV_KEY = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.]*)[ \t]*=[ \t]*")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r", "$": "$"}


def _dotenv_value(text: str, pos: int) -> tuple[str, int, bool]:
    """The value starting at `pos`, where the next line starts, and whether references are filled in."""
    quote = text[pos : pos + 1]
    if quote in ("'", '"'):
        out: list[str] = []
        i = pos + 1
        while i < len(text) and text[i] != quote:
            if quote == '"' and text[i] == "\\" and i + 1 < len(text):
                out.append(_ESCAPES.get(text[i + 1], text[i : i + 2]))
                i += 2
                continue
            out.append(text[i])
            i += 1
        if i < len(text):  # closed: the rest of the line is a comment at most
            end = text.find("\n", i)
            return "".join(out), len(text) if end < 0 else end + 1, quote == '"'
        # Never closed: the value is the rest of the line, as written.
    end = text.find("\n", pos)
    line = text[pos:] if end < 0 else text[pos:end]
    comment = re.search(r"(^|\s)#", line)
    value = (line[: comment.start()] if comment else line).strip()
    return value, len(text) if end < 0 else end + 1, True
