"""Is the Hugging Face hub usable? Asked once per process, quickly.

``huggingface_hub`` retries a connection for tens of seconds before it gives up; a short TCP probe
answers the same question in at most ``timeout`` seconds, and the answer is kept for the process
(the tokenizer loader and the ``hf`` data source both ask).
"""
from __future__ import annotations

import functools
import os
import socket

_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether offline mode is asked for (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE``)."""
    return (os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE
            or os.environ.get("HF_DATASETS_OFFLINE", "").upper() in _TRUE)


@functools.lru_cache(maxsize=None)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub (``HF_ENDPOINT``, default huggingface.co) accepts a TCP connection within
    ``timeout`` seconds; probed once per process."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://")[-1].split("/")[0]
    port = 443
    if ":" in host:
        host, _, p = host.partition(":")
        port = int(p) if p.isdigit() else port
    elif endpoint.startswith("http://"):
        port = 80
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


__all__ = ["hub_offline", "hub_reachable"]
