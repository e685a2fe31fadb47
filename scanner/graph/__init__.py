"""Microsoft Graph and Exchange admin API access (the only place the msgraph-sdk is used).

- :mod:`scanner.graph.factory` — ``connect(cfg, credential=None, transport=None) -> Connection`` honouring the cloud
  preset and ``[endpoints]``; credentials per ``[auth]``; ``StaticTokenCredential``; ``token_claims``.
- :mod:`scanner.graph.client` — ``GraphApi`` (raw JSON over the SDK pipeline, paging, ``$batch``), ``ExchangeApi``
  (``InvokeCommand``, paging), ``ApiError``, per-scope throttling.

Submodules are imported on use: importing this package does not load the SDK (``m365sweep --help`` stays fast).
"""
