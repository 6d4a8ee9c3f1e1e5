"""A local web service and page for a detector (``deepfakedetect serve``; extra ``[serve]``).

Example:
    >>> from deepfakedetect import Detector
    >>> from deepfakedetect.serve import ServeSettings, create_app
    >>> app = create_app(Detector.from_backbone("resnet18", input_size=32), ServeSettings(max_queue=2))
    >>> app.state.service.gate.capacity
    3
"""

from __future__ import annotations

import ipaddress
import logging

from deepfakedetect.detector import Detector
from deepfakedetect.serve.app import create_app
from deepfakedetect.serve.settings import ServeSettings

logger = logging.getLogger(__name__)

__all__ = ["ServeSettings", "create_app", "serve"]


def serve(
    detector: Detector,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServeSettings | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``detector`` with uvicorn until interrupted (what ``deepfakedetect serve`` runs).

    Args:
        detector: The detector to score with.
        host: The address to bind; ``127.0.0.1`` (the default) accepts connections from this
            machine only. The service has no authentication: bind elsewhere only behind
            something that has.
        port: The TCP port.
        settings: Limits and switches.
        log_level: uvicorn's log level.

    Example:
        >>> serve(Detector.from_pretrained(), port=8000)  # doctest: +SKIP
    """
    import uvicorn  # optional dependency, the [serve] extra

    if not _is_loopback(host):
        logger.warning(
            "binding to %s: the service has no authentication, anyone who can reach this address can use it", host
        )
    app = create_app(detector, settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False, timeout_graceful_shutdown=5)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
