"""What to check when the server cannot be reached, from the error the HTTP client gave.

Shared by the sync loops' warning (agent/sync.py) and `simhive-agent doctor`, so the log and
the doctor give the same advice for the same failure.
"""

from __future__ import annotations


def server_hint(error: str, url: str) -> str:
    """One sentence: the likely cause of `error` (a ServerAway message) and what to do."""
    e = error.lower()
    # TLS is told by its own words ("certificate verify failed", "[SSL: ..."), not by "ssl",
    # which older HTTP clients put into every connect error ("ssl:default").
    if "certificate" in e or "sslerror" in e or "ssl handshake" in e or "[ssl" in e:
        return (
            f"the TLS certificate of {url} is not trusted here (self-signed, expired or for"
            " another name): fix the certificate, or point `server` at the right host name"
        )
    if "refused" in e or "cannot connect" in e or "connect call failed" in e:
        return (
            f"nothing accepts connections at {url}: is simhive-server running"
            " (systemctl status simhive-server), and are the host and port in `server` right?"
        )
    if (
        "name or service not known" in e
        or "temporary failure in name resolution" in e
        or ("nodename" in e)
    ):
        return f"the host name in {url} does not resolve: check `server` in the agent config"
    if "timeout" in e or "timed out" in e:
        return f"{url} does not answer in time: check the network path and any firewall"
    if "http 5" in e:
        return f"{url} answers with a server error: check the server's (or proxy's) log"
    if "not a json object" in e:
        return f"{url} answers, but not as a simhive server: check `server` (a proxy page?)"
    return f"check that simhive-server runs and that `server` ({url}) is right"
