"""Outbound delivery: durable queues, one per destination, with retries and backoff, and
the address checks every request to another server goes through."""
