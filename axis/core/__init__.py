"""The pure core: formats, signatures, PKI, policy. No aiohttp and no SQL here."""
