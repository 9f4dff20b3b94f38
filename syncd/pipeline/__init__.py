"""The pass, split by job: ``wiring`` (config to connectors and policy), ``source_pass``
(one source: read, decide, commit, write back), ``review_learning`` (what admins typed on
Review), ``timeline_output`` (what the workbooks show and when they are written) and
``passes`` (the pass that runs them in order)."""

from syncd.pipeline.passes import AUTO_CONTACTS_SOURCE, Pipeline
from syncd.pipeline.results import PassResult, SourceResult
from syncd.pipeline.timeline_output import IndexCache
from syncd.pipeline.wiring import make_connector, match_policy, peak_rss_mb, warn_insecure

__all__ = [
    "AUTO_CONTACTS_SOURCE",
    "IndexCache",
    "PassResult",
    "Pipeline",
    "SourceResult",
    "make_connector",
    "match_policy",
    "peak_rss_mb",
    "warn_insecure",
]
