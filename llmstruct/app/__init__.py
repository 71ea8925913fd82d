"""The edges: the CLI, the Gradio app, review pages, and the wiring from settings to library."""
