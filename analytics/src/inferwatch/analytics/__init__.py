"""inferwatch analytics: baselines, Elasticsearch aggregations, drift detectors and alert documents."""
