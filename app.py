"""Start the web app: `python app.py` (the same as `llmstruct serve`).

Binds to 127.0.0.1:7860 unless LLMSTRUCT_HOST / LLMSTRUCT_PORT say otherwise; set
LLMSTRUCT_AUTH=user:password before exposing it beyond this machine (a non-loopback
address without a login is refused unless LLMSTRUCT_OPEN_BIND=1).
"""

import sys

from llmstruct.app.webapp import launch
from llmstruct.errors import LlmstructError

if __name__ == "__main__":
    try:
        launch()
    except LlmstructError as exc:
        sys.exit(f"error: {exc}")
