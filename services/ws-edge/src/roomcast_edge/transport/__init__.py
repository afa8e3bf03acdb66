"""The edge's transport: the socket taken over from aiohttp after the upgrade, the
client frames read from it, and the outbound buffer that writes to it.

Nothing here decides what a client receives; the domain does, and the node passes
its answers here to be written.
"""
