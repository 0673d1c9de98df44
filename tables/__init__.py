"""The Faust tables (RocksDB via rocksdict, changelogs declared in topics.yaml)."""
