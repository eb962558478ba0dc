"""The MCP server object (the `mcp` SDK's `MCPServer`) over the tools of `kitaru.mcp.server`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import ConfigError, KitaruError

from .server import TOOLS

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

INSTRUCTIONS = (
    "kitaru runs durable Python flows: executions made of checkpoints that may wait for human "
    "input. Start with kitaru_status; list executions waiting for input with "
    "kitaru_executions_list(status='waiting'); read a wait's question and schema with "
    "kitaru_executions_get before answering it with kitaru_executions_input."
)

#: Tools that change nothing (the MCP `readOnlyHint`), and those that end or remove something.
_DESTRUCTIVE = {"kitaru_executions_cancel", "kitaru_deployments_delete", "kitaru_memory_delete"}


def build_server(*, middleware: Sequence[Any] = ()) -> MCPServer:
    """An `MCPServer` named "kitaru" serving every tool in `TOOLS`.

    `middleware` are the SDK's server middleware, outermost first (the kitaru server adds
    one that checks each call's API key scope and binds its client).
    """
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
        from mcp_types import ToolAnnotations
    except ImportError as exc:
        raise ConfigError(
            f"the MCP server needs the `mcp` package ({exc}); install it with "
            "`pip install 'kitaru[mcp]'`"
        ) from None
    import kitaru

    # The SDK configures the root logger (a rich handler at INFO) when a server is made; the
    # process that embeds it (the kitaru server, a user's app) keeps its own logging: a rich
    # render of every INFO line cost the server more than its requests.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        server = MCPServer("kitaru", version=kitaru.__version__, instructions=INSTRUCTIONS,
                           middleware=list(middleware))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    for name, (fn, scope) in TOOLS.items():
        read_only = scope == "read"
        server.add_tool(
            _as_tool_errors(fn, ToolError), name=name,
            annotations=ToolAnnotations(read_only_hint=read_only,
                                        destructive_hint=None if read_only else name in _DESTRUCTIVE),
        )
    return server


def _as_tool_errors(fn: Callable[..., Any], tool_error: type[Exception]) -> Callable[..., Any]:
    """`fn`, with a `KitaruError` raised as the SDK's `ToolError`: the agent reads its one-line
    message, where any other exception is a crash it sees only as "Error executing tool"."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KitaruError as exc:
            raise tool_error(str(exc)) from exc

    return call
