"""IMAP mailboxes: the connector (``connector``), its fast FETCH reader (``wire``), the IDLE
watcher (``idle``) and the ``imap`` kind's settings (``kind``)."""
