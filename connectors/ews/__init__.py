"""Exchange Server (on-premises) through EWS with exchangelib: ``session`` (one Account per
source, its own TLS and timeout), ``records``, ``folders``, the mail and calendar
``connector``, ``contacts``, and the kinds' settings (``kind``)."""
