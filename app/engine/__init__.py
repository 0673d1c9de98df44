"""The engine: the confluent-kafka exactly-once loop that processes bid-commands inside the worker.

- `kafka`: the consumer and transactional producer settings, each with its reason;
- `transaction`: what one open transaction holds besides the records handed to the producer;
- `loop`: consume -> step (agents/) -> produce; commit with the offsets; rebalances;
- `owners`: which worker owns which partition, read from the consumer group itself;
- `service`: the Faust service that runs the loop in a thread of `faust -A app worker`.
"""
