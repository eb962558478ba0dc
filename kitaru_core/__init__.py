"""kitaru_core: the durable runner and the plugin contract.

Plugins import from here (`kitaru_core.plugins`, `kitaru_core.interfaces`,
`kitaru_core.records`); this package never imports `kitaru` or a plugin.
"""

__version__ = "0.1.0"
