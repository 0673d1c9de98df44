"""The chaos run: real brokers and workers on loopback, killed and restarted under load.

Three Kafka nodes (replication factor 3, min.insync.replicas 2), N workers, a load generator at
a steady rate with duplicates and garbage; every few seconds one worker is `kill -9`ed and
restarted, and once a broker is killed and restarted. Which worker dies when, which broker dies
when, and every command sent come from the seed alone (`schedule`). When the load stops and the
workers catch up, the run passes only if `outbid verify` finds every invariant intact, Kafka's
own `kafka-transactions find-hanging` finds no hanging transaction on any broker, and the group
has no lag left on the commands topic.

- `schedule`: the seed's kills and commands;
- `scenario`: the run, top to bottom, and the supervisor that restarts workers;
- `probes`: what it reads from Kafka at the end (lag, open and hanging transactions);
- `result`: what it found, as JSON and as a summary.
"""

from app.chaos.probes import lag, parse_find_hanging
from app.chaos.result import ChaosResult, WorkerExit
from app.chaos.scenario import run
from app.chaos.schedule import ChaosSpec, Kill, broker_kill, load_spec, worker_kills

__all__ = [
    "ChaosResult",
    "ChaosSpec",
    "Kill",
    "WorkerExit",
    "broker_kill",
    "lag",
    "load_spec",
    "parse_find_hanging",
    "run",
    "worker_kills",
]
