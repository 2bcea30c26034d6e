"""Secrets and machine paths out of everything PeakClips prints or publishes.

One rule for every URI that can reach a message, a log line, the Parquet index, `_stats.json` or
the dataset card: it loses its userinfo (`user:password@`), its query (presigned URLs and
`?api-key=` carry credentials there) and its fragment. `redact_text` applies the rule to every
URI inside a free-text message (an exception's, a server's). Local paths are not secrets, but the
layout of the machine that built a dataset is nobody's business: `hide_paths` keeps only the last
component of absolute paths in messages we did not write ourselves (an `internal` error's).
Importing this module also redacts the request URLs httpx logs (the download client's and the
openai client's): every process that can print a URI imports it.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

# scheme://anything-up-to-whitespace-or-quote; the scheme as RFC 3986 spells it
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")
# An absolute path not inside a word or URL: '/a/b/' prefixes of '/a/b/c.mp4'
_PATH_DIRS = re.compile(r"(?<![\w.:/%-])/(?:[^/\s'\"]+/)+")


def redact_uri(uri: str) -> str:
    """A URI without userinfo, query or fragment; a plain path unchanged.

    >>> redact_uri("https://user:pw@videos.example:8443/a/b.mp4?X-Amz-Signature=abc#t=3")
    'https://videos.example:8443/a/b.mp4'
    >>> redact_uri("/data/videos/a.mp4")
    '/data/videos/a.mp4'
    """
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:  # unparseable (an unclosed IPv6 bracket): cut by hand
        scheme, _, rest = uri.partition("://")
        rest = re.split(r"[?#]", rest, maxsplit=1)[0]
        host, slash, path = rest.partition("/")
        return f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def redact_text(text: str) -> str:
    """Every URI inside `text` redacted (see `redact_uri`)."""
    return _URI.sub(lambda m: redact_uri(m.group(0)), text)


def hide_paths(text: str) -> str:
    """Absolute paths in `text` cut to their last component: `.../name`.

    >>> hide_paths("[Errno 2] No such file or directory: '/home/ann/out/_scratch/000001/k.mp4'")
    "[Errno 2] No such file or directory: '.../k.mp4'"
    """
    return _PATH_DIRS.sub(".../", redact_text(text))


class _RedactURIs(logging.Filter):
    """httpx logs every request's URL at INFO; presigned URLs carry credentials in the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), None
        return True


logging.getLogger("httpx").addFilter(_RedactURIs())
