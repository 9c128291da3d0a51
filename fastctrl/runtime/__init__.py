"""What every stage that runs a model stands on: the profiler, the live evaluation and the
server load, answer and time a model the same way.

- :mod:`.registry`: built-in model and profile names (``fastctrl-digits``, ``tiny-<family>``),
  registered by their providers through the ``fastctrl.builtins`` entry point;
- :mod:`.loading`: ``load_model`` (a built-in name, a hub id or a ``save_pretrained``
  directory) and the chat processor;
- :mod:`.requests`, :mod:`.datasets`, :mod:`.synthetic_vqa`: requests, the dataset sources
  they come from, and the built-in synthetic image/question set;
- :mod:`.answering`: greedy ``generate()`` or the lean answer paths that give its tokens;
- :mod:`.timing`: one model call's wall time; :mod:`.metrics`: answer quality.

Nothing here imports a stage (``tests/test_layering.py``).
"""
