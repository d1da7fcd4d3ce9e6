"""The Gradio demo (``avlab demo``): the page and its safe launch (app), the run card (card),
upload readers (inputs) and building blocks for the tabs each task contributes (widgets)."""
