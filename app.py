"""Start the web app: `python app.py` (the same as `llmstruct serve`).

Binds to 127.0.0.1:7860 unless LLMSTRUCT_HOST / LLMSTRUCT_PORT say otherwise; set
LLMSTRUCT_AUTH=user:password before exposing it beyond this machine.
"""

from llmstruct.app.webapp import launch

if __name__ == "__main__":
    launch()
