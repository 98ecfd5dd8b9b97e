"""The archive's upload: one PUT of its bytes to a presigned URL, streamed from the file.

    slot_provider() -> UploadSlot --PUT (application/gzip, Content-Length, no Authorization)--> object key

A connection error, a timeout or a 5xx sends the file again, from its start, up to 5 attempts,
waiting 2 s·2^n (at most 30 s) between them. A presigned URL that expired (S3 answers 403
"Request has expired", or the slot's `expiresAt` passed before sending) is replaced by a new slot
from `slot_provider`, at most 3 times. Any other 4xx fails at once. The bytes sent are hashed on
the way and must be the `sha256` the caller planned with: a file changed meanwhile is refused
before its object key is returned, so it is never finalized as a build. No error message shows the
URL's query string (the credential).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from .api import RunpodApi, UploadError, UploadSlot, redact

__all__ = ["CHUNK_SIZE", "put_archive"]

CHUNK_SIZE = 1 << 20
ATTEMPTS = 5
SLOT_RENEWALS = 3


def put_archive(
    api_or_client: RunpodApi | httpx.Client,
    slot_provider: Callable[[], UploadSlot],
    path: Path,
    *,
    sha256: str,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> str:
    """Put the archive at `path` where `slot_provider` says; its object key once stored.

    `progress(sent, total)` is called as bytes go out (from 0 again on a new attempt). `api_or_client`
    is the `RunpodApi` (its PUT counts in `calls`) or any `httpx.Client` without an Authorization
    header. `clock` gives the current time (seconds since the epoch) to compare slots' expiry with."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UploadError(f"cannot read the archive {path}: {exc.strerror}") from None
    slot = slot_provider()
    renewals = 0
    failures = 0
    while True:
        if slot.expired(clock()):
            renewals = _renew(renewals, "expired before it was used")
            slot = slot_provider()
            continue
        try:
            response, digest = _put_once(api_or_client, slot, path, size, progress)
        except httpx.TransportError as exc:
            failures += 1
            what = "timed out" if isinstance(exc, httpx.TimeoutException) else "lost its connection"
            if failures >= ATTEMPTS:
                raise UploadError(
                    f"the archive's upload to {redact(slot.url)} {what} ({type(exc).__name__}), {ATTEMPTS} attempts",
                    retryable=True,
                    hint="check the network and deploy again",
                ) from None
            sleep(min(2.0 * 2 ** (failures - 1), 30.0))
            continue
        status = response.status_code
        if 200 <= status < 300:
            if digest != sha256:
                raise UploadError(
                    f"{path} changed while it was uploaded (sha256 {digest[:12]}, expected {sha256[:12]})",
                    hint="build again, then deploy",
                )
            return slot.object_key
        body = response.text
        if status == 403 and "expired" in body.lower():
            renewals = _renew(renewals, "expired during the upload")
            slot = slot_provider()
            continue
        if status >= 500:
            failures += 1
            if failures >= ATTEMPTS:
                raise UploadError(
                    f"the archive's upload to {redact(slot.url)} failed: HTTP {status}, {ATTEMPTS} attempts",
                    status=status,
                    retryable=True,
                )
            sleep(min(2.0 * 2 ** (failures - 1), 30.0))
            continue
        raise UploadError(
            f"the archive's upload to {redact(slot.url)} was refused: HTTP {status}{_s3_reason(body)}",
            status=status,
        )


def _renew(renewals: int, why: str) -> int:
    if renewals >= SLOT_RENEWALS:
        raise UploadError(
            f"the archive's upload URL {why}, {SLOT_RENEWALS + 1} times in a row",
            retryable=True,
            hint="check this machine's clock",
        )
    return renewals + 1


def _put_once(
    api_or_client: RunpodApi | httpx.Client,
    slot: UploadSlot,
    path: Path,
    size: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[httpx.Response, str]:
    """One attempt; the answer and the sha256 of the bytes that were sent."""
    digest = hashlib.sha256()
    headers = {"Content-Type": "application/gzip", "Content-Length": str(size)}
    content = _chunks(path, size, digest, progress)
    if isinstance(api_or_client, RunpodApi):
        response = api_or_client.put_presigned(slot.url, content, headers)
    else:
        response = api_or_client.put(slot.url, content=content, headers=headers)
    return response, digest.hexdigest()


def _chunks(
    path: Path, size: int, digest: hashlib._Hash, progress: Callable[[int, int], None] | None
) -> Iterator[bytes]:
    sent = 0
    if progress is not None:
        progress(0, size)
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            digest.update(chunk)
            sent += len(chunk)
            yield chunk
            if progress is not None:
                progress(sent, size)
    if sent != size:
        raise UploadError(f"{path} changed while it was uploaded ({sent} bytes, expected {size})")


def _s3_reason(body: str) -> str:
    """S3's `<Code>` and `<Message>` from an error body, if it has them."""
    code = _xml_text(body, "Code")
    message = _xml_text(body, "Message")
    reason = ": ".join(part for part in (code, message) if part)
    return f" ({redact(reason)[:200]})" if reason else ""


def _xml_text(body: str, tag: str) -> str:
    start = body.find(f"<{tag}>")
    end = body.find(f"</{tag}>", start)
    return body[start + len(tag) + 2 : end].strip() if start >= 0 and end > start else ""
