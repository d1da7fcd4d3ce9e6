"""The Gradio demo (``avlab demo``): the page and its safe launch (app). It sits above the tasks:
each task contributes its tabs (``Task.demo_tabs``), built from the shared blocks in
:mod:`avlab.tasks.demo_widgets` and :mod:`avlab.tasks.run_card`, with uploads read by
:mod:`avlab.data.uploads`."""
