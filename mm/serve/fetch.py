"""Fetching a remote image for `image_url`: allowlisted hosts only, bounded in time and size.

`fetch_image(url, limits)` is blocking: the server runs it on a thread, never on the event loop.

- Redirects are followed by hand, at most `MAX_REDIRECTS`, and every hop is checked like the first URL
  (http or https, host on the allow-list); a redirect to another host or to `file:` is refused.
- One wall-clock budget (`limits.fetch_timeout`, or less when the request's deadline is nearer) covers
  every hop and the whole body; the body is read in small pieces and refused past `max_fetch_bytes`.
- Environment proxies are not used: the allow-list names the hosts actually contacted.
- Every failure (refused, 404, timeout, TLS, too large, not an image) is an `InputError` naming the URL.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.parse
import urllib.request

from encoders.image_io import check_image_header
from mm.errors import InputError
from mm.serve.requests import ServerLimits, allowed_url

MAX_REDIRECTS = 5
CHUNK = 64 * 2**10


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        return None  # the 3xx comes back as an HTTPError; fetch_image checks the next hop itself


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def fetch_image(url: str, limits: ServerLimits, deadline: float | None = None) -> bytes:
    """The bytes of the image at `url` (already allowlisted by `allowed_url`); InputError on any failure.

    `deadline` is a `time.monotonic()` time after which the fetch gives up, if nearer than the fetch timeout.
    """
    budget = time.monotonic() + limits.fetch_timeout
    deadline = budget if deadline is None else min(budget, deadline)
    shown = url[:200]
    for _ in range(MAX_REDIRECTS + 1):
        allowed_url(url, limits)
        try:
            return _get(url, limits, deadline)
        except _Redirect as r:
            url = urllib.parse.urljoin(url, r.location)
        except InputError:
            raise
        except TimeoutError:
            raise InputError(f"{shown}: no complete answer within {limits.fetch_timeout:g} s") from None
        except urllib.error.HTTPError as e:
            raise InputError(f"{shown}: the server answered {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                raise InputError(f"{shown}: no answer within {limits.fetch_timeout:g} s") from None
            raise InputError(f"{shown}: could not fetch it ({e.reason})") from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise InputError(f"{shown}: could not fetch it ({type(e).__name__}: {e})") from None
    raise InputError(f"{shown}: more than {MAX_REDIRECTS} redirects")


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _get(url: str, limits: ServerLimits, deadline: float) -> bytes:
    shown, cap = url[:200], limits.max_fetch_bytes
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    request = urllib.request.Request(url, headers={"User-Agent": "mm-serve", "Accept": "image/*"})
    try:
        response = _opener.open(request, timeout=remaining)
    except urllib.error.HTTPError as e:
        e.close()
        if 300 <= e.code < 400:
            location = e.headers.get("Location")
            if not location:
                raise InputError(f"{shown}: the server answered {e.code} without a Location") from None
            raise _Redirect(location) from None
        raise
    with response:
        length = response.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > cap:
            raise InputError(f"{shown}: the image is {int(length)} bytes; this server fetches at most {cap}")
        data = bytearray()
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError
            piece = response.read1(CHUNK)  # one read from the socket: a trickling server cannot hold it
            if not piece:
                break
            data += piece
            if len(data) > cap:
                raise InputError(f"{shown}: the image is larger than {cap} bytes, the most this server fetches")
        kind = response.headers.get("Content-Type", "unknown type")
    check_image_header(bytes(data), limits.max_image_pixels, f"{shown} ({kind})", readable=True)
    return bytes(data)
