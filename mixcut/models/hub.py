"""Pretrained downloads without a network: fail in seconds, not after a minute of retries.

huggingface_hub retries an unreachable Hub for about a minute (54 s measured on an offline
machine) before it looks in its local cache. When a short TCP connect to the Hub fails,
the download runs in the library's offline mode instead: a cached file still loads, a
missing one fails at once and the caller turns that into one line naming model.init=PATH.
"""

from __future__ import annotations

import contextlib
import socket
from urllib.parse import urlparse


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when a TCP connection to the Hub's endpoint (HF_ENDPOINT, if set) opens within ``timeout``."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def offline_unless_hub_reachable(pretrained: bool):
    """Inside, huggingface_hub is in offline mode when ``pretrained`` and the Hub cannot be reached."""
    if not pretrained:
        yield
        return
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or hub_reachable():
        yield
        return
    constants.HF_HUB_OFFLINE = True  # what is_offline_mode() reads at call time
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = False
