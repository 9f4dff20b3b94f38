"""A Graph client signed in as the app against the Graph TEST DOUBLE, for connector-level tests."""

from __future__ import annotations

from pathlib import Path

from support.doubles.graph_double import GraphDouble
from syncd.connectors.graph.auth import GraphSignIn, GraphTokens, graph_scope
from syncd.connectors.graph.client import GraphClient

SECRET = "Graph-Secret-LEAKCHECK-93c1"
CLIENT = "11111111-2222-3333-4444-555555555555"


class Sleeps(list):  # type: ignore[type-arg]
    """A sleep that records instead of sleeping: the waits a client chose are what is tested."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(double: GraphDouble, tmp_path: Path, sleeps: Sleeps | None = None, **kwargs: object) -> GraphClient:
    double.clients[CLIENT] = SECRET
    sign_in = GraphSignIn(
        tenant_id=double.tenant,
        client_id=CLIENT,
        mode="app",
        authority_host=double.base,
        client_secret=lambda: SECRET,
        cache_path=tmp_path / "tokens.json",
        scope=graph_scope(double.graph_url),
    )
    return GraphClient(
        double.graph_url,
        GraphTokens(sign_in, "alice"),
        source="alice",
        sleep=sleeps if sleeps is not None else Sleeps(),
        **kwargs,
    )
