"""The aiohttp faces of the hub: the node API (TLS), the operator API, the middleware."""
