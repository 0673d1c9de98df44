"""topics.yaml: the declared shape of every topic (spec) and its reconciliation with a cluster (admin)."""

from app.topics.spec import ResolvedTopic, TopicsSpec, load_topics

__all__ = ["ResolvedTopic", "TopicsSpec", "load_topics"]
