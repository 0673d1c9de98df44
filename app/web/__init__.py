"""Faust web views: queries (routed to the partition owner), command ingestion, health."""
