"""The native development stack: a real Apache Kafka (from Maven Central) and Redis, no Docker.

`outbid dev up|down|status` and the test fixtures both drive these modules, so what the tests
run against is what developers run.
"""
