"""The agents: pure steps over one partition's state, one module per concern.

- `bids`: the command handler (decode -> re-route -> decide -> evolve);
- `highest_bids`: the highest-bid projection;
- `bid_rate`: the accepted-bids-per-minute window;
- `step`: the three in the order a command goes through them, returning the records to write.

No Kafka, Faust or RocksDB import: the engine (app/engine) moves records, owns the transaction
and commits; the tables (tables/) keep the state. tests/unit/test_step_conformance.py drives the
step with every kind of command.
"""
