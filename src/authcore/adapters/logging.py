"""Request metadata from the principal: a log filter and a metrics hook protocol.

Both read the workspace id from the principal the adapter bound for the request
(:func:`authcore.binding.workspace_id_for_logs`), and get ``""`` when there is none. Nothing
else stores a workspace id.
"""

from __future__ import annotations

import logging
from typing import Protocol

from authcore.binding import workspace_id_for_logs

__all__ = ["RequestMetrics", "WorkspaceLogFilter"]


class WorkspaceLogFilter(logging.Filter):
    """Put the current principal's workspace id on every record as ``workspace_id``.

    Attach it to a handler (``handler.addFilter(WorkspaceLogFilter())``) and use
    ``%(workspace_id)s`` in the format. Records outside a request get ``""``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Set ``record.workspace_id``; never drops a record."""
        record.workspace_id = workspace_id_for_logs()
        return True


class RequestMetrics(Protocol):
    """A metrics hook the adapters call once per request.

    Called with the response status, the principal's workspace id (``""`` without one) and
    the request's duration in seconds. It must not raise; if it does, the adapter logs the
    failure and the response is unchanged.
    """

    def __call__(self, status: int, workspace_id: str, duration: float, /) -> None: ...
