"""The use cases: what the hub does, between its faces (the node API, the operator API, the
command line) and the store. No aiohttp and no SQL in here."""
