"""The `synthtune` command: the control plane's REST API from a shell.

Connection: --url / SYNTHTUNE_API_URL (default http://127.0.0.1:8080) and
--token / SYNTHTUNE_API_TOKEN, else the file named by SYNTHTUNE_CONFIG
(default ~/.config/synthtune/config.json: {"url": ..., "token": ...}).

Exit codes: 0 success; 2 a user error (bad arguments, or the API answered
4xx); 3 a server or upstream error (5xx, or the control plane unreachable);
4 the job or run being watched ended failed or cancelled.
"""

from synthtune.cli.main import main

__all__ = ["main"]
