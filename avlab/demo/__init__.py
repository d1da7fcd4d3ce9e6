"""The Gradio demo (``avlab demo``): inputs (uploads → encoder inputs), engine (run, test gallery,
ranking), card (the run card) and app (the Gradio page and its safe launch)."""
