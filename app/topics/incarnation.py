"""Which incarnation of a topic a piece of state was built from: the cluster id and the topic id.

An offset alone cannot tell two topics of the same name apart: a topic deleted and re-created
(`outbid dev down --wipe`, a new cluster, a restored backup) starts again at offset 0 and may grow
past any offset an old snapshot names. Kafka gives every topic a UUID at creation (KIP-516) and
every cluster an id: state that records both is accepted only by the topic it came from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from app.errors import KafkaUnavailableError

log = logging.getLogger(__name__)
TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Incarnation:
    cluster_id: str
    topic_id: str

    def __str__(self) -> str:
        return f"topic id {self.topic_id} on cluster {self.cluster_id}"

    def mismatch(self, cluster_id: str, topic_id: str) -> str | None:
        """Why state recorded with (cluster_id, topic_id) is not of this incarnation, or None."""
        if not topic_id:
            return "it records no topic id (taken by an older outbid)"
        if topic_id != self.topic_id:
            return f"it is of topic id {topic_id}, the live topic is {self.topic_id}"
        if cluster_id != self.cluster_id:
            return f"it is of cluster {cluster_id}, this is cluster {self.cluster_id}"
        return None


def incarnations(admin: AdminClient, topics: list[str]) -> dict[str, Incarnation]:
    """The live incarnation of each topic (KafkaUnavailableError when one does not exist)."""
    try:
        cluster_id = str(admin.describe_cluster(request_timeout=TIMEOUT_S).result().cluster_id)
        described = admin.describe_topics(TopicCollection(topics), request_timeout=TIMEOUT_S)
        return {
            topic: Incarnation(cluster_id, str(future.result().topic_id))
            for topic, future in described.items()
        }
    except KafkaException as exc:
        raise KafkaUnavailableError(
            f"could not describe topics {', '.join(topics)}: {exc.args[0]} "
            "(are the topics created? outbid topics apply)"
        ) from exc
