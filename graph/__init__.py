"""The relationship graph and social scoring.

Pure functions over numpy arrays compute each score; :func:`rescore` runs them all over the store
and writes a dated snapshot; the report functions read the latest snapshot.

- the graph: :class:`SocialGraph` from arrays (:func:`from_edges`) or the store (:func:`load_graph`);
- influence and reach: :func:`pagerank`, :func:`reach`, :func:`referral_reach`;
- communities: :func:`detect_communities`, :func:`stabilize_labels`, :func:`community_roles`,
  :func:`modularity`;
- customer value: :func:`summarize_purchases`, :func:`rfm_scores`, :func:`fit_bgnbd`,
  :func:`fit_gamma_gamma`, :func:`lifetime_value`, :func:`customer_value`;
- lifecycle: :func:`classify_lifecycle`, :func:`funnel`;
- the combined score: :func:`social_value`, :func:`explain`, :func:`percentile_rank`;
- the pipeline and its reports: :func:`rescore`, :func:`top_customers`, :func:`community_report`,
  :func:`explain_customer`, :func:`funnel_report`, :func:`churn_report`.
"""

from __future__ import annotations

from graph.build import SocialGraph, from_edges, load_graph
from graph.communities import Communities, community_roles, detect_communities, modularity, stabilize_labels
from graph.engine import available_engines
from graph.influence import pagerank, pagerank_residual
from graph.lifecycle import STAGES, Funnel, LifecycleResult, classify_lifecycle, funnel
from graph.pipeline import ScoreRunReport, rescore
from graph.reach import reach, referral_reach
from graph.reports import churn_report, community_report, explain_customer, funnel_report, top_customers
from graph.social import SocialValue, explain, percentile_rank, social_value
from graph.value import (
    BGNBD,
    CustomerValue,
    GammaGamma,
    PurchaseSummary,
    customer_value,
    fit_bgnbd,
    fit_gamma_gamma,
    lifetime_value,
    rfm_scores,
    summarize_purchases,
)

__all__ = [
    "BGNBD",
    "STAGES",
    "Communities",
    "CustomerValue",
    "Funnel",
    "GammaGamma",
    "LifecycleResult",
    "PurchaseSummary",
    "ScoreRunReport",
    "SocialGraph",
    "SocialValue",
    "available_engines",
    "churn_report",
    "classify_lifecycle",
    "community_report",
    "community_roles",
    "customer_value",
    "detect_communities",
    "explain",
    "explain_customer",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "from_edges",
    "funnel",
    "funnel_report",
    "lifetime_value",
    "load_graph",
    "modularity",
    "pagerank",
    "pagerank_residual",
    "percentile_rank",
    "reach",
    "referral_reach",
    "rescore",
    "rfm_scores",
    "social_value",
    "stabilize_labels",
    "summarize_purchases",
    "top_customers",
]
