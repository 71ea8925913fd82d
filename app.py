"""Start the web app: `python app.py` (the same as `llmstruct serve`).

The address it binds to, highest first (the first one set wins, host and port each on
their own):

1. an explicit argument: `llmstruct serve --host H --port P`;
2. LLMSTRUCT_HOST / LLMSTRUCT_PORT;
3. GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, Gradio's own variables (blank = unset);
4. `host` / `port` in the config file (LLMSTRUCT_CONFIG or ~/.config/llmstruct/config.toml);
5. the default, 127.0.0.1:7860.

So a deployment that sets only Gradio's variables gets the address it asked for, and
LLMSTRUCT_* can still override it. Whichever of these set the host, a non-loopback
address without a login is refused: set LLMSTRUCT_AUTH=user:password before exposing the
app beyond this machine (or LLMSTRUCT_OPEN_BIND=1 to let anyone who can reach it in).
"""

import sys

from llmstruct.app.webapp import launch
from llmstruct.errors import LlmstructError

if __name__ == "__main__":
    try:
        launch()
    except LlmstructError as exc:
        sys.exit(f"error: {exc}")
