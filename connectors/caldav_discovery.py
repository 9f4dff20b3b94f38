"""Finding a CalDAV account's calendars from the URL an admin typed, or saying why not.

RFC 6764 section 5: a client given a server (its root, or ``/.well-known/caldav``) asks the
well-known URI, follows its redirect to the context path, and there asks for
``DAV:current-user-principal`` (RFC 5397), then the principal's ``calendar-home-set``.
Servers differ in each step (below, ``KNOWN_SERVERS``), and the caldav library, given a URL
where discovery finds nothing, quietly takes that URL for the principal: a sync that
reads 0 calendars and says ok. Here discovery that finds no principal or no calendar is a
source error naming the URL tried and the principal URL to put in the config instead.

The table is in the spirit of the caldav library's compatibility hints: what each known
server does, used by the connector (a hint in the error) and by the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from syncd.model.errors import SourceConfigError

WELL_KNOWN = "/.well-known/caldav"
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class CaldavServerQuirks:
    """One CalDAV server's known departures, and where its principals live."""

    name: str
    #: The principal URL path for a user, ``{user}`` filled in: what an admin should configure.
    principal_path: str = ""
    #: Answers a PROPFIND on the well-known URI with an error instead of following RFC 6764.
    well_known_propfind_fails: bool = False
    #: Discovery at the server root finds no principal (the URL is taken for one, empty).
    root_has_no_principal: bool = False


GENERIC = CaldavServerQuirks(name="unknown")

#: (Server header pattern, quirks), first match wins, matched case-insensitively.
KNOWN_SERVERS: tuple[tuple[str, CaldavServerQuirks], ...] = (
    (
        r"\bcyrus-http\b",
        CaldavServerQuirks(
            name="Cyrus CalDAV", principal_path="/dav/principals/user/{user}/", root_has_no_principal=True
        ),
    ),
    (
        r"\bxandikos\b|\baiohttp\b",
        CaldavServerQuirks(name="Xandikos", principal_path="/user/", well_known_propfind_fails=True),
    ),
    (r"\bradicale\b", CaldavServerQuirks(name="Radicale", principal_path="/{user}/")),
    (
        r"\bnextcloud\b|\bsabre",
        CaldavServerQuirks(name="Nextcloud/SabreDAV", principal_path="/remote.php/dav/principals/users/{user}/"),
    ),
    (r"\bsogo\b", CaldavServerQuirks(name="SOGo", principal_path="/SOGo/dav/{user}/")),
)

GENERIC_HINT = (
    "the account's principal URL, e.g. Nextcloud …/remote.php/dav/principals/users/NAME/, "
    "Cyrus …/dav/principals/user/NAME/, Radicale …/NAME/, Xandikos …/user/"
)


def identify(server_header: str | None) -> CaldavServerQuirks:
    if not server_header:
        return GENERIC
    for pattern, quirks in KNOWN_SERVERS:
        if re.search(pattern, server_header, re.IGNORECASE):
            return quirks
    return GENERIC


def needs_well_known(url: str) -> bool:
    """A bare server (root or the well-known URI): the context path must be looked up first."""
    path = urlsplit(url).path.rstrip("/")
    return path in ("", WELL_KNOWN)


@dataclass(frozen=True)
class Resolved:
    """Where discovery starts, how it got there, and the server as it names itself."""

    url: str
    tried: tuple[str, ...]
    server: CaldavServerQuirks


def resolve(url: str, session: requests.Session, timeout: float) -> Resolved:
    """Follow the well-known URI's redirects by hand (RFC 6764 section 5), with GET.

    A PROPFIND that a redirect turns into a GET (or that a server answers with an error
    page) is how Xandikos gave ``406 Not Acceptable``: the redirects are followed here, and
    discovery then starts where they end.
    """
    tried: list[str] = []
    server_header: str | None = None
    if not needs_well_known(url):
        return Resolved(url, (url,), GENERIC)
    parts = urlsplit(url)
    current = f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}"
    for _hop in range(MAX_REDIRECTS):
        tried.append(current)
        response = session.get(current, allow_redirects=False, timeout=timeout)
        server_header = response.headers.get("Server") or server_header
        location = response.headers.get("Location")
        if response.status_code in (301, 302, 303, 307, 308) and location:
            current = urljoin(current, location)
            if urlsplit(current).path.rstrip("/") != WELL_KNOWN:
                break  # the context path; a redirect from there (Radicale's / -> /.web) is for browsers
            continue
        break
    else:
        raise SourceConfigError(f"{url}: {WELL_KNOWN} redirects more than {MAX_REDIRECTS} times")
    final = current
    if final.rstrip("/").endswith(WELL_KNOWN):
        final = f"{parts.scheme}://{parts.netloc}/"  # no redirect: discovery starts at the root
    if final not in tried:
        tried.append(final)
    return Resolved(final, tuple(tried), identify(server_header))


def server_of(url: str, session: requests.Session, timeout: float) -> CaldavServerQuirks:
    """The server as its Server header names it (best effort: for a hint only)."""
    try:
        response = session.request("OPTIONS", url, allow_redirects=False, timeout=timeout)
    except requests.RequestException:
        return GENERIC
    return identify(response.headers.get("Server"))


def discovery_error(
    configured: str,
    tried: tuple[str, ...],
    username: str,
    what: str,
    server: CaldavServerQuirks,
) -> SourceConfigError:
    """One line: what discovery found, the URLs it tried, and the principal URL to use."""
    if server.principal_path:
        parts = urlsplit(configured)
        hint = f"{parts.scheme}://{parts.netloc}" + server.principal_path.format(user=username)
        advice = f"set url to the principal URL ({server.name}): {hint}"
    else:
        advice = f"set url to {GENERIC_HINT}"
    return SourceConfigError(f"{configured}: CalDAV discovery {what} (tried {', '.join(tried)}); {advice}")


def first_line(exc: BaseException) -> str:
    """A library error as one line (caldav's PropfindError carries the whole response body)."""
    text = " ".join(str(exc).split("\n", 1)[0].split())
    return text[:200]
