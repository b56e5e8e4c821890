"""The model server's gunicorn worker: gthread, which lets go of idle connections when it
is told to stop.

gunicorn's gthread worker, on SIGTERM, waits for every open connection, idle keep-alive
ones included, until each times out (75 s here) or the graceful timeout ends: a client
that merely kept its connection open (SageMaker's front end, an HTTP pool) would hold a
stopping container for up to the timeout and get it killed (exit 137). Requests in flight
are still answered; connections with no request are closed at once.
"""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker


class ServeWorker(ThreadWorker):  # type: ignore[misc]
    def murder_keepalived(self) -> None:
        if not self.alive:  # stopping: an idle connection is done with
            for connection in self.keepalived_conns:
                connection.timeout = 0
        super().murder_keepalived()

    def murder_pending(self) -> None:
        if not self.alive:  # stopping: a connection that sent nothing yet is done with
            for connection in self.pending_conns:
                connection.timeout = 0
        super().murder_pending()
