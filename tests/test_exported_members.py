"""The public surface of the core package is deliberate: pin it."""

from __future__ import annotations

import scrm


def test_core_exports() -> None:
    assert set(scrm.__all__) == {
        "ConfigError",
        "ConnectorError",
        "ImportFileError",
        "NotFound",
        "RateLimited",
        "SchemaOutOfDate",
        "ScrmError",
        "Settings",
        "Store",
        "StoreError",
        "TokenRejected",
        "__version__",
        "load_settings",
    }
    for name in scrm.__all__:
        assert hasattr(scrm, name), name


def test_every_error_is_a_scrm_error() -> None:
    for name in scrm.__all__:
        value = getattr(scrm, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, scrm.ScrmError), name


def test_graph_exports() -> None:
    import graph

    assert set(graph.__all__) == {
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
    }
    for name in graph.__all__:
        value = getattr(graph, name)
        assert not callable(value) or value.__module__.startswith("graph."), name
