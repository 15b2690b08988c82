"""The local development stack: a real Kafka broker and a moto server on loopback.

Processes are started detached and remembered by PID file, so ``opens stack down`` stops
exactly what ``opens stack up`` started and nothing else.
"""
