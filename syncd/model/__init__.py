"""The shared vocabulary: what every room of syncd speaks, importing nothing of the project.

* ``records``: the normalized records connectors produce and the store keeps;
* ``errors``: the exceptions a source raises, with the context (source, folder, retry
  hint) the service needs to report and schedule it;
* ``markers``: the marks syncd leaves in mailboxes so it never reads its own writes back;
* ``settings``: the building blocks of the config schema that connectors declare their
  settings with (paths, secrets, URLs);
* ``views``: the typed read models the store hands to the outputs.

Connectors, mapping, the store and the outputs import this package and their own
libraries only; ``tests/test_architecture.py`` holds the direction.
"""
