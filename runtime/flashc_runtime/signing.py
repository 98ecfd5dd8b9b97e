"""Pickled calls, only when signed: how non-JSON arguments and results may travel.

A job input may carry `"pickled"`: base64 of cloudpickle's `(args, kwargs)`. Unpickling runs
code, so such an input is accepted only with `"signature"`: the hex HMAC-SHA256 of that base64
text, keyed with the deployment's secret (`FLASHC_PICKLE_SECRET` in the endpoint's environment,
created at deploy time, kept in `.flash/deployment.json`, never in the archive). Anything else
is refused before unpickling. The result then travels back pickled as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["SECRET_ENV", "dumps", "loads_call", "sign", "signature_problem"]

SECRET_ENV = "FLASHC_PICKLE_SECRET"


def sign(secret: str, pickled: str) -> str:
    return hmac.new(secret.encode(), pickled.encode(), hashlib.sha256).hexdigest()


def signature_problem(job_input: Mapping[str, Any]) -> str | None:
    """Why a pickled input must be refused, or None when it is properly signed (or not pickled)."""
    if "pickled" not in job_input:
        return None
    secret = os.environ.get(SECRET_ENV)
    pickled, signature = job_input.get("pickled"), job_input.get("signature")
    if not secret:
        return "this endpoint accepts no pickled input"
    if not isinstance(pickled, str) or not isinstance(signature, str):
        return "a pickled input needs 'pickled' and 'signature' strings"
    if not pickled.isascii() or not signature.isascii():
        return "a pickled input's 'pickled' is base64 and its 'signature' hex: both ASCII"
    if not hmac.compare_digest(sign(secret, pickled), signature):
        return "the pickled input's signature is wrong: unsigned pickles are refused"
    return None


def dumps(value: Any) -> str:
    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(value)).decode()


def loads_call(job_input: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The arguments of a signed pickled input (check `signature_problem` first)."""
    import pickle

    args, kwargs = pickle.loads(base64.b64decode(job_input["pickled"]))
    return list(args), dict(kwargs)
