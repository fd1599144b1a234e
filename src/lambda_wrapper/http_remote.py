"""HTTP/1.1 to remote hosts: what the exporters' connections add to the platform client.

The Extensions and Telemetry APIs are a numeric loopback address over plain HTTP; a
remote backend may be a host name (resolved with a deadline, on a helper thread) and
TLS. ``extension.Connection.open`` imports this module the first time a connection
needs either, so a function whose exporters are all local never loads it (nor
``socket`` or ``ssl``): it is one client, whose remote half is loaded where it is used.
"""

from __future__ import annotations

import threading
import time

from .extension import HttpError, describe

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    import _socket
    import ssl

__all__ = ["DNS_CACHE_S", "Resolver", "handshake"]

DNS_CACHE_S = 60.0


def handshake(sock: _socket.socket, context: ssl.SSLContext, host: str, label: str,
              deadline: float | None) -> _socket.socket:
    """The TLS socket over ``sock`` once the handshake is done; ``HttpError`` (and ``sock``
    closed) if it fails or outlasts ``deadline``."""
    import ssl

    try:
        sock.settimeout(None if deadline is None else max(0.001, deadline - time.monotonic()))
        return context.wrap_socket(sock, server_hostname=host)  # type: ignore[arg-type]
    except ssl.SSLCertVerificationError as error:
        sock.close()
        reason = error.verify_message or error.reason or "verification failed"
        raise HttpError(
            f"the TLS certificate of {label} is not trusted ({reason}); retrying cannot fix this",
            retryable=False,
        ) from None
    except TimeoutError:
        sock.close()
        raise HttpError(f"TLS handshake with {label} did not finish before the deadline") from None
    except OSError as error:
        sock.close()
        raise HttpError(f"TLS handshake with {label} failed ({describe(error)})") from None


class Resolver:
    """getaddrinfo with a deadline (it has no timeout of its own), results cached a minute.

    With a deadline the lookup runs on a helper thread we stop waiting for at the
    deadline; a result that arrives later is still cached for the next attempt.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], tuple[float, list[tuple]]] = {}

    def resolve(self, host: str, port: int, deadline: float | None) -> list[tuple]:
        key = (host, port)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        outcome: dict[str, object] = {}

        def lookup() -> None:
            import socket  # looked up at call time: tests may replace socket.getaddrinfo

            try:
                addresses = socket.getaddrinfo(_host_arg(host), port, type=socket.SOCK_STREAM)
            except OSError as error:
                outcome["error"] = describe(error)  # a string: no traceback kept alive
                return
            self._cache[key] = (time.monotonic() + DNS_CACHE_S, addresses)
            outcome["addresses"] = addresses

        if deadline is None:
            lookup()
        else:
            thread = threading.Thread(target=lookup, name="lambda-wrapper-dns", daemon=True)
            thread.start()
            thread.join(max(0.0, deadline - time.monotonic()))
        if "addresses" in outcome:
            return outcome["addresses"]  # type: ignore[return-value]
        if "error" in outcome:
            raise HttpError(f"DNS lookup of {host} failed ({outcome['error']})")
        raise HttpError(f"DNS lookup of {host} did not finish before the deadline")

    def forget(self, host: str, port: int) -> None:
        self._cache.pop((host, port), None)


def _host_arg(host: str) -> str | bytes:
    # getaddrinfo encodes a str host with the "idna" codec, whose first use imports
    # encodings.idna, stringprep and unicodedata (~5 ms); an ASCII name needs none of it.
    return host.encode("ascii") if host.isascii() else host
