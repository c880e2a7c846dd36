"""Tools the model may call: built-in ones and those of MCP servers (docs/TOOLS.md).

- `base`: what a tool is (ToolSpec), what running it gives (ToolOutput), the tools of one reply
  (ToolSet), and how a result is cut for the model.
- `builtin`, `calculator`, `python_tool`: the tools that come with Hearth.
- `mcp`: MCP servers (stdio and streamable HTTP) through the official `mcp` SDK, their settings
  and the `mcpServers` JSON import.
- `registry`: all of them together, the choice per conversation, the prompt budget.
- `approval`: what the user allowed once, always, or denied.
- `loop`: what the chat service's tool loop is made of (running a call with a timeout and Stop,
  the reply's rounds as prompt messages).

Nothing here imports Qt or llama.cpp; MCP's SDK is imported only when a server is used.
"""
