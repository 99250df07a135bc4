"""Before a Rasa server starts (systemd ``ExecStartPre``, ``deploy/run_scaled.py``).

``python deploy/prepare_rasa.py OUT``: creates the token file of Rasa's HTTP API if it does
not exist yet (``BOT_RASA_TOKEN_FILE``, owner-only; shared by every Rasa and bot server of
the host) and writes Rasa's endpoints to ``OUT``: this replica's action server
(``BOT_ACTION_PORT``), the SQL tracker store on ``DATABASE_URL`` and, with a Redis
``BOT_EVENTS_URL``, the Redis lock store (:mod:`bot.store.rasa_endpoints`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bot.server.rasa_client import create_rasa_token
from bot.settings import get_settings
from bot.store.rasa_endpoints import write_endpoints


def main(argv: list[str]) -> int:
    """Prepare one Rasa server; 0 on success, 2 on a usage error, 1 on a setting error."""
    if len(argv) != 1:
        print("使い方: python deploy/prepare_rasa.py 出力先/endpoints.yml", file=sys.stderr)
        return 2
    try:
        settings = get_settings()
        create_rasa_token(settings.rasa_token_file)
        write_endpoints(Path(argv[0]), settings.action_port, settings.database_url, settings.events_url)
    except (OSError, ValueError) as exc:
        print(f"Rasa の起動準備ができませんでした: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
