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

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
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
    r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+)$"
)
_MIN_SECRET = 8  # shorter values named like a secret are placeholders ("changeme" is 8)
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def references(value: str) -> tuple[str, ...]:
    """The names of the variables `value` refers to, in order, each once."""
    return tuple(dict.fromkeys(m[1] for m in _REFERENCE.finditer(value) if m[1]))


def substitute(value: str, variables: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """`value` with each `${NAME}` replaced from `variables` (and `$${` made `${`); the names not set."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match[1]
        if name is None:
            return "${"
        if name not in variables:
            missing.append(name)
            return match[0]
        return variables[name]

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
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name.upper()) if w]
    return bool(_SECRET_WORDS & set(words)) or any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def read_dotenv(text: str) -> dict[str, str]:
    """The variables of a `.env` file. `KEY=VALUE` per line, optionally after `export`; `#` starts a
    comment outside quotes; single quotes keep the text as it is, double quotes understand \\n,
    \\t, \\" and \\\\. Lines that are none of this are skipped, as python-dotenv skips them."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _DOTENV_LINE.match(line)
        if match is None or line.lstrip().startswith("#"):
            continue
        name, raw = match[1], match[2]
        found[name] = _dotenv_value(raw)
    return found


def _dotenv_value(raw: str) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = _closing(raw, quote)
        inner = raw[1:end] if end > 0 else raw[1:]
        if quote == "'":
            return inner
        escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
        return re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[0]), inner)
    comment = re.search(r"\s#", raw)
    return (raw[: comment.start()] if comment else raw).strip()


def _closing(raw: str, quote: str) -> int:
    i = 1
    while i < len(raw):
        if raw[i] == "\\" and quote == '"':
            i += 2
            continue
        if raw[i] == quote:
            return i
        i += 1
    return -1
