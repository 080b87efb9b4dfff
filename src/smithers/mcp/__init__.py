"""smithers driven by coding agents: the MCP server (:mod:`.server`, :mod:`.tools`), registering
it in an agent's own configuration (:mod:`.register`) and ``smithers ask`` (:mod:`.ask`).

Importing this package imports nothing heavy; the MCP SDK is only needed by :mod:`.server`
(``pip install smithers-orchestrator[mcp]``)."""
