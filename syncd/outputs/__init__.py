"""Outputs: what syncd writes back where staff work, rendered from the store's read models.

* ``view``: the timeline workbook's content as plain rows (pure functions);
* ``workbook``: writing it as an .xlsx file staff open in Excel, atomically;
* ``review_sheet``: reading back what admins typed into the workbook's Review sheet;
* ``cells``: the one escaping every cell syncd writes goes through;
* ``contact_notes``: a customer's recent timeline as the notes of an Outlook contact;
* ``labels``: customer names as IMAP keywords or Exchange categories.

The outputs import the shared vocabulary (``syncd.model``) and their own libraries only:
they never see a connector, the store's tables or the config file.
"""
