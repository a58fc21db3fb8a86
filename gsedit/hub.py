"""Whether model loads may use the network: the Hugging Face hub is offline by setting
(HF_HUB_OFFLINE) or does not answer now.

Without network and without HF_HUB_OFFLINE, every `from_pretrained` waits out huggingface_hub's
five retries per file before it fails (26-27 s on the 2-core machine, for each model; a
comparison evaluates each backend's session) and then says a file is missing. One short request
per process tells instead, and the loaders then read the local cache only.
"""

from __future__ import annotations

import functools
import os

#: seconds the one reachability request may take
PROBE_TIMEOUT = 5.0


def hub_offline() -> bool:
    """HF_HUB_OFFLINE, read at call time: huggingface_hub reads it only once, at its import."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@functools.cache
def hub_unreachable() -> str | None:
    """Why the hub's endpoint did not answer one request, or None when it answered (any status).

    Asked once per process, through huggingface_hub's own HTTP session (its proxies, its
    endpoint setting).
    """
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT)
    except Exception as error:  # noqa: BLE001 - a response of any status means reachable; anything raised, not
        return f"{constants.ENDPOINT} did not answer ({type(error).__name__}: {error})"
    return None


def offline_reason() -> str | None:
    """Why loads must read the local cache only (HF_HUB_OFFLINE, or no answer from the hub), or None."""
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    return hub_unreachable()


def offline_detail(reason: str | None, detail: str) -> str:
    """The detail of a failed load: the loader's own words, after why it read the cache only."""
    return f"{reason}; from the local cache: {detail}" if reason else detail
