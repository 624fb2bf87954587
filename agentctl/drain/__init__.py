"""``drain``: stop an agent's intake, wait for its in-flight work, divert what is queued.

- :mod:`agentctl.drain.queues`: resolve queue names/URLs/ARNs, read their counts.
- :mod:`agentctl.drain.discover`: find the event source mappings that feed the agent.
- :mod:`agentctl.drain.wait`: wait (through the engine's clock) for in-flight work to finish.
- :mod:`agentctl.drain.ledger`: the durable record of moved message ids (exactly-once divert).
- :mod:`agentctl.drain.divert`: move messages between queues in batches, with several workers.
- :mod:`agentctl.drain.report`: what a drain did, for rendering and exit codes.
"""
